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
import { Cost, Ledger, OptionKeys, Usage } from "@trellis/core"
import * as Cause from "effect/Cause"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as JSONSchema from "effect/JSONSchema"
import * as Option from "effect/Option"
import * as ParseResult from "effect/ParseResult"
import * as Predicate from "effect/Predicate"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import { chatAttributes, chatSpanName, errorAttributes, responseAttributes } from "./internal/genai.js"
import { makeTally, requestsProblem, sentOf, usageProblem } from "./internal/figures.js"
import { meteredCall, meteredScoped } from "./internal/metering.js"
import { type Call, make as makeReservations } from "./internal/reservation.js"
import { InvalidRequest, type LlmError, MalformedOutput, type Sent, UnpricedModel } from "./LlmError.js"
import * as Pricing from "./Pricing.js"
import type { FinishReason, Prompt, ResolvedRequest, ToolCall } from "./Prompt.js"
import { type Completion, CurrentTally, type Provider, Wrapper } from "./Provider.js"
import * as Tokenizer from "./Tokenizer.js"

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
 * The language model service. A call fails with an `LlmError`, or, inside a ledger, before anything is sent: with
 * `Ledger.BudgetExceeded` when its worst case could pass the budget, with `Ledger.InvalidUsage` when that worst
 * case is not a count of nano-dollars (a price override of `NaN`, say).
 *
 * @since 0.1.0
 */
export interface Service {
  /** The provider's name: "openai", "offline", "scripted"... */
  readonly provider: string
  /** The model used when a request names none. */
  readonly model: string
  readonly generate: (prompt: Prompt) => Effect.Effect<Response, LlmError | Ledger.BudgetExceeded | Ledger.InvalidUsage>
  readonly generateObject: <A, I>(
    schema: Schema.Schema<A, I>,
    prompt: Prompt,
    options?: ObjectOptions
  ) => Effect.Effect<ObjectResponse<A>, LlmError | Ledger.BudgetExceeded | Ledger.InvalidUsage>
  readonly stream: (prompt: Prompt) => Stream.Stream<StreamPart, LlmError | Ledger.BudgetExceeded | Ledger.InvalidUsage>
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
  /**
   * Output tokens allowed when a request sets none (default 4096). A call reserves its worst case, which counts
   * every output token it may produce: ask for a `maxTokens` that fits what the call needs, or a small budget
   * refuses calls that would have cost little.
   */
  readonly maxTokens?: number | undefined
  /**
   * How much the reservation adds to the input tokens counted here, for what the server may count beyond them (its
   * own tokenizer, framing): a fraction from 0 to 10, default 0.1 (10%, rounded up). It applies after calibration:
   * once a model's call has settled, its counts are first scaled by the ratio its server showed. Another value fails
   * each call with `InvalidRequest` before anything is sent.
   */
  readonly inputMargin?: number | undefined
  /** Repairs `generateObject` allows when a call sets none (default 2). */
  readonly maxRepairs?: number | undefined
  readonly temperature?: number | undefined
}

const defaultMaxTokens = 4096
const defaultMaxRepairs = 2
const promptKeys = ["messages", "system", "model", "temperature", "maxTokens", "tools", "json"]
// The OpenAI layer's bound too: past it a number is a typo.
const maxMaxRepairs = 100
const defaultInputMargin = 0.1
// Far beyond any model's output; past it a number is a typo, and its reservation would be absurd.
const maxMaxTokens = 10_000_000
/** The largest `inputMargin`: ten times the counted input is already far past any tokenizer's difference. */
const maxInputMargin = 10
/**
 * Builds the service around a provider. Prices come from the `Pricing` service when one is provided, else from
 * the bundled prices; token counts from the `Tokenizer` service when one is provided, else from the provider's own
 * counting (`Provider.tokenizer`), else from `Tokenizer.o200k`;
 * the provider is first handed to the `Provider.Wrapper` service when one is provided (`Fixtures.record`).
 *
 * @since 0.1.0
 */
