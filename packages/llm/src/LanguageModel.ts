/**
 * The language model service: text in, text (or a decoded object, or a stream of deltas) out, every call
 * metered through the run's ledger and traced.
 *
 * A provider (OpenAI, the offline model, a scripted double) only sends a request and reads the answer;
 * {@link make} adds what every provider needs the same way: defaults, the worst-case reservation before anything
 * is sent, pricing, estimated usage when a server reports none, structured output with repair, and spans.
 *
 * @since 0.1.0
 */
import { Ledger, Span, Usage } from "@trellis/core"
import * as Cause from "effect/Cause"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import { identity } from "effect/Function"
import type * as Fiber from "effect/Fiber"
import * as JSONSchema from "effect/JSONSchema"
import * as Option from "effect/Option"
import * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import * as Tracer from "effect/Tracer"
import { MalformedOutput, type LlmError } from "./LlmError.js"
import * as Pricing from "./Pricing.js"
import * as Tokenizer from "./Tokenizer.js"

/**
 * A tool call the model asked for; `arguments` is the raw JSON text the model wrote.
 *
 * @since 0.1.0
 */
export interface ToolCall {
  readonly id: string
  readonly name: string
  readonly arguments: string
}

/**
 * One message of a conversation.
 *
 * @since 0.1.0
 */
export type Message =
  | { readonly role: "system"; readonly content: string }
  | { readonly role: "user"; readonly content: string }
  | { readonly role: "assistant"; readonly content: string; readonly toolCalls?: ReadonlyArray<ToolCall> | undefined }
  | { readonly role: "tool"; readonly toolCallId: string; readonly content: string }

/**
 * A tool offered to the model: its parameters are a JSON Schema (see `Tool` for tools declared with Schema).
 *
 * @since 0.1.0
 */
export interface ToolDefinition {
  readonly name: string
  readonly description: string
  readonly parameters: object
}

/**
 * Asks for an answer that is a JSON document matching `schema`.
 *
 * @since 0.1.0
 */
export interface JsonFormat {
  readonly name: string
  readonly schema: object
}

/**
 * A request to the model. Unset fields take the service's defaults.
 *
 * @since 0.1.0
 */
export interface Request {
  readonly messages: ReadonlyArray<Message>
  /** Instructions, sent as a system message before the others. */
  readonly system?: string | undefined
  readonly model?: string | undefined
  readonly temperature?: number | undefined
  /** The most output tokens the answer may have; also what the reservation counts on. */
  readonly maxTokens?: number | undefined
  readonly tools?: ReadonlyArray<ToolDefinition> | undefined
  readonly json?: JsonFormat | undefined
}

/**
 * A request with every default filled in: what a provider receives.
 *
 * @since 0.1.0
 */
export interface ResolvedRequest {
  readonly messages: ReadonlyArray<Message>
  readonly model: string
  readonly temperature: number | undefined
  readonly maxTokens: number
  readonly tools: ReadonlyArray<ToolDefinition>
  readonly json: JsonFormat | undefined
}

/**
 * A prompt: a user message as plain text, or a whole request.
 *
 * @since 0.1.0
 */
export type Prompt = string | Request

/**
 * Why the model stopped.
 *
 * @since 0.1.0
 */
export type FinishReason = "stop" | "length" | "tool_calls" | "content_filter" | "other"

/**
 * Token counts as a provider reports them.
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
 * The part a provider plays: send a resolved request, read the answer, map failures to `LlmError`.
 *
 * @since 0.1.0
 */
export interface Provider {
  /** "openai", "offline", "scripted"... */
  readonly name: string
  /** The model used when a request names none. */
  readonly model: string
  /** Shown next to the provider's name, for example "offline, simulated prices". */
  readonly label?: string | undefined
  readonly generate: (request: ResolvedRequest) => Effect.Effect<Completion, LlmError>
  readonly stream: (request: ResolvedRequest) => Stream.Stream<Chunk, LlmError>
}

