/**
 * An `@effect/ai` language model as a Trellis provider: the model a layer of `@effect/ai-anthropic`,
 * `@effect/ai-openai`... provides keeps everything `LanguageModel.make` adds: the worst-case reservation, the
 * budget, prices, estimated usage when none is reported, structured output with repair, tools, streaming and spans.
 *
 * The `@effect/ai` model sends one request per call, and its HTTP client aborts it when the call is interrupted or
 * times out. Transient failures (`RateLimited` with the server's `retryAfter`, `ServerError`, `LlmTimeout`) are
 * left to the step's retry policy, which sees them typed. Tool calls are handed back to Trellis, never run by
 * `@effect/ai`: Trellis's agent runs its own tools.
 *
 * The HTTP status decides what a refusal is, whatever its body: 429 is `RateLimited` with its Retry-After, 401 and
 * 403 `AuthenticationError`, 5xx `ServerError`, none of them billed; a success status with a body that cannot be read
 * is `MalformedOutput`, billed for its input. A provider that cannot decode an error body (plain text, another
 * provider's JSON) reports no status; it is then read from the span the HTTP client makes for the request, so with
 * tracing turned off (`Effect.withTracerEnabled(false)`) such a refusal is taken as an answer that could not be read.
 *
 * Give the client's keys as `secrets`: a server may echo one back, and they are then removed by their value from
 * every error, and from the spans the `@effect/ai` model and its HTTP client make under the call.
 *
 * `@effect/ai` has no setting of its own for the output limit and the temperature: each provider takes them in its
 * own config. `configure` applies them to each call, so the model stops where the reservation counted
 * (`AnthropicLanguageModel.withConfigOverride({ max_tokens, temperature })` for Anthropic).
 *
 * @example
 * ```ts
 * import { AnthropicClient, AnthropicLanguageModel } from "@effect/ai-anthropic"
 * import { FetchHttpClient } from "@effect/platform"
 * import { EffectAi } from "@trellis/effect-ai"
 * import { LanguageModel } from "@trellis/llm"
 * import { Config, Effect, Layer } from "effect"
 *
 * const model = EffectAi.layer({
 *   provider: "anthropic",
 *   model: "claude-haiku-4-5",
 *   configure: (request) =>
 *     AnthropicLanguageModel.withConfigOverride({ max_tokens: request.maxTokens, temperature: request.temperature })
 * }).pipe(
 *   Layer.provide(AnthropicLanguageModel.layer({ model: "claude-haiku-4-5" })),
 *   Layer.provide(AnthropicClient.layerConfig({ apiKey: Config.redacted("ANTHROPIC_API_KEY") })),
 *   Layer.provide(FetchHttpClient.layer)
 * )
 * const program = LanguageModel.generate("Say hello").pipe(Effect.provide(model))
 * ```
 *
 * @since 0.1.0
 */
import * as AiLanguageModel from "@effect/ai/LanguageModel"
import type * as AiResponse from "@effect/ai/Response"
import type * as AiTool from "@effect/ai/Tool"
import { LanguageModel, LlmError, Pricing, type Prompt, Provider, Redaction } from "@trellis/llm"
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"
import { bodyMessage, type Failure, failureOf, withSent } from "./internal/failure.js"
import { watch } from "./internal/observed.js"
import { callOptions, show, toPrompt } from "./internal/request.js"

/**
 * Applies a request's settings to one call of the `@effect/ai` model, by the provider's own config.
 *
 * @since 0.1.0
 */
export type Configure = (
  request: Prompt.ResolvedRequest
) => <A, E, R>(call: Effect.Effect<A, E, R>) => Effect.Effect<A, E, R>

/**
 * Options of the adapter. They are checked when the layer is built: an invalid one fails it with
 * {@link InvalidOption}.
 *
 * @since 0.1.0
 */
export interface Options extends LanguageModel.Options {
  /** The provider's name, as prices are looked up under it and spans show it: "anthropic", "openai"... */
  readonly provider: string
  /** The model the `@effect/ai` layer was made for, as prices are looked up under it. */
  readonly model: string
  /** Applies each request's `maxTokens` and `temperature` to its call (see the module's documentation). */
  readonly configure?: Configure | undefined
  /**
   * Whether the input tokens the model reports count those read from the cache among them. By default they do,
   * except for "anthropic", whose API counts them apart: they are then added to the input here.
   */
  readonly cachedInInput?: boolean | undefined
  /**
   * Time allowed for one call, a positive duration (default 60 seconds). When streaming, it bounds the whole
   * stream, from the request to the last part.
   */
  readonly timeout?: Duration.DurationInput | undefined
  /**
   * The secrets the `@effect/ai` client was given (its API key, a proxy's token), as `Redacted`: the client holds
   * them, not the adapter, and a server may echo one back. They are removed by their value, whatever their shape,
   * from every error, from the model name a server reports, and from the spans the `@effect/ai` model and its HTTP
   * client make under the call. Keys of a few well-known shapes (`sk-...`, Google's `AIza...`) are removed without
   * it, others are not.
   */
  readonly secrets?: Redaction.Secrets | undefined
}