export const make = (provider: Provider, options: Options = {}): Effect.Effect<Service> =>
  Effect.gen(function*() {
    const pricing = Option.getOrElse(yield* Effect.serviceOption(Pricing.Pricing), () => Pricing.make())
    const tokenizer = Option.getOrElse(
      yield* Effect.serviceOption(Tokenizer.Tokenizer),
      () => provider.tokenizer ?? Tokenizer.o200k
    )
    const wrapper = yield* Effect.serviceOption(Wrapper)
    return makeWith(Option.isSome(wrapper) ? wrapper.value(provider) : provider, pricing, tokenizer, options)
  })

const makeWith = (
  provider: Provider,
  pricing: Pricing.Service,
  tokenizer: Tokenizer.Service,
  options: Options
): Service => {
  const inputMargin = options.inputMargin ?? defaultInputMargin

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

  const reservations = makeReservations(tokenizer, pricing, inputMargin)

  // The usage of a finished call, priced; counted with the tokenizer when the server reported none.
  const usageOf = (request: ResolvedRequest, inputTokens: number, completion: Completion): Effect.Effect<Usage.Usage> => {
    const answered = usageOfAnswer(inputTokens, completion)
    const priced = Effect.map(pricing.cost(request.model, answered), (cost) => ({ ...answered, cost }))
    // Requests the provider sent before the one that answered (its own retries) count too, at nothing or at their
    // input, as the provider says they may have been billed.
    const unanswered = Math.max(0, (completion.requests ?? 1) - 1)
    if (unanswered === 0) return priced
    const sent = { requests: unanswered, billable: completion.billable ?? unanswered }
    return Effect.map(priced, (usage) => Usage.add(usage, unansweredUsage(request, inputTokens, sent, "")))
  }

  /**
   * The usage of the request that answered: as reported, or counted with the tokenizer when the server reported
   * none. A count of zero for what was not empty (input, always; output, when there is text or a tool call) is
   * taken as missing too, and counted here: otherwise such a server's calls would be free.
   */
  const usageOfAnswer = (inputTokens: number, completion: Completion): Usage.Usage => {
    const reported = completion.usage
    const outputCounted = () => tokenizer.countOutput(completion.text, completion.toolCalls)
    const answered = completion.text.length > 0 || completion.toolCalls.length > 0
    const inputMissing = reported == null || (reported.inputTokens === 0 && inputTokens > 0)
    const outputMissing = reported == null || (reported.outputTokens === 0 && answered)
    return Usage.make({
      inputTokens: inputMissing ? inputTokens : reported.inputTokens,
      outputTokens: outputMissing ? outputCounted() : reported.outputTokens,
      cachedInputTokens: inputMissing ? 0 : reported.cachedInputTokens ?? 0,
      reasoningTokens: outputMissing ? 0 : reported.reasoningTokens ?? 0,
      requests: 1,
      toolCalls: completion.toolCalls.length,
      ...(inputMissing || outputMissing ? { estimated: true } : {})
    })
  }

  /**
   * The response to an answer, priced. The figures a provider reports are checked here, whichever provider it is:
   * one that cannot be right (`NaN`, negative, fractional, not a number, past a billion tokens) would be priced to
   * nonsense, so the call fails with `MalformedOutput` naming it. The request was answered all the same, so it was
   * paid for: `billed` receives what the call is settled to, its usage counted here as if the provider had reported
   * none (and one request when their count is the bad figure), marked estimated.
   */
  const respond = (call: Call, completion: Completion): Effect.Effect<Response, MalformedOutput> => {
    const { inputTokens, request } = call
    const badRequests = requestsProblem(completion)
    const problem = usageProblem(completion.usage) ?? badRequests
    if (problem === undefined) {
      return Effect.flatMap(usageOf(request, inputTokens, completion), (usage) =>
        Effect.as(reservations.judge(call, completion.usage, usage.cost), {
          text: completion.text,
          toolCalls: completion.toolCalls,
          finishReason: completion.finishReason,
          model: completion.model,
          usage
        }))
    }
    const counted: Completion = {
      ...completion,
      usage: undefined,
      ...(badRequests === undefined ? {} : { requests: undefined, billable: undefined })
    }
    return Effect.flatMap(usageOf(request, inputTokens, counted), (usage) => {
      call.billed = usage
      const requests = counted.requests ?? 1
      return Effect.fail(
        new MalformedOutput({
          provider: provider.name,
          text: completion.text,
          detail: `the usage reported cannot be right: ${problem}`,
          attempts: 1,
          sent: { requests, billable: (counted.billable ?? requests - 1) + 1 }
        })
      )
    })
  }

  /**
   * What requests that brought no usable answer may cost: each billable one its input, each other one nothing, and
   * `outputText` (what a stream received before it ended, from a request that is then billable) its output; marked
   * estimated when anything was counted here. Priced as calls of their own, each at the tier of its input.
   */
  const unansweredUsage = (request: ResolvedRequest, inputTokens: number, sent: Sent, outputText: string): Usage.Usage => {
    const outputTokens = outputText.length === 0 ? 0 : tokenizer.count(outputText)
    const billable = Math.max(sent.billable, outputTokens > 0 ? 1 : 0)
    const each = pricing.worstCase(request.model, inputTokens, 0)
    const answering = outputTokens > 0 ? pricing.worstCase(request.model, inputTokens, outputTokens) - each : 0
    return Usage.make({
      inputTokens: billable * inputTokens,
      outputTokens,
      requests: Math.max(sent.requests, billable),
      // Not `Cost.nanos`, which throws: an absurd sum is the ledger's to repair, as any bad figure.
      cost: (billable * each + answering) as Cost.Cost,
      estimated: billable > 0
    })
  }

  /**
   * What a call that ended without a usable answer may cost: the requests its error says it sent (`LlmError.Sent`),
   * or, when there is no such error (the call was interrupted), those the provider marked in the call's tally. A
   * provider that says neither is taken to have sent one request, which may have been billed for its input if it
   * was interrupted or timed out (the server may have read it), or if a stream received part of its answer, and
   * cost nothing otherwise.
   */
  const failedUsage = (
    request: ResolvedRequest,
    inputTokens: number,
    exit: Exit.Exit<unknown, unknown>,
    tallied: Sent | undefined,
    outputText: string
  ): Usage.Usage => {
    const error = Exit.isFailure(exit) ? Option.getOrUndefined(Cause.failureOption(exit.cause)) : undefined
    const maybeBilled = Exit.isInterrupted(exit) || outputText.length > 0 || Predicate.isTagged(error, "LlmTimeout")
    const sent = sentOf(error) ?? tallied ??
      (maybeBilled ? { requests: 1, billable: 1 } : { requests: 0, billable: 0 })
    return unansweredUsage(request, inputTokens, sent, outputText)
  }


  // A request's own numbers set its reservation: one that cannot be right is refused before anything is sent.
  const checkRequest = (request: ResolvedRequest): Effect.Effect<void, InvalidRequest> => {
    const { maxTokens, temperature } = request
    const problem = !(Number.isSafeInteger(maxTokens) && maxTokens >= 1 && maxTokens <= maxMaxTokens)
      ? `maxTokens must be a whole number from 1 to ${maxMaxTokens}, got ${String(maxTokens)}`
      : temperature !== undefined && !(Number.isFinite(temperature) && temperature >= 0 && temperature <= 2)
      ? `temperature must be a number from 0 to 2, got ${String(temperature)}`
      : !(Number.isFinite(inputMargin) && inputMargin >= 0 && inputMargin <= maxInputMargin)
      ? `inputMargin must be a number from 0 to ${maxInputMargin}, got ${String(inputMargin)}`
      : undefined
    return problem === undefined ? Effect.void : Effect.fail(new InvalidRequest({ provider: provider.name, detail: problem }))
  }

  // Under a budget, a model with no price could spend without limit: refused before anything is sent.
  const checkPriced = (request: ResolvedRequest): Effect.Effect<void, UnpricedModel> =>
    Option.isSome(pricing.rates(request.model))
      ? Effect.void
      : Effect.flatMap(Effect.serviceOption(Ledger.Ledger), (ledger) =>
        Option.isSome(ledger) && Option.isSome(ledger.value.budget)
          ? Effect.fail(new UnpricedModel({ provider: provider.name, model: request.model }))
          : Effect.void)

  /** One call of a resolved request, metered and inside its `chat {model}` span. */
  const generateRequest = (request: ResolvedRequest): Effect.Effect<Response, LlmError | Ledger.BudgetExceeded | Ledger.InvalidUsage> =>
    Effect.suspend(() => {
      const call = reservations.open(request)
      const tally = makeTally()
      return checkRequest(request).pipe(Effect.zipRight(checkPriced(request)), Effect.zipRight(meteredCall({
        span: chatSpanName(request.model),
        attributes: chatAttributes(provider.name, request, false),
        worstCase: call.worstCase,
        ceiling: call.ceiling,
        call: provider.generate(request).pipe(Effect.provideService(CurrentTally, tally)),
        price: (completion) => respond(call, completion),
        usage: (exit) =>
          Exit.isSuccess(exit)
            ? exit.value.usage
            : call.billed ?? failedUsage(request, call.inputTokens, exit, tally.total(), ""),
        implausible: () => call.implausible,
        annotate: responseAttributes
      })))
    })

  // A request's key a TypeScript caller could not have written (`max_tokens`) would be ignored: refused instead.
  const promptProblem = (prompt: Prompt): InvalidRequest | undefined => {
    const unknown = typeof prompt === "string" ? undefined : OptionKeys.unknown(prompt, promptKeys)
    return unknown === undefined ? undefined : new InvalidRequest({ provider: provider.name, detail: unknown })
  }

  const generate = (prompt: Prompt) =>
    Effect.suspend(() => {
      const problem = promptProblem(prompt)
      return problem === undefined ? generateRequest(resolve(prompt)) : Effect.fail(problem)
    })

  const generateObject = <A, I>(schema: Schema.Schema<A, I>, prompt: Prompt, objectOptions: ObjectOptions = {}) =>
    Effect.suspend(() => {
      const problem = promptProblem(prompt)
      if (problem !== undefined) return Effect.fail(problem)
      const base = resolve(prompt)
      const maxRepairs = objectOptions.maxRepairs ?? options.maxRepairs ?? defaultMaxRepairs
      // NaN or Infinity would repair, and pay, without end.
      if (!(Number.isSafeInteger(maxRepairs) && maxRepairs >= 0 && maxRepairs <= maxMaxRepairs)) {
        const detail = `maxRepairs must be a whole number from 0 to ${maxMaxRepairs}, got ${String(maxRepairs)}`
        return Effect.fail(new InvalidRequest({ provider: provider.name, detail }))
      }
      const jsonSchema = JSONSchema.make(schema)
      const instruction = `Answer with one JSON document and nothing else, matching this JSON Schema:\n` +
        JSON.stringify(jsonSchema)
      const decode = Schema.decodeUnknownEither(Schema.parseJson(schema))

      // Each attempt is a call of its own: metered, and in a span of its own.
      const attempt = (
        request: ResolvedRequest,
        attempts: number,
        usage: Usage.Usage
      ): Effect.Effect<ObjectResponse<A>, LlmError | Ledger.BudgetExceeded | Ledger.InvalidUsage> =>
        Effect.flatMap(generateRequest(request), (response) => {
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
          const repair: ResolvedRequest = {
            ...request,
            messages: [
              ...request.messages,
              { role: "assistant", content: response.text },
              {
                role: "user",
                content: `That answer does not match the schema:\n${detail}\nAnswer again with the corrected JSON only.`
              }
            ]
          }
          return attempt(repair, attempts + 1, total)
        })

      return attempt(
        {
          ...base,
          messages: [{ role: "system", content: instruction }, ...base.messages],
          json: { name: objectOptions.name ?? "output", schema: jsonSchema }
        },
        1,
        Usage.empty
      )
    })

  const stream = (prompt: Prompt): Stream.Stream<StreamPart, LlmError | Ledger.BudgetExceeded | Ledger.InvalidUsage> =>
    Stream.suspend(() => {
      const problem = promptProblem(prompt)
      if (problem !== undefined) return Stream.fail(problem)
      const request = resolve(prompt)
      const call = reservations.open(request)
      const tally = makeTally()
      // What has arrived so far, for the settlement of a stream that ends before its `Finish`.
      let text = ""
      let final: Usage.Usage | undefined
      const parts = Stream.mapEffect(provider.stream(request).pipe(Stream.provideService(CurrentTally, tally)), (chunk): Effect.Effect<StreamPart, MalformedOutput> => {
        if (chunk._tag === "Delta") {
          text += chunk.text
          return Effect.succeed({ _tag: "TextDelta", text: chunk.text })
        }
        const finished = final
        return Effect.flatMap(respond(call, chunk.completion), (response): Effect.Effect<StreamPart, MalformedOutput> => {
          if (finished === undefined) {
            final = response.usage
            return Effect.succeed({ _tag: "Finish", response })
          }
          // A provider that finishes twice: both finishes are counted (never less than either), and the stream fails.
          final = Usage.add(finished, response.usage)
          const detail = "the stream finished twice"
          return Effect.fail(new MalformedOutput({ provider: provider.name, text, detail, attempts: 1 }))
        })
      })
      return Stream.unwrapScoped(
        Effect.as(
          checkRequest(request).pipe(Effect.zipRight(checkPriced(request)), Effect.zipRight(meteredScoped({
            worstCase: call.worstCase,
            ceiling: call.ceiling,
            usage: (exit) => final ?? call.billed ?? failedUsage(request, call.inputTokens, exit, tally.total(), text),
            implausible: () => call.implausible
          }))),
          parts
        )
      ).pipe(
        Stream.tap((part) =>
          part._tag === "Finish" ? Effect.annotateCurrentSpan(responseAttributes(part.response)) : Effect.void
        ),
        Stream.onError((cause) => Effect.annotateCurrentSpan(errorAttributes(Exit.failCause(cause)) ?? {})),
        Stream.withSpan(chatSpanName(request.model), {
          kind: "client",
          attributes: chatAttributes(provider.name, request, true),
          captureStackTrace: false
        })
      )
    })

  return { provider: provider.name, model: provider.model, generate, generateObject, stream }
}

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
export const generate = (prompt: Prompt): Effect.Effect<Response, LlmError | Ledger.BudgetExceeded | Ledger.InvalidUsage, LanguageModel> =>
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
): Effect.Effect<ObjectResponse<A>, LlmError | Ledger.BudgetExceeded | Ledger.InvalidUsage, LanguageModel> =>
  Effect.flatMap(LanguageModel, (model) => model.generateObject(schema, prompt, options))

/**
 * Streams text deltas from the application's language model; the last part carries the usage.
 *
 * @since 0.1.0
 */
export const stream = (prompt: Prompt): Stream.Stream<StreamPart, LlmError | Ledger.BudgetExceeded | Ledger.InvalidUsage, LanguageModel> =>
  Stream.unwrap(Effect.map(LanguageModel, (model) => model.stream(prompt)))
