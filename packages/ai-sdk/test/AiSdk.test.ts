import { createAnthropic } from "@ai-sdk/anthropic"
import { APICallError, type LanguageModelV4GenerateResult, type LanguageModelV4StreamPart, type LanguageModelV4Usage } from "@ai-sdk/provider"
import { describe, expect, it } from "@effect/vitest"
import { Ledger, Usage } from "@trellis/core"
import { LanguageModel, Pricing } from "@trellis/llm"
import { Anthropic } from "@trellis/test-servers"
import { convertArrayToReadableStream, MockLanguageModelV4 } from "ai/test"
import { Chunk, Duration, Effect, Fiber, Layer, Schema, Stream, TestClock } from "effect"
import { AiSdk } from "../src/index.js"

const secret = "sk-ant-test-SECRET-123"
const modelName = "claude-haiku-4-5"

// The Anthropic model of the AI SDK, talking to the local server.
const anthropicModel = (url: string) => createAnthropic({ apiKey: secret, baseURL: url })(modelName)

const layerOn = (url: string, options: Partial<AiSdk.Options> = {}) => AiSdk.layer({ model: anthropicModel(url), ...options })

// The rates of claude-haiku-4-5 under "anthropic" in @pydantic/genai-prices, per million tokens: $1 input, $0.10
// cached input, $5 output, in nano-dollars per token.
const perToken = { input: 1_000, cached: 100, output: 5_000 }

const run = <A, E>(url: string, effect: Effect.Effect<A, E, LanguageModel.LanguageModel>, options: Partial<AiSdk.Options> = {}) =>
  Effect.provide(effect, layerOn(url, options))

