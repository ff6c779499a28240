/**
 * An AI SDK language model as a Trellis provider: any model of the AI SDK's provider packages (`@ai-sdk/anthropic`,
 * `@ai-sdk/google`, `@ai-sdk/mistral`, `@ai-sdk/amazon-bedrock`...), as they implement the language model
 * specification of `@ai-sdk/provider` (`LanguageModelV4`), keeps everything `LanguageModel.make` adds: the
 * worst-case reservation, the budget, prices, estimated usage when none is reported, structured output with
 * repair, tools, streaming and spans.
 *
 * The model's `doGenerate` and `doStream` are called directly: one request per call, aborted through its signal
 * when the call is interrupted or times out. Transient failures (`RateLimited` with the server's `retryAfter`,
 * `ServerError`, `LlmTimeout`) are left to the step's retry policy, which sees them typed. The HTTP status decides
 * what a failure is: an error status is a refusal, not billed; a success status whose answer the SDK could not read
 * (a body that is not the API's JSON, usage of the wrong shape) is `MalformedOutput`, billed for its input.
 *
 * Give the model's keys as `secrets`: a server may echo one back, and they are then removed by their value from
 * every error.
 *
 * @example
 * ```ts
 * import { anthropic } from "@ai-sdk/anthropic"
 * import { AiSdk } from "@trellis/ai-sdk"
 * import { LanguageModel } from "@trellis/llm"
 * import { Effect } from "effect"
 *
 * const program = LanguageModel.generate("Say hello").pipe(
 *   Effect.provide(AiSdk.layer({ model: anthropic("claude-haiku-4-5") }))
 * )
 * ```
 *
 * @since 0.1.0
 */
import type {
  LanguageModelV4,
  LanguageModelV4FinishReason,
  LanguageModelV4GenerateResult,
  LanguageModelV4StreamPart,
  LanguageModelV4Usage
} from "@ai-sdk/provider"
import { LanguageModel, LlmError, Pricing, type Prompt, Provider, Redaction } from "@trellis/llm"
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"
import { type Failure, failureOf, withSent } from "./internal/failure.js"
import { show, toCallOptions, toPrompt } from "./internal/request.js"

/**
 * Options of the adapter. They are checked when the layer is built: an invalid one fails it with
 * {@link InvalidOption}.
 *
 * @since 0.1.0
 */
export interface Options extends LanguageModel.Options {
  /** The AI SDK model, such as `anthropic("claude-haiku-4-5")`. */
  readonly model: LanguageModelV4
  /**
   * The provider's name, as prices are looked up under it and spans show it: by default the model's own provider
   * up to its first dot ("anthropic" for "anthropic.messages").
   */
  readonly provider?: string | undefined
  /**
   * Time allowed for one call, a positive duration (default 60 seconds). When streaming, it bounds the whole
   * stream, from the request to the last part.
   */
  readonly timeout?: Duration.DurationInput | undefined
  /**
   * The secrets the model was given (its API key, a proxy's token), as `Redacted`: the model holds them, not the
   * adapter, and a server may echo one back. They are removed by their value, whatever their shape, from every
   * error, and from the model name a server reports (which spans show). Keys of a few well-known shapes (`sk-...`,
   * Google's `AIza...`) are removed without it, others are not.
   */
  readonly secrets?: Redaction.Secrets | undefined
}

/**
 * An option of the adapter is out of its range, or the model is not one of the supported specification.
 *
 * @since 0.1.0
 */
export class InvalidOption extends Data.TaggedError("InvalidOption")<{
  readonly option: string
  readonly value: string
  readonly expected: string
}> {
  override get message(): string {
    return `AiSdk option ${this.option} must be ${this.expected}, got ${this.value}`
  }
}

interface Settings {
  readonly model: LanguageModelV4
  readonly name: string
  readonly timeout: Duration.Duration
  readonly scrub: (text: string) => string
}

const validate = (options: Options): Effect.Effect<Settings, InvalidOption> =>
  Effect.suspend(() => {
    const unknown = Provider.unknownOption(options, ["model", "provider", "timeout", "secrets"])
    if (unknown !== undefined) return Effect.fail(new InvalidOption(unknown))
    const model = options.model as Partial<LanguageModelV4> | undefined
    if (typeof model !== "object" || model === null || model.specificationVersion !== "v4") {
      return Effect.fail(
        new InvalidOption({
          option: "model",
          value: typeof model === "object" && model !== null ? `a model of specification ${show(model.specificationVersion)}` : show(model),
          expected: "an AI SDK language model of specification v4 (@ai-sdk/provider 4)"
        })
      )
    }
    if (typeof model.modelId !== "string" || model.modelId.length === 0) {
      return Effect.fail(new InvalidOption({ option: "model.modelId", value: show(model.modelId), expected: "a model name" }))
    }
    const name = options.provider ?? (typeof model.provider === "string" ? model.provider.split(".")[0] : undefined)
    if (name === undefined || name.length === 0) {
      return Effect.fail(new InvalidOption({ option: "provider", value: show(name), expected: "a provider name" }))
    }
    const timeout = Duration.decodeUnknown(options.timeout ?? "60 seconds")
    if (
      Option.isNone(timeout) || !Duration.isFinite(timeout.value) || Duration.lessThanOrEqualTo(timeout.value, Duration.zero) ||
      (typeof options.timeout === "number" && !(Number.isFinite(options.timeout) && options.timeout > 0))
    ) {
      return Effect.fail(new InvalidOption({ option: "timeout", value: show(options.timeout), expected: "a positive, finite duration" }))
    }
    if (options.secrets !== undefined && !Redaction.isSecrets(options.secrets)) {
      // Never shown: a key given as a plain string would be printed.
      return Effect.fail(new InvalidOption({ option: "secrets", value: "another value", expected: "a Redacted string, or an array of them" }))
    }
    return Effect.succeed({ model: model as LanguageModelV4, name, timeout: timeout.value, scrub: Redaction.scrubber(options.secrets) })
  })

