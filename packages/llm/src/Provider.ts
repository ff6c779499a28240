/**
 * The part a provider plays (OpenAI, the offline model, a scripted double): send a resolved request, read the
 * answer, map failures to `LlmError`. Everything every provider needs the same way (defaults, metering, pricing,
 * structured output, spans) is added by `LanguageModel.make`.
 *
 * @since 0.1.0
 */
import { OptionKeys } from "@trellis/core"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import type * as Effect from "effect/Effect"
import type * as Stream from "effect/Stream"
import type { LlmError } from "./LlmError.js"
import type { FinishReason, ResolvedRequest, ToolCall } from "./Prompt.js"
import type { Service as Tokenizer } from "./Tokenizer.js"

/**
 * Token counts as a provider reports them. `LanguageModel` checks them before they are priced, whichever the
 * provider: each a whole number from 0 to a billion, cached input tokens no more than the input, reasoning tokens
 * no more than the output. An answer that breaks this fails the call with `MalformedOutput`, and the call is
 * counted as if no usage had been reported (its tokens counted with the tokenizer), marked estimated.
 *
 * @since 0.1.0
 */
export interface ReportedUsage {
  readonly inputTokens: number
  readonly outputTokens: number
  readonly cachedInputTokens?: number | undefined
  readonly reasoningTokens?: number | undefined
}

/**
 * What a provider answers: `usage` is absent when the server did not report it.
 *
 * @since 0.1.0
 */
export interface Completion {
  readonly text: string
  readonly toolCalls: ReadonlyArray<ToolCall>
  readonly finishReason: FinishReason
  readonly model: string
  readonly usage?: ReportedUsage | undefined
  /**
   * The requests sent for this answer, the provider's own retries included: a whole number from 1 to 10,000 (1 when
   * unset). `usage` reports only the one that answered.
   */
  readonly requests?: number | undefined
  /**
   * Of the requests before the one that answered, those that may have been billed for their input (ended without an
   * error status, see `LlmError.Sent`): each is counted at its input, estimated. A whole number from 0 to
   * `requests - 1`; all of them when unset.
   */
  readonly billable?: number | undefined
}

/**
 * A piece of a provider's stream: text as it arrives, then the whole completion.
 *
 * @since 0.1.0
 */
export type Chunk =
  | { readonly _tag: "Delta"; readonly text: string }
  | { readonly _tag: "Done"; readonly completion: Completion }

/**
 * A provider, for use with `LanguageModel.make`.
 *
 * @since 0.1.0
 */
export interface Provider {
  /** "openai", "offline", "scripted"... */
  readonly name: string
  /** The model used when a request names none. */
  readonly model: string
  readonly generate: (request: ResolvedRequest) => Effect.Effect<Completion, LlmError>
  readonly stream: (request: ResolvedRequest) => Stream.Stream<Chunk, LlmError>
  /**
   * The provider's own token counting, when it has one (the tokenizer of its models, the markup it adds): used for
   * reservations and estimates in place of `Tokenizer.o200k`, unless the application provides a `Tokenizer`.
   */
  readonly tokenizer?: Tokenizer | undefined
}

/**
 * Where a provider marks each request of a call as it is sent and as it ends without an answer. A call interrupted
 * from outside ends with no error to carry `LlmError.Sent`: `LanguageModel` then settles it to this tally, each
 * request still in flight counted as billed for its input. A provider that does not use it is taken to have sent
 * one request, billed for its input.
 *
 * @since 0.2.0
 */
export interface Tally {
  /** A request is being sent. */
  readonly sent: () => void
  /** A request ended without an answer; `billable` as in `LlmError.Sent`. */
  readonly ended: (billable: boolean) => void
}

/**
 * The current call's {@link Tally}, which `LanguageModel` provides to each `generate` and `stream` of its provider
 * (read it with `Effect.serviceOption`: a provider run on its own has none).
 *
 * @since 0.2.0
 */
export class CurrentTally extends Context.Tag("@trellis/llm/Provider/CurrentTally")<CurrentTally, Tally>() {}