describe("AiSdk, on @ai-sdk/anthropic and a local Anthropic server", () => {
  it.scoped("sends the request's messages, system, temperature and limit, and reads text, usage with cache tokens and the finish reason", () =>
    Effect.gen(function*() {
      const server = yield* Anthropic.start((request, res) =>
        Anthropic.answer(request, res, {
          content: "Hello there",
          usage: { input_tokens: 20, output_tokens: 4, cache_read_input_tokens: 100, cache_creation_input_tokens: 0 },
          stop_reason: "max_tokens"
        })
      )
      const response = yield* run(
        server.url,
        LanguageModel.generate({
          system: "Be brief.",
          messages: [{ role: "user", content: "Say hello" }],
          temperature: 0.5,
          maxTokens: 50
        })
      )
      expect(response.text).toBe("Hello there")
      expect(response.finishReason).toBe("length")
      expect(response.model).toBe(modelName)
      // Anthropic counts cached tokens apart from `input_tokens`: the service sees all the input, the cached among it.
      expect(response.usage).toMatchObject({ inputTokens: 120, cachedInputTokens: 100, outputTokens: 4, estimated: false })
      expect(response.usage.cost).toBe(20 * perToken.input + 100 * perToken.cached + 4 * perToken.output)

      const sent = server.received[0]!
      expect(sent.path).toBe("/v1/messages")
      expect(sent.headers["x-api-key"]).toBe(secret)
      expect(sent.body).toMatchObject({
        model: modelName,
        max_tokens: 50,
        temperature: 0.5,
        messages: [{ role: "user", content: [{ type: "text", text: "Say hello" }] }]
      })
      expect(JSON.stringify(sent.body.system)).toContain("Be brief.")
    }))

  it.scoped("streams the text as it arrives, then the whole response with its usage", () =>
    Effect.gen(function*() {
      const server = yield* Anthropic.start((request, res) =>
        Anthropic.answer(request, res, { content: "One, two, three.", usage: { input_tokens: 9, output_tokens: 6 } })
      )
      const parts = Chunk.toReadonlyArray(yield* run(server.url, Stream.runCollect(LanguageModel.stream("Count to three"))))
      const deltas = parts.flatMap((part) => (part._tag === "TextDelta" ? [part.text] : []))
      expect(deltas.length).toBeGreaterThan(1)
      expect(deltas.join("")).toBe("One, two, three.")
      const finish = parts.at(-1)
      expect(finish?._tag).toBe("Finish")
      if (finish?._tag !== "Finish") return
      expect(finish.response).toMatchObject({ text: "One, two, three.", finishReason: "stop" })
      expect(finish.response.usage).toMatchObject({ inputTokens: 9, outputTokens: 6, estimated: false })
      expect(server.received[0]!.body.stream).toBe(true)
    }))

  it.scoped("offers tools, reads a tool call, and sends its result back with the tool's name", () =>
    Effect.gen(function*() {
      const server = yield* Anthropic.start((request, res) =>
        request.index === 0
          ? Anthropic.answer(request, res, {
            content: [{ type: "tool_use", id: "toolu_1", name: "lookup", input: { company: "Contoso" } }]
          })
          : Anthropic.answer(request, res, { content: "Contoso has 3 open tickets." })
      )
      const tools = [{
        name: "lookup",
        description: "Finds an account",
        parameters: { type: "object", properties: { company: { type: "string" } }, required: ["company"] }
      }]
      const first = yield* run(server.url, LanguageModel.generate({ messages: [{ role: "user", content: "Tickets?" }], tools }))
      expect(first.finishReason).toBe("tool_calls")
      expect(first.toolCalls).toEqual([{ id: "toolu_1", name: "lookup", arguments: JSON.stringify({ company: "Contoso" }) }])
      expect(server.received[0]!.body.tools).toEqual([
        expect.objectContaining({ name: "lookup", description: "Finds an account", input_schema: expect.objectContaining({ required: ["company"] }) })
      ])

      const second = yield* run(
        server.url,
        LanguageModel.generate({
          messages: [
            { role: "user", content: "Tickets?" },
            { role: "assistant", content: "", toolCalls: first.toolCalls },
            { role: "tool", toolCallId: "toolu_1", content: "3 open tickets" }
          ],
          tools
        })
      )
      expect(second.text).toBe("Contoso has 3 open tickets.")
      const messages = server.received[1]!.body.messages
      expect(messages[1]).toMatchObject({ role: "assistant", content: [{ type: "tool_use", id: "toolu_1", name: "lookup", input: { company: "Contoso" } }] })
      expect(messages[2]).toMatchObject({ role: "user", content: [{ type: "tool_result", tool_use_id: "toolu_1" }] })
      expect(JSON.stringify(messages[2])).toContain("3 open tickets")
    }))

  it.scoped("asks for JSON with the request's schema", () =>
    Effect.gen(function*() {
      const server = yield* Anthropic.start((request, res) => Anthropic.answer(request, res, { content: "{\"name\":\"Ada\"}" }))
      const answer = yield* run(server.url, LanguageModel.generateObject(Schema.Struct({ name: Schema.String }), "Who?"))
      expect(answer.value).toEqual({ name: "Ada" })
      // The schema went to the server, in the form Anthropic's native structured output takes.
      expect(JSON.stringify(server.received[0]!.body)).toContain("\"required\":[\"name\"]")
    }))

  it.scoped("a 429 is RateLimited with the server's Retry-After, and costs nothing", () =>
    Effect.gen(function*() {
      const server = yield* Anthropic.start((_, res) => Anthropic.error(res, 429, "Slow down", { "retry-after": "7" }))
      const error = yield* Effect.flip(run(server.url, LanguageModel.generate("Hi")))
      expect(error._tag).toBe("RateLimited")
      if (error._tag !== "RateLimited") return
      expect(error.retryAfter).toEqual(Duration.seconds(7))
      expect(error.detail).toContain("Slow down")
      expect(error.sent).toEqual({ requests: 1, billable: 0 })
    }))

  it.scoped("529 (overloaded) and 500 are ServerErrors with their status", () =>
    Effect.gen(function*() {
      const server = yield* Anthropic.start((request, res) =>
        Anthropic.error(res, request.index === 0 ? 529 : 500, request.index === 0 ? "Overloaded" : "Internal error")
      )
      const overloaded = yield* Effect.flip(run(server.url, LanguageModel.generate("Hi")))
      const failed = yield* Effect.flip(run(server.url, LanguageModel.generate("Hi")))
      expect(overloaded).toMatchObject({ _tag: "ServerError", status: 529 })
      expect(failed).toMatchObject({ _tag: "ServerError", status: 500 })
      expect(overloaded.message).toContain("Overloaded")
    }))

  it.scoped("401 is an AuthenticationError that never carries the key, even when the server echoes it", () =>
    Effect.gen(function*() {
      const server = yield* Anthropic.start((request, res) =>
        Anthropic.error(res, 401, `invalid x-api-key ${String(request.headers["x-api-key"])}`)
      )
      const error = yield* Effect.flip(run(server.url, LanguageModel.generate("Hi")))
      expect(error).toMatchObject({ _tag: "AuthenticationError", status: 401 })
      expect(JSON.stringify({ ...error, message: error.message })).not.toContain(secret)
      expect(error.message).toContain("invalid x-api-key")
    }))

  it.scoped("a 400 is a BadRequest naming what the server said", () =>
    Effect.gen(function*() {
      const server = yield* Anthropic.start((_, res) => Anthropic.error(res, 400, "max_tokens: must be at most 8192"))
      const error = yield* Effect.flip(run(server.url, LanguageModel.generate("Hi")))
      expect(error).toMatchObject({ _tag: "BadRequest", status: 400 })
      expect(error.message).toContain("max_tokens: must be at most 8192")
    }))

  it.scoped("interrupting a call closes its connection, and the call is counted as billed for its input", () =>
    Effect.gen(function*() {
      const server = yield* Anthropic.start(() => {
        // Never answers.
      })
      const ledger = yield* Ledger.make()
      const fiber = yield* Effect.fork(run(server.url, Effect.provideService(LanguageModel.generate("Hi"), Ledger.Ledger, ledger)))
      yield* Effect.promise(() => server.waitFor(1))
      yield* Fiber.interrupt(fiber)
      yield* Effect.promise(() => server.abandoned(0))
      expect(server.received[0]!.abandoned).toBe(true)
      const spent = (yield* ledger.snapshot).total
      expect(spent).toMatchObject({ requests: 1, outputTokens: 0, estimated: true })
      expect(spent.inputTokens).toBeGreaterThan(0)
    }))

  it.scoped("interrupting a stream mid-answer closes its connection", () =>
    Effect.gen(function*() {
      const server = yield* Anthropic.start((request, res) => {
        // The start of an answer, then nothing more: the stream stays open.
        Anthropic.sse(res, Anthropic.events({ content: "Once upon" }, modelName).slice(0, 3), true)
        void request
      })
      const first = yield* run(server.url, LanguageModel.stream("Tell a story").pipe(Stream.take(1), Stream.runCollect))
      expect(Chunk.toReadonlyArray(first)).toEqual([{ _tag: "TextDelta", text: "Once" }])
      yield* Effect.promise(() => server.abandoned(0))
      expect(server.received[0]!.abandoned).toBe(true)
    }))

  it.scoped("streams a tool call, its input gathered from the pieces it came in", () =>
    Effect.gen(function*() {
      const server = yield* Anthropic.start((request, res) =>
        Anthropic.answer(request, res, {
          content: [
            { type: "text", text: "Looking it up." },
            { type: "tool_use", id: "toolu_9", name: "lookup", input: { company: "Contoso", limit: 3 } }
          ]
        })
      )
      const tools = [{ name: "lookup", description: "Finds an account", parameters: { type: "object", properties: {} } }]
      const parts = Chunk.toReadonlyArray(
        yield* run(server.url, Stream.runCollect(LanguageModel.stream({ messages: [{ role: "user", content: "Tickets?" }], tools })))
      )
      const finish = parts.at(-1)
      expect(finish?._tag).toBe("Finish")
      if (finish?._tag !== "Finish") return
      expect(finish.response.text).toBe("Looking it up.")
      expect(finish.response.finishReason).toBe("tool_calls")
      expect(finish.response.toolCalls).toHaveLength(1)
      expect(finish.response.toolCalls[0]).toMatchObject({ id: "toolu_9", name: "lookup" })
      expect(JSON.parse(finish.response.toolCalls[0]!.arguments)).toEqual({ company: "Contoso", limit: 3 })
    }))

  it.scoped("a streamed call refused with 429 is RateLimited; an error event mid-stream is a ServerError, billed", () =>
    Effect.gen(function*() {
      const server = yield* Anthropic.start((request, res) =>
        request.index === 0
          ? Anthropic.error(res, 429, "Slow down", { "retry-after": "3" })
          : Anthropic.sse(res, [
            ...Anthropic.events({ content: "Hello" }, modelName).slice(0, 3),
            { type: "error", error: { type: "overloaded_error", message: "Overloaded" } }
          ])
      )
      const refused = yield* Effect.flip(run(server.url, Stream.runCollect(LanguageModel.stream("Hi"))))
      expect(refused).toMatchObject({ _tag: "RateLimited", retryAfter: Duration.seconds(3), sent: { requests: 1, billable: 0 } })
      const ledger = yield* Ledger.make()
      const cut = yield* Effect.flip(
        run(server.url, Stream.runCollect(LanguageModel.stream("Hi")).pipe(Effect.provideService(Ledger.Ledger, ledger)))
      )
      expect(cut).toMatchObject({ _tag: "ServerError", status: undefined, sent: { requests: 1, billable: 1 } })
      expect(cut.message).toContain("Overloaded")
      // The text that arrived before the error is counted, with the input, marked estimated.
      const spent = (yield* ledger.snapshot).total
      expect(spent).toMatchObject({ requests: 1, estimated: true })
      expect(spent.outputTokens).toBeGreaterThan(0)
    }))

  it.scoped("a call that outlasts its timeout fails with LlmTimeout and closes its connection", () =>
    Effect.gen(function*() {
      const server = yield* Anthropic.start(() => {
        // Never answers.
      })
      const fiber = yield* Effect.fork(run(server.url, LanguageModel.generate("Hi"), { timeout: "5 seconds" }))
      yield* Effect.promise(() => server.waitFor(1))
      yield* TestClock.adjust("5 seconds")
      const error = yield* Effect.flip(Fiber.join(fiber))
      expect(error).toMatchObject({ _tag: "LlmTimeout", timeout: Duration.seconds(5), sent: { requests: 1, billable: 1 } })
      yield* Effect.promise(() => server.abandoned(0))
    }))

  it.scoped("prices come from the bundled prices under the provider's name, and a Pricing service wins", () =>
    Effect.gen(function*() {
      const server = yield* Anthropic.start((request, res) =>
        Anthropic.answer(request, res, { content: "ok", usage: { input_tokens: 10, output_tokens: 10 } })
      )
      const bundled = yield* run(server.url, LanguageModel.generate("Hi"))
      expect(bundled.usage.cost).toBe(10 * perToken.input + 10 * perToken.output)
      const overridden = yield* LanguageModel.generate("Hi").pipe(
        Effect.provide(
          layerOn(server.url).pipe(
            Layer.provide(Pricing.layer({ overrides: { [modelName]: { inputPerMillion: 2, outputPerMillion: 2 } } }))
          )
        )
      )
      expect(overridden.usage.cost).toBe(20 * 2_000)
    }))
})

