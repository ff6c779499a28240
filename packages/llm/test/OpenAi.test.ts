import { describe, expect, it } from "@effect/vitest"
import { Cost, Ledger, Pipeline, Step, Usage } from "@trellis/core"
import {
  Chunk,
  ConfigProvider,
  Duration,
  Effect,
  Either,
  Exit,
  Fiber,
  Layer,
  Logger,
  Option,
  Redacted,
  Schema,
  Stream,
  TestClock,
  Tracer
} from "effect"
import { LanguageModel, OpenAi, Pricing, Tokenizer } from "../src/index.js"
import { OpenAi as Server } from "@trellis/test-servers"
import { recordingTracer, withTracer } from "./support.js"

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

// One turn of the event loop, for the sockets to move.
const tick = Effect.promise(() => new Promise<void>((resolve) => setImmediate(resolve)))

// Runs `trigger`, then lets real I/O run until the fiber under test waits on the test clock before its next
// attempt, and returns that delay; undefined if the fiber ended instead. A retry waits at most the 30 s cap, while
// the attempts' own timeouts here are 60 s away (or fired by `trigger`): so the pending sleep due within 30 s is the
// retry's. No snapshot of the clock is taken, as `TestClock.adjust` lets the event loop run, and a whole exchange
// with the server can happen inside it.
const nextRetry = <A, E>(fiber: Fiber.RuntimeFiber<A, E>, trigger: Effect.Effect<void> = Effect.void) =>
  Effect.gen(function*() {
    yield* trigger
    while (true) {
      const now = yield* TestClock.currentTimeMillis
      const waits = Chunk.toReadonlyArray(yield* TestClock.sleeps())
        .map((wake) => wake - now)
        .filter((wait) => wait > 0 && wait <= 30_000)
      if (waits.length > 0) return Math.min(...waits)
      if (Option.isSome(yield* Fiber.poll(fiber))) return undefined
      yield* tick
    }
  })

// Every log line with its annotations, to assert on retries and on what never shows.
const capturingLogger = () => {
  const lines: Array<string> = []
  const logger = Logger.make(({ annotations, logLevel, message }) => {
    const text = Array.isArray(message) ? message.join(" ") : String(message)
    lines.push(`${logLevel.label} ${text} ${JSON.stringify(Object.fromEntries(annotations))}`)
  })
  return { lines, layer: Logger.replace(Logger.defaultLogger, logger) }
}

