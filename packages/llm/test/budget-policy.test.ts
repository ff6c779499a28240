import { describe, expect, it } from "@effect/vitest"
import { Cost, type Event, Pipeline, Step } from "@trellis/core"
import { Effect, Fiber, Layer, Logger, Schema, Stream, TestClock, TestContext } from "effect"
import * as fc from "fast-check"
import { LanguageModel, Pricing, type Prompt, type Provider, ScriptedModel, Tokenizer } from "../src/index.js"
import { capturingLogger } from "./support.js"

// One dollar per million input tokens and two per million output tokens: 1,000 and 2,000 nano-dollars a token.
const prices = Pricing.layer({ overrides: { "test-model": { inputPerMillion: 1, outputPerMillion: 2 } } })

/** What the local count makes of a request: its messages and the schema of its structured output. */
const countedHere = (request: Prompt.ResolvedRequest) =>
  Tokenizer.o200k.countMessages(
    request.messages,
    request.json === undefined ? [] : [request.json.name + JSON.stringify(request.json.schema)]
  )

/**
 * A server that counts input as `factor` times the local count (another tokenizer, its own framing) and answers
 * with `outputTokens` tokens, as it reports them.
 */
const server = (factor: number, outputTokens = 10, text = "An answer.") => {
  const model = ScriptedModel.make({
    model: "test-model",
    reply: (request) => ({
      text,
      usage: { inputTokens: Math.ceil(countedHere(request) * factor), outputTokens }
    })
  })
  return { ...model, layer: Layer.provide(model.layer, prices) }
}

const document = "The quarterly report shows revenue growth across all regions, with costs held flat. ".repeat(8)

/** A chain of `n` steps, each asking the model once with at most `maxTokens` output tokens. */
const chain = (n: number, maxTokens: number) => {
  let last: Step.Any | undefined
  for (let i = 0; i < n; i++) {
    const after: Record<string, Step.Any> = last === undefined ? {} : { last }
    last = Step.make(`ask${i}`, {
      after,
      run: () => LanguageModel.generate({ messages: [{ role: "user", content: `${i}: ${document}` }], maxTokens })
    })
  }
  return last!
}

const runCollecting = (pipeline: Pipeline.Any) =>
  Effect.gen(function*() {
    const events: Array<Event.Event> = []
    const exit = yield* Effect.exit(Pipeline.run(pipeline, { onEvent: (event) => void events.push(event) }))
    return { exit, events, exceeded: events.filter((event) => event._tag === "ReservationExceeded") }
  })

