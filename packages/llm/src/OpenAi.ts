/**
 * The OpenAI layer, on the official `openai` SDK, for OpenAI and any server that speaks its Chat Completions API
 * (vLLM, Ollama, LM Studio...).
 *
 * The SDK retries and times out on its own by default; both are turned off here and done with Effect instead, so
 * every attempt is metered, logged and traced, waits on Effect's clock (testable with `TestClock`), and is
 * aborted when its fiber is interrupted.
 *
 * @since 0.1.0
 */
import * as Config from "effect/Config"
import type * as ConfigError from "effect/ConfigError"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import * as Schedule from "effect/Schedule"
import * as Stream from "effect/Stream"
import OpenAI from "openai"
import type {
  ChatCompletion,
  ChatCompletionChunk,
  ChatCompletionCreateParamsNonStreaming,
  ChatCompletionMessageParam
} from "openai/resources/chat/completions"
import * as LanguageModel from "./LanguageModel.js"
import {
  AuthenticationError,
  BadRequest,
  ContentFiltered,
  isTransient,
  type LlmError,
  LlmTimeout,
  MalformedOutput,
  RateLimited,
  ServerError
} from "./LlmError.js"

/**
 * How transient failures (429, 5xx, connection errors, timeouts) are retried: at most `times` more attempts,
 * waiting an exponential, jittered delay from `base`, or the server's `Retry-After` when it asks for longer,
 * never more than `cap`.
 *
 * @since 0.1.0
 */
export interface RetryOptions {
  readonly times?: number | undefined
  readonly base?: Duration.DurationInput | undefined
  readonly cap?: Duration.DurationInput | undefined
}

/**
 * Options of the OpenAI layer.
 *
 * @since 0.1.0
 */
export interface Options extends LanguageModel.Options {
  readonly apiKey: Redacted.Redacted<string>
  /** An OpenAI-compatible server; OpenAI's own API when unset. */
  readonly baseURL?: string | undefined
  /** The model used when a request names none (default "gpt-4o-mini"). */
  readonly model?: string | undefined
  /** Time allowed for one attempt (default 60 seconds). */
  readonly timeout?: Duration.DurationInput | undefined
  readonly retry?: RetryOptions | undefined
  /**
   * The field the output limit is sent in. OpenAI's API wants `max_completion_tokens` (its reasoning models
   * reject `max_tokens`); many compatible servers only know `max_tokens`. The default follows `baseURL`: the
   * former for OpenAI, the latter for any other server.
   */
  readonly maxTokensField?: "max_completion_tokens" | "max_tokens" | undefined
  readonly organization?: string | undefined
  readonly project?: string | undefined
}

const providerName = "openai"

// The largest delay a Node timer accepts: the SDK's own timeout is pushed out of the way, Effect's applies.
const sdkTimeoutOff = 2 ** 31 - 1

/**
 * The OpenAI provider, for use with `LanguageModel.make`.
 *
 * @since 0.1.0
 */
