import { describe, expect, it } from "@effect/vitest"
import { Cost, ForEach, Loop, Pipeline, type Result, Step, SubPipeline } from "@trellis/core"
import { Durable } from "@trellis/durable"
import type { WorkflowEngine } from "@effect/workflow/WorkflowEngine"
import { Data, Deferred, Effect, Either, Fiber, Layer, Option, Schema } from "effect"
import * as path from "node:path"
import { paidCall, storeWith, tempDir } from "./utils.js"

const dir = tempDir()
let files = 0
const freshFile = () => path.join(dir, `parts-${++files}.db`)

/** Runs `id` until `entered` is completed, then tears its runtime down, as a crash would. */
type Runnable = Durable.Durable<any, any, Durable.Signals, any, any>

const crashOnce = (durable: Runnable, file: string, id: string, entered: Deferred.Deferred<void>) =>
  Effect.gen(function*() {
    const fiber = yield* Effect.fork(Durable.run(durable, { id }).pipe(Effect.provide(storeWith(file, durable))))
    yield* Deferred.await(entered)
    yield* Fiber.interrupt(fiber)
  })

/** Counts the runs of each part by name, and hangs the part named `hangAt` while `hang` is set. */
const counter = () => {
  const runs: Record<string, number> = {}
  const state = { hang: true, hangAt: "", entered: undefined as Deferred.Deferred<void> | undefined }
  const counted = <A>(name: string, value: A) =>
    Effect.suspend(() => {
      runs[name] = (runs[name] ?? 0) + 1
      const paid = Effect.as(paidCall(1_000), value)
      return state.hang && name === state.hangAt
        ? Effect.zipRight(Deferred.succeed(state.entered!, undefined), Effect.never)
        : paid
    })
  return { runs, state, counted }
}

const run = (durable: Runnable, file: string, id: string) =>
  Durable.run(durable, { id }).pipe(Effect.provide(storeWith(file, durable))) as Effect.Effect<
    Result.Completed<any, any>,
    unknown,
    never
  >

describe("Durable.make, with steps made of steps", () => {
  it("refuses a map without an item schema, a loop without a state schema and a sub-pipeline's step without an output schema, naming each and its option", () => {
    const doc = Step.make("doc", { output: Schema.Array(Schema.String), run: () => Effect.succeed(["a", "b"]) })
    const sections = ForEach.make("sections", { after: { doc }, items: ({ doc }) => doc, each: (s) => Effect.succeed(s) })
    const refine = Loop.make("refine", {
      initial: () => 0,
      body: (n) => Effect.succeed(n + 1),
      until: (n) => n > 2,
      maxIterations: 3
    })
    const extract = Step.make("extract", { run: () => Effect.succeed(1) })
    const research = SubPipeline.make("research", { pipeline: Pipeline.make("inner", { output: extract }) })
    const last = Step.make("last", {
      after: { sections, refine, research },
      output: Schema.Number,
      run: () => Effect.succeed(1)
    })
    const error = Either.getLeft(Durable.makeEither(Pipeline.make("p", { output: last })))
    expect(Option.map(error, (e) => [e._tag, (e as Durable.MissingSchema).steps])).toEqual(
      Option.some(["MissingSchema", ["sections", "refine", "research/extract"]])
    )
    expect(Option.map(error, (e) => e.message)).toEqual(Option.some(
      `Pipeline "p" cannot run durably: step "sections" declares no item schema (ForEach.make's output option); ` +
        `step "refine" declares no state schema (Loop.make's state option); step "research/extract" declares no ` +
        `output schema (Step.make's output option), so their outputs cannot be journaled`
    ))
  })

  it("refuses a waiting step inside a sub-pipeline, naming it", () => {
    const email = Durable.await("email", { schema: Schema.String })
    const inner = Pipeline.make("inner", { output: email })
    const ask = SubPipeline.make("ask", { pipeline: inner })
    expect(() => Durable.make(Pipeline.make("outer", { output: ask }))).toThrow(
      `Pipeline "outer" cannot run durably: step "ask/email" waits for a signal inside a sub-pipeline; a durable ` +
        `run's waiting steps must be steps of the pipeline itself`
    )
  })
})

