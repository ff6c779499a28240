import { describe, expect, it } from "@effect/vitest"
import { Cost, Ledger, Pipeline, PipelineError, Step, Usage } from "@trellis/core"
import { Cause, Chunk, Deferred, Duration, Effect, Exit, Fiber, Layer, Option, Schema, Stream, TestClock } from "effect"
import { LanguageModel, LlmError, Pricing, Prompt, Provider, ScriptedModel, Tokenizer } from "../src/index.js"
import { capturingLogger, parentName, recordingTracer, withTracer } from "./support.js"

// One dollar per million input tokens and two per million output tokens: 1,000 and 2,000 nano-dollars a token.
const prices = Pricing.layer({ overrides: { "test-model": { inputPerMillion: 1, outputPerMillion: 2 } } })

const scripted = (script: Omit<ScriptedModel.Script, "model">) => {
  const model = ScriptedModel.make({ model: "test-model", ...script })
  return { ...model, layer: Layer.provide(model.layer, prices) }
}

const inputTokens = (prompt: string) => Tokenizer.o200k.countMessages([{ role: "user", content: prompt }])

/** The input tokens a call reserves for `tokens` counted here: the default margin of 10%, rounded up. */
const reserved = (tokens: number) => Math.ceil(tokens * 1.1)

/** `ledger` with another `reserve`; everything else is the ledger's own, called on it. */
const withReserve = (ledger: Ledger.Service, reserve: Ledger.Service["reserve"]): Ledger.Service =>
  new Proxy(ledger, {
    get: (target, key) => {
      if (key === "reserve") return reserve
      const value: unknown = Reflect.get(target, key)
      return typeof value === "function" ? value.bind(target) : value
    }
  })