export const provider = (options: Options): LanguageModel.Provider => {
  const key = Redacted.value(options.apiKey)
  const client = new OpenAI({
    apiKey: key,
    baseURL: options.baseURL ?? null,
    organization: options.organization ?? null,
    project: options.project ?? null,
    maxRetries: 0,
    timeout: sdkTimeoutOff
  })
  const timeout = Duration.decode(options.timeout ?? "60 seconds")
  const maxTokensField = options.maxTokensField ??
    (options.baseURL === undefined ? "max_completion_tokens" : "max_tokens")
  const toError = errorMapper(key)
  const retry = retrySchedule(options.retry ?? {})

  // One attempt: interruption (a timeout, a cancelled run) aborts the HTTP request through the signal.
  const attempt = <A>(send: (signal: AbortSignal) => Promise<A>): Effect.Effect<A, LlmError> =>
    Effect.tryPromise({ try: send, catch: toError }).pipe(
      Effect.timeoutFail({ duration: timeout, onTimeout: () => new LlmTimeout({ provider: providerName, timeout }) })
    )

  const generate = (request: LanguageModel.ResolvedRequest): Effect.Effect<LanguageModel.Completion, LlmError> => {
    const body = toBody(request, maxTokensField)
    return attempt((signal) => client.chat.completions.create(body, { signal })).pipe(
      Effect.retry(retry),
      Effect.flatMap(fromCompletion)
    )
  }

  const stream = (request: LanguageModel.ResolvedRequest): Stream.Stream<LanguageModel.Chunk, LlmError> =>
    Stream.unwrapScoped(Effect.gen(function*() {
      // The signal must outlive the call that opens the stream: it aborts the response body when the consumer
      // stops early or is interrupted, and is harmless once the body has been read to the end.
      const controller = yield* Effect.acquireRelease(
        Effect.sync(() => new AbortController()),
        (controller) => Effect.sync(() => controller.abort())
      )
      const body = { ...toBody(request, maxTokensField), stream: true as const, stream_options: { include_usage: true } }
      const chunks = yield* attempt((signal) => {
        signal.addEventListener("abort", () => controller.abort(), { once: true })
        return client.chat.completions.create(body, { signal: controller.signal })
      }).pipe(Effect.retry(retry))
      const acc = new Accumulator(request.model)
      return Stream.fromAsyncIterable(chunks, toError).pipe(
        Stream.mapConcat((chunk) => acc.add(chunk)),
        Stream.concat(Stream.fromEffect(Effect.suspend(() => acc.done())))
      )
    }))

  return { name: providerName, model: options.model ?? "gpt-4o-mini", generate, stream }
}

/**
 * Makes the language model service on OpenAI.
 *
 * @since 0.1.0
 */
export const make = (options: Options): Effect.Effect<LanguageModel.Service> =>
  LanguageModel.make(provider(options), options)

/**
 * The OpenAI language model as a layer.
 *
 * @since 0.1.0
 */
export const layer = (options: Options): Layer.Layer<LanguageModel.LanguageModel> =>
  Layer.effect(LanguageModel.LanguageModel, make(options))

/**
 * The OpenAI language model configured from the environment: `OPENAI_API_KEY` (required, read as `Redacted` so
 * it never shows in logs or errors) and `OPENAI_BASE_URL` (optional, for a compatible server).
 *
 * @since 0.1.0
 */
export const layerConfig = (
  options: Omit<Options, "apiKey" | "baseURL"> = {}
): Layer.Layer<LanguageModel.LanguageModel, ConfigError.ConfigError> =>
  Layer.unwrapEffect(
    Effect.map(
      Config.all({
        apiKey: Config.redacted("OPENAI_API_KEY"),
        baseURL: Config.option(Config.string("OPENAI_BASE_URL"))
      }),
      ({ apiKey, baseURL }) =>
        layer({ ...options, apiKey, baseURL: baseURL._tag === "Some" ? baseURL.value : undefined })
    )
  )

// ---------------------------------------------------------------------------------------------------------------
// Requests