describe("a durable map", () => {
  const make = (name: string, counted: ReturnType<typeof counter>["counted"], retry?: Step.Retry<any>) => {
    const doc = Step.make("doc", {
      output: Schema.Array(Schema.String),
      run: () => Effect.succeed(Array.from({ length: 8 }, (_, i) => `s${i}`))
    })
    const sections = ForEach.make("sections", {
      after: { doc },
      items: ({ doc }) => doc,
      each: (section, index) => counted(`sections[${index}]`, section.toUpperCase()),
      output: Schema.String,
      concurrency: 1,
      retry
    })
    return Durable.make(Pipeline.make(name, { output: sections, budget: Cost.nanos(1_000_000) }))
  }

  it.live("runs item by item, each journaled: the same result as a plain run, each item's usage on its own line", () =>
    Effect.gen(function*() {
      const { counted, runs, state } = counter()
      state.hang = false
      const durable = make("map", counted)
      const plain = yield* Pipeline.run(durable.pipeline)
      const result = yield* run(durable, freshFile(), "m")
      expect(result.output).toEqual(plain.output)
      expect(result.output).toEqual(["S0", "S1", "S2", "S3", "S4", "S5", "S6", "S7"])
      expect(result.usage).toEqual(plain.usage)
      expect(result.usage.byStep["sections[3]"]?.cost).toBe(1_000)
      expect(result.timeline.filter((t) => t.parent === "sections").map((t) => t.step)).toEqual(
        Array.from({ length: 8 }, (_, i) => `sections[${i}]`)
      )
      expect(Object.values(runs)).toEqual(Array(8).fill(2))
    }))

  it.live("resumed after a crash at an item, runs only the items that had not finished, each paid once, in order", () =>
    Effect.gen(function*() {
      const { counted, runs, state } = counter()
      const file = freshFile()
      state.entered = yield* Deferred.make<void>()
      state.hangAt = "sections[5]"
      const durable = make("map-resumed", counted)
      yield* crashOnce(durable, file, "r", state.entered)
      expect(Object.keys(runs)).toHaveLength(6)
      state.hang = false
      const events: Array<string> = []
      const layer = Durable.layer(durable, {
        onEvent: (event) => {
          if (event._tag === "StepReplayed" || event._tag === "StepSucceeded") events.push(`${event._tag} ${event.step}`)
        }
      })
      const result = yield* Durable.run(durable, { id: "r" }).pipe(
        Effect.provide(storeLayer(file, layer))
      )
      expect(result.output).toEqual(["S0", "S1", "S2", "S3", "S4", "S5", "S6", "S7"])
      // Items 0 to 4 had finished: replayed, not run. Item 5 was in flight: it ran again.
      expect(runs).toEqual(Object.fromEntries(Array.from({ length: 8 }, (_, i) => [`sections[${i}]`, i === 5 ? 2 : 1])))
      expect(result.usage.total.cost).toBe(8_000)
      for (let i = 0; i < 8; i++) expect(result.usage.byStep[`sections[${i}]`]?.cost).toBe(1_000)
      expect(events.filter((e) => e.includes("sections["))).toEqual([
        ...[0, 1, 2, 3, 4].map((i) => `StepReplayed sections[${i}]`),
        ...[5, 6, 7].map((i) => `StepSucceeded sections[${i}]`)
      ])
      // A finished run is its stored result: nothing runs.
      const again = yield* run(durable, file, "r")
      expect(again).toEqual(result)
      expect(runs["sections[0]"]).toBe(1)
    }))

  it.live("does not give an item that failed before the crash its retries again", () =>
    Effect.gen(function*() {
      class Flaky extends Data.TaggedError("Flaky")<{}> {}
      const { counted, runs, state } = counter()
      const file = freshFile()
      state.entered = yield* Deferred.make<void>()
      // Item 2 fails its first attempt, then hangs in its second (the crash); it may be retried once.
      let failed = false
      const flaky = <A>(name: string, value: A) =>
        Effect.suspend((): Effect.Effect<A, unknown> => {
          if (name !== "sections[2]" || failed) return counted(name, value)
          failed = true
          runs[name] = (runs[name] ?? 0) + 1
          return Effect.fail(new Flaky())
        })
      state.hangAt = "sections[2]"
      const durable = make("map-retried", flaky as typeof counted, { times: 1 })
      yield* crashOnce(durable, file, "f", state.entered)
      expect(runs["sections[2]"]).toBe(2)
      state.hang = false
      const result = yield* run(durable, file, "f")
      // The journaled failure is replayed; the cut attempt runs again and succeeds: its one retry is not given again.
      expect(runs["sections[2]"]).toBe(3)
      expect(result.timeline.find((t) => t.step === "sections[2]")?.attempts).toBe(2)
      expect(result.output).toHaveLength(8)
    }))
})

