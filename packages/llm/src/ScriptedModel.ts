/**
 * A language model for tests: it answers what a script says, records every request, and waits on Effect's clock
 * (so latency runs under `TestClock`). It goes through the same metering, pricing and spans as a real provider.
 *
 * ```ts
 * const model = ScriptedModel.make({
 *   reply: (request) => request.json ? `{"label":"invoice"}` : "A short summary."
 * })
 * const result = yield* Pipeline.run(pipeline).pipe(Effect.provide(model.layer))
 * expect(model.calls).toHaveLength(2)
 * ```
 *
 * @since 0.1.0
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Stream from "effect/Stream"
import * as LanguageModel from "./LanguageModel.js"
import type { LlmError } from "./LlmError.js"
import type { FinishReason, ResolvedRequest, ToolCall } from "./Prompt.js"
import type { Chunk, Completion, Provider, ReportedUsage } from "./Provider.js"
import { o200k as tokenizer } from "./Tokenizer.js"

/**
 * What the script answers: a text, or a fuller answer. Leave `usage` out to have the tokens counted with
 * `Tokenizer.o200k`, as a server that reports usage would; set it to `null` to act as a server that reports none.
 *
 * @since 0.1.0
 */
export type Reply =
  | string
  | {
    readonly text?: string | undefined
    readonly toolCalls?: ReadonlyArray<ToolCall> | undefined
    readonly finishReason?: FinishReason | undefined
    readonly usage?: ReportedUsage | null | undefined
  }

/**
 * The script of a scripted model.
 *
 * @since 0.1.0
 */
export interface Script {
  /** The answer to the `index`-th call (from 0); fail the effect to script a failure. */
  readonly reply: (
    request: ResolvedRequest,
    index: number
  ) => Reply | Effect.Effect<Reply, LlmError>
  /** How long each call takes, on Effect's clock. */
  readonly latency?: Duration.DurationInput | ((request: ResolvedRequest) => Duration.DurationInput)
  /** The model it claims to be, which is what it is priced as (default "gpt-4o-mini"). */
  readonly model?: string | undefined
  readonly options?: LanguageModel.Options | undefined
  /**
   * Whether every request is kept in `calls` (default true). Turn it off for load tests, where the record would
   * grow with every call and hold every request.
   */
  readonly record?: boolean | undefined
}

/**
 * A scripted model: its layer, and the requests it received, in order.
 *
 * @since 0.1.0
 */
export interface ScriptedModel {
  readonly layer: Layer.Layer<LanguageModel.LanguageModel>
  readonly calls: ReadonlyArray<ResolvedRequest>
}

/**
 * Makes a scripted model.
 *
 * @since 0.1.0
 */
export const make = (script: Script): ScriptedModel => {
  const calls: Array<ResolvedRequest> = []
  const record = script.record ?? true
  let answered = 0
  const model = script.model ?? "gpt-4o-mini"
  // Decoded once: a latency written as text ("10 millis") would otherwise be parsed on every call.
  const latency = script.latency === undefined || typeof script.latency === "function"
    ? script.latency
    : Duration.decode(script.latency)

  const answer = (request: ResolvedRequest): Effect.Effect<Completion, LlmError> =>
    Effect.suspend(() => {
      const index = answered++
      if (record) calls.push(request)
      const reply = script.reply(request, index)
      const completion = Effect.isEffect(reply)
        ? Effect.map(reply, (reply) => toCompletion(model, request, reply))
        : Effect.sync(() => toCompletion(model, request, reply))
      if (latency === undefined) return completion
      return Effect.zipRight(Effect.sleep(typeof latency === "function" ? latency(request) : latency), completion)
    })

  const provider: Provider = {
    name: "scripted",
    model,
    generate: answer,
    stream: (request) => Stream.flatMap(Stream.fromEffect(answer(request)), replay)
  }
  return {
    layer: Layer.effect(LanguageModel.LanguageModel, LanguageModel.make(provider, script.options)),
    calls
  }
}

const toCompletion = (
  model: string,
  request: ResolvedRequest,
  reply: Reply
): Completion => {
  const fields = typeof reply === "string" ? { text: reply } : reply
  const text = fields.text ?? ""
  const toolCalls = fields.toolCalls ?? []
  return {
    text,
    toolCalls,
    finishReason: fields.finishReason ?? (toolCalls.length > 0 ? "tool_calls" : "stop"),
    model,
    usage: fields.usage === null ? undefined : fields.usage ?? {
      inputTokens: tokenizer.countMessages(request.messages),
      outputTokens: tokenizer.countOutput(text, toolCalls)
    }
  }
}

/**
 * Streams a finished completion as a server would: a delta for each word, then the completion.
 *
 * @since 0.1.0
 */
export const replay = (completion: Completion): Stream.Stream<Chunk> =>
  Stream.concat(
    Stream.fromIterable(words(completion.text).map((text): Chunk => ({ _tag: "Delta", text }))),
    Stream.succeed<Chunk>({ _tag: "Done", completion })
  )

/**
 * Splits a text into the deltas a streaming server would send: words with their following spaces.
 *
 * @since 0.1.0
 */
export const words = (text: string): Array<string> => text.match(/\S+\s*|\s+/g) ?? []
