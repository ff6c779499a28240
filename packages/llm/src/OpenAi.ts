/**
 * The OpenAI layer, on the official `openai` SDK, for OpenAI and any server that speaks its Chat Completions API
 * (vLLM, Ollama, LM Studio...).
 *
 * The SDK retries and times out on its own by default; both are turned off here and done with Effect instead, so
 * every retry is logged (an event on the call's `chat {model}` span) with its reason and delay, waits on Effect's
 * clock (testable with `TestClock`), and every attempt is aborted when its fiber is interrupted. A call is
 * metered once, whatever the number of attempts it took, and every request it sent is counted: the answer or the
 * error that ends the call says how many there were, and which may have been billed (see `LlmError.Sent`); the
 * call's `Provider.CurrentTally` is kept too, for a call interrupted mid-way.
 *
 * What a server answers is not taken on trust: a stream is bounded in time as a whole, output past the request's
 * `maxTokens` is cut (finish reason "length"), a JSON answer to a streaming request is read as the completion it
 * is, usage counts must be numbers (whether they can be right is checked by `LanguageModel`, as for every
 * provider), and the API key is scrubbed (raw or JSON-escaped) from every error, log line and span.
 *
 * @example
 * ```ts
 * import { LanguageModel, OpenAi } from "@trellis/llm"
 * import { Effect } from "effect"
 *
 * // OPENAI_API_KEY, and OPENAI_BASE_URL for a compatible server such as http://localhost:11434/v1 (Ollama).
 * const program = LanguageModel.generate("Say hello").pipe(
 *   Effect.provide(OpenAi.layerConfig({ model: "gpt-4o-mini", timeout: "30 seconds", retry: { times: 2 } }))
 * )
 * ```
 *
 * @since 0.1.0
 */
import * as Clock from "effect/Clock"
import * as Config from "effect/Config"
import * as ConfigError from "effect/ConfigError"
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Redacted from "effect/Redacted"
import * as Schedule from "effect/Schedule"
import * as Stream from "effect/Stream"
import { decode as decodeTokens, encode as encodeTokens } from "gpt-tokenizer/encoding/o200k_base"
import OpenAI from "openai"
import type {
  ChatCompletion,
  ChatCompletionChunk,
  ChatCompletionCreateParamsNonStreaming,
  ChatCompletionMessageParam
} from "openai/resources/chat/completions"
import * as LanguageModel from "./LanguageModel.js"
import * as Redaction from "./Redaction.js"
import {
  AuthenticationError,
  BadRequest,
  ContentFiltered,
  isTransient,
  type LlmError,
  LlmTimeout,
  MalformedOutput,
  RateLimited,
  type Sent,
  ServerError,
  withSent
} from "./LlmError.js"
import type { FinishReason, Message, ResolvedRequest } from "./Prompt.js"
import {
  type Chunk,
  type Completion,
  CurrentTally,
  type Provider,
  type ReportedUsage,
  retryAfter,
  shortLine,
  unknownOption
} from "./Provider.js"

/**
 * How transient failures (429, 5xx, connection errors, timeouts) are retried: at most `times` more attempts,
 * waiting an exponential, jittered delay from `base`, or the server's `Retry-After` when it asks for longer,
 * never more than `cap`. A server asking (with `Retry-After`) for longer than `cap` is not retried early against
 * its wish: the call fails at once, a `RateLimited` carrying the wait it asked for.
 *
 * @since 0.1.0
 */
export interface RetryOptions {
  /** More attempts after the first: a whole number from 0 to 1000 (default 3). */
  readonly times?: number | undefined
  /** The first backoff delay, doubled at each retry: a positive duration (default 500 ms). */
  readonly base?: Duration.DurationInput | undefined
  /**
   * The longest wait between two attempts, whatever the backoff says: a positive duration (default 30 seconds).
   * A server asking for longer ends the call instead.
   */
  readonly cap?: Duration.DurationInput | undefined
}

/**
 * Options of the OpenAI layer. They are checked when the layer is built: an invalid one fails it with
 * {@link InvalidOption} (`layer`, `make`) or a `ConfigError` naming it (`layerConfig`).
 *
 * @since 0.1.0
 */
