/**
 * Recorded fixtures: record a provider's answers to a JSON file once, then replay them with no network, the same
 * every time.
 *
 * ```ts
 * // Record: any model layer built on `LanguageModel.make`, with the recorder provided to it.
 * const recording = OpenAi.layerConfig({ model: "gpt-4o-mini" }).pipe(Layer.provide(Fixtures.record("calls.json")))
 * // Replay: a model layer of its own, which sends nothing and needs no key.
 * const replaying = Fixtures.replay("calls.json")
 * ```
 *
 * What is kept, for each call: the request as the provider received it (`Prompt.ResolvedRequest`: model, messages
 * with the system message first, tools, output format, temperature, max tokens), and its answer: the completion
 * (text, tool calls, finish reason, model, usage as reported, requests sent), or the `LlmError` it failed with; for
 * a stream, the text deltas in the order they came too. A replayed call goes through `LanguageModel` as the
 * recorded one did, so it is metered, priced and traced the same, and its usage is the same.
 *
 * A request is known by all of its fields: replaying one that differs in any of them (another model, another
 * `maxTokens`, one more message) fails with `LlmError.NoRecording`, which names the request and the nearest
 * recorded one and where they differ. A request recorded several times is answered in the order it was recorded:
 * the first time it is asked with the first answer, and so on; asked once more than it was recorded, it fails with
 * `NoRecording` too.
 *
 * Keys never reach the file: a provider's request holds none (they stay in the provider's client), and only the
 * request and its answer are written. The file is rewritten whole after each call, to a temporary file that is then
 * renamed over it, so a run that stops at any point leaves the calls answered so far in a whole file.
 *
 * @since 0.3.0
 */
import { createHash } from "node:crypto"
import * as fs from "node:fs/promises"
import * as path from "node:path"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"
import * as Stream from "effect/Stream"
import * as LanguageModel from "./LanguageModel.js"
import * as LlmError from "./LlmError.js"
import type { ResolvedRequest } from "./Prompt.js"
import { type Chunk, type Provider, Wrapper } from "./Provider.js"
import { replay as replayCompletion } from "./ScriptedModel.js"

/**
 * A fixture file could not be read, decoded or written: `detail` says why.
 *
 * @since 0.3.0
 */
export class FixtureError extends Data.TaggedError("FixtureError")<{
  readonly file: string
  readonly detail: string
}> {
  override get message(): string {
    return `Fixture file ${this.file}: ${this.detail}`
  }
}

const ToolCall = Schema.Struct({ id: Schema.String, name: Schema.String, arguments: Schema.String })

const Message = Schema.Union(
  Schema.Struct({ role: Schema.Literal("system"), content: Schema.String }),
  Schema.Struct({ role: Schema.Literal("user"), content: Schema.String }),
  Schema.Struct({
    role: Schema.Literal("assistant"),
    content: Schema.String,
    toolCalls: Schema.optional(Schema.Array(ToolCall))
  }),
  Schema.Struct({ role: Schema.Literal("tool"), toolCallId: Schema.String, content: Schema.String })
)

const Request = Schema.Struct({
  model: Schema.String,
  messages: Schema.Array(Message),
  temperature: Schema.optional(Schema.Number),
  maxTokens: Schema.Int,
  tools: Schema.Array(Schema.Struct({ name: Schema.String, description: Schema.String, parameters: Schema.Object })),
  json: Schema.optional(Schema.Struct({ name: Schema.String, schema: Schema.Object }))
})

const Count = Schema.NonNegativeInt

const Completion = Schema.Struct({
  text: Schema.String,
  toolCalls: Schema.Array(ToolCall),
  finishReason: Schema.Literal("stop", "length", "tool_calls", "content_filter", "other"),
  model: Schema.String,
  usage: Schema.optional(Schema.Struct({
    inputTokens: Count,
    outputTokens: Count,
    cachedInputTokens: Schema.optional(Count),
    reasoningTokens: Schema.optional(Count)
  })),
  requests: Schema.optional(Count),
  billable: Schema.optional(Count)
})

