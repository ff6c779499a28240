import { describe, expect, it } from "@effect/vitest"
import { Cost, Ledger, Pipeline, Step } from "@trellis/core"
import { Chunk, ConfigProvider, Effect, Either, Exit, Fiber, Layer, Redacted, Schema, Stream, TestClock } from "effect"
import { LanguageModel, OpenAi, Pricing, Tokenizer } from "../src/index.js"
import * as Server from "./server.js"
import { capturingLogger, recordingTracer, withTracer } from "./support.js"

const secret = "sk-test-SECRET-123"

// One dollar per million tokens each way: every token costs 1,000 nano-dollars.
const prices = Pricing.layer({ overrides: { "test-model": { inputPerMillion: 1, outputPerMillion: 1 } } })

const model = (url: string, options: Partial<OpenAi.Options> = {}) =>
  OpenAi.layer({
    apiKey: Redacted.make(secret),
    baseURL: url,
    model: "test-model",
    retry: { times: 2, base: "100 millis" },
    ...options
  }).pipe(Layer.provide(prices))

const waitFor = (promise: () => Promise<void>) => Effect.promise(promise)

// The wake-up times of the retry delays pending on the test clock (the attempt timeouts, at 60 s, left aside),
// once the schedule has registered one: the failed response arrives over a real socket, so the event loop is
// let run until then.
const pendingSleeps = Effect.gen(function*() {
  while (true) {
    const sleeps = Chunk.toReadonlyArray(yield* TestClock.sleeps()).filter((wake) => wake !== 60_000)
    if (sleeps.length > 0) return sleeps
    yield* Effect.promise(() => new Promise((resolve) => setImmediate(resolve)))
  }
})