// ---------------------------------------------------------------------------------------------------------------
// The AI SDK's mock model, for what a local server cannot easily make happen.

const usage = (input: number | undefined, output: number | undefined, extra: Partial<{ cacheRead: number; reasoning: number }> = {}): LanguageModelV4Usage => ({
  inputTokens: { total: input, noCache: undefined, cacheRead: extra.cacheRead, cacheWrite: undefined },
  outputTokens: { total: output, text: undefined, reasoning: extra.reasoning }
})

const result = (overrides: Partial<LanguageModelV4GenerateResult>): LanguageModelV4GenerateResult => ({
  content: [{ type: "text", text: "fine" }],
  finishReason: { unified: "stop", raw: "stop" },
  usage: usage(5, 3),
  warnings: [],
  ...overrides
} as LanguageModelV4GenerateResult)

const mock = (doGenerate: LanguageModelV4GenerateResult | (() => Promise<LanguageModelV4GenerateResult>)) =>
  new MockLanguageModelV4({ provider: "anthropic.messages", modelId: modelName, doGenerate })

const onMock = (model: MockLanguageModelV4) => AiSdk.layer({ model })

describe("AiSdk, on the AI SDK's mock model", () => {
  it.effect("maps every finish reason of the specification", () =>
    Effect.gen(function*() {
      const cases = [["stop", "stop"], ["length", "length"], ["tool-calls", "tool_calls"], ["error", "other"], ["other", "other"]] as const
      for (const [unified, expected] of cases) {
        const model = mock(result({ finishReason: { unified, raw: undefined } }))
        const response = yield* Effect.provide(LanguageModel.generate("Hi"), onMock(model))
        expect(response.finishReason).toBe(expected)
      }
    }))

  it.effect("a content-filter finish is ContentFiltered, billed for its input", () =>
    Effect.gen(function*() {
      const model = mock(result({ finishReason: { unified: "content-filter", raw: "refusal" } }))
      const error = yield* Effect.flip(Effect.provide(LanguageModel.generate("Hi"), onMock(model)))
      expect(error).toMatchObject({ _tag: "ContentFiltered", sent: { requests: 1, billable: 1 } })
    }))

  it.effect("reasoning and cached tokens are read; usage without totals is counted here, marked estimated", () =>
    Effect.gen(function*() {
      const reported = mock(result({ usage: usage(40, 30, { cacheRead: 10, reasoning: 20 }) }))
      const response = yield* Effect.provide(LanguageModel.generate("Hi"), onMock(reported))
      expect(response.usage).toMatchObject({ inputTokens: 40, cachedInputTokens: 10, outputTokens: 30, reasoningTokens: 20, estimated: false })
      const unreported = mock(result({ usage: usage(undefined, undefined) }))
      const counted = yield* Effect.provide(LanguageModel.generate("Hi"), onMock(unreported))
      expect(counted.usage.estimated).toBe(true)
      expect(counted.usage.outputTokens).toBeGreaterThan(0)
    }))

  it.effect("usage that cannot be right fails the call with MalformedOutput naming it", () =>
    Effect.gen(function*() {
      const model = mock(result({ usage: usage(Number.NaN, 3) }))
      const error = yield* Effect.flip(Effect.provide(LanguageModel.generate("Hi"), onMock(model)))
      expect(error._tag).toBe("MalformedOutput")
      expect(error.message).toContain("inputTokens is NaN")
    }))

  it.effect("tool calls the provider ran itself are not handed back as calls to make", () =>
    Effect.gen(function*() {
      const model = mock(result({
        content: [
          { type: "tool-call", toolCallId: "a", toolName: "web_search", input: "{}", providerExecuted: true },
          { type: "tool-call", toolCallId: "b", toolName: "lookup", input: "{\"id\":1}" }
        ],
        finishReason: { unified: "tool-calls", raw: "tool_use" }
      }))
      const response = yield* Effect.provide(LanguageModel.generate("Hi"), onMock(model))
      expect(response.toolCalls).toEqual([{ id: "b", name: "lookup", arguments: "{\"id\":1}" }])
    }))

  it.effect("a request for another model than the one wrapped is refused before anything is sent", () =>
    Effect.gen(function*() {
      const model = mock(result({}))
      const error = yield* Effect.flip(Effect.provide(LanguageModel.generate({ messages: [{ role: "user", content: "Hi" }], model: "gpt-4o" }), onMock(model)))
      expect(error._tag).toBe("InvalidRequest")
      expect(error.message).toContain("\"gpt-4o\"")
      expect(model.doGenerateCalls).toHaveLength(0)
    }))

  it.effect("a tool message that answers no call is refused, naming the call", () =>
    Effect.gen(function*() {
      const model = mock(result({}))
      const error = yield* Effect.flip(
        Effect.provide(
          LanguageModel.generate({ messages: [{ role: "user", content: "Hi" }, { role: "tool", toolCallId: "nope", content: "x" }] }),
          onMock(model)
        )
      )
      expect(error._tag).toBe("InvalidRequest")
      expect(error.message).toContain("\"nope\"")
    }))

  it.effect("an error part mid-stream fails the stream with a ServerError, the request counted as billed", () =>
    Effect.gen(function*() {
      const parts: Array<LanguageModelV4StreamPart> = [
        { type: "text-start", id: "1" },
        { type: "text-delta", id: "1", delta: "Hel" },
        { type: "error", error: { type: "overloaded_error", message: "Overloaded" } }
      ]
      const model = new MockLanguageModelV4({
        provider: "anthropic.messages",
        modelId: modelName,
        doStream: { stream: convertArrayToReadableStream(parts) }
      })
      const ledger = yield* Ledger.make()
      const error = yield* Effect.flip(
        Stream.runCollect(LanguageModel.stream("Hi")).pipe(Effect.provide(onMock(model)), Effect.provideService(Ledger.Ledger, ledger))
      )
      expect(error).toMatchObject({ _tag: "ServerError", status: undefined, sent: { requests: 1, billable: 1 } })
      expect(error.message).toContain("Overloaded")
      const spent: Usage.Usage = (yield* ledger.snapshot).total
      expect(spent).toMatchObject({ requests: 1, estimated: true })
      expect(spent.outputTokens).toBeGreaterThan(0)
    }))

  it.effect("keys of other shapes a provider echoes in an error (Google's AIza...) are scrubbed too", () =>
    Effect.gen(function*() {
      const googleKey = "AIzaSyA1234567890abcdefghijklmnopqrs"
      const model = mock(() =>
        Promise.reject(
          new APICallError({
            message: `API key not valid: ${googleKey}`,
            url: "https://example.invalid",
            requestBodyValues: {},
            statusCode: 400
          })
        )
      )
      const error = yield* Effect.flip(Effect.provide(LanguageModel.generate("Hi"), onMock(model)))
      expect(error).toMatchObject({ _tag: "BadRequest", status: 400 })
      expect(error.message).toContain("API key not valid: <redacted>")
      expect(JSON.stringify({ ...error, message: error.message })).not.toContain(googleKey)
    }))

  it.effect("a stream that ends without its finish part is not taken as an answer", () =>
    Effect.gen(function*() {
      const model = new MockLanguageModelV4({
        provider: "anthropic.messages",
        modelId: modelName,
        doStream: { stream: convertArrayToReadableStream<LanguageModelV4StreamPart>([{ type: "text-delta", id: "1", delta: "Hi" }]) }
      })
      const error = yield* Effect.flip(Stream.runCollect(LanguageModel.stream("Hi")).pipe(Effect.provide(onMock(model))))
      expect(error).toMatchObject({ _tag: "ServerError", detail: "the stream ended before its finish" })
    }))

  it.effect("a model of another specification, or a bad timeout, fails the layer with InvalidOption", () =>
    Effect.gen(function*() {
      const old = { ...mock(result({})), specificationVersion: "v2" } as unknown as MockLanguageModelV4
      const wrongSpec = yield* Effect.flip(Layer.build(AiSdk.layer({ model: old })).pipe(Effect.scoped))
      expect(wrongSpec.message).toContain("specification v4")
      const badTimeout = yield* Effect.flip(Layer.build(AiSdk.layer({ model: mock(result({})), timeout: -1 })).pipe(Effect.scoped))
      expect(badTimeout).toMatchObject({ _tag: "InvalidOption", option: "timeout" })
      // A key a TypeScript caller could not have written is refused, naming the likely one; its value is not shown.
      const misspelled = yield* Effect.flip(
        Layer.build(AiSdk.layer({ model: mock(result({})), timeoutMs: 5000 } as never)).pipe(Effect.scoped)
      )
      expect(misspelled.message).toBe(
        "AiSdk option timeoutMs must be a known option: did you mean timeout?, got a value of type number"
      )
    }))
})