const Sent = Schema.optional(Schema.Struct({ requests: Count, billable: Count }))

// Each error a provider may fail with, by its fields; a duration as milliseconds.
const RecordedError = Schema.Union(
  Schema.TaggedStruct("AuthenticationError", {
    provider: Schema.String,
    status: Schema.Int,
    detail: Schema.String,
    sent: Sent
  }),
  Schema.TaggedStruct("BadRequest", { provider: Schema.String, status: Schema.Int, detail: Schema.String, sent: Sent }),
  Schema.TaggedStruct("RateLimited", {
    provider: Schema.String,
    retryAfter: Schema.optional(Schema.DurationFromMillis),
    detail: Schema.String,
    sent: Sent
  }),
  Schema.TaggedStruct("LlmTimeout", { provider: Schema.String, timeout: Schema.DurationFromMillis, sent: Sent }),
  Schema.TaggedStruct("ContentFiltered", { provider: Schema.String, detail: Schema.String, sent: Sent }),
  Schema.TaggedStruct("ServerError", {
    provider: Schema.String,
    status: Schema.optional(Schema.Int),
    detail: Schema.String,
    sent: Sent
  }),
  Schema.TaggedStruct("MalformedOutput", {
    provider: Schema.String,
    text: Schema.String,
    detail: Schema.String,
    attempts: Schema.Int,
    sent: Sent
  }),
  Schema.TaggedStruct("UnpricedModel", { provider: Schema.String, model: Schema.String }),
  Schema.TaggedStruct("InvalidRequest", { provider: Schema.String, detail: Schema.String })
)

/** Deltas are present when the call was a stream, in the order they came. */
const Answer = Schema.Union(
  Schema.TaggedStruct("Completion", { completion: Completion, deltas: Schema.optional(Schema.Array(Schema.String)) }),
  Schema.TaggedStruct("Failure", { error: RecordedError, deltas: Schema.optional(Schema.Array(Schema.String)) })
)

const Call = Schema.Struct({ request: Request, answer: Answer })

/**
 * The file: the provider recorded (its name and default model, which a replay takes as its own), and its calls in
 * the order they ended.
 */
const File = Schema.Struct({
  version: Schema.Literal(1),
  provider: Schema.String,
  model: Schema.String,
  calls: Schema.Array(Call)
})

type Call = typeof Call.Type
type Answer = typeof Answer.Type
type File = typeof File.Type

const encodeFile = Schema.encodeSync(Schema.parseJson(File, { space: 2 }))
const decodeFile = Schema.decodeUnknownEither(Schema.parseJson(File))

/** The request as kept in the file: undefined fields left out, as JSON would. */
const toRecorded = (request: ResolvedRequest): typeof Request.Type => ({
  model: request.model,
  messages: request.messages,
  maxTokens: request.maxTokens,
  tools: request.tools,
  ...(request.temperature === undefined ? {} : { temperature: request.temperature }),
  ...(request.json === undefined ? {} : { json: request.json })
})

/** A JSON value with the keys of every object sorted and undefined fields dropped: equal requests, equal text. */
const canonical = (value: unknown): unknown => {
  if (Array.isArray(value)) return value.map(canonical)
  if (value === null || typeof value !== "object") return value
  const sorted: Record<string, unknown> = {}
  for (const key of Object.keys(value).sort()) {
    const field = (value as Record<string, unknown>)[key]
    if (field !== undefined) sorted[key] = canonical(field)
  }
  return sorted
}

/** A request's identity: every field of it, in a stable text (see {@link keyOf}). */
const identity = (request: typeof Request.Type): string => JSON.stringify(canonical(request))

/**
 * A request's key, as errors name it: the start of the SHA-256 of its stable text.
 *
 * @since 0.3.0
 */
export const keyOf = (request: ResolvedRequest): string => hash(identity(toRecorded(request)))