// ---------------------------------------------------------------------------------------------------------------
// Answers

const finishReason = (reason: LanguageModelV4FinishReason | undefined): Prompt.FinishReason => {
  switch (reason?.unified) {
    case "stop":
      return "stop"
    case "length":
      return "length"
    case "tool-calls":
      return "tool_calls"
    case "content-filter":
      return "content_filter"
    default:
      return "other"
  }
}

/**
 * Usage as the specification reports it: input tokens with those read from the cache among them, output tokens
 * with the reasoning ones among them. Absent when the provider did not report the totals (the service then counts
 * them); whether the numbers can be right is checked by the service.
 */
const usageOf = (usage: LanguageModelV4Usage | undefined): Provider.ReportedUsage | undefined => {
  const input = usage?.inputTokens?.total
  const output = usage?.outputTokens?.total
  if (input == null || output == null) return undefined
  return {
    inputTokens: input,
    outputTokens: output,
    cachedInputTokens: usage?.inputTokens.cacheRead ?? 0,
    reasoningTokens: usage?.outputTokens.reasoning ?? 0
  }
}

// ---------------------------------------------------------------------------------------------------------------
// The provider

// The call's tally of requests, when `LanguageModel` runs it (a provider used on its own has none).
const currentTally = Effect.map(Effect.serviceOption(Provider.CurrentTally), Option.getOrUndefined)

