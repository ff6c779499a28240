import * as AiLanguageModel from "@effect/ai/LanguageModel"
import { AnthropicClient, AnthropicLanguageModel } from "@effect/ai-anthropic"
import { FetchHttpClient } from "@effect/platform"
import { describe, expect, it } from "@effect/vitest"
import { Ledger } from "@trellis/core"
import { LanguageModel, Pricing } from "@trellis/llm"
import { Anthropic } from "@trellis/test-servers"
import { Chunk, Duration, Effect, Fiber, Layer, Redacted, Schema, Stream, TestClock } from "effect"
import { EffectAi } from "../src/index.js"

const secret = "sk-ant-test-SECRET-123"
const modelName = "claude-haiku-4-5"

// The rates of claude-haiku-4-5 under "anthropic" in @pydantic/genai-prices, in nano-dollars per token.
const perToken = { input: 1_000, cached: 100, output: 5_000 }

const configure: EffectAi.Configure = (request) =>
  AnthropicLanguageModel.withConfigOverride({
    max_tokens: request.maxTokens,
    ...(request.temperature === undefined ? {} : { temperature: request.temperature })
  })

// `@effect/ai-anthropic`'s model and client, talking to the local server (its paths start with /v1).
const layerOn = (url: string, options: Partial<EffectAi.Options> = {}) =>
  EffectAi.layer({ provider: "anthropic", model: modelName, configure, ...options }).pipe(
    Layer.provide(AnthropicLanguageModel.layer({ model: modelName })),
    Layer.provide(AnthropicClient.layer({ apiKey: Redacted.make(secret), apiUrl: url.replace(/\/v1$/, "") })),
    Layer.provide(FetchHttpClient.layer)
  )

const run = <A, E>(url: string, effect: Effect.Effect<A, E, LanguageModel.LanguageModel>, options: Partial<EffectAi.Options> = {}) =>
  Effect.provide(effect, layerOn(url, options))