const toMessage = (message: LanguageModel.Message): ChatCompletionMessageParam => {
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
  request: LanguageModel.ResolvedRequest,
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

const finishReason = (reason: string | null | undefined): LanguageModel.FinishReason => {
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

const usageOf = (usage: ChatCompletion["usage"] | null | undefined): LanguageModel.ReportedUsage | undefined =>
  usage == null ? undefined : {
    inputTokens: usage.prompt_tokens,
    outputTokens: usage.completion_tokens,
    cachedInputTokens: usage.prompt_tokens_details?.cached_tokens ?? 0,
    reasoningTokens: usage.completion_tokens_details?.reasoning_tokens ?? 0
  }

const malformed = (text: string, detail: string) =>
  new MalformedOutput({ provider: providerName, text, detail, attempts: 1 })

const filtered = (detail: string) => new ContentFiltered({ provider: providerName, detail })

const fromCompletion = (completion: unknown): Effect.Effect<LanguageModel.Completion, LlmError> => {
  // A server that is not quite compatible may send text, or JSON of another shape, with a 200.
  if (typeof completion !== "object" || completion === null || !Array.isArray((completion as any).choices)) {
    const text = typeof completion === "string" ? completion : JSON.stringify(completion) ?? ""
    return Effect.fail(malformed(text.slice(0, 2000), "the response is not a chat completion"))
  }
  const body = completion as ChatCompletion
  const choice = body.choices[0]
  if (choice === undefined) return Effect.fail(malformed("", "the response has no choices"))
  const message = choice.message
  if (choice.finish_reason === "content_filter") return Effect.fail(filtered("the answer was withheld"))
  if (message?.refusal) return Effect.fail(filtered(message.refusal))
  return Effect.succeed({
    text: message?.content ?? "",
    toolCalls: (message?.tool_calls ?? []).flatMap((call) =>
      call.type === "function" ? [{ id: call.id, name: call.function.name, arguments: call.function.arguments }] : []
    ),
    finishReason: finishReason(choice.finish_reason),
    model: body.model,
    usage: usageOf(body.usage)
  })
}

// Gathers a streamed answer: text and tool-call fragments as they come, usage from the last chunk.
class Accumulator {
  text = ""
  reason: string | null = null
  usage: LanguageModel.ReportedUsage | undefined = undefined
  refusal = ""
  readonly calls: Array<{ id: string; name: string; arguments: string }> = []

  constructor(public model: string) {}

  add(chunk: ChatCompletionChunk): Array<LanguageModel.Chunk> {
    if (chunk.model) this.model = chunk.model
    this.usage = usageOf(chunk.usage) ?? this.usage
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
    if (!delta?.content) return []
    this.text += delta.content
    return [{ _tag: "Delta", text: delta.content }]
  }

  done(): Effect.Effect<LanguageModel.Chunk, LlmError> {
    if (this.reason === "content_filter") return Effect.fail(filtered("the answer was withheld"))
    if (this.refusal.length > 0) return Effect.fail(filtered(this.refusal))
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

const retryAfter = (headers: Headers | undefined): Duration.Duration | undefined => {
  const ms = Number(headers?.get("retry-after-ms") ?? Number.NaN)
  if (Number.isFinite(ms) && ms >= 0) return Duration.millis(ms)
  const value = headers?.get("retry-after")
  if (value == null) return undefined
  const seconds = Number(value)
  if (Number.isFinite(seconds) && seconds >= 0) return Duration.seconds(seconds)
  const date = Date.parse(value)
  return Number.isNaN(date) ? undefined : Duration.millis(Math.max(0, date - Date.now()))
}

// Every text that leaves this module is scrubbed of the key, whatever a server chose to echo back.
const errorMapper = (key: string) => (error: unknown): LlmError => {
  const scrub = (text: string) => (key.length > 0 ? text.split(key).join("<redacted>") : text)
  const detail = scrub(error instanceof Error ? error.message : String(error))
  if (error instanceof OpenAI.APIConnectionError) {
    return new ServerError({ provider: providerName, status: undefined, detail })
  }
  if (error instanceof OpenAI.APIError && error.status !== undefined) {
    const status = error.status
    if (status === 401 || status === 403) return new AuthenticationError({ provider: providerName, status, detail })
    if (status === 429) {
      return new RateLimited({ provider: providerName, retryAfter: retryAfter(error.headers), detail })
    }
    if (status >= 500) return new ServerError({ provider: providerName, status, detail })
    return new BadRequest({ provider: providerName, status, detail })
  }
  // The SDK parses a JSON body itself: a syntax error means the server sent something else.
  if (error instanceof SyntaxError) return malformed("", `the response body is not valid JSON: ${detail}`)
  return new ServerError({ provider: providerName, status: undefined, detail })
}

const retrySchedule = (options: RetryOptions): Schedule.Schedule<LlmError, LlmError> => {
  const cap = Duration.decode(options.cap ?? "30 seconds")
  return Schedule.identity<LlmError>().pipe(
    Schedule.zipLeft(Schedule.jittered(Schedule.exponential(options.base ?? "500 millis"))),
    Schedule.zipLeft(Schedule.recurs(options.times ?? 3)),
    Schedule.whileInput(isTransient),
    // A server that says when to come back is believed, within the cap.
    Schedule.modifyDelay((error, delay) => {
      const asked = error._tag === "RateLimited" ? error.retryAfter : undefined
      return Duration.min(cap, asked === undefined ? delay : Duration.max(delay, asked))
    }),
    Schedule.tapInput((error: LlmError) =>
      isTransient(error) ? Effect.logWarning(`Retrying ${providerName} call after ${error._tag}: ${error.message}`) : Effect.void
    )
  )
}