/** The store's layer with a durable pipeline's layer given. */
const storeLayer = (file: string, layer: Layer.Layer<never, never, WorkflowEngine>) =>
  Layer.provideMerge(layer, storeWith(file))

describe("a durable loop", () => {
  it.live("resumed after a crash at an iteration, runs only the iterations that had not finished, with the same outcome", () =>
    Effect.gen(function*() {
      const { counted, runs, state } = counter()
      const file = freshFile()
      state.entered = yield* Deferred.make<void>()
      state.hangAt = "refine#4"
      const refine = Loop.make("refine", {
        initial: () => ({ text: "", round: 0 }),
        body: (s, iteration) => counted(`refine#${iteration}`, { text: `${s.text}${iteration}`, round: iteration }),
        until: (s) => s.text.length >= 6,
        maxIterations: 10,
        state: Schema.Struct({ text: Schema.String, round: Schema.Number })
      })
      const durable = Durable.make(Pipeline.make("loop", { output: refine }))
      yield* crashOnce(durable, file, "l", state.entered)
      state.hang = false
      const result = yield* run(durable, file, "l")
      expect(result.output).toEqual({ state: { text: "123456", round: 6 }, iterations: 6, ended: "Condition" })
      expect(runs).toEqual({ "refine#1": 1, "refine#2": 1, "refine#3": 1, "refine#4": 2, "refine#5": 1, "refine#6": 1 })
      expect(result.usage.total.cost).toBe(6_000)
      expect(result.timeline.filter((t) => t.parent === "refine").map((t) => t.step)).toEqual(
        [1, 2, 3, 4, 5, 6].map((i) => `refine#${i}`)
      )
    }))
})

describe("a durable sub-pipeline", () => {
  it.live("journals its steps as steps of the run: resumed after a crash inside, runs only what had not finished", () =>
    Effect.gen(function*() {
      const { counted, runs, state } = counter()
      const file = freshFile()
      state.entered = yield* Deferred.make<void>()
      state.hangAt = "research/summary"
      const extract = Step.make("extract", { output: Schema.String, run: () => counted("research/extract", "facts") })
      const summary = Step.make("summary", {
        after: { extract },
        output: Schema.String,
        run: ({ extract }) => counted("research/summary", `summary of ${extract}`)
      })
      const research = SubPipeline.make("research", { pipeline: Pipeline.make("inner", { output: summary }) })
      const report = Step.make("report", {
        after: { research },
        output: Schema.String,
        run: ({ research }) => counted("report", `report: ${research}`)
      })
      const durable = Durable.make(Pipeline.make("outer", { output: report, budget: Cost.nanos(100_000) }))
      yield* crashOnce(durable, file, "s", state.entered)
      state.hang = false
      const result = yield* run(durable, file, "s")
      expect(result.output).toBe("report: summary of facts")
      expect(runs).toEqual({ "research/extract": 1, "research/summary": 2, report: 1 })
      expect(result.usage.total.cost).toBe(3_000)
      expect(result.usage.byStep["research/extract"]?.cost).toBe(1_000)
      expect(result.timeline.filter((t) => t.parent === "research").map((t) => t.step).sort()).toEqual([
        "research/extract",
        "research/summary"
      ])
      // The stored result keeps the timeline's parents.
      const again = yield* run(durable, file, "s")
      expect(again).toEqual(result)
      expect(runs.report).toBe(1)
    }))
})