/**
 * The answer to a call: text, tool calls, why it stopped, the model that answered, and the priced usage.
 *
 * @since 0.1.0
 */
export interface Response {
  readonly text: string
  readonly toolCalls: ReadonlyArray<ToolCall>
  readonly finishReason: FinishReason
  readonly model: string
  readonly usage: Usage.Usage
}

/**
 * A decoded answer of `generateObject`, with the usage of every attempt it took.
 *
 * @since 0.1.0
 */
export interface ObjectResponse<A> extends Response {
  readonly value: A
  readonly attempts: number
}

/**
 * A piece of `stream`: text deltas, then one `Finish` carrying the whole response and its usage.
 *
 * @since 0.1.0
 */
export type StreamPart =
  | { readonly _tag: "TextDelta"; readonly text: string }
  | { readonly _tag: "Finish"; readonly response: Response }

/**
 * Options of `generateObject`.
 *
 * @since 0.1.0
 */
export interface ObjectOptions {
  /** How many times a wrong answer is sent back with its decode error before giving up (default: the service's). */
  readonly maxRepairs?: number | undefined
  /** The name of the output format, as the provider sees it (default "output"). */
  readonly name?: string | undefined
}

/**
 * The language model service.
 *
 * @since 0.1.0
 */
export interface Service {
  readonly provider: string
  readonly model: string
  readonly label: string | undefined
  readonly generate: (prompt: Prompt) => Effect.Effect<Response, LlmError | Ledger.BudgetExceeded>
  readonly generateObject: <A, I>(
    schema: Schema.Schema<A, I>,
    prompt: Prompt,
    options?: ObjectOptions
  ) => Effect.Effect<ObjectResponse<A>, LlmError | Ledger.BudgetExceeded>
  readonly stream: (prompt: Prompt) => Stream.Stream<StreamPart, LlmError | Ledger.BudgetExceeded>
}

/**
 * The language model of the application, provided by a layer: `OpenAi.layer`, `OfflineModel.layer`,
 * `ScriptedModel`...
 *
 * @since 0.1.0
 */
export class LanguageModel extends Context.Tag("@trellis/llm/LanguageModel")<LanguageModel, Service>() {}

/**
 * Options for {@link make}.
 *
 * @since 0.1.0
 */
export interface Options {
  /** Output tokens allowed when a request sets none (default 4096). Bounds the reservation of every call. */
  readonly maxTokens?: number | undefined
  /** Repairs `generateObject` allows when a call sets none (default 2). */
  readonly maxRepairs?: number | undefined
  readonly temperature?: number | undefined
}

const defaultMaxTokens = 4096
const defaultMaxRepairs = 2

/**
 * Builds the service around a provider. Prices come from the `Pricing` service when one is provided, else from
 * the bundled prices.
 *
 * @since 0.1.0
 */
export const make = (provider: Provider, options: Options = {}): Effect.Effect<Service> =>
  Effect.map(Effect.serviceOption(Pricing.Pricing), (pricing) =>
    unsafeMake(provider, Option.getOrElse(pricing, () => Pricing.make()), options))