describe("LanguageModel", () => {
  it.effect("meters a call: usage counted, priced in exact nano-dollars and attributed to its step", () => {
    const model = scripted({ reply: () => "Paris is the capital of France." })
    const ask = Step.make("ask", { run: () => LanguageModel.generate("What is the capital of France?") })
    const pipeline = Pipeline.make("geo", { output: ask })
    return Effect.gen(function*() {
      const result = yield* Pipeline.run(pipeline)
      const input = inputTokens("What is the capital of France?")
      const output = Tokenizer.o200k.count("Paris is the capital of France.")
      expect(result.output.text).toBe("Paris is the capital of France.")
      expect(result.output.usage).toMatchObject({ inputTokens: input, outputTokens: output, requests: 1 })
      expect(result.output.usage.cost).toBe(input * 1000 + output * 2000)
      expect(result.output.usage.estimated).toBe(false)
      expect(result.usage.total.cost).toBe(result.output.usage.cost)
      expect(result.usage.byStep["ask"]?.cost).toBe(result.output.usage.cost)
    }).pipe(Effect.provide(model.layer))
  })

  it.effect("reserves the worst case first and refuses, before sending, a call that could pass the budget", () => {
    const model = scripted({ reply: () => "never sent" })
    const prompt = "Summarise this."
    const worstCase = reserved(inputTokens(prompt)) * 1000 + 100 * 2000
    const ask = Step.make("ask", { run: () => LanguageModel.generate({ messages: [{ role: "user", content: prompt }], maxTokens: 100 }) })
    return Effect.gen(function*() {
      const fits = yield* Effect.exit(Pipeline.run(Pipeline.make("fits", { output: ask, budget: Cost.nanos(worstCase) })))
      expect(Exit.isSuccess(fits)).toBe(true)
      expect(model.calls).toHaveLength(1)

      const error = yield* Effect.flip(
        Pipeline.run(Pipeline.make("short", { output: ask, budget: Cost.nanos(worstCase - 1) }))
      )
      expect(error._tag).toBe("BudgetExceeded")
      if (error._tag !== "BudgetExceeded") return
      expect(error.requested).toBe(worstCase)
      expect(error.step).toBe("ask")
      expect(model.calls).toHaveLength(1)
    }).pipe(Effect.provide(model.layer))
  })

  it.effect("sends the request's max tokens, else the service's default, and bounds the reservation with it", () => {
    const model = ScriptedModel.make({ model: "test-model", reply: () => "ok", options: { maxTokens: 50 } })
    return Effect.gen(function*() {
      yield* LanguageModel.generate("hi")
      yield* LanguageModel.generate({ messages: [{ role: "user", content: "hi" }], maxTokens: 7, temperature: 0.2 })
      expect(model.calls.map((c) => [c.maxTokens, c.temperature])).toEqual([[50, undefined], [7, 0.2]])
      const error = yield* Effect.flip(
        LanguageModel.generate("hi").pipe(
          Effect.provideServiceEffect(Ledger.Ledger, Ledger.make({ budget: Cost.nanos(reserved(inputTokens("hi")) * 1000 + 49 * 2000) }))
        )
      )
      expect(error).toBeInstanceOf(Ledger.BudgetExceeded)
    }).pipe(Effect.provide(Layer.provide(model.layer, prices)))
  })

  it.effect("counts the tokens itself when the server reports no usage, and marks the usage estimated", () => {
    const model = scripted({ reply: () => ({ text: "Four words right here.", usage: null }) })
    return Effect.gen(function*() {
      const response = yield* LanguageModel.generate("Say four words.")
      expect(response.usage).toMatchObject({
        inputTokens: inputTokens("Say four words."),
        outputTokens: Tokenizer.o200k.count("Four words right here."),
        estimated: true
      })
      expect(response.usage.cost).toBeGreaterThan(0)
    }).pipe(Effect.provide(model.layer))
  })

  it.effect("keeps what an interrupted call may have cost, marked estimated", () => {
    const model = scripted({ reply: () => "late", latency: "1 second" })
    return Effect.gen(function*() {
      const ledger = yield* Ledger.make()
      const fiber = yield* LanguageModel.generate("Hello there").pipe(
        Effect.provideService(Ledger.Ledger, ledger),
        Effect.fork
      )
      yield* TestClock.adjust("10 millis")
      yield* Fiber.interrupt(fiber)
      const snapshot = yield* ledger.snapshot
      expect(snapshot.reserved).toBe(0)
      expect(snapshot.total).toMatchObject({ inputTokens: inputTokens("Hello there"), outputTokens: 0, estimated: true })
      expect(snapshot.total.cost).toBe(inputTokens("Hello there") * 1000)
    }).pipe(Effect.provide(model.layer))
  })

  it.effect("counts a call cut by its step's timeout, on each attempt, as a request billed for its input", () => {
    const model = scripted({ reply: () => "late", latency: "10 seconds" })
    const slow = Step.make("slow", { timeout: "1 second", retry: 1, run: () => LanguageModel.generate("Hello there") })
    return Effect.gen(function*() {
      const fiber = yield* Effect.fork(Effect.flip(Pipeline.run(Pipeline.make("cut", { output: slow, budget: Cost.dollars(1) }))))
      yield* TestClock.adjust("1 second")
      yield* TestClock.adjust("1 second")
      const error = yield* Fiber.join(fiber)
      if (error._tag !== "StepFailed") return expect.unreachable(error.message)
      expect(error.error).toBeInstanceOf(Step.StepTimeout)
      expect(model.calls).toHaveLength(2)
      expect(error.partial.usage.total).toMatchObject({
        requests: 2,
        inputTokens: 2 * inputTokens("Hello there"),
        cost: 2 * inputTokens("Hello there") * 1000,
        estimated: true
      })
    }).pipe(Effect.provide(model.layer))
  })

  it.effect("settles a reservation even when the call is interrupted the moment the reservation is made", () => {
    const model = scripted({ reply: () => "late", latency: "1 second" })
    return Effect.gen(function*() {
      const ledger = yield* Ledger.make()
      // The ledger as the call sees it, whose reservation yields once it holds the money: the interruption below
      // arrives there, after the money is held and before anything is sent.
      const yielding = withReserve(ledger, (amount) => Effect.zipLeft(ledger.reserve(amount), Effect.yieldNow()))
      const fiber = yield* LanguageModel.generate("Hello there").pipe(
        Effect.provideService(Ledger.Ledger, yielding),
        Effect.fork
      )
      yield* Effect.yieldNow()
      expect((yield* ledger.snapshot).reserved).toBe(reserved(inputTokens("Hello there")) * 1000 + 4096 * 2000)
      yield* Fiber.interrupt(fiber)
      const snapshot = yield* ledger.snapshot
      expect(snapshot.reserved).toBe(0)
      expect(model.calls).toHaveLength(0)
      // Nothing was sent, but the call is counted as an interrupted one is: its input, estimated.
      expect(snapshot.total).toMatchObject({ inputTokens: inputTokens("Hello there"), outputTokens: 0, estimated: true })
    }).pipe(Effect.provide(model.layer))
  })

  it.effect("waits its scripted latency on the test clock", () => {
    const model = scripted({ reply: () => "done", latency: "2 seconds" })
    return Effect.gen(function*() {
      const fiber = yield* Effect.fork(LanguageModel.generate("go"))
      yield* TestClock.adjust("1999 millis")
      expect(Option.isNone(yield* Fiber.poll(fiber))).toBe(true)
      yield* TestClock.adjust("1 millis")
      expect((yield* Fiber.join(fiber)).text).toBe("done")
    }).pipe(Effect.provide(model.layer))
  })

  it.effect("records every request by default, and none when asked not to, numbering calls either way", () => {
    const recording = scripted({ reply: (_, index) => `answer ${index}` })
    const silent = scripted({ reply: (_, index) => `answer ${index}`, record: false })
    const twice = Effect.zipWith(LanguageModel.generate("one"), LanguageModel.generate("two"), (a, b) => [a.text, b.text])
    return Effect.gen(function*() {
      expect(yield* Effect.provide(twice, recording.layer)).toEqual(["answer 0", "answer 1"])
      expect(recording.calls.map((call) => call.messages[0]!.content)).toEqual(["one", "two"])
      expect(yield* Effect.provide(twice, silent.layer)).toEqual(["answer 0", "answer 1"])
      expect(silent.calls).toHaveLength(0)
    })
  })

  it.effect("passes a scripted failure through as its typed error", () => {
    const model = scripted({
      reply: () => Effect.fail(new LlmError.RateLimited({ provider: "scripted", retryAfter: undefined, detail: "slow down" }))
    })
    return Effect.gen(function*() {
      const error = yield* Effect.flip(LanguageModel.generate("hi"))
      expect(error._tag).toBe("RateLimited")
      expect(error.message).toContain("slow down")
    }).pipe(Effect.provide(model.layer))
  })

  describe("generateObject", () => {
    const Invoice = Schema.Struct({ vendor: Schema.String, total: Schema.Number })

    it.effect("decodes the answer with the schema and asks for JSON matching its JSON Schema", () => {
      const model = scripted({ reply: () => "```json\n{\"vendor\":\"Acme\",\"total\":12.5}\n```" })
      return Effect.gen(function*() {
        const answer = yield* LanguageModel.generateObject(Invoice, "Invoice from Acme, total 12.50")
        expect(answer.value).toEqual({ vendor: "Acme", total: 12.5 })
        expect(answer.attempts).toBe(1)
        const sent = model.calls[0]!
        expect(sent.json?.name).toBe("output")
        expect(sent.json?.schema).toMatchObject({ required: ["vendor", "total"] })
        expect(sent.messages[0]?.content).toContain("JSON Schema")
      }).pipe(Effect.provide(model.layer))
    })

    it.effect("re-asks with the decode error, and meters both calls", () => {
      const answers = [`{"vendor":"Acme","total":"twelve"}`, `{"vendor":"Acme","total":12}`]
      const model = scripted({ reply: (_, index) => answers[index]! })
      const extract = Step.make("extract", { run: () => LanguageModel.generateObject(Invoice, "Invoice from Acme") })
      return Effect.gen(function*() {
        const result = yield* Pipeline.run(Pipeline.make("invoice", { output: extract }))
        expect(result.output.value).toEqual({ vendor: "Acme", total: 12 })
        expect(result.output.attempts).toBe(2)
        expect(model.calls).toHaveLength(2)
        const repair = model.calls[1]!.messages
        expect(repair.at(-2)).toEqual({ role: "assistant", content: answers[0] })
        expect(repair.at(-1)?.content).toContain("Expected number")
        expect(result.usage.total.requests).toBe(2)
        expect(result.output.usage.requests).toBe(2)
        expect(result.usage.total.cost).toBe(result.output.usage.cost)
      }).pipe(Effect.provide(model.layer))
    })

    it.effect("fails with MalformedOutput keeping the raw text after the bound of repairs", () => {
      const model = scripted({ reply: (_, index) => `not json ${index}` })
      return Effect.gen(function*() {
        const error = yield* Effect.flip(
          LanguageModel.generateObject(Invoice, "Invoice from Acme", { maxRepairs: 2 })
        )
        expect(error._tag).toBe("MalformedOutput")
        if (error._tag !== "MalformedOutput") return
        expect(model.calls).toHaveLength(3)
        expect(error.attempts).toBe(3)
        expect(error.text).toBe("not json 2")
        expect(error.message).toContain("3 attempt(s)")
      }).pipe(Effect.provide(model.layer))
    })
  })

  it.effect("streams text deltas and ends with the usage, metered like a call", () => {
    const model = scripted({ reply: () => "One two three four." })
    return Effect.gen(function*() {
      const ledger = yield* Ledger.make()
      const parts = Chunk.toReadonlyArray(
        yield* Stream.runCollect(LanguageModel.stream("Count to four")).pipe(Effect.provideService(Ledger.Ledger, ledger))
      )
      const deltas = parts.flatMap((p) => (p._tag === "TextDelta" ? [p.text] : []))
      expect(deltas.length).toBeGreaterThan(1)
      expect(deltas.join("")).toBe("One two three four.")
      const last = parts.at(-1)!
      expect(last._tag).toBe("Finish")
      if (last._tag !== "Finish") return
      expect(last.response.usage.outputTokens).toBe(Tokenizer.o200k.count("One two three four."))
      const snapshot = yield* ledger.snapshot
      expect(snapshot.total.cost).toBe(last.response.usage.cost)
      expect(snapshot.reserved).toBe(0)
    }).pipe(Effect.provide(model.layer))
  })

  it.effect("refuses a stream over budget before anything is sent", () => {
    const model = scripted({ reply: () => "never" })
    return Effect.gen(function*() {
      const error = yield* Effect.flip(
        Stream.runDrain(LanguageModel.stream("hi")).pipe(
          Effect.provideServiceEffect(Ledger.Ledger, Ledger.make({ budget: Cost.nanos(1) }))
        )
      )
      expect(error._tag).toBe("BudgetExceeded")
      expect(model.calls).toHaveLength(0)
    }).pipe(Effect.provide(model.layer))
  })

  it.effect("opens a `chat {model}` client span under the step with the GenAI attributes and the cost", () => {
    const model = scripted({ reply: () => "fine" })
    const recorder = recordingTracer()
    const ask = Step.make("ask", { run: () => LanguageModel.generate({ messages: [{ role: "user", content: "hi" }], maxTokens: 20 }) })
    return Effect.gen(function*() {
      const result = yield* Pipeline.run(Pipeline.make("p", { output: ask }))
      const [span] = recorder.named("chat test-model")
      expect(span).toBeDefined()
      expect(span!.kind).toBe("client")
      expect(parentName(span!)).toBe("step ask")
      const attributes = Object.fromEntries(span!.attributes)
      expect(attributes).toEqual({
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "scripted",
        "gen_ai.request.model": "test-model",
        "gen_ai.request.max_tokens": 20,
        "gen_ai.output.type": "text",
        "gen_ai.response.model": "test-model",
        "gen_ai.response.finish_reasons": ["stop"],
        "gen_ai.usage.input_tokens": result.output.usage.inputTokens,
        "gen_ai.usage.output_tokens": result.output.usage.outputTokens,
        "trellis.cost_nano_usd": result.output.usage.cost,
        "trellis.usage_estimated": false
      })
      // The deprecated name of the provider is no longer written.
      expect(attributes).not.toHaveProperty("gen_ai.system")
    }).pipe(Effect.provide(model.layer), withTracer(recorder.tracer))
  })

  it.effect("opens no span for the tracer when the application turned tracing off, and still meters the call", () => {
    const model = scripted({ reply: () => "fine" })
    const recorder = recordingTracer()
    const ask = Step.make("ask", { run: () => LanguageModel.generate("hi") })
    return Effect.gen(function*() {
      const result = yield* Pipeline.run(Pipeline.make("p", { output: ask }))
      expect(recorder.spans.filter((span) => span.name.startsWith("chat "))).toHaveLength(0)
      expect(result.output.text).toBe("fine")
      expect(result.usage.byStep["ask"]!.cost).toBe(result.output.usage.cost)
      expect(result.output.usage.cost).toBeGreaterThan(0)
    }).pipe(Effect.withTracerEnabled(false), Effect.provide(model.layer), withTracer(recorder.tracer))
  })

  it.effect("warns once about a model without a price and counts it at $0", () => {
    const model = ScriptedModel.make({ model: "mystery-model-9", reply: () => "hello" })
    const logs = capturingLogger()
    return Effect.gen(function*() {
      const first = yield* LanguageModel.generate("a")
      yield* LanguageModel.generate("b")
      expect(first.usage.cost).toBe(0)
      expect(first.usage.inputTokens).toBeGreaterThan(0)
      const warnings = logs.lines.filter((l) => l.includes("mystery-model-9"))
      expect(warnings).toHaveLength(1)
      expect(warnings[0]).toMatch(/^WARN No price is known/)
    }).pipe(Effect.provide(model.layer), Effect.provide(logs.layer))
  })

  it.effect("under a budget, refuses a model without a price before sending, unless it was given one (even zero)", () => {
    const model = ScriptedModel.make({ model: "mystery-model-9", reply: () => "hello" })
    const ask = Step.make("ask", { run: () => LanguageModel.generate("a") })
    const budgeted = Pipeline.make("budgeted", { output: ask, budget: Cost.dollars(1) })
    return Effect.gen(function*() {
      const error = yield* Effect.flip(Pipeline.run(budgeted))
      expect(error._tag === "StepFailed" && error.error).toBeInstanceOf(LlmError.UnpricedModel)
      expect(error.message).toMatch(/No price is known for model "mystery-model-9".*Pricing\.layer/)
      expect(model.calls).toHaveLength(0)
      // Said to be free: it runs, at $0.
      const free = yield* Pipeline.run(budgeted).pipe(
        Effect.provide(
          Layer.provide(model.layer, Pricing.layer({ overrides: { "mystery-model-9": { inputPerMillion: 0, outputPerMillion: 0 } } }))
        )
      )
      expect(free.usage.total).toMatchObject({ cost: 0, requests: 1 })
      expect(model.calls).toHaveLength(1)
    }).pipe(Effect.provide(model.layer))
  })

  it.effect("fails with Ledger.InvalidUsage, before sending, a call whose worst case cannot be counted (a pricing service of one's own answering NaN)", () => {
    const model = ScriptedModel.make({ model: "broken-price", reply: () => "never sent" })
    const priced = Pricing.make({ overrides: { "broken-price": { inputPerMillion: 1, outputPerMillion: 1 } } })
    const broken: Pricing.Service = { ...priced, worstCase: () => Number.NaN as Cost.Cost }
    const layer = Layer.provide(model.layer, Layer.succeed(Pricing.Pricing, broken))
    return Effect.gen(function*() {
      const ledger = yield* Ledger.make({ budget: Cost.dollars(1) })
      const calls = [
        LanguageModel.generate("hi"),
        LanguageModel.generateObject(Schema.Struct({ a: Schema.Number }), "hi"),
        Stream.runDrain(LanguageModel.stream("hi"))
      ]
      for (const call of calls) {
        const error = yield* Effect.flip(Effect.provideService(call, Ledger.Ledger, ledger))
        expect(error).toBeInstanceOf(Ledger.InvalidUsage)
        expect(error.message).toContain("a worst case of NaN nano-dollars")
      }
      expect(model.calls).toHaveLength(0)
      const snapshot = yield* ledger.snapshot
      expect([snapshot.reserved, snapshot.total]).toEqual([0, Usage.empty])
    }).pipe(Effect.provide(layer))
  })

  it.effect("refuses, before sending or reserving, a request whose maxTokens or temperature cannot be right", () => {
    const model = scripted({ reply: () => "ok" })
    return Effect.gen(function*() {
      const ledger = yield* Ledger.make({ budget: Cost.dollars(1) })
      const ask = (request: Omit<Prompt.Request, "messages">) =>
        Effect.flip(LanguageModel.generate({ messages: [{ role: "user", content: "hi" }], ...request })).pipe(
          Effect.provideService(Ledger.Ledger, ledger)
        )
      for (const maxTokens of [Number.NaN, -1e9, 0, 2.5, 1e12, Infinity]) {
        const error = yield* ask({ maxTokens })
        expect(error).toBeInstanceOf(LlmError.InvalidRequest)
        expect(error.message).toMatch(/maxTokens must be a whole number from 1 to 10000000/)
      }
      const hot = yield* ask({ temperature: Number.NaN })
      expect(hot.message).toMatch(/temperature must be a number from 0 to 2, got NaN/)
      for (const inputMargin of [Number.NaN, -0.5, 11, Infinity]) {
        const margin = ScriptedModel.make({ model: "test-model", reply: () => "ok", options: { inputMargin } })
        const error = yield* ask({}).pipe(Effect.provide(Layer.provide(margin.layer, prices)))
        expect(error.message).toMatch(`inputMargin must be a number from 0 to 10, got ${inputMargin}`)
        expect(margin.calls).toHaveLength(0)
      }
      expect(model.calls).toHaveLength(0)
      const snapshot = yield* ledger.snapshot
      expect([snapshot.reserved, snapshot.total.requests]).toEqual([0, 0])
    }).pipe(Effect.provide(model.layer))
  })

  it.effect("a model that reports more than the call reserved fails the run with BudgetOverrun, its figures kept", () => {
    // 50 times the output the request allowed: the reservation said at most 10 output tokens.
    const model = scripted({ reply: () => ({ text: "long", usage: { inputTokens: 5, outputTokens: 500 } }) })
    const ask = Step.make("ask", { run: () => LanguageModel.generate({ messages: [{ role: "user", content: "hi" }], maxTokens: 10 }) })
    const after = Step.make("after", { after: { ask }, run: () => Effect.succeed("never") })
    return Effect.gen(function*() {
      const error = yield* Effect.flip(Pipeline.run(Pipeline.make("liar", { output: after, budget: Cost.dollars(1) })))
      if (error._tag !== "BudgetOverrun") return expect.unreachable(error.message)
      // Input at 1,000 nano-dollars a token, output at 2,000.
      expect(error).toMatchObject({ step: "ask", reported: 5 * 1000 + 500 * 2000 })
      expect(error.reserved).toBe(reserved(inputTokens("hi")) * 1000 + 10 * 2000)
      expect(error.partial.usage.total.cost).toBe(5 * 1000 + 500 * 2000)
      expect(error.partial.outputs).not.toHaveProperty("after")
    }).pipe(Effect.provide(model.layer))
  })

  it.effect("counts a call that timed out as a request billed for its input, marked estimated", () => {
    const model = scripted({ reply: () => Effect.fail(new LlmError.LlmTimeout({ provider: "scripted", timeout: Duration.seconds(1) })) })
    const ask = Step.make("ask", { run: () => LanguageModel.generate("Hello there") })
    return Effect.gen(function*() {
      const error = yield* Effect.flip(Pipeline.run(Pipeline.make("timeouts", { output: ask, budget: Cost.dollars(1) })))
      if (error._tag !== "StepFailed") return expect.unreachable()
      expect(error.partial.usage.total).toMatchObject({
        requests: 1,
        inputTokens: inputTokens("Hello there"),
        cost: inputTokens("Hello there") * 1000,
        estimated: true
      })
    }).pipe(Effect.provide(model.layer))
  })

  it.effect("fails a pipeline step with the typed error, naming the step", () => {
    const model = scripted({ reply: () => Effect.fail(new LlmError.ServerError({ provider: "scripted", status: 503, detail: "down" })) })
    const ask = Step.make("ask", { run: () => LanguageModel.generate("hi") })
    return Effect.gen(function*() {
      const error = yield* Effect.flip(Pipeline.run(Pipeline.make("p", { output: ask })))
      expect(error).toBeInstanceOf(PipelineError.StepFailed)
      if (!(error instanceof PipelineError.StepFailed)) return
      expect(error.step).toBe("ask")
      expect(error.error).toBeInstanceOf(LlmError.ServerError)
    }).pipe(Effect.provide(model.layer))
  })
  describe("metering", () => {
    const Invoice = Schema.Struct({ vendor: Schema.String, total: Schema.Number })

    it.effect("meters generate, generateObject and stream into the ledger, each settled to its usage", () => {
      const model = scripted({ reply: (request) => (request.json === undefined ? "Some words." : `{"vendor":"Acme","total":3}`) })
      return Effect.gen(function*() {
        const ledger = yield* Ledger.make()
        const text = yield* Effect.provideService(LanguageModel.generate("Say something."), Ledger.Ledger, ledger)
        expect((yield* ledger.snapshot).total).toEqual(text.usage)

        const object = yield* Effect.provideService(
          LanguageModel.generateObject(Invoice, "Invoice from Acme, total 3"),
          Ledger.Ledger,
          ledger
        )
        expect((yield* ledger.snapshot).total).toEqual(Usage.add(text.usage, object.usage))

        const parts = yield* Effect.provideService(Stream.runCollect(LanguageModel.stream("Say more.")), Ledger.Ledger, ledger)
        const finish = Chunk.toReadonlyArray(parts).at(-1)
        if (finish?._tag !== "Finish") return expect.fail("the stream ended without its Finish")
        const snapshot = yield* ledger.snapshot
        expect(snapshot.total).toEqual(Usage.sum([text.usage, object.usage, finish.response.usage]))
        expect(snapshot.total.requests).toBe(3)
        expect(snapshot.reserved).toBe(0)
      }).pipe(Effect.provide(model.layer))
    })

    it.effect("holds the worst case while a call is in flight, a generated one and a streamed one alike", () => {
      const model = scripted({ reply: () => "ok", latency: "1 second" })
      const worstCase = reserved(inputTokens("Wait for it")) * 1000 + 4096 * 2000
      return Effect.gen(function*() {
        const ledger = yield* Ledger.make()
        for (const call of [LanguageModel.generate("Wait for it"), Stream.runDrain(LanguageModel.stream("Wait for it"))]) {
          const fiber = yield* Effect.fork(Effect.provideService(call, Ledger.Ledger, ledger))
          yield* TestClock.adjust("500 millis")
          expect((yield* ledger.snapshot).reserved).toBe(worstCase)
          yield* TestClock.adjust("500 millis")
          yield* Fiber.join(fiber)
          expect((yield* ledger.snapshot).reserved).toBe(0)
        }
        expect((yield* ledger.snapshot).total.requests).toBe(2)
      }).pipe(Effect.provide(model.layer))
    })

    it.effect("settles a failed call to nothing", () => {
      const model = scripted({
        reply: () => Effect.fail(new LlmError.ServerError({ provider: "scripted", status: 500, detail: "down" }))
      })
      return Effect.gen(function*() {
        const ledger = yield* Ledger.make()
        yield* Effect.flip(Effect.provideService(LanguageModel.generate("hi"), Ledger.Ledger, ledger))
        yield* Effect.flip(Effect.provideService(Stream.runDrain(LanguageModel.stream("hi")), Ledger.Ledger, ledger))
        const snapshot = yield* ledger.snapshot
        expect(snapshot.reserved).toBe(0)
        expect(snapshot.total).toEqual(Usage.empty)
      }).pipe(Effect.provide(model.layer))
    })

    it.effect("settles a failed call to the requests its error says it sent, each billable one at its input", () => {
      const sent = { requests: 4, billable: 2 }
      const model = scripted({
        reply: (_, index) =>
          Effect.fail(
            index % 2 === 0
              ? new LlmError.ServerError({ provider: "scripted", status: 503, detail: "down", sent })
              : new LlmError.LlmTimeout({ provider: "scripted", timeout: Duration.seconds(1), sent })
          )
      })
      return Effect.gen(function*() {
        const ledger = yield* Ledger.make()
        const error = yield* Effect.flip(Effect.provideService(LanguageModel.generate("hi"), Ledger.Ledger, ledger))
        expect(error._tag === "ServerError" && error.sent).toEqual(sent)
        yield* Effect.flip(Effect.provideService(Stream.runDrain(LanguageModel.stream("hi")), Ledger.Ledger, ledger))
        const snapshot = yield* ledger.snapshot
        expect(snapshot.reserved).toBe(0)
        // Twice: four requests, two of them billed for their input.
        expect(snapshot.total).toEqual(Usage.make({
          requests: 8,
          inputTokens: 4 * inputTokens("hi"),
          cost: Cost.nanos(4 * inputTokens("hi") * 1000),
          estimated: true
        }))
      }).pipe(Effect.provide(model.layer))
    })

    it.effect("takes a count of requests on an error that cannot be right as unsaid", () => {
      const bad = [
        { requests: Number.NaN, billable: 0 },
        { requests: 2, billable: 3 },
        { requests: -1, billable: 0 },
        { requests: 1e9, billable: 1e9 },
        { requests: 1.5, billable: 1 }
      ]
      const model = scripted({
        reply: (_, index) =>
          Effect.fail(new LlmError.LlmTimeout({ provider: "scripted", timeout: Duration.seconds(1), sent: bad[index] }))
      })
      return Effect.gen(function*() {
        const ledger = yield* Ledger.make()
        for (const _ of bad) yield* Effect.flip(Effect.provideService(LanguageModel.generate("hi"), Ledger.Ledger, ledger))
        // As a timeout that says nothing: one request each, billed for its input.
        expect((yield* ledger.snapshot).total).toEqual(Usage.make({
          requests: bad.length,
          inputTokens: bad.length * inputTokens("hi"),
          cost: Cost.nanos(bad.length * inputTokens("hi") * 1000),
          estimated: true
        }))
      }).pipe(Effect.provide(model.layer))
    })

    it.effect("counts the requests before an answer as the provider says they may have been billed", () => {
      const retried: Provider.Provider = {
        name: "retried",
        model: "test-model",
        generate: () =>
          Effect.succeed({
            text: "ok",
            toolCalls: [],
            finishReason: "stop",
            model: "test-model",
            usage: { inputTokens: 5, outputTokens: 1 },
            requests: 3,
            billable: 1
          }),
        stream: () => Stream.die("not used")
      }
      return Effect.gen(function*() {
        const model = yield* LanguageModel.make(retried)
        const response = yield* model.generate("hi")
        expect(response.usage).toEqual(Usage.make({
          requests: 3,
          inputTokens: 5 + inputTokens("hi"),
          outputTokens: 1,
          cost: Cost.nanos((5 + inputTokens("hi")) * 1000 + 2000),
          estimated: true
        }))
      }).pipe(Effect.provide(prices))
    })

    it.effect("settles a stream stopped before its end with what had arrived, estimated", () => {
      const model = scripted({ reply: () => "One two three four." })
      return Effect.gen(function*() {
        const ledger = yield* Ledger.make()
        yield* Stream.runDrain(Stream.take(LanguageModel.stream("Count to four"), 2)).pipe(
          Effect.provideService(Ledger.Ledger, ledger)
        )
        const snapshot = yield* ledger.snapshot
        const outputTokens = Tokenizer.o200k.count("One two ")
        expect(snapshot.reserved).toBe(0)
        expect(snapshot.total).toMatchObject({
          inputTokens: inputTokens("Count to four"),
          outputTokens,
          requests: 1,
          estimated: true,
          cost: inputTokens("Count to four") * 1000 + outputTokens * 2000
        })
      }).pipe(Effect.provide(model.layer))
    })

    it.effect("counts with the Tokenizer service when one is provided: the reservation and an unreported usage", () => {
      // One token per character, far from o200k's counts, so the figures show which tokenizer counted them.
      const perCharacter = Tokenizer.layer((text) => text.length)
      const model = ScriptedModel.make({ model: "test-model", reply: () => ({ text: "Fine.", usage: null }) })
      const prompt = "Hello there"
      const input = 3 + 3 + prompt.length // the primer, the markup of one message, its characters
      const worstCase = reserved(input) * 1000 + 10 * 2000
      const ask = LanguageModel.generate({ messages: [{ role: "user", content: prompt }], maxTokens: 10 })
      return Effect.gen(function*() {
        const refused = yield* Effect.flip(
          Effect.provideServiceEffect(ask, Ledger.Ledger, Ledger.make({ budget: Cost.nanos(worstCase - 1) }))
        )
        expect(refused).toBeInstanceOf(Ledger.BudgetExceeded)
        if (!(refused instanceof Ledger.BudgetExceeded)) return
        expect(refused.requested).toBe(worstCase)

        const response = yield* Effect.provideServiceEffect(ask, Ledger.Ledger, Ledger.make({ budget: Cost.nanos(worstCase) }))
        expect(response.usage).toMatchObject({ inputTokens: input, outputTokens: "Fine.".length, estimated: true })
        expect(model.calls).toHaveLength(1)
      }).pipe(Effect.provide(Layer.provide(model.layer, Layer.merge(prices, perCharacter))))
    })

    it.effect("counts with the provider's own tokenizer when it has one, unless the application provides another", () => {
      const provider: Provider.Provider = {
        name: "counting",
        model: "test-model",
        // Two tokens per character: the provider's own count, far from o200k's.
        tokenizer: Tokenizer.make((text) => 2 * text.length),
        generate: () => Effect.succeed({ text: "Fine.", toolCalls: [], finishReason: "stop", model: "test-model", usage: undefined }),
        stream: () => Stream.empty
      }
      return Effect.gen(function*() {
        const own = yield* Effect.flatMap(LanguageModel.make(provider), (model) => model.generate("Hello there"))
        expect(own.usage).toMatchObject({ inputTokens: 3 + 3 + 2 * "Hello there".length, outputTokens: 10, estimated: true })
        const overridden = yield* Effect.flatMap(LanguageModel.make(provider), (model) => model.generate("Hello there")).pipe(
          Effect.provide(Tokenizer.layer((text) => text.length))
        )
        expect(overridden.usage).toMatchObject({ inputTokens: 3 + 3 + "Hello there".length, outputTokens: 5 })
      }).pipe(Effect.provide(prices))
    })
  })

  it.effect("ends the span of a refused call with its BudgetExceeded, and leaves the caller's span current after each call", () => {
    const model = scripted({
      reply: (request) =>
        request.messages[0]!.content === "fail"
          ? Effect.fail(new LlmError.ServerError({ provider: "scripted", status: 500, detail: "down" }))
          : "ok"
    })
    const recorder = recordingTracer()
    const currentName = Effect.map(Effect.orDie(Effect.currentSpan), (span) => span.name)
    return Effect.gen(function*() {
      const ledger = yield* Ledger.make({ budget: Cost.nanos(reserved(inputTokens("hi")) * 1000 + 16 * 2000) })
      const ask = (content: string, maxTokens: number) =>
        Effect.provideService(
          LanguageModel.generate({ messages: [{ role: "user", content }], maxTokens }),
          Ledger.Ledger,
          ledger
        )
      yield* ask("hi", 16)
      expect(yield* currentName).toBe("caller")
      const refused = yield* Effect.flip(ask("hi", 17))
      expect(refused).toBeInstanceOf(Ledger.BudgetExceeded)
      expect(yield* currentName).toBe("caller")
      const failed = yield* Effect.flip(ask("fail", 1))
      expect(failed._tag).toBe("ServerError")
      expect(yield* currentName).toBe("caller")
      expect(model.calls).toHaveLength(2)
      expect((yield* ledger.snapshot).reserved).toBe(0)
    }).pipe(
      Effect.withSpan("caller"),
      Effect.provide(model.layer),
      withTracer(recorder.tracer),
      Effect.tap(() => {
        const spans = recorder.spans.filter((span) => span.name.startsWith("chat "))
        expect(spans.map(parentName)).toEqual(["caller", "caller", "caller"])
        const [succeeded, refused, failed] = spans.map((span) => span.status)
        expect(succeeded?._tag === "Ended" && Exit.isSuccess(succeeded.exit)).toBe(true)
        if (refused?._tag !== "Ended") return expect.fail("the refused call's span was not ended")
        expect(Exit.isFailure(refused.exit) && Cause.failureOption(refused.exit.cause)).toEqual(
          Option.some(expect.any(Ledger.BudgetExceeded))
        )
        expect(Object.fromEntries(spans[1]!.attributes)).toMatchObject({
          "gen_ai.request.max_tokens": 17,
          "error.type": "BudgetExceeded"
        })
        expect(failed?._tag === "Ended" && Exit.isFailure(failed.exit)).toBe(true)
        expect(spans[2]!.attributes.get("error.type")).toBe("ServerError")
        expect(spans[0]!.attributes.has("error.type")).toBe(false)
      })
    )
  })

  it.effect("keeps the priced usage of an answer that arrived when the call is interrupted while it is priced", () => {
    const pricing = Pricing.make({ overrides: { "test-model": { inputPerMillion: 1, outputPerMillion: 2 } } })
    return Effect.gen(function*() {
      const pricingStarted = yield* Deferred.make<void>()
      const priced = yield* Deferred.make<void>()
      // Prices as the real service does, once the test has interrupted the call.
      const slowPricing = Layer.succeed(Pricing.Pricing, {
        ...pricing,
        cost: (model, usage) =>
          Effect.zipRight(
            Effect.zipRight(Deferred.succeed(pricingStarted, undefined), Deferred.await(priced)),
            pricing.cost(model, usage)
          )
      })
      const model = ScriptedModel.make({ model: "test-model", reply: () => "Paris." })
      const ledger = yield* Ledger.make()
      const fiber = yield* LanguageModel.generate("Capital of France?").pipe(
        Effect.provideService(Ledger.Ledger, ledger),
        Effect.provide(Layer.provide(model.layer, slowPricing)),
        Effect.fork
      )
      yield* Deferred.await(pricingStarted)
      yield* Fiber.interruptFork(fiber)
      yield* Deferred.succeed(priced, undefined)
      const exit = yield* Fiber.await(fiber)
      expect(Exit.isInterrupted(exit)).toBe(true)
      const snapshot = yield* ledger.snapshot
      const input = inputTokens("Capital of France?")
      const output = Tokenizer.o200k.count("Paris.")
      expect(snapshot.reserved).toBe(0)
      expect(snapshot.total).toMatchObject({ inputTokens: input, outputTokens: output, estimated: false })
      expect(snapshot.total.cost).toBe(input * 1000 + output * 2000)
    })
  })

  it.effect("opens a `chat {model}` span under the caller's span for every call, and runs the provider inside it", () => {
    const seen: Array<string> = []
    const model = scripted({
      // Calls in order: generate, generateObject's two attempts (the first answer does not decode), stream.
      reply: (_, index) =>
        Effect.as(
          Effect.tap(Effect.orDie(Effect.currentSpan), (span) => Effect.sync(() => seen.push(span.name))),
          index === 1 ? `{"vendor":"Acme"}` : index === 2 ? `{"vendor":"Acme","total":1}` : "Some words."
        )
    })
    const recorder = recordingTracer()
    const Invoice = Schema.Struct({ vendor: Schema.String, total: Schema.Number })
    return Effect.gen(function*() {
      yield* LanguageModel.generate("one")
      yield* LanguageModel.generateObject(Invoice, "two")
      yield* Stream.runDrain(LanguageModel.stream("three"))
    }).pipe(
      Effect.withSpan("caller"),
      Effect.provide(model.layer),
      withTracer(recorder.tracer),
      Effect.tap(() => {
        const spans = recorder.named("chat test-model")
        expect(spans).toHaveLength(4)
        expect(spans.map(parentName)).toEqual(["caller", "caller", "caller", "caller"])
        expect(spans.every((span) => span.status._tag === "Ended")).toBe(true)
        expect(seen).toEqual(["chat test-model", "chat test-model", "chat test-model", "chat test-model"])
        expect(spans.map((span) => span.attributes.get("gen_ai.output.type"))).toEqual(["text", "json", "json", "text"])
        const streamed = Object.fromEntries(spans[3]!.attributes)
        expect(streamed).toMatchObject({
          "gen_ai.request.stream": true,
          "gen_ai.request.model": "test-model",
          "gen_ai.response.finish_reasons": ["stop"]
        })
        expect(streamed["trellis.cost_nano_usd"]).toBeGreaterThan(0)
      })
    )
  })

  it.effect("names the error that ended a stream in its span's error.type", () => {
    const model = scripted({
      reply: () => Effect.fail(new LlmError.RateLimited({ provider: "scripted", retryAfter: undefined, detail: "busy" }))
    })
    const recorder = recordingTracer()
    return Effect.gen(function*() {
      const error = yield* Effect.flip(Stream.runDrain(LanguageModel.stream("hi")))
      expect(error._tag).toBe("RateLimited")
      const [span] = recorder.named("chat test-model")
      expect(span!.kind).toBe("client")
      expect(Object.fromEntries(span!.attributes)).toMatchObject({
        "gen_ai.request.stream": true,
        "error.type": "RateLimited"
      })
    }).pipe(Effect.provide(model.layer), withTracer(recorder.tracer))
  })

  describe("checks the figures every provider reports", () => {
    const prompt = "Capital of France?"
    const answer = "Paris."
    // What a call whose reported usage was refused is settled to: its tokens counted here, estimated.
    const counted = () => {
      const input = inputTokens(prompt)
      const output = Tokenizer.o200k.count(answer)
      return { requests: 1, inputTokens: input, outputTokens: output, cost: input * 1000 + output * 2000, estimated: true }
    }
    const worstCase = reserved(inputTokens(prompt)) * 1000 + 50 * 2000
    const ask = { messages: [{ role: "user" as const, content: prompt }], maxTokens: 50 }

    const bad: Array<readonly [unknown, string]> = [
      [Number.NaN, "NaN"],
      [-1, "-1"],
      [1.5, "1.5"],
      ["12", `"12"`],
      [1e15, "1000000000000000"],
      [Infinity, "Infinity"]
    ]
    for (const field of ["inputTokens", "outputTokens"] as const) {
      for (const [value, shown] of bad) {
        it.effect(`fails with MalformedOutput when ${field} is ${shown}, counts the request, and holds the next call to the budget`, () => {
          const model = scripted({
            reply: () => ({ text: answer, usage: { inputTokens: 7, outputTokens: 2, [field]: value as number } })
          })
          return Effect.gen(function*() {
            // Room for this call's worst case, and for the next one's only if this one had cost nothing.
            const ledger = yield* Ledger.make({ budget: Cost.nanos(counted().cost + worstCase - 1) })
            const error = yield* Effect.flip(
              Effect.provideService(LanguageModel.generate(ask), Ledger.Ledger, ledger)
            )
            expect(error).toBeInstanceOf(LlmError.MalformedOutput)
            expect(error.message).toBe(
              `scripted gave an answer that could not be used after 1 attempt(s): the usage reported cannot be right: ` +
                `${field} is ${shown}, not a whole number from 0 to 1000000000`
            )
            expect(error._tag === "MalformedOutput" && error.text).toBe(answer)
            const snapshot = yield* ledger.snapshot
            expect(snapshot.reserved).toBe(0)
            expect(snapshot.total).toMatchObject(counted())
            const next = yield* Effect.flip(
              Effect.provideService(LanguageModel.generate(ask), Ledger.Ledger, ledger)
            )
            expect(next._tag).toBe("BudgetExceeded")
            expect(model.calls).toHaveLength(1)
          }).pipe(Effect.provide(model.layer))
        })
      }
    }

    it.effect("fails a stream whose usage cannot be right with MalformedOutput, counting what arrived", () => {
      const model = scripted({ reply: () => ({ text: answer, usage: { inputTokens: -5, outputTokens: 2 } }) })
      return Effect.gen(function*() {
        const ledger = yield* Ledger.make({ budget: Cost.dollars(1) })
        const seen: Array<string> = []
        const error = yield* Effect.flip(
          Stream.runForEach(LanguageModel.stream(ask), (part) =>
            Effect.sync(() => part._tag === "TextDelta" && seen.push(part.text))).pipe(
              Effect.provideService(Ledger.Ledger, ledger)
            )
        )
        expect(error._tag).toBe("MalformedOutput")
        expect(error.message).toContain("inputTokens is -5")
        expect(seen.join("")).toBe(answer)
        const snapshot = yield* ledger.snapshot
        expect(snapshot.reserved).toBe(0)
        expect(snapshot.total).toMatchObject(counted())
      }).pipe(Effect.provide(model.layer))
    })

    it.effect("checks a provider written by hand: cached or reasoning tokens past their total, bad counts of requests", () => {
      const cases: Array<readonly [Partial<Provider.Completion>, string]> = [
        [{ usage: { inputTokens: 5, outputTokens: 2, cachedInputTokens: 6 } }, "cachedInputTokens (6) is more than inputTokens (5)"],
        [{ usage: { inputTokens: 5, outputTokens: 2, reasoningTokens: 3 } }, "reasoningTokens (3) is more than outputTokens (2)"],
        [{ usage: { inputTokens: 5, outputTokens: 2, cachedInputTokens: -1 } }, "cachedInputTokens is -1"],
        [{ usage: "lots" as unknown as Provider.Completion["usage"] }, `usage is "lots", not token counts`],
        [{ usage: { outputTokens: 2 } as Provider.Completion["usage"] }, "inputTokens is undefined"],
        [{ requests: 0 }, "requests is 0, not a whole number from 1 to 10000"],
        [{ requests: Number.NaN }, "requests is NaN"],
        [{ requests: 2.5 }, "requests is 2.5"],
        [{ requests: 1e9 }, "requests is 1000000000"],
        [{ requests: 2, billable: 2 }, "billable is 2, not a whole number from 0 to 1 (requests - 1)"],
        [{ billable: -1 }, "billable is -1"]
      ]
      let next = 0
      const handwritten: Provider.Provider = {
        name: "handwritten",
        model: "test-model",
        generate: () =>
          Effect.sync(() => ({
            text: answer,
            toolCalls: [],
            finishReason: "stop" as const,
            model: "test-model",
            usage: { inputTokens: 7, outputTokens: 2 },
            ...cases[next++]![0]
          })),
        stream: () => Stream.die("not used")
      }
      return Effect.gen(function*() {
        const model = yield* LanguageModel.make(handwritten)
        const ledger = yield* Ledger.make({ budget: Cost.dollars(1) })
        for (const [, detail] of cases) {
          const error = yield* Effect.flip(Effect.provideService(model.generate(ask), Ledger.Ledger, ledger))
          expect(error._tag).toBe("MalformedOutput")
          expect(error.message).toContain(`handwritten gave an answer that could not be used`)
          expect(error.message).toContain(detail)
        }
        const snapshot = yield* ledger.snapshot
        expect(snapshot.reserved).toBe(0)
        // Each answer counted once, estimated; a bad count of requests is counted as the one that answered.
        expect(snapshot.total).toMatchObject({
          requests: cases.length,
          inputTokens: cases.length * counted().inputTokens,
          cost: cases.length * counted().cost,
          estimated: true
        })
      }).pipe(Effect.provide(prices))
    })

    it.effect("takes reported figures as they are when they can be right, a missing cached or reasoning count as 0", () => {
      const model = scripted({
        reply: () => ({ text: answer, usage: { inputTokens: 3, outputTokens: 1_000_000_000, cachedInputTokens: 0 } })
      })
      return Effect.gen(function*() {
        const response = yield* LanguageModel.generate(prompt)
        expect(response.usage).toMatchObject({ inputTokens: 3, outputTokens: 1_000_000_000, estimated: false })
      }).pipe(Effect.provide(model.layer))
    })

    it.effect("counts here a zero that cannot be right (input for a prompt, output for an answer), marked estimated", () => {
      const model = scripted({
        reply: (request) =>
          request.messages.at(-1)?.content === "no input"
            ? { text: answer, usage: { inputTokens: 0, outputTokens: 7 } }
            : { text: answer, usage: { inputTokens: 12, outputTokens: 0 } }
      })
      return Effect.gen(function*() {
        const input = Tokenizer.o200k.countMessages([{ role: "user", content: "no input" }])
        const noInput = yield* LanguageModel.generate("no input")
        expect(noInput.usage).toMatchObject({ inputTokens: input, outputTokens: 7, estimated: true })
        expect(noInput.usage.cost).toBeGreaterThan(0)
        const noOutput = yield* LanguageModel.generate("no output")
        expect(noOutput.usage).toMatchObject({ inputTokens: 12, outputTokens: Tokenizer.o200k.count(answer), estimated: true })
      }).pipe(Effect.provide(model.layer))
    })
  })
})