const hash = (text: string): string => createHash("sha256").update(text).digest("hex").slice(0, 12)

const quote = (text: string): string => JSON.stringify(text.length > 60 ? `${text.slice(0, 57)}...` : text)

/** How an error names a request: its key, model, and last message. */
const describe = (request: typeof Request.Type): string => {
  const last = request.messages.at(-1)
  const said = last === undefined ? "no messages" : `last ${last.role} message ${quote(last.content)}`
  return `${hash(identity(request))} (model ${request.model}, ${request.messages.length} messages, ${said})`
}

/** The paths where two JSON values differ, up to `limit` of them. */
const differences = (a: unknown, b: unknown, at: string, found: Array<string>, limit: number): void => {
  if (found.length >= limit) return
  if (Array.isArray(a) && Array.isArray(b)) {
    for (let i = 0; i < Math.max(a.length, b.length); i++) differences(a[i], b[i], `${at}[${i}]`, found, limit)
    return
  }
  if (a !== null && b !== null && typeof a === "object" && typeof b === "object" && !Array.isArray(a) && !Array.isArray(b)) {
    const keys = new Set([...Object.keys(a), ...Object.keys(b)])
    for (const key of [...keys].sort()) {
      differences(
        (a as Record<string, unknown>)[key],
        (b as Record<string, unknown>)[key],
        at === "" ? key : `${at}.${key}`,
        found,
        limit
      )
    }
    return
  }
  if (a !== b) found.push(at)
}

// Enough to rank requests that differ in a few places; past it, they are all far.
const maxDifferences = 50

const show = (value: unknown): string =>
  value === undefined ? "nothing" : typeof value === "string" ? quote(value) : JSON.stringify(value).slice(0, 60)

const valueAt = (value: unknown, at: string): unknown =>
  at.split(/\.|\[|\]/).filter((part) => part !== "").reduce<unknown>(
    (inner, part) => (inner !== null && typeof inner === "object" ? (inner as Record<string, unknown>)[part] : undefined),
    value
  )

/**
 * The recorded request nearest to one with no recording, and where it differs: the one with the fewest differing
 * fields, the first recorded among equals. Undefined when nothing is recorded.
 */
const nearest = (request: typeof Request.Type, recorded: ReadonlyArray<typeof Request.Type>): string | undefined => {
  const asked = canonical(request)
  let best: { readonly request: typeof Request.Type; readonly found: Array<string> } | undefined
  for (const candidate of recorded) {
    const found: Array<string> = []
    differences(asked, canonical(candidate), "", found, maxDifferences)
    if (best === undefined || found.length < best.found.length) best = { request: candidate, found }
  }
  if (best === undefined) return undefined
  const [first] = best.found
  if (first === undefined) return `is the same request: ${describe(best.request)}`
  const more = best.found.length > 1 ? ` (and ${best.found.length - 1} more field(s))` : ""
  return `is ${describe(best.request)}, which differs at ${first}${more}: ` +
    `${show(valueAt(canonical(best.request), first))} recorded, ${show(valueAt(asked, first))} asked`
}

/** The error a recorded failure stands for. */
const toError = (recorded: typeof RecordedError.Type): LlmError.LlmError => {
  switch (recorded._tag) {
    case "AuthenticationError":
      return new LlmError.AuthenticationError(recorded)
    case "BadRequest":
      return new LlmError.BadRequest(recorded)
    case "RateLimited":
      return new LlmError.RateLimited({ ...recorded, retryAfter: recorded.retryAfter })
    case "LlmTimeout":
      return new LlmError.LlmTimeout(recorded)
    case "ContentFiltered":
      return new LlmError.ContentFiltered(recorded)
    case "ServerError":
      return new LlmError.ServerError({ ...recorded, status: recorded.status })
    case "MalformedOutput":
      return new LlmError.MalformedOutput(recorded)
    case "UnpricedModel":
      return new LlmError.UnpricedModel(recorded)
    case "InvalidRequest":
      return new LlmError.InvalidRequest(recorded)
  }
}