const unsafeMake = (provider: Provider, pricing: Pricing.Service, options: Options): Service => {
  const resolve = (prompt: Prompt): ResolvedRequest => {
    if (typeof prompt === "string") {
      return {
        messages: [{ role: "user", content: prompt }],
        model: provider.model,
        temperature: options.temperature,
        maxTokens: options.maxTokens ?? defaultMaxTokens,
        tools: [],
        json: undefined
      }
    }
    return {
      messages: prompt.system === undefined
        ? prompt.messages
        : [{ role: "system", content: prompt.system }, ...prompt.messages],
      model: prompt.model ?? provider.model,
      temperature: prompt.temperature ?? options.temperature,
      maxTokens: prompt.maxTokens ?? options.maxTokens ?? defaultMaxTokens,
      tools: prompt.tools ?? [],
      json: prompt.json
    }
  }

  const inputTokensOf = (request: ResolvedRequest): number =>
    Tokenizer.countMessages(
      request.messages,
      request.tools.map((tool) => tool.name + tool.description + JSON.stringify(tool.parameters))
    )

  // The usage of a finished call, priced; counted with the tokenizer when the server reported none.
  const usageOf = (
    request: ResolvedRequest,
    inputTokens: number,
    completion: Completion
  ): Effect.Effect<Usage.Usage> => {
    const reported = completion.usage
    const usage = reported === undefined
      ? Usage.make({
        inputTokens,
        outputTokens: Tokenizer.countOutput(completion.text, completion.toolCalls),
        requests: 1,
        toolCalls: completion.toolCalls.length,
        estimated: true
      })
      : Usage.make({
        inputTokens: reported.inputTokens,
        outputTokens: reported.outputTokens,
        cachedInputTokens: reported.cachedInputTokens ?? 0,
        reasoningTokens: reported.reasoningTokens ?? 0,
        requests: 1,
        toolCalls: completion.toolCalls.length
      })
    return Effect.map(pricing.cost(request.model, usage), (cost) => ({ ...usage, cost }))
  }

  // An interrupted call may still be billed for what the server read (and wrote): count it, marked estimated.
  const interruptedUsage = (request: ResolvedRequest, inputTokens: number, outputText: string): Usage.Usage => {
    const usage = Usage.make({ inputTokens, outputTokens: Tokenizer.count(outputText), requests: 1, estimated: true })
    return {
      ...usage,
      cost: pricing.worstCase(request.model, usage.inputTokens, usage.outputTokens)
    }
  }

  const spanAttributes = (request: ResolvedRequest): Record<string, unknown> => ({
    "gen_ai.operation.name": "chat",
    "gen_ai.provider.name": provider.name,
    "gen_ai.system": provider.name,
    "gen_ai.request.model": request.model,
    "gen_ai.request.max_tokens": request.maxTokens,
    ...(request.temperature === undefined ? {} : { "gen_ai.request.temperature": request.temperature })
  })

  const annotate = (response: Response) =>
    Effect.annotateCurrentSpan(responseAttributes(response))

  const respond = (request: ResolvedRequest, inputTokens: number, completion: Completion): Effect.Effect<Response> =>
    Effect.map(usageOf(request, inputTokens, completion), (usage): Response => ({
      text: completion.text,
      toolCalls: completion.toolCalls,
      finishReason: completion.finishReason,
      model: completion.model,
      usage
    }))

  /**
   * One call, metered and traced: the span opened, the worst case reserved, the provider's call run with the span
   * as the current one, then, however the call ended, the reservation settled, the span ended and the caller's
   * context put back. This is `Ledger.metered` inside `Effect.withSpan`, written out as one masked region: the
   * composed form holds a dozen frames and closures for every call in flight, which with thousands of calls in
   * flight is most of their memory and of the collector's work. The request is made inside, as the call runs, from
   * the prompt and the function that resolves it: no closure per call. Only the provider's call is interruptible: an
   * interruption during the reservation waits for it, so that whatever was reserved is settled.
   */
  const generateFrom = <P>(
    toRequest: (prompt: P) => ResolvedRequest,
    prompt: P
  ): Effect.Effect<Response, LlmError | Ledger.BudgetExceeded> =>
    Effect.uninterruptibleMask((restore) =>
      Effect.withFiberRuntime((fiber) => {
        const request = toRequest(prompt)
        const span = Span.unsafeMake(fiber, "llm.generate", { kind: "client", attributes: spanAttributes(request) })
        const inputTokens = inputTokensOf(request)
        const outer = fiber.currentContext
        const ledger = outer.unsafeMap.get(Ledger.Ledger.key) as Ledger.Service | undefined
        let reservation: Ledger.Reservation | undefined
        // Methods rather than arrow functions in variables, which a transpiler keeping names would wrap per call.
        const call = {
          send() {
            const context = Context.add(outer, Tracer.ParentSpan, span)
            return Effect.matchCauseEffect(Span.unsafeSetContext(fiber, context, restore(provider.generate(request))), call)
          },
          onFailure(cause: Cause.Cause<LlmError>) {
            const usage = Cause.isInterrupted(cause) ? interruptedUsage(request, inputTokens, "") : Usage.empty
            return close(fiber, span, outer, ledger, reservation, Exit.failCause(cause), usage)
          },
          onSuccess(completion: Completion) {
            return Effect.flatMap(respond(request, inputTokens, completion), (response) => {
              const attributes = responseAttributes(response)
              for (const key in attributes) span.attribute(key, attributes[key])
              return close(fiber, span, outer, ledger, reservation, Exit.succeed(response), response.usage)
            })
          }
        }
        if (ledger === undefined) return call.send()
        return Effect.matchCauseEffect(ledger.reserve(pricing.worstCase(request.model, inputTokens, request.maxTokens)), {
          onFailure(cause) {
            return close(fiber, span, outer, undefined, undefined, Exit.failCause(cause), Usage.empty)
          },
          onSuccess(held) {
            reservation = held
            return call.send()
          }
        })
      })
    )

  const generate = (prompt: Prompt) => generateFrom(resolve, prompt)

  const generateObject = <A, I>(schema: Schema.Schema<A, I>, prompt: Prompt, objectOptions: ObjectOptions = {}) =>
    Effect.suspend(() => {
      const base = resolve(prompt)
      const maxRepairs = objectOptions.maxRepairs ?? options.maxRepairs ?? defaultMaxRepairs
      const jsonSchema = JSONSchema.make(schema)
      const instruction = `Answer with one JSON document and nothing else, matching this JSON Schema:\n` +
        JSON.stringify(jsonSchema)
      const decode = Schema.decodeUnknownEither(Schema.parseJson(schema))
      const first: ResolvedRequest = {
        ...base,
        messages: [{ role: "system", content: instruction }, ...base.messages],
        json: { name: objectOptions.name ?? "output", schema: jsonSchema }
      }

      const attempt = (
        request: ResolvedRequest,
        attempts: number,
        usage: Usage.Usage
      ): Effect.Effect<ObjectResponse<A>, LlmError | Ledger.BudgetExceeded> =>
        Effect.flatMap(generateFrom(identity, request), (response) => {
          const total = Usage.add(usage, response.usage)
          const decoded = decode(stripFences(response.text))
          if (decoded._tag === "Right") {
            return Effect.succeed({ ...response, usage: total, value: decoded.right, attempts })
          }
          const detail = ParseResult.TreeFormatter.formatErrorSync(decoded.left)
          if (attempts > maxRepairs) {
            return Effect.fail(new MalformedOutput({ provider: provider.name, text: response.text, detail, attempts }))
          }
          // Re-ask with the answer and what was wrong with it: models fix most mistakes when shown the error.
          return attempt(
            {
              ...request,
              messages: [
                ...request.messages,
                { role: "assistant", content: response.text },
                {
                  role: "user",
                  content: `That answer does not match the schema:\n${detail}\nAnswer again with the corrected JSON only.`
                }
              ]
            },
            attempts + 1,
            total
          )
        })

      return attempt(first, 1, Usage.empty)
    })

  const stream = (prompt: Prompt): Stream.Stream<StreamPart, LlmError | Ledger.BudgetExceeded> =>
    Stream.unwrapScoped(Effect.gen(function*() {
      const request = resolve(prompt)
      const inputTokens = inputTokensOf(request)
      const ledger = yield* Effect.serviceOption(Ledger.Ledger)
      let text = ""
      let final: Usage.Usage | undefined
      if (Option.isSome(ledger)) {
        yield* Effect.acquireRelease(
          ledger.value.reserve(pricing.worstCase(request.model, inputTokens, request.maxTokens)),
          (reservation, exit) =>
            ledger.value.settle(
              reservation,
              final ?? (Exit.isInterrupted(exit) || text.length > 0
                ? interruptedUsage(request, inputTokens, text)
                : Usage.empty)
            )
        )
      }
      return provider.stream(request).pipe(
        Stream.mapEffect((chunk): Effect.Effect<StreamPart> => {
          if (chunk._tag === "Delta") {
            text += chunk.text
            return Effect.succeed({ _tag: "TextDelta", text: chunk.text })
          }
          return Effect.map(respond(request, inputTokens, chunk.completion), (response) => {
            final = response.usage
            return { _tag: "Finish", response }
          })
        }),
        Stream.tap((part) => part._tag === "Finish" ? annotate(part.response) : Effect.void),
        Stream.withSpan("llm.generate", {
          kind: "client",
          attributes: { ...spanAttributes(request), "gen_ai.request.stream": true },
          captureStackTrace: false
        })
      )
    }))

  return {
    provider: provider.name,
    model: provider.model,
    label: provider.label,
    generate,
    generateObject,
    stream
  }
}