describe("Budgets and servers that count otherwise", () => {
  it.effect("a server counting 40% more completes under a budget; after its first call, reservations allow for it", () => {
    const model = server(1.4)
    const log = capturingLogger()
    return Effect.gen(function*() {
      const { events, exceeded, exit } = yield* runCollecting(
        Pipeline.make("honest", { output: chain(4, 20), budget: Cost.dollars(0.01) })
      )
      expect(exit._tag).toBe("Success")
      // The first call cost more than it reserved; the calibrated ones after it did not.
      expect(exceeded).toHaveLength(1)
      expect(exceeded[0]).toMatchObject({ step: "ask0" })
      expect(events.filter((event) => event._tag === "UsageRecorded")).toHaveLength(4)
      // Warned once for the model, saying what differed.
      const warnings = log.lines.filter((line) => line.startsWith("WARN"))
      expect(warnings).toHaveLength(1)
      expect(warnings[0]).toMatch(/A call of test-model cost .* where .* was reserved: its server counts \d+ input tokens/)
    }).pipe(Effect.provide(Layer.merge(model.layer, log.layer)))
  })

  it.effect("without calibration each of those calls would have passed its reservation", () => {
    // The same server, but each call on a model service of its own: nothing is learned between them.
    const log = capturingLogger()
    const ask = (i: number) =>
      LanguageModel.generate({ messages: [{ role: "user", content: `${i}: ${document}` }], maxTokens: 20 }).pipe(
        Effect.provide(server(1.4).layer)
      )
    const a = Step.make("a", { run: () => ask(0) })
    const b = Step.make("b", { after: { a }, run: () => ask(1) })
    return Effect.gen(function*() {
      const { exceeded, exit } = yield* runCollecting(Pipeline.make("fresh", { output: b, budget: Cost.dollars(0.01) }))
      expect(exit._tag).toBe("Success")
      expect(exceeded).toHaveLength(2)
    }).pipe(Effect.provide(log.layer))
  })

  it.effect("a server adding a preamble of its own is learned as tokens added, not as a ratio from a one-word call", () => {
    // 3,000 tokens of its own on every call: a ratio of hundreds on "hi", a few percent on a long prompt.
    const model = ScriptedModel.make({
      model: "test-model",
      reply: (request) => ({ text: "ok", usage: { inputTokens: countedHere(request) + 3000, outputTokens: 1 } })
    })
    const long = document.repeat(20)
    const tiny = Step.make("tiny", { run: () => LanguageModel.generate({ messages: [{ role: "user", content: "hi" }], maxTokens: 10 }) })
    const big = Step.make("big", {
      after: { tiny },
      run: () => LanguageModel.generate({ messages: [{ role: "user", content: long }], maxTokens: 10 })
    })
    return Effect.gen(function*() {
      const bigCall = (Tokenizer.o200k.countMessages([{ role: "user", content: long }]) + 3000) * 1000 + 2000
      // Room for the tiny call and twice what the long one costs: a ratio learned from "hi" would reserve far more.
      const { exceeded, exit } = yield* runCollecting(
        Pipeline.make("preamble", { output: big, budget: Cost.nanos(2 * bigCall + 3_100_000) })
      )
      expect(exit._tag).toBe("Success")
      expect(exceeded.map((event) => event.step)).toEqual(["tiny"])
    }).pipe(Effect.provide(Layer.provide(model.layer, prices)))
  })

  it.effect("refuses a number of repairs that would never end, and a request's unknown key, before anything is sent", () => {
    const model = server(1)
    const Answer = Schema.Struct({ verdict: Schema.String })
    return Effect.gen(function*() {
      for (const maxRepairs of [Number.NaN, Infinity, -1, 1.5]) {
        const error = yield* Effect.flip(LanguageModel.generateObject(Answer, "Approve?", { maxRepairs }))
        expect(error).toMatchObject({ _tag: "InvalidRequest" })
        expect(error.message).toContain("maxRepairs must be a whole number from 0 to 100")
      }
      // A request's key a TypeScript caller could not write is refused too: `max_tokens` would leave 4096 reserved.
      const misspelled = { messages: [{ role: "user", content: "hi" }], max_tokens: 5 } as never
      const refused = yield* Effect.flip(LanguageModel.generate(misspelled))
      expect(refused.message).toContain(`unknown option "max_tokens" (did you mean "maxTokens"?)`)
      const streamed = yield* Effect.flip(Stream.runDrain(LanguageModel.stream(misspelled)))
      expect(streamed).toMatchObject({ _tag: "InvalidRequest" })
      expect(model.calls).toHaveLength(0)
    }).pipe(Effect.provide(model.layer))
  })

  it.effect("reserves for the schema a server counts beside the instruction that repeats it", () => {
    const Answer = Schema.Struct({ verdict: Schema.Literal("approve", "reject"), reasons: Schema.Array(Schema.String) })
    const text = `{"verdict":"approve","reasons":[]}`
    const outputTokens = Tokenizer.o200k.count(text)
    // Counts exactly what was sent: the messages (the instruction with the schema) and response_format's schema.
    const model = server(1, outputTokens, text)
    const decide = Step.make("decide", {
      run: () => LanguageModel.generateObject(Answer, { messages: [{ role: "user", content: "Approve?" }], maxTokens: outputTokens })
    })
    return Effect.gen(function*() {
      const { exceeded, exit } = yield* runCollecting(Pipeline.make("schema", { output: decide, budget: Cost.dollars(1) }))
      expect(exit._tag).toBe("Success")
      expect(exceeded).toEqual([])
      expect(model.calls[0]?.json?.schema).toBeDefined()
    }).pipe(Effect.provide(model.layer))
  })

  it.effect("output past the call's maxTokens is a lie: the run fails as Implausible, with money left", () => {
    const model = server(1, 500)
    const log = capturingLogger()
    return Effect.gen(function*() {
      const { events, exit } = yield* runCollecting(Pipeline.make("liar", { output: chain(3, 20), budget: Cost.dollars(1) }))
      expect(exit._tag).toBe("Failure")
      const error = exit._tag === "Failure" ? exit.cause : undefined
      const failure = error?._tag === "Fail" ? error.error : undefined
      expect(failure).toMatchObject({ _tag: "BudgetOverrun", reason: "Implausible", step: "ask0" })
      expect(String((failure as Error).message)).toContain("500 output tokens were reported, past the call's maxTokens of 20")
      // Recorded as reported; nothing more was sent.
      expect(model.calls).toHaveLength(1)
      expect(events.filter((event) => event._tag === "UsageRecorded")).toMatchObject([{ usage: { outputTokens: 500 } }])
      expect(log.lines.some((line) => line.startsWith("WARN") && line.includes("cannot be right"))).toBe(true)
    }).pipe(Effect.provide(Layer.merge(model.layer, log.layer)))
  })

  it.effect("a streamed answer whose output passes the limit is a lie too", () => {
    const model = server(1, 500)
    const streams = Step.make("streams", {
      run: () =>
        Stream.runDrain(LanguageModel.stream({ messages: [{ role: "user", content: document }], maxTokens: 20 }))
    })
    return Effect.gen(function*() {
      const { exit } = yield* runCollecting(Pipeline.make("streamed", { output: streams, budget: Cost.dollars(1) }))
      const failure = exit._tag === "Failure" && exit.cause._tag === "Fail" ? exit.cause.error : undefined
      expect(failure).toMatchObject({ _tag: "BudgetOverrun", reason: "Implausible", step: "streams" })
    }).pipe(Effect.provide(model.layer))
  })

  it.effect("a stream that finishes twice fails, counting both finishes", () => {
    const done = (outputTokens: number) => ({
      _tag: "Done" as const,
      completion: { text: "ok", toolCalls: [], finishReason: "stop" as const, model: "test-model", usage: { inputTokens: 10, outputTokens } }
    })
    const provider: Provider.Provider = {
      name: "twice",
      model: "test-model",
      generate: () => Effect.die("not used"),
      stream: () => Stream.make({ _tag: "Delta" as const, text: "ok" }, done(100), done(1))
    }
    const streams = Step.make("streams", {
      run: () => Effect.flatMap(LanguageModel.make(provider), (model) => Stream.runDrain(model.stream("hi")))
    })
    return Effect.gen(function*() {
      const { events, exit } = yield* runCollecting(Pipeline.make("twice", { output: streams, budget: Cost.dollars(1) }))
      expect(exit._tag).toBe("Failure")
      const recorded = events.filter((event) => event._tag === "UsageRecorded")
      expect(recorded).toMatchObject([{ usage: { outputTokens: 101, inputTokens: 20 } }])
    }).pipe(Effect.provide(prices))
  })

  it.effect("input past what any tokenizer could count for what was sent is a lie", () => {
    const model = server(1_000)
    return Effect.gen(function*() {
      const { exit } = yield* runCollecting(Pipeline.make("liar", { output: chain(1, 20), budget: Cost.dollars(100) }))
      const failure = exit._tag === "Failure" && exit.cause._tag === "Fail" ? exit.cause.error : undefined
      expect(failure).toMatchObject({ _tag: "BudgetOverrun", reason: "Implausible" })
      expect(String((failure as Error).message)).toMatch(/input tokens were reported, past the \d+ that any tokenizer could count/)
    }).pipe(Effect.provide(model.layer))
  })
})