describe("OpenAi", () => {
  it.scoped("sends a chat completion with the SDK and reads text, usage and model", () =>
    Effect.gen(function*() {
      const server = yield* Server.start((_, res) => Server.json(res, 200, Server.completion("Hello!")))
      const response = yield* LanguageModel.generate({
        system: "Be brief.",
        messages: [{ role: "user", content: "Hi" }],
        maxTokens: 50,
        temperature: 0.3
      }).pipe(Effect.provide(model(server.url)))
      expect(response.text).toBe("Hello!")
      expect(response.model).toBe("test-model")
      expect(response.finishReason).toBe("stop")
      expect(response.usage).toMatchObject({ inputTokens: 11, outputTokens: 7, estimated: false, cost: 18_000 })
      const [request] = server.received
      expect(request!.path).toBe("/v1/chat/completions")
      expect(request!.headers.authorization).toBe(`Bearer ${secret}`)
      expect(request!.body).toEqual({
        model: "test-model",
        messages: [{ role: "system", content: "Be brief." }, { role: "user", content: "Hi" }],
        max_tokens: 50,
        temperature: 0.3
      })
    }))

  it.scoped("sends max_completion_tokens to OpenAI's own API shape when asked", () =>
    Effect.gen(function*() {
      const server = yield* Server.start((_, res) => Server.json(res, 200, Server.completion("ok")))
      yield* LanguageModel.generate("Hi").pipe(
        Effect.provide(model(server.url, { maxTokensField: "max_completion_tokens", maxTokens: 64 }))
      )
      expect(server.received[0]!.body.max_completion_tokens).toBe(64)
      expect(server.received[0]!.body.max_tokens).toBeUndefined()
    }))

  it.scoped("maps tools, tool calls and JSON output both ways", () =>
    Effect.gen(function*() {
      const server = yield* Server.start((request, res) =>
        request.index === 0
          ? Server.json(res, 200, Server.completion("", {
            finish_reason: "tool_calls",
            tool_calls: [{ id: "c1", type: "function", function: { name: "lookup", arguments: `{"q":"acme"}` } }]
          }))
          : Server.json(res, 200, Server.completion(`{"n":3}`))
      )
      const layer = model(server.url)
      const first = yield* LanguageModel.generate({
        messages: [{ role: "user", content: "Look up acme" }],
        tools: [{ name: "lookup", description: "Looks up", parameters: { type: "object", properties: { q: { type: "string" } } } }]
      }).pipe(Effect.provide(layer))
      expect(first.toolCalls).toEqual([{ id: "c1", name: "lookup", arguments: `{"q":"acme"}` }])
      expect(first.finishReason).toBe("tool_calls")
      expect(server.received[0]!.body.tools).toEqual([{
        type: "function",
        function: { name: "lookup", description: "Looks up", parameters: { type: "object", properties: { q: { type: "string" } } } }
      }])

      const object = yield* LanguageModel.generateObject(Schema.Struct({ n: Schema.Number }), {
        messages: [
          { role: "user", content: "Look up acme" },
          { role: "assistant", content: "", toolCalls: first.toolCalls },
          { role: "tool", toolCallId: "c1", content: "3 results" }
        ]
      }).pipe(Effect.provide(layer))
      expect(object.value).toEqual({ n: 3 })
      const sent = server.received[1]!.body
      expect(sent.messages.slice(-2)).toEqual([
        { role: "assistant", content: null, tool_calls: [{ id: "c1", type: "function", function: { name: "lookup", arguments: `{"q":"acme"}` } }] },
        { role: "tool", tool_call_id: "c1", content: "3 results" }
      ])
      expect(sent.response_format.type).toBe("json_schema")
      expect(sent.response_format.json_schema.strict).toBe(false)
      expect(sent.response_format.json_schema.schema).toMatchObject({ type: "object", required: ["n"] })
      expect(sent.response_format.json_schema.schema.$schema).toBeUndefined()
    }))

  it.scoped("streams server-sent events as text deltas, with the usage last", () =>
    Effect.gen(function*() {
      const server = yield* Server.start((_, res) =>
        Server.sse(res, [
          Server.chunk({ role: "assistant", content: "" }),
          Server.chunk({ content: "Hel" }),
          Server.chunk({ content: "lo, " }),
          Server.chunk({ content: "world" }),
          { ...Server.chunk({}), choices: [{ index: 0, delta: {}, finish_reason: "stop", logprobs: null }] },
          { ...Server.chunk({}), choices: [], usage: { prompt_tokens: 9, completion_tokens: 3, total_tokens: 12 } }
        ])
      )
      const parts = Chunk.toReadonlyArray(
        yield* Stream.runCollect(LanguageModel.stream("Greet")).pipe(Effect.provide(model(server.url)))
      )
      expect(parts.flatMap((p) => (p._tag === "TextDelta" ? [p.text] : []))).toEqual(["Hel", "lo, ", "world"])
      const last = parts.at(-1)!
      expect(last._tag).toBe("Finish")
      if (last._tag !== "Finish") return
      expect(last.response.text).toBe("Hello, world")
      expect(last.response.usage).toMatchObject({ inputTokens: 9, outputTokens: 3, cost: 12_000, estimated: false })
      expect(server.received[0]!.body).toMatchObject({ stream: true, stream_options: { include_usage: true } })
    }))

  it.scoped("counts tokens itself, marked estimated, when the server reports no usage", () =>
    Effect.gen(function*() {
      const server = yield* Server.start((_, res) => Server.json(res, 200, Server.completion("Three more words", { usage: null })))
      const response = yield* LanguageModel.generate("Say three words").pipe(Effect.provide(model(server.url)))
      const inputTokens = Tokenizer.countMessages([{ role: "user", content: "Say three words" }])
      const outputTokens = Tokenizer.count("Three more words")
      expect(response.usage).toMatchObject({ inputTokens, outputTokens, estimated: true })
      expect(response.usage.cost).toBe((inputTokens + outputTokens) * 1000)
    }))

  it.scoped("retries a 429 after the server's Retry-After, on Effect's clock", () =>
    Effect.gen(function*() {
      const server = yield* Server.start((request, res) =>
        request.index === 0
          ? Server.json(res, 429, { error: { message: "Rate limit reached", type: "requests" } }, { "retry-after": "2" })
          : Server.json(res, 200, Server.completion("finally"))
      )
      const fiber = yield* Effect.fork(LanguageModel.generate("Hi").pipe(Effect.provide(model(server.url))))
      // The backoff alone would retry after about 100 ms; the server asked for 2 seconds.
      expect(yield* pendingSleeps).toEqual([2000])
      yield* TestClock.adjust("2 seconds")
      const response = yield* Fiber.join(fiber)
      expect(response.text).toBe("finally")
      expect(server.received).toHaveLength(2)
    }))

  it.scoped("retries a 500 with backoff and succeeds", () =>
    Effect.gen(function*() {
      const server = yield* Server.start((request, res) =>
        request.index === 0
          ? Server.json(res, 500, { error: { message: "boom" } })
          : Server.json(res, 200, Server.completion("recovered"))
      )
      const fiber = yield* Effect.fork(LanguageModel.generate("Hi").pipe(Effect.provide(model(server.url))))
      // 100 ms of backoff, jittered by up to a fifth either way.
      const [wake] = yield* pendingSleeps
      expect(wake).toBeGreaterThanOrEqual(80)
      expect(wake).toBeLessThanOrEqual(120)
      yield* TestClock.adjust("1 second")
      expect((yield* Fiber.join(fiber)).text).toBe("recovered")
    }))

  it.scoped("gives up on a server error after the bounded retries, with a typed error", () =>
    Effect.gen(function*() {
      const server = yield* Server.start((_, res) => Server.json(res, 503, { error: { message: "overloaded" } }))
      const fiber = yield* Effect.fork(
        Effect.flip(LanguageModel.generate("Hi").pipe(Effect.provide(model(server.url, { retry: { times: 2, base: "100 millis" } }))))
      )
      for (let n = 1; n <= 3; n++) {
        yield* waitFor(() => server.waitFor(n))
        yield* TestClock.adjust("1 second")
      }
      const error = yield* Fiber.join(fiber)
      expect(error._tag).toBe("ServerError")
      expect(error.message).toContain("503")
      expect(server.received).toHaveLength(3)
    }))

  it.scoped("fails with MalformedOutput on a body that is not JSON, without retrying", () =>
    Effect.gen(function*() {
      const server = yield* Server.start((_, res) => Server.json(res, 200, "{\"choices\": [oops"))
      const error = yield* Effect.flip(LanguageModel.generate("Hi").pipe(Effect.provide(model(server.url))))
      expect(error._tag).toBe("MalformedOutput")
      expect(error.message).toContain("openai")
      expect(server.received).toHaveLength(1)
    }))

  it.scoped("times out a slow attempt and aborts its request", () =>
    Effect.gen(function*() {
      const server = yield* Server.start(() => {}) // never answers
      const fiber = yield* Effect.fork(Effect.flip(
        LanguageModel.generate("Hi").pipe(Effect.provide(model(server.url, { timeout: "5 seconds", retry: { times: 0 } })))
      ))
      yield* waitFor(() => server.waitFor(1))
      yield* TestClock.adjust("5 seconds")
      const error = yield* Fiber.join(fiber)
      expect(error._tag).toBe("LlmTimeout")
      expect(error.message).toBe("openai did not answer within 5s")
      yield* waitFor(() => server.abandoned(0))
      expect(server.received[0]!.abandoned).toBe(true)
    }))

  it.scoped("aborts the HTTP request of an interrupted call, and the server sees the connection closed", () =>
    Effect.gen(function*() {
      const server = yield* Server.start(() => {})
      const ledger = yield* Ledger.make()
      const fiber = yield* Effect.fork(
        LanguageModel.generate("Hi").pipe(Effect.provide(model(server.url)), Effect.provideService(Ledger.Ledger, ledger))
      )
      yield* waitFor(() => server.waitFor(1))
      yield* Fiber.interrupt(fiber)
      yield* waitFor(() => server.abandoned(0))
      expect(server.received[0]!.abandoned).toBe(true)
      expect((yield* ledger.snapshot).reserved).toBe(0)
    }))

  it.scoped("maps 401 to AuthenticationError, and 400 to BadRequest", () =>
    Effect.gen(function*() {
      const server = yield* Server.start((request, res) =>
        request.index === 0
          ? Server.json(res, 401, { error: { message: `Incorrect API key provided: ${secret}` } })
          : Server.json(res, 400, { error: { message: "Unknown parameter" } })
      )
      const auth = yield* Effect.flip(LanguageModel.generate("Hi").pipe(Effect.provide(model(server.url))))
      expect(auth._tag).toBe("AuthenticationError")
      expect(auth.message).toContain("401")
      expect(auth.message).not.toContain(secret)
      const bad = yield* Effect.flip(LanguageModel.generate("Hi").pipe(Effect.provide(model(server.url))))
      expect(bad._tag).toBe("BadRequest")
      expect(server.received).toHaveLength(2)
    }))

  it.scoped("maps a filtered answer to ContentFiltered", () =>
    Effect.gen(function*() {
      const server = yield* Server.start((_, res) =>
        Server.json(res, 200, Server.completion("", { finish_reason: "content_filter" }))
      )
      const error = yield* Effect.flip(LanguageModel.generate("Hi").pipe(Effect.provide(model(server.url))))
      expect(error._tag).toBe("ContentFiltered")
    }))

  it.scoped("lets at most 10 of 50 parallel calls reach the server under a budget that fits 10", () =>
    Effect.gen(function*() {
      const prompt = "Hi"
      const maxTokens = 10
      const inputTokens = Tokenizer.countMessages([{ role: "user", content: prompt }])
      // Each call uses exactly its worst case, so the budget holds ten calls and no more.
      const server = yield* Server.start((_, res) =>
        Server.json(res, 200, Server.completion("0123456789", { usage: { prompt_tokens: inputTokens, completion_tokens: maxTokens } }))
      )
      const budget = Cost.nanos(10 * (inputTokens + maxTokens) * 1000)
      const call = Step.make("call", {
        run: () =>
          Effect.forEach(
            Array.from({ length: 50 }),
            () => Effect.either(LanguageModel.generate({ messages: [{ role: "user", content: prompt }], maxTokens })),
            { concurrency: "unbounded" }
          )
      })
      const result = yield* Pipeline.run(Pipeline.make("contention", { output: call, budget })).pipe(
        Effect.provide(model(server.url))
      )
      const outcomes = result.output
      expect(outcomes.filter(Either.isRight)).toHaveLength(10)
      expect(outcomes.filter((o) => Either.isLeft(o) && o.left._tag === "BudgetExceeded")).toHaveLength(40)
      expect(server.received).toHaveLength(10)
      expect(result.usage.total.cost).toBe(budget)
    }))

  describe("layerConfig", () => {
    it.effect("names OPENAI_API_KEY when it is missing", () =>
      Effect.gen(function*() {
        const exit = yield* Effect.exit(
          LanguageModel.generate("Hi").pipe(
            Effect.provide(OpenAi.layerConfig()),
            Effect.withConfigProvider(ConfigProvider.fromMap(new Map()))
          )
        )
        expect(Exit.isFailure(exit)).toBe(true)
        expect(String(Exit.isFailure(exit) ? exit.cause : "")).toContain("OPENAI_API_KEY")
      }))

    it.scoped("reads the key and OPENAI_BASE_URL, and the key never shows in errors, logs or spans", () =>
      Effect.gen(function*() {
        const server = yield* Server.start((request, res) =>
          request.index === 0
            ? Server.json(res, 429, { error: { message: `slow down ${secret}` } }, { "retry-after-ms": "10" })
            : Server.json(res, 401, { error: { message: `Incorrect API key provided: ${secret}` } })
        )
        const logs = capturingLogger()
        const tracer = recordingTracer()
        const fiber = yield* Effect.fork(Effect.flip(
          LanguageModel.generate("Hi").pipe(
            Effect.provide(OpenAi.layerConfig({ model: "test-model" })),
            Effect.withConfigProvider(ConfigProvider.fromMap(new Map([
              ["OPENAI_API_KEY", secret],
              ["OPENAI_BASE_URL", server.url]
            ]))),
            Effect.provide(logs.layer),
            withTracer(tracer.tracer)
          )
        ))
        yield* waitFor(() => server.waitFor(1))
        yield* TestClock.adjust("1 second")
        const error = yield* Fiber.join(fiber)
        expect(server.received[0]!.headers.authorization).toBe(`Bearer ${secret}`)
        expect(error._tag).toBe("AuthenticationError")
        expect(logs.lines.some((line) => line.includes("RateLimited"))).toBe(true)
        const everything = [
          error.message,
          JSON.stringify(error),
          String(error),
          ...logs.lines,
          ...tracer.spans.flatMap((span) => [...span.attributes.values()].map(String))
        ].join("\n")
        expect(everything).toContain("<redacted>")
        expect(everything).not.toContain(secret)
      }))
  })
})