export interface Options extends LanguageModel.Options {
  readonly apiKey: Redacted.Redacted<string>
  /** An OpenAI-compatible server; OpenAI's own API when unset. */
  readonly baseURL?: string | undefined
  /** The model used when a request names none (default "gpt-4o-mini"). */
  readonly model?: string | undefined
  /**
   * Time allowed for one attempt, a positive duration (default 60 seconds). When streaming, it bounds the whole
   * attempt, from the request to the last chunk: a server that keeps sending forever is given up on too.
   */
  readonly timeout?: Duration.DurationInput | undefined
  /** How transient failures are retried (default: 3 more attempts from 500 ms, at most 30 s apart). */
  readonly retry?: RetryOptions | undefined
  /**
   * The field the output limit is sent in. OpenAI's API wants `max_completion_tokens` (its reasoning models
   * reject `max_tokens`); many compatible servers (older vLLM, Ollama, LM Studio) only know `max_tokens` and
   * ignore the other, which would leave the answer unbounded while the ledger counts on the bound. The default
   * follows `baseURL`: the former for OpenAI's own API, the latter for any other server. Either way, text past
   * the limit (a server that ignores it) is cut here.
   */
  readonly maxTokensField?: "max_completion_tokens" | "max_tokens" | undefined
  readonly organization?: string | undefined
  readonly project?: string | undefined
}

/**
 * An option of the OpenAI layer is out of its range: `option` names it ("retry.times", "timeout"...).
 *
 * @since 0.1.0
 */
export class InvalidOption extends Data.TaggedError("InvalidOption")<{
  readonly option: string
  readonly value: string
  readonly expected: string
}> {
  override get message(): string {
    return `OpenAi option ${this.option} must be ${this.expected}, got ${this.value}`
  }
}

const providerName = "openai"

// The largest delay a Node timer accepts: the SDK's own timeout is pushed out of the way, Effect's applies.
const sdkTimeoutOff = 2 ** 31 - 1