/** An error as the file keeps it: its tag and fields; undefined for an error no provider fails with. */
const fromError = (error: LlmError.LlmError): typeof RecordedError.Type | undefined =>
  error._tag === "NoRecording" ? undefined : ({ ...error, _tag: error._tag } as typeof RecordedError.Type)

/** The first thing wrong with a file, where it is: `calls[2].answer.completion.usage.inputTokens ...`. */
const firstIssue = (error: ParseResult.ParseError): string => {
  const [issue] = ParseResult.ArrayFormatter.formatErrorSync(error)
  if (issue === undefined) return error.message
  const at = issue.path.reduce<string>(
    (text, key) => (typeof key === "number" ? `${text}[${key}]` : text === "" ? String(key) : `${text}.${String(key)}`),
    ""
  )
  return at === "" ? issue.message : `${at} ${issue.message}`
}

const readFile = (file: string): Effect.Effect<File, FixtureError> =>
  Effect.flatMap(
    Effect.tryPromise({
      try: () => fs.readFile(file, "utf8"),
      catch: (cause) => new FixtureError({ file, detail: `cannot be read: ${String(cause)}` })
    }),
    (text) => {
      const decoded = decodeFile(text)
      return decoded._tag === "Right"
        ? Effect.succeed(decoded.right)
        : Effect.fail(new FixtureError({ file, detail: `is not a recording: ${firstIssue(decoded.left)}` }))
    }
  )

/**
 * Writes the file whole: to a temporary file beside it, then renamed over it, which replaces it at once (a crash
 * leaves the last whole file, and perhaps a stray temporary one, never half a file).
 */