describe("EffectAi, on @effect/ai-anthropic and a local Anthropic server", () => {
  it.scoped("sends the request's messages, system, temperature and limit, and reads text, usage with cache tokens and the finish reason", () =>
    Effect.gen(function*() {
      const server = yield* Anthropic.start((request, res) =>
        Anthropic.answer(request, res, {
          content: "Hello there",
          usage: { input_tokens: 20, output_tokens: 4, cache_read_input_tokens: 100 },
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
      expect(new URL(sent.path, "http://x").pathname).toBe("/v1/messages")
      expect(sent.headers["x-api-key"]).toBe(secret)
      // `configure` carried the request's limit and temperature to the provider's own config.
      expect(sent.body).toMatchObject({ model: modelName, max_tokens: 50, temperature: 0.5 })
      expect(JSON.stringify(sent.body.system)).toContain("Be brief.")
      expect(JSON.stringify(sent.body.messages)).toContain("Say hello")
    }))

  it.scoped("streams the text as it arrives, then the whole response with its usage, under the request's limit", () =>
    Effect.gen(function*() {
      const server = yield* Anthropic.start((request, res) =>
        Anthropic.answer(request, res, { content: "One, two, three.", usage: { input_tokens: 9, output_tokens: 6 } })
      )
      const parts = Chunk.toReadonlyArray(
        yield* run(server.url, Stream.runCollect(LanguageModel.stream({ messages: [{ role: "user", content: "Count" }], maxTokens: 30 })))
      )
      const deltas = parts.flatMap((part) => (part._tag === "TextDelta" ? [part.text] : []))
      expect(deltas.length).toBeGreaterThan(1)
      expect(deltas.join("")).toBe("One, two, three.")
      const finish = parts.at(-1)
      expect(finish?._tag).toBe("Finish")
      if (finish?._tag !== "Finish") return
      expect(finish.response).toMatchObject({ text: "One, two, three.", finishReason: "stop" })
      expect(finish.response.usage).toMatchObject({ inputTokens: 9, outputTokens: 6, estimated: false })
      expect(server.received[0]!.body).toMatchObject({ stream: true, max_tokens: 30 })
    }))

  it.scoped("offers tools, hands a tool call back without running it, and sends its result back", () =>
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
      // The tool's JSON Schema reached the server as it was given.
      expect(server.received[0]!.body.tools).toEqual([
        expect.objectContaining({
          name: "lookup",
          description: "Finds an account",
          input_schema: { type: "object", properties: { company: { type: "string" } }, required: ["company"] }
        })
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

  it.scoped("structured output: the schema is asked for in the instructions, and the answer decoded", () =>
    Effect.gen(function*() {
      const server = yield* Anthropic.start((request, res) => Anthropic.answer(request, res, { content: "{\"name\":\"Ada\"}" }))
      const answer = yield* run(server.url, LanguageModel.generateObject(Schema.Struct({ name: Schema.String }), "Who?"))
      expect(answer.value).toEqual({ name: "Ada" })
      expect(Anthropic.textOf(server.received[0]!)).toContain("\"required\":[\"name\"]")
    }))

  it.scoped("a 429 is RateLimited with the server's Retry-After, and costs nothing", () =>
    Effect.gen(function*() {
      const server = yield* Anthropic.start((_, res) => Anthropic.error(res, 429, "Slow down", { "retry-after": "7" }))
      const ledger = yield* Ledger.make()
      const error = yield* Effect.flip(run(server.url, Effect.provideService(LanguageModel.generate("Hi"), Ledger.Ledger, ledger)))
      expect(error._tag).toBe("RateLimited")
      if (error._tag !== "RateLimited") return
      expect(error.retryAfter).toEqual(Duration.seconds(7))
      expect(error.detail).toBe("Slow down")
      expect(error.sent).toEqual({ requests: 1, billable: 0 })
      expect((yield* ledger.snapshot).total.cost).toBe(0)
    }))

  it.scoped("529 (overloaded) and 500 are ServerErrors with their status", () =>
    Effect.gen(function*() {
      const server = yield* Anthropic.start((request, res) =>
        Anthropic.error(res, request.index === 0 ? 529 : 500, request.index === 0 ? "Overloaded" : "Internal error")
      )
      const overloaded = yield* Effect.flip(run(server.url, LanguageModel.generate("Hi")))
      const failed = yield* Effect.flip(run(server.url, LanguageModel.generate("Hi")))
      expect(overloaded).toMatchObject({ _tag: "ServerError", status: 529, detail: "Overloaded" })
      expect(failed).toMatchObject({ _tag: "ServerError", status: 500, detail: "Internal error" })
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
      const server = yield* Anthropic.start((_, res) => {
        // The start of an answer, then nothing more: the stream stays open.
        Anthropic.sse(res, Anthropic.events({ content: "Once upon" }, modelName).slice(0, 3), true)
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

  it.scoped("a refusal is ContentFiltered", () =>
    Effect.gen(function*() {
      const server = yield* Anthropic.start((request, res) => Anthropic.answer(request, res, { content: "", stop_reason: "refusal" }))
      const error = yield* Effect.flip(run(server.url, LanguageModel.generate("Hi")))
      expect(error).toMatchObject({ _tag: "ContentFiltered", sent: { requests: 1, billable: 1 } })
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

  it.scoped("a request for another model than the layer's is refused before anything is sent", () =>
    Effect.gen(function*() {
      const server = yield* Anthropic.start((request, res) => Anthropic.answer(request, res, { content: "ok" }))
      const error = yield* Effect.flip(
        run(server.url, LanguageModel.generate({ messages: [{ role: "user", content: "Hi" }], model: "claude-opus-4-1" }))
      )
      expect(error._tag).toBe("InvalidRequest")
      expect(error.message).toContain("\"claude-opus-4-1\"")
      expect(server.received).toHaveLength(0)
    }))

  it.effect("an option out of range fails the layer with InvalidOption naming it, before the model is used", () =>
    Effect.gen(function*() {
      // Never reached: the options are checked first.
      const unused = Layer.succeed(AiLanguageModel.LanguageModel, {} as AiLanguageModel.Service)
      const build = (options: EffectAi.Options) =>
        Effect.flip(Layer.build(EffectAi.layer(options)).pipe(Effect.scoped, Effect.provide(unused)))
      expect(yield* build({ provider: "", model: modelName })).toMatchObject({ _tag: "InvalidOption", option: "provider" })
      expect(yield* build({ provider: "anthropic", model: " claude" })).toMatchObject({ _tag: "InvalidOption", option: "model" })
      const badTimeout = yield* build({ provider: "anthropic", model: modelName, timeout: -5 })
      expect(badTimeout).toMatchObject({ _tag: "InvalidOption", option: "timeout" })
      expect(badTimeout.message).toBe("EffectAi option timeout must be a positive, finite duration, got -5")
      const misspelled = yield* build({ provider: "anthropic", model: modelName, secret: "key" } as never)
      expect(misspelled).toMatchObject({ _tag: "InvalidOption", option: "secret" })
      expect(misspelled.message).toBe(
        "EffectAi option secret must be a known option: did you mean secrets?, got a value of type string"
      )
    }))
})