describe("a durable map, when things go wrong", () => {
  class Declared extends Schema.TaggedError<Declared>()("Declared", { why: Schema.String }) {}
  class Other extends Data.TaggedError("Other")<{ readonly what: string }> {}

  it.live("in settle mode completes, and its stored result reads back, when an item fails with an error its schema does not describe", () =>
    Effect.gen(function*() {
      const m = ForEach.make<"m", string, string, Declared | Other, never, never, never, {}, "settle", Declared>("m", {
        items: () => ["a", "b", "c"],
        each: (s) =>
          s === "b" ? Effect.fail(new Other({ what: "b" })) : s === "c" ? Effect.fail(new Declared({ why: "c" })) : Effect.succeed(s),
        output: Schema.String,
        error: Declared,
        mode: "settle"
      })
      const durable = Durable.make(Pipeline.make("settled", { output: m }))
      const file = freshFile()
      const first = yield* Effect.timeout(run(durable, file, "s"), "20 seconds")
      const again = yield* Effect.timeout(run(durable, file, "s"), "20 seconds")
      for (const result of [first, again]) {
        const [a, b, c] = result.output as ReadonlyArray<Either.Either<string, unknown>>
        expect(a).toEqual(Either.right("a"))
        expect(Either.isLeft(b!) && (b.left as { tag?: string }).tag).toBe("Other")
        expect(Either.isLeft(c!) && c.left).toBeInstanceOf(Declared)
      }
    }))

  it.live("cancelled during a settle map, ends cancelled: a cancellation is not an item's failure", () =>
    Effect.gen(function*() {
      const started = yield* Deferred.make<void>()
      const m = ForEach.make("m", {
        items: () => [0, 1, 2, 3],
        each: (i) => i === 1 ? Effect.zipRight(Deferred.succeed(started, undefined), Effect.never) : Effect.succeed(i),
        output: Schema.Number,
        mode: "settle"
      })
      const durable = Durable.make(Pipeline.make("cancelled", { output: m }))
      const error = yield* Effect.gen(function*() {
        const running = yield* Effect.fork(Effect.flip(Durable.run(durable, { id: "c" })))
        yield* Deferred.await(started)
        yield* Durable.cancel(durable, { id: "c" })
        return yield* Fiber.join(running)
      }).pipe(Effect.provide(storeWith(freshFile(), durable)))
      expect(error).toMatchObject({ _tag: "RunFailed", reason: "Cancelled" })
    }))

  it("looks inside a pipeline run per item: a missing schema and a waiting step there are refused, and settle mode makes", () => {
    const loop = Loop.make("loop", { initial: () => 0, body: (n) => Effect.succeed(n + 1), until: (n) => n > 1, maxIterations: 3 })
    const fin = Step.make("fin", { after: { loop }, output: Schema.Number, run: ({ loop }) => Effect.succeed(loop.state) })
    const each = ForEach.pipeline("fe", { items: () => ["a"], pipeline: Pipeline.make("inner", { output: fin }) })
    const refused = Either.getLeft(Durable.makeEither(Pipeline.make("p", { output: each })))
    expect(Option.map(refused, (e) => (e as Durable.MissingSchema).steps)).toEqual(Option.some(["fe[*]/loop"]))
    const w = Durable.await("w", { schema: Schema.Number })
    const waiting = ForEach.pipeline("fe", { items: () => ["a"], pipeline: Pipeline.make("inner", { output: w }) })
    expect(Option.map(Either.getLeft(Durable.makeEither(Pipeline.make("p", { output: waiting }))), (e) => e._tag))
      .toEqual(Option.some("NestedWaiting"))
    const done = Step.make("done", { output: Schema.Number, run: () => Effect.succeed(1) })
    const settled = ForEach.pipeline("fe", { items: () => ["a"], pipeline: Pipeline.make("inner", { output: done }), mode: "settle" })
    expect(Either.isRight(Durable.makeEither(Pipeline.make("p", { output: settled })))).toBe(true)
  })
})