const writeFile = (file: string, contents: File): Effect.Effect<void, FixtureError> =>
  Effect.tryPromise({
    try: async () => {
      const temporary = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.tmp`)
      await fs.writeFile(temporary, encodeFile(contents), "utf8")
      await fs.rename(temporary, file)
    },
    catch: (cause) => new FixtureError({ file, detail: `cannot be written: ${String(cause)}` })
  })

/**
 * Records every call of the providers built where it is provided to `file` (see the module's description): provide
 * it to a model layer. The file is written as the layer is built (empty, which fails the layer with
 * {@link FixtureError} when it cannot be written) and rewritten after each call; a file already there is replaced.
 * Should a later write fail (a full disk), the call fails with a defect: a recording that silently missed calls
 * would replay to another result.
 *
 * @since 0.3.0
 */
export const record = (file: string): Layer.Layer<Wrapper, FixtureError> =>
  Layer.effect(
    Wrapper,
    Effect.gen(function*() {
      const calls: Array<Call> = []
      let header: { provider: string; model: string } | undefined
      const lock = yield* Effect.makeSemaphore(1)
      const current = (): File => ({ version: 1, provider: header?.provider ?? "", model: header?.model ?? "", calls })
      yield* writeFile(file, current())
      // Each write is of everything so far, one at a time, so the last one to finish holds every call.
      const save = (request: ResolvedRequest, answer: Answer) =>
        Effect.suspend(() => {
          calls.push({ request: toRecorded(request), answer })
          return lock.withPermits(1)(Effect.orDie(Effect.suspend(() => writeFile(file, current()))))
        })
      const failure = (error: LlmError.LlmError, deltas: ReadonlyArray<string> | undefined) => {
        const recorded = fromError(error)
        return recorded === undefined ? undefined : ({
          _tag: "Failure",
          error: recorded,
          ...(deltas === undefined ? {} : { deltas })
        } as const)
      }
      return (provider: Provider): Provider => {
        header ??= { provider: provider.name, model: provider.model }
        return {
          name: provider.name,
          model: provider.model,
          generate: (request) =>
            Effect.tapBoth(provider.generate(request), {
              onSuccess: (completion) =>
                save(request, { _tag: "Completion", completion: completion }),
              onFailure: (error) => {
                const answer = failure(error, undefined)
                return answer === undefined ? Effect.void : save(request, answer)
              }
            }),
          stream: (request) =>
            Stream.suspend(() => {
              const deltas: Array<string> = []
              return provider.stream(request).pipe(
                Stream.tap((chunk) =>
                  chunk._tag === "Delta"
                    ? Effect.sync(() => deltas.push(chunk.text))
                    : save(request, { _tag: "Completion", completion: chunk.completion, deltas })
                ),
                Stream.tapError((error) => {
                  const answer = failure(error, deltas)
                  return answer === undefined ? Effect.void : save(request, answer)
                })
              )
            })
        }
      }
    })
  )

/**
 * A provider that answers from `file` (see the module's description), as the recorded provider: its name and
 * default model. It sends nothing; a request with no recording fails with `LlmError.NoRecording`.
 *
 * @since 0.3.0
 */
export const provider = (file: string): Effect.Effect<Provider, FixtureError> =>
  Effect.map(readFile(file), (contents) => {
    // The answers to each request, in the order they were recorded, and how many of them were given so far.
    const answers = new Map<string, { readonly answers: Array<Answer>; next: number }>()
    for (const call of contents.calls) {
      const key = identity(call.request)
      const entry = answers.get(key)
      if (entry === undefined) answers.set(key, { answers: [call.answer], next: 0 })
      else entry.answers.push(call.answer)
    }
    const recorded = contents.calls.map((call) => call.request)
    const name = contents.provider

    const answer = (request: ResolvedRequest): Effect.Effect<Answer, LlmError.NoRecording> =>
      Effect.suspend(() => {
        const asked = toRecorded(request)
        const entry = answers.get(identity(asked))
        if (entry !== undefined && entry.next < entry.answers.length) return Effect.succeed(entry.answers[entry.next++]!)
        const times = entry === undefined
          ? ""
          : `, asked ${entry.next + 1} times and recorded ${entry.answers.length} time(s)`
        return Effect.fail(
          new LlmError.NoRecording({
            provider: name,
            file,
            request: describe(asked) + times,
            nearest: entry === undefined ? nearest(asked, recorded) : undefined,
            sent: { requests: 0, billable: 0 }
          })
        )
      })

    return {
      name,
      model: contents.model,
      generate: (request) =>
        Effect.flatMap(answer(request), (recorded) =>
          recorded._tag === "Completion" ? Effect.succeed(recorded.completion) : Effect.fail(toError(recorded.error))),
      stream: (request) =>
        Stream.flatMap(Stream.fromEffect(answer(request)), (recorded): Stream.Stream<Chunk, LlmError.LlmError> => {
          // Recorded from `generate`: streamed as a server would, a word at a time.
          if (recorded.deltas === undefined) {
            return recorded._tag === "Completion"
              ? replayCompletion(recorded.completion)
              : Stream.fail(toError(recorded.error))
          }
          const deltas = Stream.fromIterable(recorded.deltas.map((text): Chunk => ({ _tag: "Delta", text })))
          return Stream.concat(
            deltas,
            recorded._tag === "Completion"
              ? Stream.succeed<Chunk>({ _tag: "Done", completion: recorded.completion })
              : Stream.fail(toError(recorded.error))
          )
        })
    }
  })

/**
 * The language model of a recording: {@link provider} behind `LanguageModel.make`, with `options` (give the ones
 * the recording was made with: a different default `maxTokens` makes different requests). Building it fails with
 * {@link FixtureError} when the file cannot be read or is not a recording.
 *
 * @since 0.3.0
 */
export const replay = (
  file: string,
  options?: LanguageModel.Options
): Layer.Layer<LanguageModel.LanguageModel, FixtureError> =>
  Layer.effect(LanguageModel.LanguageModel, Effect.flatMap(provider(file), (replayed) => LanguageModel.make(replayed, options)))