/**
 * A change to the provider of every language model built where it is provided: `LanguageModel.make` hands its
 * provider to it and uses what it returns. `Fixtures.record` is one, so any model layer built on `LanguageModel.make`
 * (`OpenAi.layer`, `OfflineModel.layer`, a provider of one's own) is recorded by providing it to that layer.
 *
 * @since 0.3.0
 */
export class Wrapper extends Context.Tag("@trellis/llm/Provider/Wrapper")<Wrapper, (provider: Provider) => Provider>() {}

/**
 * How long a rate-limited server asks the client to wait: `retry-after-ms` where sent (more precise), else HTTP's
 * `retry-after`, in seconds or as a date; `undefined` when neither says. Header names are matched in any case.
 *
 * @since 0.2.0
 */
export const retryAfter = (
  headers: Headers | Readonly<Record<string, string | undefined>> | undefined
): Duration.Duration | undefined => {
  const header = headerReader(headers)
  const ms = Number(header("retry-after-ms") ?? Number.NaN)
  if (Number.isFinite(ms) && ms >= 0) return Duration.millis(ms)
  const value = header("retry-after")
  if (value == null) return undefined
  const seconds = Number(value)
  if (Number.isFinite(seconds) && seconds >= 0) return Duration.seconds(seconds)
  const date = Date.parse(value)
  return Number.isNaN(date) ? undefined : Duration.millis(Math.max(0, date - Date.now()))
}

const headerReader = (
  headers: Headers | Readonly<Record<string, string | undefined>> | undefined
): (name: string) => string | null | undefined => {
  if (headers === undefined) return () => undefined
  if (headers instanceof Headers) return (name) => headers.get(name)
  const lower = Object.fromEntries(Object.entries(headers).map(([key, value]) => [key.toLowerCase(), value]))
  return (name) => lower[name]
}

/**
 * A provider's error text as an error's detail: one short line (error bodies can be whole HTML pages from a proxy),
 * without anything shaped like a credential, for a provider that does not hold the key itself and so cannot remove
 * it by its value.
 *
 * @since 0.2.0
 */
export const errorDetail = (text: string): string =>
  shortLine(
    text
      .replace(/\b(?:sk|pk|rk|key|api[-_]?key)[-_][A-Za-z0-9_-]{6,}/gi, "<redacted>")
      .replace(/\bAIza[A-Za-z0-9_-]{20,}/g, "<redacted>")
      .replace(/\b(Bearer|Basic)\s+[A-Za-z0-9._~+/=-]+/gi, "$1 <redacted>")
  )

/**
 * Text on one line of at most 200 characters.
 *
 * @since 0.2.0
 */
export const shortLine = (text: string): string => {
  const line = text.replace(/\s+/g, " ").trim()
  return line.length <= 200 ? line : `${line.slice(0, 199)}…`
}

/**
 * The options of `LanguageModel.make`, which every provider layer's options include.
 *
 * @since 0.3.0
 * @category options
 */
export const languageModelOptions: ReadonlyArray<string> = ["maxTokens", "inputMargin", "maxRepairs", "temperature"]

/**
 * An option a provider layer does not know (`retries` for `retry`, `base_url` for `baseURL`), as its
 * `InvalidOption` names it: a TypeScript caller could not have written it, and ignoring it would silently do
 * something else. `known` are the layer's own options beside {@link languageModelOptions}; `nested`, those of an
 * option that is itself an object (`{ retry: ["times", "base", "cap"] }`).
 *
 * @since 0.3.0
 * @category options
 */
export const unknownOption = (
  options: unknown,
  known: ReadonlyArray<string>,
  nested: Readonly<Record<string, ReadonlyArray<string>>> = {}
): { readonly option: string; readonly value: string; readonly expected: string } | undefined => {
  let found = OptionKeys.find(options, [...known, ...languageModelOptions])
  for (const [key, keys] of Object.entries(nested)) {
    found ??= OptionKeys.find((options as Record<string, unknown> | undefined)?.[key], keys, `${key}.`)
  }
  if (found === undefined) return undefined
  return {
    option: found.path,
    // A misplaced key may hold a secret: its value is described, never shown.
    value: `a value of type ${found.value === null ? "null" : typeof found.value}`,
    expected: found.meant === undefined ? `one of ${found.known.join(", ")}` : `a known option: did you mean ${found.meant}?`
  }
}
