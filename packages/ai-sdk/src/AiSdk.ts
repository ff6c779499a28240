/**
 * An AI SDK language model as a Trellis provider: any model of the AI SDK's provider packages (`@ai-sdk/anthropic`,
 * `@ai-sdk/google`, `@ai-sdk/mistral`, `@ai-sdk/amazon-bedrock`...), as they implement the language model
 * specification of `@ai-sdk/provider` (`LanguageModelV4`), keeps everything `LanguageModel.make` adds: the
 * worst-case reservation, the budget, prices, estimated usage when none is reported, structured output with
 * repair, tools, streaming and spans.
 *
 * The model's `doGenerate` and `doStream` are called directly: one request per call, aborted through its signal
 * when the call is interrupted or times out. Transient failures (`RateLimited` with the server's `retryAfter`,
 * `ServerError`, `LlmTimeout`) are left to the step's retry policy, which sees them typed.
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
  LanguageModelV4CallOptions,
  LanguageModelV4FinishReason,
  LanguageModelV4GenerateResult,
  LanguageModelV4Message,
  LanguageModelV4StreamPart,
  LanguageModelV4Usage
} from "@ai-sdk/provider"
import { APICallError } from "@ai-sdk/provider"
import { LanguageModel, LlmError, Pricing, type Prompt, Provider } from "@trellis/llm"
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Stream from "effect/Stream"

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
}

const show = (value: unknown): string => {
  try {
    return (typeof value === "string" ? JSON.stringify(value) : String(value)).slice(0, 100)
  } catch {
    return typeof value
  }
}

const validate = (options: Options): Effect.Effect<Settings, InvalidOption> =>
  Effect.suspend(() => {
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
    return Effect.succeed({ model: model as LanguageModelV4, name, timeout: timeout.value })
  })

// ---------------------------------------------------------------------------------------------------------------
// Requests

// `$schema` names a draft; providers' schema subsets do not list it.
const withoutDialect = (schema: object): Record<string, unknown> => {
  const { $schema: _, ...rest } = schema as Record<string, unknown>
  return rest
}

// A tool call's arguments as the model wrote them: the specification wants the parsed input back.
const parsedArguments = (text: string): unknown => {
  try {
    return JSON.parse(text)
  } catch {
    return text
  }
}

const toPrompt = (
  request: Prompt.ResolvedRequest,
  invalid: (detail: string) => LlmError.InvalidRequest
): Effect.Effect<Array<LanguageModelV4Message>, LlmError.InvalidRequest> =>
  Effect.suspend(() => {
    // A tool result names its tool in the specification; Trellis's names only the call it answers.
    const toolNames = new Map<string, string>()
    const messages: Array<LanguageModelV4Message> = []
    for (const message of request.messages) {
      switch (message.role) {
        case "system":
          messages.push({ role: "system", content: message.content })
          break
        case "user":
          messages.push({ role: "user", content: [{ type: "text", text: message.content }] })
          break
        case "assistant": {
          const calls = message.toolCalls ?? []
          for (const call of calls) toolNames.set(call.id, call.name)
          messages.push({
            role: "assistant",
            content: [
              ...(message.content.length === 0 ? [] : [{ type: "text" as const, text: message.content }]),
              ...calls.map((call) => ({
                type: "tool-call" as const,
                toolCallId: call.id,
                toolName: call.name,
                input: parsedArguments(call.arguments)
              }))
            ]
          })
          break
        }
        case "tool": {
          const toolName = toolNames.get(message.toolCallId)
          if (toolName === undefined) {
            return Effect.fail(invalid(`a tool message answers the call ${show(message.toolCallId)}, which no assistant message made`))
          }
          messages.push({
            role: "tool",
            content: [{
              type: "tool-result",
              toolCallId: message.toolCallId,
              toolName,
              output: { type: "text", value: message.content }
            }]
          })
          break
        }
      }
    }
    return Effect.succeed(messages)
  })

const toCallOptions = (
  request: Prompt.ResolvedRequest,
  prompt: Array<LanguageModelV4Message>
): LanguageModelV4CallOptions => ({
  prompt,
  maxOutputTokens: request.maxTokens,
  ...(request.temperature === undefined ? {} : { temperature: request.temperature }),
  ...(request.tools.length === 0 ? {} : {
    tools: request.tools.map((tool) => ({
      type: "function" as const,
      name: tool.name,
      description: tool.description,
      inputSchema: withoutDialect(tool.parameters)
    }))
  }),
  ...(request.json === undefined ? {} : {
    responseFormat: { type: "json" as const, name: request.json.name, schema: withoutDialect(request.json.schema) }
  })
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
// Failures

// What a failure says about the request that met it: whether it may have been billed (see `LlmError.Sent`).
interface Failure {
  readonly error: LlmError.LlmError
  readonly billable: boolean
}

const innermost = (error: unknown): unknown => {
  let current = error
  while (current instanceof Error && current.cause instanceof Error) current = current.cause
  return current
}

// Failures to connect at all: nothing reached a server, so nothing can have been billed.
const neverConnected = new Set(["ECONNREFUSED", "ENOTFOUND", "EAI_AGAIN", "EHOSTUNREACH", "ENETUNREACH", "UND_ERR_CONNECT_TIMEOUT"])

// What an error says: its message, or the JSON of an error object sent as data (a stream's error part).
const describe = (error: unknown): string => {
  if (error instanceof Error) return error.message
  if (typeof error === "object" && error !== null) {
    const inner = (error as { readonly error?: unknown }).error ?? error
    const message = (inner as { readonly message?: unknown }).message
    if (typeof message === "string") return message
    try {
      return JSON.stringify(error) ?? String(error)
    } catch {
      return String(error)
    }
  }
  return String(error)
}

const failureOf = (provider: string) => (error: unknown): Failure => {
  const detail = Provider.errorDetail(describe(error))
  if (APICallError.isInstance(error)) {
    const status = error.statusCode
    if (status === undefined) {
      // The SDK wraps a failed fetch ("Cannot connect to API"); the innermost cause says which failure it was.
      const root = innermost(error)
      const code = (root as { readonly code?: unknown } | undefined)?.code
      const reason = root instanceof Error && root !== error ? ` (${Provider.errorDetail(root.message)})` : ""
      return {
        error: new LlmError.ServerError({ provider, status: undefined, detail: detail + reason }),
        billable: !(typeof code === "string" && neverConnected.has(code))
      }
    }
    // An error status: the server did not do the work, and does not bill it.
    if (status === 401 || status === 403) {
      return { error: new LlmError.AuthenticationError({ provider, status, detail }), billable: false }
    }
    if (status === 429) {
      return {
        error: new LlmError.RateLimited({ provider, retryAfter: Provider.retryAfter(error.responseHeaders), detail }),
        billable: false
      }
    }
    if (status >= 500) return { error: new LlmError.ServerError({ provider, status, detail }), billable: false }
    return { error: new LlmError.BadRequest({ provider, status, detail }), billable: false }
  }
  // The SDK's own checks of an answer (a body that is not the API's JSON, a part of the wrong shape).
  const name = error instanceof Error ? error.name : ""
  if (/JSONParseError|TypeValidationError|InvalidResponseDataError|EmptyResponseBodyError|NoContentGeneratedError/.test(name)) {
    return {
      error: new LlmError.MalformedOutput({ provider, text: "", detail: `the answer could not be read: ${detail}`, attempts: 1 }),
      billable: true
    }
  }
  // An error event inside a stream (Anthropic's "overloaded_error" mid-answer), or anything else without a status.
  return { error: new LlmError.ServerError({ provider, status: undefined, detail }), billable: true }
}

// The same error, carrying the one request the call sent.
const withSent = (error: LlmError.LlmError, billable: boolean): LlmError.LlmError =>
  LlmError.withSent(error, { requests: 1, billable: billable ? 1 : 0 })

// ---------------------------------------------------------------------------------------------------------------
// The provider

// The call's tally of requests, when `LanguageModel` runs it (a provider used on its own has none).
const currentTally = Effect.map(Effect.serviceOption(Provider.CurrentTally), Option.getOrUndefined)

const providerWith = ({ model, name, timeout }: Settings): Provider.Provider => {
  const toFailure = failureOf(name)
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
      model: result.response?.modelId ?? request.model,
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
            if (typeof part.modelId === "string" && part.modelId.length > 0) answer.model = part.modelId
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