/**
 * The end of a call, however it ended: the caller's context put back, the reservation (if one was made) settled,
 * the span ended, then the call's exit. A function of the module rather than a closure made per call: where the
 * sources run through a transpiler that keeps function names (tsx, esbuild's `keepNames`), every named closure
 * costs a property definition each time it is made, which is slow.
 */
const close = <A, E>(
  fiber: Fiber.RuntimeFiber<unknown, unknown>,
  span: Tracer.Span,
  outer: Context.Context<never>,
  ledger: Ledger.Service | undefined,
  reservation: Ledger.Reservation | undefined,
  exit: Exit.Exit<A, E>,
  usage: Usage.Usage
): Effect.Effect<A, E> => {
  const end = Span.unsafeSetContext(fiber, outer, Effect.suspend(() => {
    Span.unsafeEnd(fiber, span, exit)
    return exit
  }))
  return reservation === undefined ? end : Effect.zipRight(ledger!.settle(reservation, usage), end)
}

const responseAttributes = (response: Response): Record<string, unknown> => ({
  "gen_ai.response.model": response.model,
  "gen_ai.response.finish_reasons": response.finishReason,
  "gen_ai.usage.input_tokens": response.usage.inputTokens,
  "gen_ai.usage.output_tokens": response.usage.outputTokens,
  "trellis.cost_nano_usd": response.usage.cost,
  "trellis.usage_estimated": response.usage.estimated
})