/**
 * An option of the adapter is out of its range: `option` names it.
 *
 * @since 0.1.0
 */
export class InvalidOption extends Data.TaggedError("InvalidOption")<{
  readonly option: string
  readonly value: string
  readonly expected: string
}> {
  override get message(): string {
    return `EffectAi option ${this.option} must be ${this.expected}, got ${this.value}`
  }
}

interface Settings {
  readonly name: string
  readonly model: string
  readonly configure: Configure | undefined
  readonly cachedInInput: boolean
  readonly timeout: Duration.Duration
  readonly scrub: (text: string) => string
}

const validate = (options: Options): Effect.Effect<Settings, InvalidOption> =>
  Effect.suspend(() => {
    const unknown = Provider.unknownOption(options, ["provider", "model", "configure", "cachedInInput", "timeout", "secrets"])
    if (unknown !== undefined) return Effect.fail(new InvalidOption(unknown))
    for (const option of ["provider", "model"] as const) {
      const value: unknown = options[option]
      if (typeof value !== "string" || value.length === 0 || value.trim() !== value) {
        return Effect.fail(new InvalidOption({ option, value: show(value), expected: "a name, not empty, without spaces around it" }))
      }
    }
    if (options.configure !== undefined && typeof options.configure !== "function") {
      return Effect.fail(new InvalidOption({ option: "configure", value: show(options.configure), expected: "a function" }))
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
    return Effect.succeed({
      scrub: Redaction.scrubber(options.secrets),
      name: options.provider,
      model: options.model,
      configure: options.configure,
      cachedInInput: options.cachedInInput ?? options.provider !== "anthropic",
      timeout: timeout.value
    })
  })

// ---------------------------------------------------------------------------------------------------------------
// Answers

const finishReason = (reason: AiResponse.FinishReason | undefined): Prompt.FinishReason => {
  switch (reason) {
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

// ---------------------------------------------------------------------------------------------------------------
// The provider

// The call's tally of requests, when `LanguageModel` runs it (a provider used on its own has none).
const currentTally = Effect.map(Effect.serviceOption(Provider.CurrentTally), Option.getOrUndefined)

const providerWith = (ai: AiLanguageModel.Service, settings: Settings): Provider.Provider => {
  const { name, scrub, timeout } = settings
  const toFailure = failureOf(name, scrub)
  const invalid = (detail: string) => new LlmError.InvalidRequest({ provider: name, detail })
  const timedOut = (): Failure => ({ error: new LlmError.LlmTimeout({ provider: name, timeout }), billable: true })
  const configured = (request: Prompt.ResolvedRequest) => settings.configure?.(request) ?? ((call) => call)

  // The layer serves one model: a request for another would be answered, and priced, as the wrong model.
  const prepare = (request: Prompt.ResolvedRequest) =>
    request.model === settings.model
      ? Effect.map(toPrompt(request, invalid), (prompt) => callOptions(request, prompt))
      : Effect.fail(invalid(`this @effect/ai model serves "${settings.model}" only, and the request names "${request.model}"`))

  const usageOf = (usage: AiResponse.Usage | undefined): Provider.ReportedUsage | undefined => {
    if (usage?.inputTokens == null || usage.outputTokens == null) return undefined
    const cached = usage.cachedInputTokens ?? 0
    return {
      inputTokens: settings.cachedInInput ? usage.inputTokens : usage.inputTokens + cached,
      outputTokens: usage.outputTokens,
      cachedInputTokens: cached,
      reasoningTokens: usage.reasoningTokens ?? 0
    }
  }

  // What the server says the model was goes on spans: never a secret it echoed there.
  const reported = (modelId: Option.Option<string>, otherwise: string): string =>
    Option.match(Option.filter(modelId, (id) => id.length > 0), { onNone: () => otherwise, onSome: scrub })

  // An answer withheld under the provider's policy is an error, as for every provider.
  const checked = (completion: Provider.Completion): Effect.Effect<Provider.Completion, Failure> =>
    completion.finishReason === "content_filter"
      ? Effect.fail({ error: new LlmError.ContentFiltered({ provider: name, detail: "the answer was withheld" }), billable: true })
      : Effect.succeed(completion)

  const generate = (request: Prompt.ResolvedRequest): Effect.Effect<Provider.Completion, LlmError.LlmError> =>
    Effect.flatMap(prepare(request), (options) =>
      Effect.flatMap(currentTally, (tally) => {
        const watched = watch(scrub)
        tally?.sent()
        return ai.generateText(options).pipe(
          configured(request),
          watched.effect,
          Effect.mapError((error) => toFailure(error, watched.answer())),
          Effect.timeoutFail({ duration: timeout, onTimeout: timedOut }),
          Effect.map((response): Provider.Completion => {
            const metadata = response.content.find((part) => part.type === "response-metadata")
            return {
              text: response.text,
              toolCalls: response.toolCalls.map((call) => ({ id: call.id, name: call.name, arguments: JSON.stringify(call.params) })),
              finishReason: finishReason(response.finishReason),
              model: metadata === undefined ? request.model : reported(metadata.modelId, request.model),
              usage: usageOf(response.usage)
            }
          }),
          Effect.flatMap(checked),
          Effect.tapError((failure) => Effect.sync(() => tally?.ended(failure.billable))),
          Effect.mapError((failure) => withSent(failure.error, failure.billable))
        )
      }))

  const stream = (request: Prompt.ResolvedRequest): Stream.Stream<Provider.Chunk, LlmError.LlmError> =>
    Stream.unwrap(Effect.gen(function*() {
      const options = yield* prepare(request)
      const tally = yield* currentTally
      const answer = {
        text: "",
        toolCalls: [] as Array<Prompt.ToolCall>,
        finishReason: "other" as Prompt.FinishReason,
        model: request.model,
        usage: undefined as Provider.ReportedUsage | undefined,
        finished: false
      }
      const read = (part: AiResponse.StreamPart<Record<string, AiTool.Any>>): Effect.Effect<Array<Provider.Chunk>, Failure> => {
        switch (part.type) {
          case "text-delta":
            answer.text += part.delta
            return Effect.succeed(part.delta.length === 0 ? [] : [{ _tag: "Delta", text: part.delta }])
          case "tool-call":
            if (part.providerExecuted !== true) {
              answer.toolCalls.push({ id: part.id, name: part.name, arguments: JSON.stringify(part.params) })
            }
            return Effect.succeed([])
          case "response-metadata":
            answer.model = reported(part.modelId, answer.model)
            return Effect.succeed([])
          case "finish":
            answer.finishReason = finishReason(part.reason)
            answer.usage = usageOf(part.usage)
            answer.finished = true
            return Effect.succeed([])
          case "error":
            return Effect.fail({
              error: new LlmError.ServerError({
                provider: name,
                status: undefined,
                detail: Provider.errorDetail(
                  scrub(bodyMessage(typeof part.error === "string" ? part.error : JSON.stringify(part.error)) ?? "an error in the stream")
                )
              }),
              billable: true
            })
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
      const deadline = Effect.flatMap(Effect.sleep(timeout), () => Effect.fail(timedOut()))
      // `configure` works on an effect: the context it gives (the provider's config with the request's settings)
      // is taken from one, and the stream runs in it.
      const context = yield* configured(request)(Effect.context<never>())
      const watched = watch(scrub)
      tally?.sent()
      return ai.streamText(options).pipe(
        Stream.provideSomeContext(context),
        watched.stream,
        Stream.mapError((error) => toFailure(error, watched.answer())),
        Stream.mapEffect(read),
        Stream.flattenIterables,
        Stream.concat(Stream.fromEffect(done)),
        Stream.interruptWhen(deadline),
        Stream.mapError((failure) => {
          tally?.ended(failure.billable)
          return withSent(failure.error, failure.billable)
        })
      )
    }))

  return { name, model: settings.model, generate, stream }
}

/**
 * The `@effect/ai` model of the context as a Trellis provider, for `LanguageModel.make`; fails with
 * {@link InvalidOption} when an option is out of range.
 *
 * @since 0.1.0
 */
export const provider = (
  options: Options
): Effect.Effect<Provider.Provider, InvalidOption, AiLanguageModel.LanguageModel> =>
  Effect.flatMap(validate(options), (settings) =>
    Effect.map(AiLanguageModel.LanguageModel, (ai) => providerWith(ai, settings)))

/**
 * Makes the language model service on the `@effect/ai` model of the context. Prices come from the `Pricing`
 * service when one is provided, else from the bundled prices under the provider's name.
 *
 * @since 0.1.0
 */
export const make = (
  options: Options
): Effect.Effect<LanguageModel.Service, InvalidOption, AiLanguageModel.LanguageModel> =>
  Effect.gen(function*() {
    const settings = yield* validate(options)
    const ai = yield* AiLanguageModel.LanguageModel
    const pricing = yield* Effect.serviceOption(Pricing.Pricing)
    const service = LanguageModel.make(providerWith(ai, settings), options)
    return yield* Option.isSome(pricing)
      ? service
      : Effect.provideService(service, Pricing.Pricing, Pricing.make({ provider: settings.name }))
  })

/**
 * The `@effect/ai` model as the application's language model; building it fails with {@link InvalidOption} when an
 * option is out of range, before any request is sent.
 *
 * @since 0.1.0
 */
export const layer = (
  options: Options
): Layer.Layer<LanguageModel.LanguageModel, InvalidOption, AiLanguageModel.LanguageModel> =>
  Layer.effect(LanguageModel.LanguageModel, make(options))