// A recording tracer that also keeps span events (logs inside a span become its events).
const tracerWithEvents = () => {
  const recording = recordingTracer()
  const events: Array<{ readonly span: string; readonly name: string; readonly attributes: Record<string, unknown> }> = []
  const tracer = Tracer.make({
    span(...args) {
      const span = recording.tracer.span(...args)
      span.event = (name, _time, attributes) => {
        events.push({ span: span.name, name, attributes: attributes ?? {} })
      }
      return span
    },
    context: recording.tracer.context
  })
  return { spans: recording.spans, events, tracer }
}

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

  it.scoped("gathers streamed tool-call fragments into whole calls", () =>
    Effect.gen(function*() {
      const call = (index: number, fields: Record<string, unknown>) => Server.chunk({ tool_calls: [{ index, ...fields }] })
      const server = yield* Server.start((_, res) =>
        Server.sse(res, [
          call(0, { id: "c1", type: "function", function: { name: "lookup", arguments: "" } }),
          call(0, { function: { arguments: `{"q":` } }),
          call(1, { id: "c2", type: "function", function: { name: "price", arguments: `{}` } }),
          call(0, { function: { arguments: `"acme"}` } }),
          { ...Server.chunk({}), choices: [{ index: 0, delta: {}, finish_reason: "tool_calls", logprobs: null }] }
        ])
      )
      const parts = Chunk.toReadonlyArray(
        yield* Stream.runCollect(LanguageModel.stream("Look up acme")).pipe(Effect.provide(model(server.url)))
      )
      expect(parts).toHaveLength(1)
      const [finish] = parts
      expect(finish!._tag === "Finish" && finish!.response).toMatchObject({
        finishReason: "tool_calls",
        toolCalls: [
          { id: "c1", name: "lookup", arguments: `{"q":"acme"}` },
          { id: "c2", name: "price", arguments: "{}" }
        ],
        // No usage in the stream: counted, and marked so.
        usage: { estimated: true }
      })
    }))

  it.scoped("retries opening a stream that timed out, with a fresh request", () =>
    Effect.gen(function*() {
      // The first request is left hanging; the second is answered.
      const server = yield* Server.start((request, res) =>
        request.index === 0 ? undefined : Server.sse(res, [Server.chunk({ content: "late but here" })])
      )
      const fiber = yield* Effect.fork(Stream.runCollect(LanguageModel.stream("Hi")).pipe(
        Effect.provide(model(server.url, { timeout: "5 seconds", retry: { times: 1, base: "100 millis" } }))
      ))
      yield* waitFor(() => server.waitFor(1))
      yield* TestClock.adjust((yield* nextRetry(fiber, TestClock.adjust("5 seconds")))!)
      const parts = Chunk.toReadonlyArray(yield* Fiber.join(fiber))
      expect(parts[0]).toEqual({ _tag: "TextDelta", text: "late but here" })
      expect(server.received).toHaveLength(2)
      yield* waitFor(() => server.abandoned(0))
    }))

  it.scoped("fails a stream that stalls mid-answer with LlmTimeout, and closes its connection", () =>
    Effect.gen(function*() {
      const server = yield* Server.start((_, res) => {
        res.writeHead(200, { "content-type": "text/event-stream" })
        res.write(`data: ${JSON.stringify(Server.chunk({ content: "Once upon" }))}\n\n`)
      })
      const seen: Array<string> = []
      const fiber = yield* Effect.fork(Effect.flip(Stream.runForEach(
        LanguageModel.stream("Tell a story"),
        (part) => Effect.sync(() => part._tag === "TextDelta" && seen.push(part.text))
      ).pipe(Effect.provide(model(server.url, { timeout: "5 seconds" })))))
      // Once a delta is in, the answer has started: only the wait for the next chunk is left on the clock.
      while (seen.length === 0) yield* tick
      while (Option.isNone(yield* Fiber.poll(fiber))) {
        yield* TestClock.adjust("5 seconds")
        yield* tick
      }
      const error = yield* Fiber.join(fiber)
      expect(error._tag).toBe("LlmTimeout")
      expect(seen).toEqual(["Once upon"])
      expect(server.received).toHaveLength(1)
      yield* waitFor(() => server.abandoned(0))
    }))

  it.scoped("aborts the response of an interrupted stream, and settles the reservation", () =>
    Effect.gen(function*() {
      const server = yield* Server.start((_, res) => {
        res.writeHead(200, { "content-type": "text/event-stream" })
        res.write(`data: ${JSON.stringify(Server.chunk({ content: "Once upon" }))}\n\n`)
      })
      const ledger = yield* Ledger.make()
      const seen: Array<string> = []
      const fiber = yield* Effect.fork(Stream.runForEach(
        LanguageModel.stream("Tell a story"),
        (part) => Effect.sync(() => part._tag === "TextDelta" && seen.push(part.text))
      ).pipe(Effect.provide(model(server.url)), Effect.provideService(Ledger.Ledger, ledger)))
      while (seen.length === 0) yield* tick
      expect((yield* ledger.snapshot).reserved).toBeGreaterThan(0)
      yield* Fiber.interrupt(fiber)
      yield* waitFor(() => server.abandoned(0))
      const snapshot = yield* ledger.snapshot
      expect(snapshot.reserved).toBe(0)
      // What was streamed before the interruption is still paid for, counted.
      expect(snapshot.total).toMatchObject({ requests: 1, outputTokens: Tokenizer.o200k.count("Once upon"), estimated: true })
      expect(snapshot.total.cost).toBeGreaterThan(0)
    }))

  it.scoped("counts tokens itself, marked estimated, when the server reports no usage", () =>
    Effect.gen(function*() {
      const server = yield* Server.start((_, res) => Server.json(res, 200, Server.completion("Three more words", { usage: null })))
      const response = yield* LanguageModel.generate("Say three words").pipe(Effect.provide(model(server.url)))
      const inputTokens = Tokenizer.o200k.countMessages([{ role: "user", content: "Say three words" }])
      const outputTokens = Tokenizer.o200k.count("Three more words")
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
      yield* waitFor(() => server.waitFor(1))
      // The backoff alone would retry after about 100 ms; the server asked for 2 seconds.
      expect(yield* nextRetry(fiber)).toBe(2000)
      yield* TestClock.adjust("1999 millis")
      yield* tick
      expect(server.received).toHaveLength(1)
      yield* TestClock.adjust("1 millis")
      const response = yield* Fiber.join(fiber)
      expect(response.text).toBe("finally")
      expect(server.received).toHaveLength(2)
    }))

  it.scoped("counts a request that timed out before a retry answered, as billed for its input, estimated", () =>
    Effect.gen(function*() {
      // The first request is left hanging until its attempt times out; the second is answered.
      const server = yield* Server.start((request, res) =>
        request.index === 0
          ? undefined
          : Server.json(res, 200, Server.completion("here", { usage: { prompt_tokens: 9, completion_tokens: 3 } }))
      )
      const fiber = yield* Effect.fork(LanguageModel.generate("Hi").pipe(
        Effect.provide(model(server.url, { timeout: "5 seconds", retry: { times: 1, base: "100 millis" } }))
      ))
      yield* waitFor(() => server.waitFor(1))
      yield* TestClock.adjust((yield* nextRetry(fiber, TestClock.adjust("5 seconds")))!)
      const response = yield* Fiber.join(fiber)
      const input = Tokenizer.o200k.countMessages([{ role: "user", content: "Hi" }])
      expect(server.received).toHaveLength(2)
      expect(response.usage).toMatchObject({
        requests: 2,
        inputTokens: 9 + input,
        outputTokens: 3,
        cost: (9 + input + 3) * 1000,
        estimated: true
      })
    }))

  it.scoped("honours Retry-After on a 503, and backs off on a 500 without one", () =>
    Effect.gen(function*() {
      const server = yield* Server.start((request, res) =>
        request.index === 0
          ? Server.json(res, 503, { error: { message: "overloaded" } }, { "retry-after": "3" })
          : request.index === 1
          ? Server.json(res, 500, { error: { message: "boom" } })
          : Server.json(res, 200, Server.completion("recovered"))
      )
      const fiber = yield* Effect.fork(LanguageModel.generate("Hi").pipe(Effect.provide(model(server.url))))
      yield* waitFor(() => server.waitFor(1))
      expect(yield* nextRetry(fiber)).toBe(3000)
      yield* TestClock.adjust("3 seconds")
      yield* waitFor(() => server.waitFor(2))
      // The second retry: 200 ms of backoff, jittered by up to a fifth either way.
      const wait = yield* nextRetry(fiber)
      expect(wait).toBeGreaterThanOrEqual(160)
      expect(wait).toBeLessThanOrEqual(240)
      yield* TestClock.adjust(wait!)
      expect((yield* Fiber.join(fiber)).text).toBe("recovered")
      expect(server.received).toHaveLength(3)
    }))

  it.scoped("gives up on a server error after the bounded retries, logging each retry on the call's span", () =>
    Effect.gen(function*() {
      const server = yield* Server.start((_, res) => Server.json(res, 503, { error: { message: "overloaded" } }))
      const logs = capturingLogger()
      const tracer = tracerWithEvents()
      const fiber = yield* Effect.fork(Effect.flip(
        LanguageModel.generate("Hi").pipe(
          Effect.provide(model(server.url, { retry: { times: 2, base: "100 millis" } })),
          Effect.provide(logs.layer),
          withTracer(tracer.tracer)
        )
      ))
      for (let n = 1; n <= 2; n++) {
        yield* waitFor(() => server.waitFor(n))
        yield* TestClock.adjust((yield* nextRetry(fiber))!)
      }
      yield* waitFor(() => server.waitFor(3))
      expect(yield* nextRetry(fiber)).toBeUndefined()
      const error = yield* Fiber.join(fiber)
      expect(error._tag).toBe("ServerError")
      expect(error.message).toBe("openai failed (HTTP 503): 503 overloaded")
      expect(server.received).toHaveLength(3)
      const retries = logs.lines.filter((line) => line.includes("retry"))
      expect(retries).toHaveLength(2)
      expect(retries[0]).toMatch(/^WARN openai: ServerError, retry 1 of 2 in \d+ms .*"llm.retry.attempt":2/)
      expect(retries[1]).toMatch(/^WARN openai: ServerError, retry 2 of 2 in \d+ms .*"llm.retry.attempt":3/)
      const events = tracer.events.filter((event) => event.name.includes("retry"))
      expect(events.map((event) => event.span)).toEqual(["chat test-model", "chat test-model"])
      expect(events[0]!.attributes["llm.retry.error"]).toBe(error.message)
    }))

  it.scoped("does not retry what cannot pass: 400, 401, malformed output", () =>
    Effect.gen(function*() {
      const server = yield* Server.start((request, res) =>
        request.index === 0
          ? Server.json(res, 400, { error: { message: "Unknown parameter" } })
          : request.index === 1
          ? Server.json(res, 401, { error: { message: "Incorrect API key" } })
          : Server.json(res, 200, "{\"choices\": [oops")
      )
      const layer = model(server.url)
      const errors = []
      for (let n = 0; n < 3; n++) errors.push(yield* Effect.flip(LanguageModel.generate("Hi").pipe(Effect.provide(layer))))
      expect(errors.map((error) => error._tag)).toEqual(["BadRequest", "AuthenticationError", "MalformedOutput"])
      expect(server.received).toHaveLength(3)
    }))

  it.scoped("fails with MalformedOutput on a body that is not JSON, or not a chat completion", () =>
    Effect.gen(function*() {
      const server = yield* Server.start((request, res) => {
        if (request.index === 0) return Server.json(res, 200, "{\"choices\": [oops")
        res.writeHead(200, { "content-type": "text/html" })
        res.end("<html><body>Welcome to nginx!</body></html>")
      })
      const layer = model(server.url)
      const notJson = yield* Effect.flip(LanguageModel.generate("Hi").pipe(Effect.provide(layer)))
      expect(notJson._tag).toBe("MalformedOutput")
      expect(notJson.message).toMatch(/^openai gave an answer that could not be used .*not valid JSON/)
      const html = yield* Effect.flip(LanguageModel.generate("Hi").pipe(Effect.provide(layer)))
      expect(html._tag).toBe("MalformedOutput")
      expect(html.message).toContain("not a chat completion")
      expect(html._tag === "MalformedOutput" && html.text).toContain("nginx")
    }))

  it.scoped("keeps error messages short when a proxy answers with a whole page", () =>
    Effect.gen(function*() {
      const page = `<html><head><title>502 Bad Gateway</title></head><body>${"x".repeat(5000)}</body></html>`
      const server = yield* Server.start((_, res) => {
        res.writeHead(502, { "content-type": "text/html" })
        res.end(page)
      })
      const error = yield* Effect.flip(
        LanguageModel.generate("Hi").pipe(Effect.provide(model(server.url, { retry: { times: 0 } })))
      )
      expect(error._tag).toBe("ServerError")
      expect(error.message).toMatch(/^openai failed \(HTTP 502\): 502 <html><head><title>502 Bad Gateway/)
      expect(error.message.length).toBeLessThan(260)
    }))

  it.scoped("maps a refused connection to ServerError without a status, naming the cause", () =>
    Effect.gen(function*() {
      // A port that was just listened on, then closed: nothing answers there.
      const url = yield* Effect.scoped(Effect.map(Server.start(() => {}), (server) => server.url))
      const error = yield* Effect.flip(
        LanguageModel.generate("Hi").pipe(Effect.provide(model(url, { retry: { times: 0 } })))
      )
      expect(error._tag).toBe("ServerError")
      expect(error._tag === "ServerError" && error.status).toBeUndefined()
      expect(error.message).toMatch(/^openai could not be reached: Connection error\. \(.*ECONNREFUSED/)
    }))

  it.scoped("times out slow attempts, retries them a bounded number of times, and aborts each request", () =>
    Effect.gen(function*() {
      const server = yield* Server.start(() => {}) // never answers
      const fiber = yield* Effect.fork(Effect.flip(
        LanguageModel.generate("Hi").pipe(
          Effect.provide(model(server.url, { timeout: "5 seconds", retry: { times: 1, base: "100 millis" } }))
        )
      ))
      yield* waitFor(() => server.waitFor(1))
      const wait = yield* nextRetry(fiber, TestClock.adjust("5 seconds"))
      yield* TestClock.adjust(wait!)
      yield* waitFor(() => server.waitFor(2))
      yield* TestClock.adjust("5 seconds")
      const error = yield* Fiber.join(fiber)
      expect(error._tag).toBe("LlmTimeout")
      expect(error.message).toBe("openai did not answer within 5s")
      yield* waitFor(() => server.abandoned(0))
      yield* waitFor(() => server.abandoned(1))
      expect(server.received).toHaveLength(2)
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
      const inputTokens = Tokenizer.o200k.countMessages([{ role: "user", content: prompt }])
      // The budget holds the worst cases of ten calls (input with the 10% margin, every output token) and no more.
      const server = yield* Server.start((_, res) =>
        Server.json(res, 200, Server.completion("0123456789", { usage: { prompt_tokens: inputTokens, completion_tokens: maxTokens } }))
      )
      const budget = Cost.nanos(10 * (Math.ceil(inputTokens * 1.1) + maxTokens) * 1000)
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
      expect(result.usage.total.cost).toBe(10 * (inputTokens + maxTokens) * 1000)
    }))

  describe("counts every request a call sent", () => {
    const input = Tokenizer.o200k.countMessages([{ role: "user", content: "Hi" }])

    it.scoped("a server that never answers, retried twice: LlmTimeout, and three requests billed for their input", () =>
      Effect.gen(function*() {
        const server = yield* Server.start(() => {}) // never answers
        const ledger = yield* Ledger.make()
        const fiber = yield* Effect.fork(Effect.flip(
          LanguageModel.generate("Hi").pipe(
            Effect.provide(model(server.url, { timeout: "5 seconds", retry: { times: 2, base: "100 millis" } })),
            Effect.provideService(Ledger.Ledger, ledger)
          )
        ))
        for (let n = 1; n <= 2; n++) {
          yield* waitFor(() => server.waitFor(n))
          yield* TestClock.adjust((yield* nextRetry(fiber, TestClock.adjust("5 seconds")))!)
        }
        yield* waitFor(() => server.waitFor(3))
        yield* TestClock.adjust("5 seconds")
        const error = yield* Fiber.join(fiber)
        expect(error._tag).toBe("LlmTimeout")
        expect(error._tag === "LlmTimeout" && error.sent).toEqual({ requests: 3, billable: 3 })
        expect(server.received).toHaveLength(3)
        const snapshot = yield* ledger.snapshot
        expect(snapshot.reserved).toBe(0)
        expect(snapshot.total).toEqual(Usage.make({
          requests: 3,
          inputTokens: 3 * input,
          cost: Cost.nanos(3 * input * 1000),
          estimated: true
        }))
      }))

    it.scoped("500 twice, then a timeout: three requests, only the one that timed out billed", () =>
      Effect.gen(function*() {
        // The attempts' timeout is past the 30 s within which `nextRetry` looks for the retry's wait.
        const server = yield* Server.start((request, res) =>
          request.index < 2 ? Server.json(res, 500, { error: { message: "boom" } }) : undefined
        )
        const ledger = yield* Ledger.make()
        const fiber = yield* Effect.fork(Effect.flip(
          LanguageModel.generate("Hi").pipe(
            Effect.provide(model(server.url, { timeout: "40 seconds", retry: { times: 2, base: "100 millis" } })),
            Effect.provideService(Ledger.Ledger, ledger)
          )
        ))
        for (let n = 1; n <= 2; n++) {
          yield* waitFor(() => server.waitFor(n))
          yield* TestClock.adjust((yield* nextRetry(fiber))!)
        }
        yield* waitFor(() => server.waitFor(3))
        yield* TestClock.adjust("40 seconds")
        const error = yield* Fiber.join(fiber)
        expect(error._tag).toBe("LlmTimeout")
        expect(error._tag === "LlmTimeout" && error.sent).toEqual({ requests: 3, billable: 1 })
        const snapshot = yield* ledger.snapshot
        expect(snapshot.reserved).toBe(0)
        expect(snapshot.total).toEqual(Usage.make({
          requests: 3,
          inputTokens: input,
          cost: Cost.nanos(input * 1000),
          estimated: true
        }))
      }))

    it.scoped("refused with error statuses until the retries run out: every request counted, at nothing", () =>
      Effect.gen(function*() {
        const server = yield* Server.start((request, res) =>
          request.index === 0
            ? Server.json(res, 429, { error: { message: "slow down" } })
            : Server.json(res, 503, { error: { message: "overloaded" } })
        )
        const ledger = yield* Ledger.make()
        const fiber = yield* Effect.fork(Effect.flip(
          LanguageModel.generate("Hi").pipe(Effect.provide(model(server.url)), Effect.provideService(Ledger.Ledger, ledger))
        ))
        for (let n = 1; n <= 2; n++) {
          yield* waitFor(() => server.waitFor(n))
          yield* TestClock.adjust((yield* nextRetry(fiber))!)
        }
        const error = yield* Fiber.join(fiber)
        expect(error._tag).toBe("ServerError")
        expect(error._tag === "ServerError" && error.sent).toEqual({ requests: 3, billable: 0 })
        expect((yield* ledger.snapshot).total).toEqual(Usage.make({ requests: 3 }))
      }))

    it.scoped("a refused connection is a request that costs nothing; an unreadable 200 one billed for its input", () =>
      Effect.gen(function*() {
        const url = yield* Effect.scoped(Effect.map(Server.start(() => {}), (server) => server.url))
        const ledger = yield* Ledger.make()
        const refused = yield* Effect.flip(LanguageModel.generate("Hi").pipe(
          Effect.provide(model(url, { retry: { times: 0 } })),
          Effect.provideService(Ledger.Ledger, ledger)
        ))
        expect(refused._tag === "ServerError" && refused.sent).toEqual({ requests: 1, billable: 0 })
        expect((yield* ledger.snapshot).total).toEqual(Usage.make({ requests: 1 }))

        const server = yield* Server.start((_, res) => Server.json(res, 200, "{\"choices\": [oops"))
        const unreadable = yield* Effect.flip(LanguageModel.generate("Hi").pipe(
          Effect.provide(model(server.url)),
          Effect.provideService(Ledger.Ledger, ledger)
        ))
        expect(unreadable._tag === "MalformedOutput" && unreadable.sent).toEqual({ requests: 1, billable: 1 })
        expect((yield* ledger.snapshot).total).toEqual(Usage.make({
          requests: 2,
          inputTokens: input,
          cost: Cost.nanos(input * 1000),
          estimated: true
        }))
      }))

    it.scoped("an answer after a 429 and a 500 counts the two refused requests, at nothing", () =>
      Effect.gen(function*() {
        const server = yield* Server.start((request, res) =>
          request.index === 0
            ? Server.json(res, 429, { error: { message: "slow down" } })
            : request.index === 1
            ? Server.json(res, 500, { error: { message: "boom" } })
            : Server.json(res, 200, Server.completion("here", { usage: { prompt_tokens: 9, completion_tokens: 3 } }))
        )
        const fiber = yield* Effect.fork(LanguageModel.generate("Hi").pipe(Effect.provide(model(server.url))))
        for (let n = 1; n <= 2; n++) {
          yield* waitFor(() => server.waitFor(n))
          yield* TestClock.adjust((yield* nextRetry(fiber))!)
        }
        const response = yield* Fiber.join(fiber)
        expect(response.usage).toEqual(Usage.make({
          requests: 3,
          inputTokens: 9,
          outputTokens: 3,
          cost: Cost.nanos(12 * 1000),
          estimated: false
        }))
      }))

    it.scoped("interrupted during its third request, after a 500 and a timeout: three requests, two billed", () =>
      Effect.gen(function*() {
        const server = yield* Server.start((request, res) =>
          request.index === 0 ? Server.json(res, 500, { error: { message: "boom" } }) : undefined
        )
        const ledger = yield* Ledger.make()
        const fiber = yield* Effect.fork(
          LanguageModel.generate("Hi").pipe(
            Effect.provide(model(server.url, { timeout: "40 seconds", retry: { times: 2, base: "100 millis" } })),
            Effect.provideService(Ledger.Ledger, ledger)
          )
        )
        yield* waitFor(() => server.waitFor(1))
        yield* TestClock.adjust((yield* nextRetry(fiber))!)
        yield* waitFor(() => server.waitFor(2))
        yield* TestClock.adjust((yield* nextRetry(fiber, TestClock.adjust("40 seconds")))!)
        yield* waitFor(() => server.waitFor(3))
        yield* Fiber.interrupt(fiber)
        // The 500 cost nothing; the request that timed out and the one cut off in flight may have been read.
        const snapshot = yield* ledger.snapshot
        expect(snapshot.reserved).toBe(0)
        expect(snapshot.total).toEqual(Usage.make({
          requests: 3,
          inputTokens: 2 * input,
          cost: Cost.nanos(2 * input * 1000),
          estimated: true
        }))
      }))

    it.scoped("interrupted while it waits to retry after two 500s: two requests, at nothing", () =>
      Effect.gen(function*() {
        const server = yield* Server.start((_, res) => Server.json(res, 500, { error: { message: "boom" } }))
        const ledger = yield* Ledger.make()
        const fiber = yield* Effect.fork(
          LanguageModel.generate("Hi").pipe(Effect.provide(model(server.url)), Effect.provideService(Ledger.Ledger, ledger))
        )
        yield* waitFor(() => server.waitFor(1))
        yield* TestClock.adjust((yield* nextRetry(fiber))!)
        yield* waitFor(() => server.waitFor(2))
        expect(yield* nextRetry(fiber)).toBeGreaterThan(0)
        yield* Fiber.interrupt(fiber)
        expect(server.received).toHaveLength(2)
        const snapshot = yield* ledger.snapshot
        expect(snapshot.reserved).toBe(0)
        expect(snapshot.total).toEqual(Usage.make({ requests: 2 }))
      }))

    it.scoped("a stream opened after a 500 that stalls mid-answer: both requests, the second billed with what arrived", () =>
      Effect.gen(function*() {
        const server = yield* Server.start((request, res) => {
          if (request.index === 0) return Server.json(res, 500, { error: { message: "boom" } })
          res.writeHead(200, { "content-type": "text/event-stream" })
          res.write(`data: ${JSON.stringify(Server.chunk({ content: "Once upon" }))}\n\n`)
        })
        const ledger = yield* Ledger.make()
        const seen: Array<string> = []
        const fiber = yield* Effect.fork(Effect.flip(Stream.runForEach(
          LanguageModel.stream("Hi"),
          (part) => Effect.sync(() => part._tag === "TextDelta" && seen.push(part.text))
        ).pipe(
          Effect.provide(model(server.url, { timeout: "40 seconds", retry: { times: 1, base: "100 millis" } })),
          Effect.provideService(Ledger.Ledger, ledger)
        )))
        yield* waitFor(() => server.waitFor(1))
        yield* TestClock.adjust((yield* nextRetry(fiber))!)
        while (seen.length === 0) yield* tick
        while (Option.isNone(yield* Fiber.poll(fiber))) {
          yield* TestClock.adjust("40 seconds")
          yield* tick
        }
        const error = yield* Fiber.join(fiber)
        expect(error._tag).toBe("LlmTimeout")
        expect(error._tag === "LlmTimeout" && error.sent).toEqual({ requests: 2, billable: 1 })
        const output = Tokenizer.o200k.count("Once upon")
        const snapshot = yield* ledger.snapshot
        expect(snapshot.reserved).toBe(0)
        expect(snapshot.total).toEqual(Usage.make({
          requests: 2,
          inputTokens: input,
          outputTokens: output,
          cost: Cost.nanos((input + output) * 1000),
          estimated: true
        }))
      }))
  })

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

    it.effect("names OPENAI_API_KEY when it is empty", () =>
      Effect.gen(function*() {
        const exit = yield* Effect.exit(
          LanguageModel.generate("Hi").pipe(
            Effect.provide(OpenAi.layerConfig()),
            Effect.withConfigProvider(ConfigProvider.fromMap(new Map([["OPENAI_API_KEY", ""]])))
          )
        )
        expect(String(Exit.isFailure(exit) ? exit.cause : "")).toContain("OPENAI_API_KEY is empty")
      }))

    it.scoped("falls back to the baseURL option when OPENAI_BASE_URL is empty", () =>
      Effect.gen(function*() {
        const server = yield* Server.start((_, res) => Server.json(res, 200, Server.completion("from the option")))
        const response = yield* LanguageModel.generate("Hi").pipe(
          Effect.provide(OpenAi.layerConfig({ baseURL: server.url, model: "test-model" })),
          Effect.withConfigProvider(ConfigProvider.fromMap(new Map([["OPENAI_API_KEY", secret], ["OPENAI_BASE_URL", ""]])))
        )
        expect(response.text).toBe("from the option")
        expect(server.received[0]!.body.max_tokens).toBe(4096)
      }))

    it.scoped("reads the key and OPENAI_BASE_URL, and the key never shows in errors, logs or spans", () =>
      Effect.gen(function*() {
        const server = yield* Server.start((request, res) =>
          request.index === 0
            ? Server.json(res, 429, { error: { message: `slow down ${secret}` } }, { "retry-after-ms": "10" })
            : Server.json(res, 401, { error: { message: `Incorrect API key provided: ${secret}` } })
        )
        const logs = capturingLogger()
        const tracer = tracerWithEvents()
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
        yield* TestClock.adjust((yield* nextRetry(fiber))!)
        const error = yield* Fiber.join(fiber)
        expect(server.received[0]!.headers.authorization).toBe(`Bearer ${secret}`)
        expect(error._tag).toBe("AuthenticationError")
        expect(logs.lines.some((line) => line.includes("RateLimited"))).toBe(true)
        const everything = [
          error.message,
          JSON.stringify(error),
          String(error),
          ...logs.lines,
          ...tracer.spans.flatMap((span) => [...span.attributes.values()].map(String)),
          ...tracer.events.map((event) => `${event.name} ${JSON.stringify(event.attributes)}`)
        ].join("\n")
        expect(tracer.events.some((event) => event.name.includes("RateLimited"))).toBe(true)
        expect(everything).toContain("<redacted>")
        expect(everything).not.toContain(secret)
      }))
  })

  describe("against odd and hostile servers", () => {
    it.scoped("ends at once with RateLimited when Retry-After asks for longer than the retry cap", () =>
      Effect.gen(function*() {
        const server = yield* Server.start((request, res) =>
          request.index === 0
            ? Server.json(res, 429, { error: { message: "Rate limit reached" } }, { "retry-after": "3600" })
            : request.index === 1
            ? Server.json(res, 503, { error: { message: "maintenance" } }, { "retry-after-ms": "45000" })
            : Server.json(res, 200, Server.completion("too early"))
        )
        const layer = model(server.url, { retry: { times: 3, base: "100 millis", cap: "30 seconds" } })
        const limited = yield* Effect.fork(Effect.flip(LanguageModel.generate("Hi").pipe(Effect.provide(layer))))
        yield* waitFor(() => server.waitFor(1))
        // No retry is even scheduled: the fiber ends, where it used to wait the 30 s cap and ask again.
        expect(yield* nextRetry(limited)).toBeUndefined()
        const error = yield* Fiber.join(limited)
        expect(error._tag).toBe("RateLimited")
        expect(error._tag === "RateLimited" && error.retryAfter && Duration.toMillis(error.retryAfter)).toBe(3_600_000)
        expect(error.message).toContain("retry after 1h")
        expect(server.received).toHaveLength(1)

        // The same for a 503 asking for 45 s with a cap of 30 s.
        const unavailable = yield* Effect.fork(Effect.flip(LanguageModel.generate("Hi").pipe(Effect.provide(layer))))
        yield* waitFor(() => server.waitFor(2))
        expect(yield* nextRetry(unavailable)).toBeUndefined()
        expect((yield* Fiber.join(unavailable))._tag).toBe("ServerError")
        expect(server.received).toHaveLength(2)
      }))

    it.scoped("ends a stream that never stops with LlmTimeout after the call's timeout, and closes it", () =>
      Effect.gen(function*() {
        const open: Array<import("node:http").ServerResponse> = []
        const server = yield* Server.start((_, res) => {
          res.writeHead(200, { "content-type": "text/event-stream" })
          open.push(res)
        })
        const seen: Array<string> = []
        const fiber = yield* Effect.fork(Effect.flip(Stream.runForEach(
          LanguageModel.stream("Tell a story"),
          (part) => Effect.sync(() => part._tag === "TextDelta" && seen.push(part.text))
        ).pipe(Effect.provide(model(server.url, { timeout: "5 seconds" })))))
        yield* waitFor(() => server.waitFor(1))
        const running = Effect.map(Fiber.poll(fiber), Option.isNone)
        // A delta every 200 ms of the test clock, for as long as the client listens (at most 60 s worth).
        let sent = 0
        while ((yield* running) && sent < 300) {
          open[0]!.write(`data: ${JSON.stringify(Server.chunk({ content: `word${sent} ` }))}\n\n`)
          sent++
          while (seen.length < sent && (yield* running)) yield* tick
          yield* TestClock.adjust("200 millis")
        }
        const error = yield* Fiber.join(fiber)
        expect(error._tag).toBe("LlmTimeout")
        expect(error.message).toBe("openai did not answer within 5s")
        // 5 s of 200 ms steps: 25 deltas got through, and no more.
        expect(seen.length).toBeGreaterThanOrEqual(24)
        expect(seen.length).toBeLessThanOrEqual(25)
        yield* waitFor(() => server.abandoned(0))
      }))

    it.scoped("cuts a stream past maxTokens, marks it \"length\", stops reading, and keeps only what it kept", () =>
      Effect.gen(function*() {
        const server = yield* Server.start((_, res) => {
          // A server that ignores the limit: 500 deltas, and the connection left open.
          res.writeHead(200, { "content-type": "text/event-stream" })
          for (let n = 0; n < 500; n++) res.write(`data: ${JSON.stringify(Server.chunk({ content: "word " }))}\n\n`)
        })
        const parts = Chunk.toReadonlyArray(
          yield* Stream.runCollect(LanguageModel.stream({ messages: [{ role: "user", content: "Talk" }], maxTokens: 10 }))
            .pipe(Effect.provide(model(server.url)))
        )
        const deltas = parts.flatMap((p) => (p._tag === "TextDelta" ? [p.text] : []))
        const text = deltas.join("")
        expect(Tokenizer.o200k.count(text)).toBeLessThanOrEqual(10)
        expect(Tokenizer.o200k.count(text)).toBeGreaterThanOrEqual(8)
        expect("word ".repeat(500).startsWith(text)).toBe(true)
        const last = parts.at(-1)!
        expect(last._tag).toBe("Finish")
        if (last._tag !== "Finish") return
        expect(last.response.finishReason).toBe("length")
        expect(last.response.text).toBe(text)
        // Only what was kept is counted.
        expect(last.response.usage).toMatchObject({ outputTokens: Tokenizer.o200k.count(text), estimated: true })
        yield* waitFor(() => server.abandoned(0))
      }))

    it.scoped("cuts a generated answer past maxTokens and marks it \"length\"", () =>
      Effect.gen(function*() {
        const long = "word ".repeat(200)
        const server = yield* Server.start((_, res) => Server.json(res, 200, Server.completion(long)))
        const response = yield* LanguageModel.generate({ messages: [{ role: "user", content: "Talk" }], maxTokens: 10 })
          .pipe(Effect.provide(model(server.url)))
        expect(response.finishReason).toBe("length")
        expect(Tokenizer.o200k.count(response.text)).toBe(10)
        expect(long.startsWith(response.text)).toBe(true)
      }))

    it.scoped("reads a JSON answer to a streaming request as the completion, and fails on any other body", () =>
      Effect.gen(function*() {
        const server = yield* Server.start((request, res) => {
          if (request.index === 0) {
            return Server.json(res, 200, Server.completion("Hello from JSON", { usage: { prompt_tokens: 5, completion_tokens: 3 } }))
          }
          if (request.index === 1) return Server.json(res, 200, { object: "list", data: [] })
          if (request.index === 2) return Server.sse(res, [])
          res.writeHead(200, { "content-type": "text/html" })
          res.end("<html><body>Welcome to nginx!</body></html>")
        })
        const layer = model(server.url)
        const parts = Chunk.toReadonlyArray(yield* Stream.runCollect(LanguageModel.stream("Hi")).pipe(Effect.provide(layer)))
        expect(parts[0]).toEqual({ _tag: "TextDelta", text: "Hello from JSON" })
        const last = parts.at(-1)!
        expect(last._tag === "Finish" && last.response).toMatchObject({
          text: "Hello from JSON",
          finishReason: "stop",
          usage: { inputTokens: 5, outputTokens: 3, estimated: false }
        })
        const errors = []
        for (let n = 0; n < 3; n++) {
          errors.push(yield* Effect.flip(Stream.runCollect(LanguageModel.stream("Hi")).pipe(Effect.provide(layer))))
        }
        expect(errors.map((error) => error._tag)).toEqual(["MalformedOutput", "MalformedOutput", "MalformedOutput"])
        expect(errors[0]!.message).toContain("not a chat completion")
        expect(errors[1]!.message).toContain("without a single chunk")
        expect(errors[2]!._tag === "MalformedOutput" && errors[2]!.text).toContain("nginx")
        expect(server.received).toHaveLength(4)
      }))

    it.scoped("fails a chat completion without a message rather than answer empty text", () =>
      Effect.gen(function*() {
        const server = yield* Server.start((_, res) =>
          Server.json(res, 200, { ...Server.completion(""), choices: [{ index: 0, delta: { content: "hi" }, finish_reason: "stop" }] })
        )
        const error = yield* Effect.flip(LanguageModel.generate("Hi").pipe(Effect.provide(model(server.url))))
        expect(error._tag).toBe("MalformedOutput")
        expect(error.message).toContain("no message")
      }))

    describe("validates the options when the layer is built", () => {
      const cases: Array<readonly [string, Partial<OpenAi.Options>, string]> = [
        ["retry.times", { retry: { times: Infinity } }, "a whole number from 0 to 1000, got Infinity"],
        ["retry.times", { retry: { times: -1 } }, "got -1"],
        ["retry.times", { retry: { times: 1001 } }, "got 1001"],
        ["retry.times", { retry: { times: 1.5 } }, "got 1.5"],
        ["retry.times", { retry: { times: Number.NaN } }, "got NaN"],
        ["timeout", { timeout: 0 }, "a positive, finite duration, got 0"],
        ["timeout", { timeout: -5 }, "got -5"],
        ["timeout", { timeout: "5 secs" as never }, `got "5 secs"`],
        ["timeout", { timeout: Infinity }, "got Infinity"],
        ["retry.base", { retry: { base: "0 millis" } }, `got "0 millis"`],
        ["retry.cap", { retry: { cap: Number.NaN } }, "got NaN"],
        ["maxTokens", { maxTokens: 0 }, "a whole number from 1, got 0"],
        ["maxTokens", { maxTokens: 2.5 }, "got 2.5"],
        // Keys a TypeScript caller could not have written are refused, not ignored.
        ["retries", { retries: 5 } as never, "a known option: did you mean retry?, got a value of type number"],
        ["base_url", { base_url: "http://x" } as never, "did you mean baseURL?"],
        ["api_key", { api_key: "sk-secret-in-the-wrong-place" } as never, "did you mean apiKey?, got a value of type string"],
        ["retry.attempts", { retry: { attempts: 2 } } as never, "one of times, base, cap, got a value of type number"]
      ]
      for (const [option, options, expected] of cases) {
        it.scoped(`${option}: ${expected}`, () =>
          Effect.gen(function*() {
            const server = yield* Server.start((_, res) => Server.json(res, 200, Server.completion("sent")))
            const error = yield* Effect.flip(LanguageModel.generate("Hi").pipe(Effect.provide(model(server.url, options))))
            expect(error._tag).toBe("InvalidOption")
            expect(error._tag === "InvalidOption" && error.option).toBe(option)
            expect(error.message).toContain(`OpenAi option ${option} must be`)
            expect(error.message).toContain(expected)
            expect(server.received).toHaveLength(0)
          }))
      }

      it.scoped("accepts the bounds", () =>
        Effect.gen(function*() {
          const server = yield* Server.start((_, res) => Server.json(res, 200, Server.completion("sent")))
          for (const times of [0, 1000]) {
            const response = yield* LanguageModel.generate("Hi").pipe(
              Effect.provide(model(server.url, { retry: { times }, maxTokens: 1 }))
            )
            expect(response.text).toBe("sent")
          }
        }))

      it.effect("fails layerConfig with a ConfigError at the option's path, and provider() throws", () =>
        Effect.gen(function*() {
          const exit = yield* Effect.exit(
            LanguageModel.generate("Hi").pipe(
              Effect.provide(OpenAi.layerConfig({ retry: { times: Infinity } })),
              Effect.withConfigProvider(ConfigProvider.fromMap(new Map([["OPENAI_API_KEY", secret]])))
            )
          )
          expect(Exit.isFailure(exit)).toBe(true)
          const cause = String(Exit.isFailure(exit) ? exit.cause : "")
          expect(cause).toContain("retry.times")
          expect(cause).toContain("Infinity")
          expect(() => OpenAi.provider({ apiKey: Redacted.make(secret), timeout: -1 })).toThrow(/timeout/)
        }))
    })

    it.scoped("scrubs the key, raw or escaped, from every error, log line and span", () =>
      Effect.gen(function*() {
        const key = "sk-te/st+SECRET-456"
        const plain = (res: import("node:http").ServerResponse, status: number, body: string) => {
          res.writeHead(status, { "content-type": "text/plain" })
          res.end(body)
        }
        const server = yield* Server.start((request, res) => {
          switch (request.index) {
            case 0: // a 200 that is not a chat completion, the key JSON-escaped (`\/`)
              return plain(res, 200, `{"echo":"sk-te\\/st+SECRET-456"}`)
            case 1: // the same as JSON, unicode-escaped: the SDK parses it back to the raw key
              return Server.json(res, 200, `{"echo":"sk-te\\u002fst\\u002BSECRET-456"}`)
            case 2: // escaped twice (JSON inside a JSON string), and unicode-escaped letters
              return plain(res, 200, `{"inner":"{\\"key\\":\\"sk-te\\\\/st+\\u0053\\u0045CRET-456\\"}"}`)
            case 3: // percent-encoded, in a text error body
              return plain(res, 400, `bad key: sk-te%2Fst%2bSECRET-456`)
            case 4: // a JSON error body, unicode-escaped
              return Server.json(res, 500, `{"error":{"message":"boom for \\u0073k-te/st+SECRET-456"}}`)
            case 5: // a refusal echoing the key
              return Server.json(res, 200, {
                ...Server.completion(""),
                choices: [{ index: 0, message: { role: "assistant", content: null, refusal: `no, ${key}` }, finish_reason: "stop" }]
              })
            case 6: // usage echoing the key
              return Server.json(res, 200, {
                ...Server.completion("hi", { usage: null }),
                usage: { prompt_tokens: key, completion_tokens: 1 }
              })
            case 7: // a stream chunk echoing it in its usage
              return Server.sse(res, [{ ...Server.chunk({}), choices: [], usage: { prompt_tokens: 1, completion_tokens: `x ${key}` } }])
            default: // the model name echoing it, which goes on the span
              return Server.json(res, 200, Server.completion("hi", { model: `model-${key}` }))
          }
        })
        const logs = capturingLogger()
        const tracer = tracerWithEvents()
        const layer = OpenAi.layer({ apiKey: Redacted.make(key), baseURL: server.url, model: "test-model", retry: { times: 0 } })
          .pipe(Layer.provide(prices))
        const run = <A, E, R>(effect: Effect.Effect<A, E, R>) =>
          effect.pipe(Effect.provide(layer), Effect.provide(logs.layer), withTracer(tracer.tracer))
        const errors = []
        for (let n = 0; n < 7; n++) errors.push(yield* run(Effect.flip(LanguageModel.generate("Hi"))))
        errors.push(yield* run(Effect.flip(Stream.runCollect(LanguageModel.stream("Hi")))))
        const response = yield* run(LanguageModel.generate("Hi"))
        expect(errors.map((error) => error._tag)).toEqual([
          "MalformedOutput",
          "MalformedOutput",
          "MalformedOutput",
          "BadRequest",
          "ServerError",
          "ContentFiltered",
          "MalformedOutput",
          "MalformedOutput"
        ])
        for (const error of errors) expect(JSON.stringify(error)).toContain("<redacted>")
        expect(errors[6]!.message).toContain("prompt_tokens is \"<redacted>\"")
        expect(response.model).toBe("model-<redacted>")
        const everything = [
          ...errors.flatMap((error) => [error.message, JSON.stringify(error), String(error)]),
          ...logs.lines,
          ...tracer.spans.flatMap((span) => [...span.attributes.values()].map(String)),
          ...tracer.spans.map((span) => String(span.status._tag === "Ended" ? span.status.exit : "")),
          ...tracer.events.map((event) => `${event.name} ${JSON.stringify(event.attributes)}`)
        ].join("\n")
        expect(everything).toContain("model-<redacted>")
        expect(everything).not.toMatch(/ECRET/i)
        expect(everything).not.toMatch(/\\u0053/i)
      }))

    describe("checks the usage a server reports", () => {
      // Numbers that cannot be right are refused by the service (named as it names them, the answer counted as if
      // no usage had been reported); what is not a number at all, by the reading of the JSON (named as the server
      // named it, the request counted as billed for its input).
      const cases: Array<readonly [unknown, string, "service" | "json"]> = [
        [{ prompt_tokens: -1, completion_tokens: 3 }, "inputTokens is -1", "service"],
        [{ prompt_tokens: 5, completion_tokens: 1.5 }, "outputTokens is 1.5", "service"],
        [{ prompt_tokens: "NaN", completion_tokens: 3 }, `prompt_tokens is "NaN"`, "json"],
        [{ prompt_tokens: "lots", completion_tokens: 3 }, `prompt_tokens is "lots"`, "json"],
        [{ prompt_tokens: 5, completion_tokens: 2e9 }, "outputTokens is 2000000000", "service"],
        [{ prompt_tokens: "99999999999999999999", completion_tokens: 3 }, "inputTokens is 100000000000000000000", "service"],
        [{ prompt_tokens: 5, completion_tokens: 3, prompt_tokens_details: { cached_tokens: -2 } }, "cachedInputTokens is -2", "service"],
        [{ prompt_tokens: 5, completion_tokens: 3, completion_tokens_details: { reasoning_tokens: 0.5 } }, "reasoningTokens is 0.5", "service"],
        [{ prompt_tokens: 5, completion_tokens: 3, prompt_tokens_details: { cached_tokens: 9 } }, "cachedInputTokens (9) is more than inputTokens (5)", "service"],
        ["12", "not an object", "json"]
      ]
      for (const [usage, detail, refusedBy] of cases) {
        it.scoped(`fails with MalformedOutput on ${JSON.stringify(usage)}`, () =>
          Effect.gen(function*() {
            const server = yield* Server.start((_, res) =>
              Server.json(res, 200, { ...Server.completion("hi", { usage: null }), usage })
            )
            const ledger = yield* Ledger.make()
            const error = yield* Effect.flip(LanguageModel.generate("Hi").pipe(
              Effect.provide(model(server.url)),
              Effect.provideService(Ledger.Ledger, ledger)
            ))
            expect(error._tag).toBe("MalformedOutput")
            expect(error.message).toContain(detail)
            expect(server.received).toHaveLength(1)
            const snapshot = yield* ledger.snapshot
            expect(snapshot.reserved).toBe(0)
            // Either way the answer was paid for: counted, at its input alone when the JSON could not be read.
            expect(snapshot.total).toMatchObject({
              requests: 1,
              inputTokens: Tokenizer.o200k.countMessages([{ role: "user", content: "Hi" }]),
              outputTokens: refusedBy === "service" ? Tokenizer.o200k.count("hi") : 0,
              estimated: true
            })
          }))
      }

      it.scoped("reads counts sent as strings of digits, and estimates when there is no usage block", () =>
        Effect.gen(function*() {
          const server = yield* Server.start((request, res) =>
            Server.json(res, 200, {
              ...Server.completion("hi", { usage: null }),
              ...(request.index === 0 ? { usage: { prompt_tokens: "12", completion_tokens: 4 } } : {})
            })
          )
          const reported = yield* LanguageModel.generate("Hi").pipe(Effect.provide(model(server.url)))
          expect(reported.usage).toMatchObject({ inputTokens: 12, outputTokens: 4, estimated: false })
          const estimated = yield* LanguageModel.generate("Hi").pipe(Effect.provide(model(server.url)))
          expect(estimated.usage).toMatchObject({ outputTokens: Tokenizer.o200k.count("hi"), estimated: true })
        }))

      it.scoped("fails a stream whose usage chunk is not a count", () =>
        Effect.gen(function*() {
          const server = yield* Server.start((_, res) =>
            Server.sse(res, [
              Server.chunk({ content: "Hi" }),
              { ...Server.chunk({}), choices: [], usage: { prompt_tokens: 3, completion_tokens: -7 } }
            ])
          )
          const error = yield* Effect.flip(Stream.runCollect(LanguageModel.stream("Hi")).pipe(Effect.provide(model(server.url))))
          expect(error._tag).toBe("MalformedOutput")
          expect(error.message).toContain("outputTokens is -7")
        }))
    })
  })
})
