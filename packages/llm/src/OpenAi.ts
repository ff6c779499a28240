/**
 * The OpenAI layer, on the official `openai` SDK, for OpenAI and any server that speaks its Chat Completions API
 * (vLLM, Ollama, LM Studio...).
 *
 * The SDK retries and times out on its own by default; both are turned off here and done with Effect instead, so
 * every retry is logged (an event on the call's `llm.generate` span) with its reason and delay, waits on Effect's
 * clock (testable with `TestClock`), and every attempt is aborted when its fiber is interrupted. A call is
 * metered once, whatever the number of attempts it took.
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
import * as Config from "effect/Config"
import type * as ConfigError from "effect/ConfigError"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
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
import type { FinishReason, Message, ResolvedRequest } from "./Prompt.js"
import type { Chunk, Completion, Provider, ReportedUsage } from "./Provider.js"

/**
 * How transient failures (429, 5xx, connection errors, timeouts) are retried: at most `times` more attempts,
 * waiting an exponential, jittered delay from `base`, or the server's `Retry-After` when it asks for longer,
 * never more than `cap`.
 *
 * @since 0.1.0
 */
export interface RetryOptions {
  /** More attempts after the first (default 3). */
  readonly times?: number | undefined
  /** The first backoff delay, doubled at each retry (default 500 ms). */
  readonly base?: Duration.DurationInput | undefined
  /** The longest wait between two attempts, whatever the backoff or the server says (default 30 seconds). */
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
  /**
   * Time allowed for one attempt (default 60 seconds). When streaming, an attempt ends once the answer starts, and
   * the same time then bounds the wait for each next chunk.
   */
  readonly timeout?: Duration.DurationInput | undefined
  /** How transient failures are retried (default: 3 more attempts from 500 ms, at most 30 s apart). */
  readonly retry?: RetryOptions | undefined
  /**
   * The field the output limit is sent in. OpenAI's API wants `max_completion_tokens` (its reasoning models
   * reject `max_tokens`); many compatible servers (older vLLM, Ollama, LM Studio) only know `max_tokens` and
   * ignore the other, which would leave the answer unbounded while the ledger counts on the bound. The default
   * follows `baseURL`: the former for OpenAI's own API, the latter for any other server.
   */
  readonly maxTokensField?: "max_completion_tokens" | "max_tokens" | undefined
  readonly organization?: string | undefined
  readonly project?: string | undefined
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

/**
 * The OpenAI provider, for use with `LanguageModel.make`.
 *
 * @since 0.1.0
 */
export const provider = (options: Options): Provider => {
  const key = Redacted.value(options.apiKey)
  const baseURL = options.baseURL === "" ? undefined : options.baseURL
  const client = new OpenAI({
    apiKey: key,
    // `null`, not `undefined`: the SDK would otherwise read `OPENAI_BASE_URL` itself, behind the caller's back.
    baseURL: baseURL ?? null,
    organization: options.organization ?? null,
    project: options.project ?? null,
    maxRetries: 0,
    timeout: sdkTimeoutOff
  })
  const timeout = Duration.decode(options.timeout ?? "60 seconds")
  const maxTokensField = options.maxTokensField ??
    (isOpenAi(baseURL) ? "max_completion_tokens" : "max_tokens")
  const toFailure = failureMapper(key)
  const toError = (error: unknown) => toFailure(error).error
  const retry = retrySchedule(options.retry ?? {})
  const timedOut = () => new LlmTimeout({ provider: providerName, timeout })

  // One attempt: interruption (a timeout, a cancelled run) aborts the HTTP request through the signal.
  const attempt = <A>(send: (signal: AbortSignal) => Promise<A>): Effect.Effect<A, Failure> =>
    Effect.tryPromise({ try: send, catch: toFailure }).pipe(
      Effect.timeoutFail({ duration: timeout, onTimeout: () => ({ error: timedOut(), retryAfter: undefined }) })
    )

  // Attempts until one succeeds, a failure is not transient, or the retries run out.
  const withRetries = <A>(send: (signal: AbortSignal) => Promise<A>): Effect.Effect<A, LlmError> =>
    attempt(send).pipe(
      Effect.retry(retry),
      Effect.mapError((failure) => failure.error)
    )

  const generate = (request: ResolvedRequest): Effect.Effect<Completion, LlmError> => {
    const body = toBody(request, maxTokensField)
    return Effect.flatMap(
      withRetries((signal) => client.chat.completions.create(body, { signal })),
      (completion) => fromCompletion(completion, request.model)
    )
  }

  const stream = (request: ResolvedRequest): Stream.Stream<Chunk, LlmError> =>
    Stream.unwrapScoped(Effect.gen(function*() {
      // The attempt's own signal only lasts until the answer starts, but the body is read after that: each attempt
      // gets a controller of its own, aborted with the attempt (a timeout), and the one that opened the stream is
      // aborted when the stream's scope closes (the consumer stopped early, failed, or was interrupted).
      let opened: AbortController | undefined
      yield* Effect.addFinalizer(() => Effect.sync(() => opened?.abort()))
      const body = { ...toBody(request, maxTokensField), stream: true as const, stream_options: { include_usage: true } }
      const chunks = yield* withRetries((signal) => {
        const controller = new AbortController()
        signal.addEventListener("abort", () => controller.abort(), { once: true })
        opened = controller
        return client.chat.completions.create(body, { signal: controller.signal })
      })
      // Pulled by hand rather than with `Stream.fromAsyncIterable`: that one calls the iterator's `return` when the
      // stream ends early, and the SDK's iterator is an async generator, whose `return` waits for the pending
      // `next`, which a stalled server never settles. Aborting (the finalizer above) ends the generator instead.
      const iterator = chunks[Symbol.asyncIterator]()
      const pull = Effect.flatMap(
        Effect.tryPromise({ try: () => iterator.next(), catch: (error) => Option.some(toError(error)) }),
        (next) => (next.done === true ? Effect.fail(Option.none()) : Effect.succeed(next.value))
      )
      const acc = new Accumulator(request.model)
      return Stream.repeatEffectOption(pull).pipe(
        // A server that stops sending mid-answer is given up on like one that never answers.
        Stream.timeoutFail(timedOut, timeout),
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
 * it never shows in logs or errors) and `OPENAI_BASE_URL` (optional, for a compatible server; `options.baseURL`
 * when unset or empty).
 *
 * @since 0.1.0
 */
export const layerConfig = (
  options: Omit<Options, "apiKey"> = {}
): Layer.Layer<LanguageModel.LanguageModel, ConfigError.ConfigError> =>
  Layer.unwrapEffect(
    Effect.map(
      Config.all({
        apiKey: Config.redacted("OPENAI_API_KEY").pipe(
          Config.validate({
            message: "OPENAI_API_KEY is empty",
            validation: (key) => Redacted.value(key).length > 0
          })
        ),
        baseURL: Config.withDefault(Config.string("OPENAI_BASE_URL"), "")
      }),
      ({ apiKey, baseURL }) => layer({ ...options, apiKey, baseURL: baseURL.length > 0 ? baseURL : options.baseURL })
    )
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

const usageOf = (usage: ChatCompletion["usage"] | null | undefined): ReportedUsage | undefined =>
  usage == null ? undefined : {
    inputTokens: usage.prompt_tokens,
    outputTokens: usage.completion_tokens,
    cachedInputTokens: usage.prompt_tokens_details?.cached_tokens ?? 0,
    reasoningTokens: usage.completion_tokens_details?.reasoning_tokens ?? 0
  }

const malformed = (text: string, detail: string) =>
  new MalformedOutput({ provider: providerName, text, detail, attempts: 1 })

const filtered = (detail: string) => new ContentFiltered({ provider: providerName, detail })

const fromCompletion = (completion: unknown, requested: string): Effect.Effect<Completion, LlmError> => {
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
    // Some compatible servers leave the model out.
    model: body.model || requested,
    usage: usageOf(body.usage)
  })
}

// Gathers a streamed answer: text and tool-call fragments as they come, usage from the last chunk.
class Accumulator {
  text = ""
  reason: string | null = null
  usage: ReportedUsage | undefined = undefined
  refusal = ""
  readonly calls: Array<{ id: string; name: string; arguments: string }> = []

  constructor(public model: string) {}

  add(chunk: ChatCompletionChunk): Array<Chunk> {
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

  done(): Effect.Effect<Chunk, LlmError> {
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

// A failed attempt: the typed error, and how long the server asked to wait before the next one.
interface Failure {
  readonly error: LlmError
  readonly retryAfter: Duration.Duration | undefined
}

// `retry-after-ms` is OpenAI's, more precise; `retry-after` is HTTP's, in seconds or as a date.
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

// Error bodies can be whole HTML pages from a proxy: messages keep one short line of them.
const shorten = (text: string): string => {
  const line = text.replace(/\s+/g, " ").trim()
  return line.length <= 200 ? line : `${line.slice(0, 199)}…`
}

const rootCause = (error: unknown): string | undefined => {
  let current = error
  while (current instanceof Error && current.cause instanceof Error) current = current.cause
  return current instanceof Error ? current.message : undefined
}

// Every text that leaves this module is scrubbed of the key, whatever a server chose to echo back.
const failureMapper = (key: string) => (error: unknown): Failure => {
  const scrub = (text: string) => shorten(key.length > 0 ? text.split(key).join("<redacted>") : text)
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
      retryAfter: undefined
    }
  }
  if (error instanceof OpenAI.APIError && error.status !== undefined) {
    const status = error.status
    const wait = retryAfter(error.headers)
    if (status === 401 || status === 403) {
      return { error: new AuthenticationError({ provider: providerName, status, detail }), retryAfter: undefined }
    }
    if (status === 429) {
      return { error: new RateLimited({ provider: providerName, retryAfter: wait, detail }), retryAfter: wait }
    }
    if (status >= 500) return { error: new ServerError({ provider: providerName, status, detail }), retryAfter: wait }
    return { error: new BadRequest({ provider: providerName, status, detail }), retryAfter: undefined }
  }
  // The SDK parses a JSON body itself: a syntax error means the server sent something else.
  if (error instanceof SyntaxError) {
    return { error: malformed("", `the response body is not valid JSON: ${detail}`), retryAfter: undefined }
  }
  // An error event inside a stream, or anything else the SDK throws without a status.
  return { error: new ServerError({ provider: providerName, status: undefined, detail }), retryAfter: undefined }
}

const retrySchedule = (options: RetryOptions): Schedule.Schedule<unknown, Failure> => {
  const times = options.times ?? 3
  const cap = Duration.decode(options.cap ?? "30 seconds")
  return Schedule.identity<Failure>().pipe(
    Schedule.intersect(Schedule.recurs(times)),
    Schedule.zipLeft(Schedule.jittered(Schedule.exponential(options.base ?? "500 millis"))),
    Schedule.whileInput((failure: Failure) => isTransient(failure.error)),
    // Only reached when there is a retry: a server that says when to come back is believed, within the cap, and
    // every retry is logged (so also an event on the call's span) with why and when.
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