/** A server of the property: honest (a counting factor, output within the limit) or lying in one of two ways. */
type Behaviour =
  | { readonly _tag: "Honest"; readonly factor: number }
  | { readonly _tag: "OutputPastLimit" }
  | { readonly _tag: "InputPastAnyTokenizer" }

const behaviour: fc.Arbitrary<Behaviour> = fc.oneof(
  { weight: 3, arbitrary: fc.double({ min: 0.6, max: 1.4, noNaN: true }).map((factor) => ({ _tag: "Honest", factor }) as const) },
  fc.constant({ _tag: "OutputPastLimit" } as const),
  fc.constant({ _tag: "InputPastAnyTokenizer" } as const)
)

describe("The budget's guarantee, over random honest and lying servers", () => {
  it("a lie always fails the run as Implausible; an honest server never does, and a completed run is within its budget", () =>
    fc.assert(
      fc.asyncProperty(
        behaviour,
        fc.integer({ min: 1, max: 6 }),
        fc.integer({ min: 1, max: 6 }),
        fc.integer({ min: 200_000, max: 3_000_000 }),
        fc.integer({ min: 5, max: 60 }),
        (server, width, calls, budget, maxTokens) => {
          let sent = 0
          const model = ScriptedModel.make({
            model: "test-model",
            latency: (request) => `${(request.messages[0]!.content.length % 7) * 10} millis`,
            reply: (request) => {
              sent++
              const counted = countedHere(request)
              const outputTokens = Math.min(maxTokens, 8)
              switch (server._tag) {
                case "Honest":
                  return { text: "ok", usage: { inputTokens: Math.ceil(counted * server.factor), outputTokens } }
                case "OutputPastLimit":
                  return { text: "ok", usage: { inputTokens: counted, outputTokens: maxTokens + 1 } }
                case "InputPastAnyTokenizer":
                  return { text: "ok", usage: { inputTokens: counted * 100 + 10_000, outputTokens } }
              }
            }
          })
          // `width` parallel steps, each making `calls` calls one after another.
          const steps = Array.from({ length: width }, (_, w) =>
            Step.make(`w${w}`, {
              run: () =>
                Effect.forEach(Array.from({ length: calls }, (_, c) => c), (c) =>
                  LanguageModel.generate({ messages: [{ role: "user", content: `${w}.${c} ${document}` }], maxTokens }))
            }))
          const join = Step.make("join", { after: Object.fromEntries(steps.map((s) => [s.name, s])), run: () => Effect.void })
          const pipeline = Pipeline.make("random", { output: join, budget: Cost.nanos(budget) })
          return Effect.gen(function*() {
            // What calls cost beyond their reservations: the most the spend may pass the budget by.
            let excess = 0
            const onEvent = (event: Event.Event) => {
              if (event._tag === "ReservationExceeded") excess += event.cost - event.reserved
            }
            const fiber = yield* Effect.fork(Effect.either(Pipeline.run(pipeline, { onEvent })))
            yield* TestClock.adjust("1 minute")
            const outcome = yield* Fiber.join(fiber)
            const spent = outcome._tag === "Right" ? outcome.right.usage.total.cost : outcome.left.partial?.usage.total.cost
            if (server._tag === "Honest") expect(spent).toBeLessThanOrEqual(budget + excess)
            if (outcome._tag === "Right") {
              expect(server._tag).toBe("Honest")
              expect(outcome.right.usage.total.cost).toBeLessThanOrEqual(budget)
              expect(outcome.right.usage.total.requests).toBe(sent)
              return
            }
            const error = outcome.left
            if (server._tag === "Honest") {
              // Refused before sending, or honest differences that took the spend past the budget.
              expect(error._tag === "BudgetExceeded" || (error._tag === "BudgetOverrun" && error.reason === "OverBudget"))
                .toBe(true)
            } else if (sent > 0) {
              expect(error).toMatchObject({ _tag: "BudgetOverrun", reason: "Implausible" })
            }
            // Every request sent is in the error's usage.
            expect(error.partial?.usage.total.requests).toBe(sent)
          }).pipe(
            Effect.provide(Layer.provide(model.layer, prices)),
            Effect.provide(Logger.remove(Logger.defaultLogger)),
            Effect.provide(TestContext.TestContext),
            Effect.runPromise
          )
        }
      ),
      { numRuns: 150 }
    ), 120_000)
})