// OpenAI's own API, whether reached by default or named in `baseURL`.
const isOpenAi = (baseURL: string | undefined): boolean => {
  if (baseURL === undefined) return true
  try {
    return new URL(baseURL).hostname === "api.openai.com"
  } catch {
    return false
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Options

// The options, checked and decoded.
interface Settings {
  readonly timeout: Duration.Duration
  readonly retry: { readonly times: number; readonly base: Duration.Duration; readonly cap: Duration.Duration }
}

const show = (value: unknown): string =>
  typeof value === "number" || typeof value === "bigint" ? String(value) : (JSON.stringify(value) ?? String(value))

const positiveDuration = (
  option: string,
  value: Duration.DurationInput | undefined,
  fallback: Duration.DurationInput
): Either.Either<Duration.Duration, InvalidOption> => {
  const decoded = Duration.decodeUnknown(value ?? fallback)
  return Option.isSome(decoded) && Duration.isFinite(decoded.value) &&
      Duration.greaterThan(decoded.value, Duration.zero) &&
      // A negative or NaN number of milliseconds decodes to zero, or worse: only a plain positive count passes.
      (typeof value !== "number" || (Number.isFinite(value) && value > 0))
    ? Either.right(decoded.value)
    : Either.left(new InvalidOption({ option, value: show(value), expected: "a positive, finite duration" }))
}

const wholeNumber = (option: string, value: unknown, min: number, max: number) =>
  typeof value === "number" && Number.isInteger(value) && value >= min && value <= max
    ? Either.right(value)
    : Either.left(
      new InvalidOption({
        option,
        value: show(value),
        expected: max === Number.MAX_SAFE_INTEGER
          ? `a whole number from ${min}`
          : `a whole number from ${min} to ${max}`
      })
    )

// A key a TypeScript caller could not have written (`retries`, `base_url`): refused rather than silently ignored.
const knownOnly = (options: Options): Either.Either<void, InvalidOption> => {
  const unknown = unknownOption(
    options,
    ["apiKey", "baseURL", "model", "timeout", "retry", "maxTokensField", "organization", "project"],
    { retry: ["times", "base", "cap"] }
  )
  return unknown === undefined ? Either.void : Either.left(new InvalidOption(unknown))
}

const validate = (options: Options): Either.Either<Settings, InvalidOption> =>
  Either.gen(function*() {
    yield* knownOnly(options)
    if (options.maxTokens !== undefined) yield* wholeNumber("maxTokens", options.maxTokens, 1, Number.MAX_SAFE_INTEGER)
    if (options.maxRepairs !== undefined) yield* wholeNumber("maxRepairs", options.maxRepairs, 0, 100)
    const timeout = yield* positiveDuration("timeout", options.timeout, "60 seconds")
    const retry = options.retry ?? {}
    const times = yield* wholeNumber("retry.times", retry.times ?? 3, 0, 1000)
    const base = yield* positiveDuration("retry.base", retry.base, "500 millis")
    const cap = yield* positiveDuration("retry.cap", retry.cap, "30 seconds")
    return { timeout, retry: { times, base, cap } }
  })

// ---------------------------------------------------------------------------------------------------------------
// The provider

/**
 * The OpenAI provider, for use with `LanguageModel.make`. Throws {@link InvalidOption} when an option is out of
 * range; `make` and `layer` fail with it instead.
 *
 * @since 0.1.0
 */
export const provider = (options: Options): Provider => {
  const settings = validate(options)
  if (Either.isLeft(settings)) throw settings.left
  return providerWith(options, settings.right)
}

const providerWith = (options: Options, settings: Settings): Provider => {
  const key = Redacted.value(options.apiKey)
  const baseURL = options.baseURL === "" ? undefined : options.baseURL
  const client = new OpenAI({
    apiKey: key,
    // `null`, not `undefined`: the SDK would otherwise read `OPENAI_BASE_URL` itself, behind the caller's back.
    baseURL: baseURL ?? null,
    organization: options.organization ?? null,
    project: options.project ?? null,
    maxRetries: 0,
    timeout: sdkTimeoutOff,
    // The SDK logs what it cannot parse, raw (a server could echo the key there): failures are reported here.
    logLevel: "off"
  })
  const timeout = settings.timeout
  const maxTokensField = options.maxTokensField ??
    (isOpenAi(baseURL) ? "max_completion_tokens" : "max_tokens")
  const read = reader(Redaction.scrubber(options.apiKey))
  const toFailure = failureMapper(read.scrub)
  const toError = (error: unknown) => toFailure(error).error
  const retry = retrySchedule(settings.retry)
  const timedOut = () => new LlmTimeout({ provider: providerName, timeout })

  // One attempt, and when it started: interruption (a timeout, a cancelled run) aborts the HTTP request through
  // the signal. A request that timed out may have been read by the server: billable.
  const attempt = <A>(send: (signal: AbortSignal) => Promise<A>): Effect.Effect<readonly [A, number], Failure> =>
    Effect.flatMap(Clock.currentTimeMillis, (start) =>
      Effect.tryPromise({ try: send, catch: toFailure }).pipe(
        Effect.timeoutFail({
          duration: timeout,
          onTimeout: () => ({ error: timedOut(), retryAfter: undefined, billable: true })
        }),
        Effect.map((answer) => [answer, start] as const)
      ))

  // Attempts until one succeeds, a failure is not transient, or the retries run out. The error that ends the call
  // carries the requests sent and how many of them may have been billed; the answer comes with the same tally.
  const withRetries = <A>(
    send: (signal: AbortSignal) => Promise<A>
  ): Effect.Effect<readonly [A, number, Sent], LlmError> =>
    Effect.flatMap(Effect.serviceOption(CurrentTally), (current) => {
      const tally = Option.getOrUndefined(current)
      // Counted here for the error that ends the call, and in the caller's tally for a call interrupted mid-way.
      let requests = 0
      let billable = 0
      return attempt((signal) => {
        requests++
        tally?.sent()
        return send(signal)
      }).pipe(
        Effect.tapError((failure) =>
          Effect.sync(() => {
            if (failure.billable) billable++
            tally?.ended(failure.billable)
          })
        ),
        Effect.retry(retry),
        Effect.mapError((failure) => withSent(failure.error, { requests, billable })),
        Effect.map(([answer, start]) => [answer, start, { requests, billable }] as const)
      )
    })

  const generate = (request: ResolvedRequest): Effect.Effect<Completion, LlmError> => {
    const body = toBody(request, maxTokensField)
    return Effect.flatMap(
      withRetries((signal) => client.chat.completions.create(body, { signal })),
      ([completion, , sent]) =>
        read.completion(completion, request).pipe(
          Effect.map((answer) => withRequests(answer, sent)),
          Effect.mapError((error) => withSent(error, answered(sent)))
        )
    )
  }

  const stream = (request: ResolvedRequest): Stream.Stream<Chunk, LlmError> =>
    Stream.unwrapScoped(Effect.gen(function*() {
      // The attempt's own signal only lasts until the answer starts, but the body is read after that: each attempt
      // gets a controller of its own, aborted with the attempt (a timeout), and the one that opened the stream is
      // aborted when the stream's scope closes (the consumer stopped early, failed, or was interrupted, the
      // answer was cut or ran out of time).
      let opened: AbortController | undefined
      yield* Effect.addFinalizer(() => Effect.sync(() => opened?.abort()))
      const body = { ...toBody(request, maxTokensField), stream: true as const, stream_options: { include_usage: true } }
      const [{ data: chunks, response }, start, sent] = yield* withRetries((signal) => {
        const controller = new AbortController()
        signal.addEventListener("abort", () => controller.abort(), { once: true })
        opened = controller
        return client.chat.completions.create(body, { signal: controller.signal }).withResponse()
      })
      // The attempt's timeout bounds the whole answer, not just its start: what is left of it bounds the body.
      const elapsed = (yield* Clock.currentTimeMillis) - start
      const deadline = Effect.zipRight(
        Effect.sleep(Duration.millis(Math.max(0, Duration.toMillis(timeout) - elapsed))),
        Effect.fail(timedOut())
      )
      const type = (response.headers.get("content-type") ?? "").split(";")[0]!.trim().toLowerCase()
      if (type !== "" && type !== "text/event-stream") {
        // A server that ignored `stream: true` and answered with one body: read as the completion it should be.
        const whole = Effect.flatMap(
          Effect.tryPromise({ try: () => response.text(), catch: toError }),
          (text) => read.completion(parseOrText(text), request)
        )
        return Stream.fromEffect(whole).pipe(
          Stream.mapConcat((completion): Array<Chunk> => [
            ...(completion.text.length > 0 ? [{ _tag: "Delta" as const, text: completion.text }] : []),
            { _tag: "Done", completion: withRequests(completion, sent) }
          ]),
          Stream.interruptWhen(deadline),
          Stream.mapError((error) => withSent(error, answered(sent)))
        )
      }
      // Pulled by hand rather than with `Stream.fromAsyncIterable`: that one calls the iterator's `return` when the
      // stream ends early, and the SDK's iterator is an async generator, whose `return` waits for the pending
      // `next`, which a stalled server never settles. Aborting (the finalizer above) ends the generator instead.
      const iterator = chunks[Symbol.asyncIterator]()
      const pull = Effect.flatMap(
        Effect.tryPromise({ try: () => iterator.next(), catch: (error) => Option.some(toError(error)) }),
        (next) => (next.done === true ? Effect.fail(Option.none()) : Effect.succeed(next.value))
      )
      const acc = new Accumulator(request, read)
      const done = Effect.map(
        Effect.suspend(() => acc.done()),
        (chunk): Chunk => (chunk._tag === "Done" ? { ...chunk, completion: withRequests(chunk.completion, sent) } : chunk)
      )
      return Stream.repeatEffectOption(pull).pipe(
        Stream.mapEffect((chunk) => acc.add(chunk)),
        // Once the answer is cut at `maxTokens`, nothing more is read: the scope's end closes the connection.
        Stream.takeUntil(() => acc.cut),
        Stream.flattenIterables,
        Stream.concat(Stream.fromEffect(done)),
        // A server that stops sending mid-answer, or never stops, is given up on like one that never answers.
        Stream.interruptWhen(deadline),
        // Whatever ends the stream now, the request that opened it was answered: billable.
        Stream.mapError((error) => withSent(error, answered(sent)))
      )
    }))

  return { name: providerName, model: options.model ?? "gpt-4o-mini", generate, stream }
}

/**
 * Makes the language model service on OpenAI; fails with {@link InvalidOption} when an option is out of range.
 *
 * @since 0.1.0
 */
export const make = (options: Options): Effect.Effect<LanguageModel.Service, InvalidOption> =>
  Effect.flatMap(validate(options), (settings) => LanguageModel.make(providerWith(options, settings), options))

/**
 * The OpenAI language model as a layer: building it fails with {@link InvalidOption} when an option is out of
 * range (`retry.times` not a whole number from 0 to 1000, a duration not positive, `maxTokens` not a positive
 * whole number...), before any request is sent.
 *
 * @since 0.1.0
 */
export const layer = (options: Options): Layer.Layer<LanguageModel.LanguageModel, InvalidOption> =>
  Layer.effect(LanguageModel.LanguageModel, make(options))

/**
 * The OpenAI language model configured from the environment: `OPENAI_API_KEY` (required, read as `Redacted` so
 * it never shows in logs or errors) and `OPENAI_BASE_URL` (optional, for a compatible server; `options.baseURL`
 * when unset or empty). An option out of range fails the layer with a `ConfigError` (invalid data) at the
 * option's path, such as `retry.times`.
 *
 * @since 0.1.0
 */
export const layerConfig = (
  options: Omit<Options, "apiKey"> = {}
): Layer.Layer<LanguageModel.LanguageModel, ConfigError.ConfigError> =>
  Layer.effect(
    LanguageModel.LanguageModel,
    Effect.gen(function*() {
      const { apiKey, baseURL } = yield* Config.all({
        apiKey: Config.redacted("OPENAI_API_KEY").pipe(
          Config.validate({
            message: "OPENAI_API_KEY is empty",
            validation: (key) => Redacted.value(key).length > 0
          })
        ),
        baseURL: Config.withDefault(Config.string("OPENAI_BASE_URL"), "")
      })
      return yield* make({ ...options, apiKey, baseURL: baseURL.length > 0 ? baseURL : options.baseURL }).pipe(
        Effect.mapError((invalid) => ConfigError.InvalidData(invalid.option.split("."), invalid.message))
      )
    })
  )

// ---------------------------------------------------------------------------------------------------------------
// Requests

const toMessage = (message: Message): ChatCompletionMessageParam => {
  switch (message.role) {
    case "system":
    case "user":
      return { role: message.role, content: message.content }
    case "assistant":
      return message.toolCalls === undefined || message.toolCalls.length === 0
        ? { role: "assistant", content: message.content }
        : {
          role: "assistant",
          content: message.content.length === 0 ? null : message.content,
          tool_calls: message.toolCalls.map((call) => ({
            id: call.id,
            type: "function",
            function: { name: call.name, arguments: call.arguments }
          }))
        }
    case "tool":
      return { role: "tool", tool_call_id: message.toolCallId, content: message.content }
  }
}

// `$schema` says which draft a document follows; OpenAI's schema subset does not list it, so it is left out.
const withoutDialect = (schema: object): Record<string, unknown> => {
  const { $schema: _, ...rest } = schema as Record<string, unknown>
  return rest
}

const toBody = (
  request: ResolvedRequest,
  maxTokensField: "max_completion_tokens" | "max_tokens"
): ChatCompletionCreateParamsNonStreaming => ({
  model: request.model,
  messages: request.messages.map(toMessage),
  [maxTokensField]: request.maxTokens,
  ...(request.temperature === undefined ? {} : { temperature: request.temperature }),
  ...(request.tools.length === 0 ? {} : {
    tools: request.tools.map((tool) => ({
      type: "function" as const,
      function: { name: tool.name, description: tool.description, parameters: withoutDialect(tool.parameters) }
    }))
  }),
  ...(request.json === undefined ? {} : {
    response_format: {
      type: "json_schema" as const,
      json_schema: { name: request.json.name, schema: withoutDialect(request.json.schema), strict: false }
    }
  })
})

// ---------------------------------------------------------------------------------------------------------------
// Answers

const finishReason = (reason: string | null | undefined): FinishReason => {
  switch (reason) {
    case "stop":
    case "length":
    case "tool_calls":
    case "content_filter":
      return reason
    case "function_call":
      return "tool_calls"
    default:
      return "other"
  }
}

// The body of an answer to a streaming request that was not a stream: JSON if it parses, else the text itself.
const parseOrText = (text: string): unknown => {
  try {
    return JSON.parse(text)
  } catch {
    return text
  }
}

// Tokens as the service counts them by default (`o200k_base`); special tokens in an answer are text like any other.
const encodeAll = (text: string): Array<number> => encodeTokens(text, { disallowedSpecial: new Set() })

// The output limit of a request, if it is one a text can be cut to (a request's own `maxTokens` is not checked here).
const limitOf = (request: ResolvedRequest): number | undefined =>
  Number.isSafeInteger(request.maxTokens) && request.maxTokens >= 0 ? request.maxTokens : undefined

// `text` cut to `max` tokens; `undefined` when it fits. A token is at least one UTF-8 byte, at most 3 per UTF-16 unit.
const cutText = (text: string, max: number | undefined): string | undefined => {
  if (max === undefined || text.length * 3 <= max) return undefined
  const tokens = encodeAll(text)
  return tokens.length <= max ? undefined : decodeTokens(tokens.slice(0, max))
}

type Reader = ReturnType<typeof reader>

// Reads answers into completions, every error made here scrubbed of the key.
const reader = (scrub: (text: string) => string) => {
  const malformed = (text: string, detail: string) =>
    new MalformedOutput({ provider: providerName, text: scrub(text).slice(0, 2000), detail: scrub(detail), attempts: 1 })

  const filtered = (detail: string) => new ContentFiltered({ provider: providerName, detail: scrub(detail) })

  // A token count as the JSON gave it: a number as it is, a string of digits as the number it spells (some
  // compatible servers send those). Anything else is not a count of any kind. Whether a number can be right (whole,
  // not negative, not absurd) is checked by the service, for every provider alike.
  const count = (field: string, value: unknown, text: string): number => {
    if (typeof value === "number") return value
    if (typeof value === "string" && /^\s*\d+\s*$/.test(value)) return Number(value)
    throw malformed(text, `the usage reported is not a token count: ${field} is ${show(value).slice(0, 100)}`)
  }

  // Usage as the JSON reported it; `undefined` when the server reported none (the service then counts it).
  const usage = (raw: unknown, text: string): ReportedUsage | undefined => {
    if (raw == null) return undefined
    if (typeof raw !== "object") throw malformed(text, `the usage reported is not an object: ${show(raw).slice(0, 100)}`)
    const block = raw as Record<string, any>
    if (block.prompt_tokens == null || block.completion_tokens == null) return undefined
    const cached = block.prompt_tokens_details?.cached_tokens
    const reasoning = block.completion_tokens_details?.reasoning_tokens
    return {
      inputTokens: count("prompt_tokens", block.prompt_tokens, text),
      outputTokens: count("completion_tokens", block.completion_tokens, text),
      cachedInputTokens: cached == null ? 0 : count("prompt_tokens_details.cached_tokens", cached, text),
      reasoningTokens: reasoning == null ? 0 : count("completion_tokens_details.reasoning_tokens", reasoning, text)
    }
  }

  const completionOf = (raw: unknown, request: ResolvedRequest): Completion => {
    // A server that is not quite compatible may send text, or JSON of another shape, with a 200.
    if (typeof raw !== "object" || raw === null || !Array.isArray((raw as any).choices)) {
      throw malformed(typeof raw === "string" ? raw : JSON.stringify(raw) ?? "", "the response is not a chat completion")
    }
    const body = raw as ChatCompletion
    const choice = body.choices[0]
    if (choice === undefined) throw malformed("", "the response has no choices")
    const message = choice.message
    if (typeof message !== "object" || message === null) {
      throw malformed(JSON.stringify(raw), "the response's choice has no message")
    }
    if (choice.finish_reason === "content_filter") throw filtered("the answer was withheld")
    if (message.refusal) throw filtered(String(message.refusal))
    const content = message.content ?? ""
    if (typeof content !== "string") throw malformed(JSON.stringify(raw), "the message content is not text")
    // A server that ignored the limit: only what fits is kept, and the answer is marked cut.
    const cut = cutText(content, limitOf(request))
    return {
      text: cut ?? content,
      toolCalls: (message.tool_calls ?? []).flatMap((call) =>
        call.type === "function" ? [{ id: call.id, name: call.function.name, arguments: call.function.arguments }] : []
      ),
      finishReason: cut === undefined ? finishReason(choice.finish_reason) : "length",
      // Some compatible servers leave the model out; a hostile one could put anything there, and it goes on spans.
      model: typeof body.model === "string" && body.model.length > 0 ? scrub(body.model) : request.model,
      usage: usage(body.usage, content)
    }
  }

  // Anything thrown while reading an answer that is not one of these errors is a shape the code did not expect.
  const caught = (raw: unknown) => (error: unknown): LlmError =>
    error instanceof MalformedOutput || error instanceof ContentFiltered
      ? error
      : malformed(
        (() => {
          try {
            return typeof raw === "string" ? raw : JSON.stringify(raw) ?? ""
          } catch {
            return ""
          }
        })(),
        `the response could not be read: ${error instanceof Error ? error.message : String(error)}`
      )

  const completion = (raw: unknown, request: ResolvedRequest): Effect.Effect<Completion, LlmError> =>
    Effect.try({ try: () => completionOf(raw, request), catch: caught(raw) })

  return { scrub, malformed, filtered, usage, completion, caught }
}

// Gathers a streamed answer: text and tool-call fragments as they come, usage from the last chunk, and cuts the
// text at the request's `maxTokens`.
class Accumulator {
  text = ""
  reason: string | null = null
  usage: ReportedUsage | undefined = undefined
  refusal = ""
  model: string
  chunks = 0
  /** Whether the text reached `maxTokens`, after which nothing more is read. */
  cut = false
  // At least the tokens of `text`: the sum of its deltas' counts (a split text has at least as many tokens).
  private tokens = 0
  readonly calls: Array<{ id: string; name: string; arguments: string }> = []

  private readonly request: ResolvedRequest
  private readonly read: Reader

  constructor(request: ResolvedRequest, read: Reader) {
    this.request = request
    this.read = read
    this.model = request.model
  }

  add(chunk: ChatCompletionChunk): Effect.Effect<Array<Chunk>, LlmError> {
    return Effect.try({ try: () => this.unsafeAdd(chunk), catch: this.read.caught(chunk) })
  }

  private unsafeAdd(chunk: ChatCompletionChunk): Array<Chunk> {
    if (typeof chunk !== "object" || chunk === null) throw new TypeError("a chunk is not an object")
    this.chunks++
    if (typeof chunk.model === "string" && chunk.model.length > 0) this.model = this.read.scrub(chunk.model)
    this.usage = this.read.usage(chunk.usage, this.text) ?? this.usage
    const choice = chunk.choices?.[0]
    if (choice === undefined) return []
    if (choice.finish_reason) this.reason = choice.finish_reason
    const delta = choice.delta
    if (delta?.refusal) this.refusal += delta.refusal
    for (const call of delta?.tool_calls ?? []) {
      const slot = (this.calls[call.index] ??= { id: "", name: "", arguments: "" })
      if (call.id) slot.id = call.id
      if (call.function?.name) slot.name += call.function.name
      if (call.function?.arguments) slot.arguments += call.function.arguments
    }
    const content = delta?.content
    if (typeof content !== "string" || content.length === 0) return []
    const max = limitOf(this.request)
    if (max !== undefined) this.tokens += encodeAll(content).length
    if (max !== undefined && this.tokens > max) {
      // Over by the running sum: count the whole text to know.
      const whole = encodeAll(this.text + content)
      if (whole.length > max) {
        const kept = decodeTokens(whole.slice(0, max))
        const rest = kept.startsWith(this.text) ? kept.slice(this.text.length) : ""
        this.cut = true
        this.reason = "length"
        // The usage of a cut answer is never read: the service counts what was kept.
        this.usage = undefined
        this.text += rest
        return rest.length === 0 ? [] : [{ _tag: "Delta", text: rest }]
      }
      this.tokens = whole.length
    }
    this.text += content
    return [{ _tag: "Delta", text: content }]
  }

  done(): Effect.Effect<Chunk, LlmError> {
    // A body that parsed as no event at all is not an empty answer, but no answer.
    if (this.chunks === 0) return Effect.fail(this.read.malformed("", "the stream ended without a single chunk"))
    if (this.reason === "content_filter") return Effect.fail(this.read.filtered("the answer was withheld"))
    if (this.refusal.length > 0) return Effect.fail(this.read.filtered(this.refusal))
    return Effect.succeed({
      _tag: "Done",
      completion: {
        text: this.text,
        toolCalls: this.calls.filter((call) => call !== undefined),
        finishReason: finishReason(this.reason),
        model: this.model,
        usage: this.usage
      }
    })
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Failures

// A failed attempt: the typed error, how long the server asked to wait before the next one, and whether the request
// may have been billed for its input (see `LlmError.Sent`).
interface Failure {
  readonly error: LlmError
  readonly retryAfter: Duration.Duration | undefined
  readonly billable: boolean
}

// The tally of a call whose last request was answered (with a body that may not be usable): billed.
const answered = (sent: Sent): Sent => ({ requests: sent.requests, billable: sent.billable + 1 })

// A completion with the requests it took, when it took more than one.
const withRequests = (completion: Completion, sent: Sent): Completion =>
  sent.requests > 1 ? { ...completion, requests: sent.requests, billable: sent.billable } : completion

const innermost = (error: unknown): unknown => {
  let current = error
  while (current instanceof Error && current.cause instanceof Error) current = current.cause
  return current
}

const rootCause = (error: unknown): string | undefined => {
  const root = innermost(error)
  return root instanceof Error ? root.message : undefined
}

// Failures to connect at all: nothing reached a server, so nothing can have been billed.
const neverConnected = new Set(["ECONNREFUSED", "ENOTFOUND", "EAI_AGAIN", "EHOSTUNREACH", "ENETUNREACH", "UND_ERR_CONNECT_TIMEOUT"])

const connected = (error: unknown): boolean => {
  const code = (innermost(error) as { readonly code?: unknown } | undefined)?.code
  return !(typeof code === "string" && neverConnected.has(code))
}

// Every text that leaves this module is scrubbed of the key, whatever a server chose to echo back.
const failureMapper = (scrubKey: (text: string) => string) => (error: unknown): Failure => {
  const scrub = (text: string) => shortLine(scrubKey(text))
  const detail = scrub(error instanceof Error ? error.message : String(error))
  if (error instanceof OpenAI.APIConnectionError) {
    // The SDK says only "Connection error."; the innermost cause says which (refused, reset, unknown host...).
    const reason = rootCause(error.cause)
    return {
      error: new ServerError({
        provider: providerName,
        status: undefined,
        detail: reason === undefined ? detail : scrub(`${detail} (${reason})`)
      }),
      retryAfter: undefined,
      // A connection lost once made may have carried the request to a server that went on with it.
      billable: connected(error)
    }
  }
  // An error status: the server did not do the work, and does not bill it.
  if (error instanceof OpenAI.APIError && error.status !== undefined) {
    const status = error.status
    const wait = retryAfter(error.headers)
    if (status === 401 || status === 403) {
      return {
        error: new AuthenticationError({ provider: providerName, status, detail }),
        retryAfter: undefined,
        billable: false
      }
    }
    if (status === 429) {
      return { error: new RateLimited({ provider: providerName, retryAfter: wait, detail }), retryAfter: wait, billable: false }
    }
    if (status >= 500) {
      return { error: new ServerError({ provider: providerName, status, detail }), retryAfter: wait, billable: false }
    }
    return { error: new BadRequest({ provider: providerName, status, detail }), retryAfter: undefined, billable: false }
  }
  // The SDK parses a JSON body itself: a syntax error means the server sent something else, with a success status.
  if (error instanceof SyntaxError) {
    return {
      error: new MalformedOutput({
        provider: providerName,
        text: "",
        detail: `the response body is not valid JSON: ${detail}`,
        attempts: 1
      }),
      retryAfter: undefined,
      billable: true
    }
  }
  // An error event inside a stream, or anything else the SDK throws without a status.
  return {
    error: new ServerError({ provider: providerName, status: undefined, detail }),
    retryAfter: undefined,
    billable: true
  }
}

const retrySchedule = (options: Settings["retry"]): Schedule.Schedule<unknown, Failure> => {
  const { cap, times } = options
  return Schedule.identity<Failure>().pipe(
    Schedule.intersect(Schedule.recurs(times)),
    Schedule.zipLeft(Schedule.jittered(Schedule.exponential(options.base))),
    // A server asking to wait longer than the cap is not retried early against its wish: the call ends, with the
    // wait it asked for (`RateLimited.retryAfter`).
    Schedule.whileInput((failure: Failure) =>
      isTransient(failure.error) &&
      (failure.retryAfter === undefined || Duration.lessThanOrEqualTo(failure.retryAfter, cap))
    ),
    // Only reached when there is a retry: a server that says when to come back is believed, and every retry is
    // logged (so also an event on the call's span) with why and when.
    Schedule.modifyDelayEffect(([failure, retried], backoff) => {
      const asked = failure.retryAfter
      // Whole milliseconds: jitter gives fractions, which only clutter the log.
      const delay = Duration.millis(
        Math.round(Duration.toMillis(Duration.min(cap, asked === undefined ? backoff : Duration.max(backoff, asked))))
      )
      return Effect.as(
        Effect.logWarning(
          `${providerName}: ${failure.error._tag}, retry ${retried + 1} of ${times} in ${Duration.format(delay)}`
        ).pipe(
          Effect.annotateLogs({
            "llm.retry.attempt": retried + 2,
            "llm.retry.delay_ms": Duration.toMillis(delay),
            "llm.retry.error": failure.error.message
          })
        ),
        delay
      )
    })
  )
}