// Models often wrap JSON in a Markdown code fence even when asked not to.
const stripFences = (text: string): string => {
  const match = /^\s*```(?:json)?\s*\n([\s\S]*?)\n?```\s*$/.exec(text)
  return match === null ? text : match[1]!
}

/**
 * Generates text with the application's language model.
 *
 * @since 0.1.0
 */
export const generate = (prompt: Prompt): Effect.Effect<Response, LlmError | Ledger.BudgetExceeded, LanguageModel> =>
  Effect.flatMap(LanguageModel, (model) => model.generate(prompt))

/**
 * Generates a value of `schema` with the application's language model, repairing wrong answers a bounded number
 * of times.
 *
 * @since 0.1.0
 */
export const generateObject = <A, I>(
  schema: Schema.Schema<A, I>,
  prompt: Prompt,
  options?: ObjectOptions
): Effect.Effect<ObjectResponse<A>, LlmError | Ledger.BudgetExceeded, LanguageModel> =>
  Effect.flatMap(LanguageModel, (model) => model.generateObject(schema, prompt, options))

/**
 * Streams text deltas from the application's language model; the last part carries the usage.
 *
 * @since 0.1.0
 */
export const stream = (prompt: Prompt): Stream.Stream<StreamPart, LlmError | Ledger.BudgetExceeded, LanguageModel> =>
  Stream.unwrap(Effect.map(LanguageModel, (model) => model.stream(prompt)))