const providerWith = ({ model, name, scrub, timeout }: Settings): Provider.Provider => {
  const toFailure = failureOf(name, scrub)
  const invalid = (detail: string) => new LlmError.InvalidRequest({ provider: name, detail })
  const timedOut = (): Failure => ({ error: new LlmError.LlmTimeout({ provider: name, timeout }), billable: true })

  // The model serves one model name: a request for another would be answered by the wrong model.
  const prepare = (request: Prompt.ResolvedRequest) =>
    request.model === model.modelId
      ? Effect.map(toPrompt(request, invalid), (prompt) => toCallOptions(request, prompt))
      : Effect.fail(invalid(`this AI SDK model serves "${model.modelId}" only, and the request names "${request.model}"`))

  const completionOf = (request: Prompt.ResolvedRequest, result: LanguageModelV4GenerateResult): Provider.Completion => {
    const content = Array.isArray(result.content) ? result.content : []
    return {
      text: content.flatMap((part) => (part.type === "text" ? [part.text] : [])).join(""),
      toolCalls: content.flatMap((part) =>
        part.type === "tool-call" && part.providerExecuted !== true
          ? [{ id: part.toolCallId, name: part.toolName, arguments: part.input }]
          : []
      ),
      finishReason: finishReason(result.finishReason),
      // What the server says the model was goes on spans: never a secret it echoed there.
      model: typeof result.response?.modelId === "string" && result.response.modelId.length > 0
        ? scrub(result.response.modelId)
        : request.model,
      usage: usageOf(result.usage)
    }
  }

  // An answer withheld under the provider's policy is an error, as for every provider.
  const checked = (completion: Provider.Completion): Effect.Effect<Provider.Completion, Failure> =>
    completion.finishReason === "content_filter"
      ? Effect.fail({
        error: new LlmError.ContentFiltered({ provider: name, detail: "the answer was withheld" }),
        billable: true
      })
      : Effect.succeed(completion)

  // Marks the request in the call's tally, and its end when it ends without an answer; an interrupted request is
  // left in flight, which the tally counts as billable.
  const tracked = <A, R>(
    effect: Effect.Effect<A, Failure, R>
  ): Effect.Effect<A, LlmError.LlmError, R> =>
    Effect.flatMap(currentTally, (tally) =>
      Effect.sync(() => tally?.sent()).pipe(
        Effect.zipRight(effect),
        Effect.tapError((failure) => Effect.sync(() => tally?.ended(failure.billable))),
        Effect.mapError((failure) => withSent(failure.error, failure.billable))
      ))

  const generate = (request: Prompt.ResolvedRequest): Effect.Effect<Provider.Completion, LlmError.LlmError> =>
    Effect.flatMap(prepare(request), (options) =>
      tracked(
        Effect.tryPromise({
          try: (abortSignal) => model.doGenerate({ ...options, abortSignal }),
          catch: toFailure
        }).pipe(
          Effect.timeoutFail({ duration: timeout, onTimeout: timedOut }),
          Effect.map((result) => completionOf(request, result)),
          Effect.flatMap(checked)
        )
      ))

  const stream = (request: Prompt.ResolvedRequest): Stream.Stream<Provider.Chunk, LlmError.LlmError> =>
    Stream.unwrapScoped(Effect.gen(function*() {
      const options = yield* prepare(request)
      // The request is aborted when the stream ends early (interruption, timeout, an error): the signal is the
      // stream's, not the promise's, as the answer goes on arriving after `doStream` resolved.
      const controller = yield* Effect.acquireRelease(
        Effect.sync(() => new AbortController()),
        (controller) => Effect.sync(() => controller.abort())
      )
      const answer = {
        text: "",
        toolCalls: [] as Array<Prompt.ToolCall>,
        finishReason: "other" as Prompt.FinishReason,
        model: request.model,
        usage: undefined as Provider.ReportedUsage | undefined,
        finished: false
      }
      const read = (part: LanguageModelV4StreamPart): Effect.Effect<Array<Provider.Chunk>, Failure> => {
        switch (part.type) {
          case "text-delta":
            answer.text += part.delta
            return Effect.succeed(part.delta.length === 0 ? [] : [{ _tag: "Delta", text: part.delta }])
          case "tool-call":
            if (part.providerExecuted !== true) {
              answer.toolCalls.push({ id: part.toolCallId, name: part.toolName, arguments: part.input })
            }
            return Effect.succeed([])
          case "response-metadata":
            if (typeof part.modelId === "string" && part.modelId.length > 0) answer.model = scrub(part.modelId)
            return Effect.succeed([])
          case "finish":
            answer.finishReason = finishReason(part.finishReason)
            answer.usage = usageOf(part.usage)
            answer.finished = true
            return Effect.succeed([])
          case "error":
            return Effect.fail({ ...toFailure(part.error), billable: true })
          default:
            return Effect.succeed([])
        }
      }
      const done = Effect.suspend(() => {
        // A stream that stops before its finish part was cut off, not answered.
        if (!answer.finished) {
          return Effect.fail<Failure>({
            error: new LlmError.ServerError({ provider: name, status: undefined, detail: "the stream ended before its finish" }),
            billable: true
          })
        }
        const { finished: _, ...completion } = answer
        return Effect.map(checked(completion), (completion): Provider.Chunk => ({ _tag: "Done", completion }))
      })
      const tally = yield* currentTally
      tally?.sent()
      const opened = yield* Effect.tryPromise({
        try: () => model.doStream({ ...options, abortSignal: controller.signal }),
        catch: toFailure
      }).pipe(
        Effect.timeoutFail({ duration: timeout, onTimeout: timedOut }),
        Effect.tapError((failure) => Effect.sync(() => tally?.ended(failure.billable))),
        Effect.mapError((failure) => withSent(failure.error, failure.billable))
      )
      const deadline = Effect.flatMap(Effect.sleep(timeout), () => Effect.fail(timedOut()))
      return Stream.fromReadableStream({
        evaluate: () => opened.stream,
        onError: (error): Failure => toFailure(error)
      }).pipe(
        Stream.mapEffect(read),
        Stream.flattenIterables,
        Stream.concat(Stream.fromEffect(done)),
        Stream.interruptWhen(deadline),
        // The request was answered, whatever ends the stream now: billable.
        Stream.mapError((failure) => {
          tally?.ended(true)
          return withSent(failure.error, true)
        })
      )
    }))

  return { name, model: model.modelId, generate, stream }
}

/**
 * The AI SDK model as a Trellis provider, for `LanguageModel.make`; fails with {@link InvalidOption} when an option
 * is out of range.
 *
 * @since 0.1.0
 */
export const provider = (options: Options): Effect.Effect<Provider.Provider, InvalidOption> =>
  Effect.map(validate(options), providerWith)

/**
 * Makes the language model service on an AI SDK model. Prices come from the `Pricing` service when one is
 * provided, else from the bundled prices under the provider's name.
 *
 * @since 0.1.0
 */
export const make = (options: Options): Effect.Effect<LanguageModel.Service, InvalidOption> =>
  Effect.gen(function*() {
    const settings = yield* validate(options)
    const pricing = yield* Effect.serviceOption(Pricing.Pricing)
    const service = LanguageModel.make(providerWith(settings), options)
    return yield* Option.isSome(pricing)
      ? service
      : Effect.provideService(service, Pricing.Pricing, Pricing.make({ provider: settings.name }))
  })

/**
 * The AI SDK model as the application's language model; building it fails with {@link InvalidOption} when an
 * option is out of range, before any request is sent.
 *
 * @since 0.1.0
 */
export const layer = (options: Options): Layer.Layer<LanguageModel.LanguageModel, InvalidOption> =>
  Layer.effect(LanguageModel.LanguageModel, make(options))
