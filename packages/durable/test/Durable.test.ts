import { describe, expect, it } from "@effect/vitest"
import { Cost, Ledger, Pipeline, Step, Usage } from "@trellis/core"
import { Durable, Retention, Store } from "@trellis/durable"
import type { WorkflowEngine } from "@effect/workflow/WorkflowEngine"
import { Context, Data, Deferred, type Duration, Effect, Either, Fiber, Layer, Option, Schema } from "effect"
import * as path from "node:path"
import { paidCall, runValid, storeWith, tempDir } from "./utils.js"

const dir = tempDir()
let files = 0
const freshFile = () => path.join(dir, `runs-${++files}.db`)

/** A diamond whose steps count their runs in `runs` and each pay 1,000 nano-dollars. */
const diamond = (
  name: string,
  runs: Record<string, number>,
  hooks: { readonly right?: Effect.Effect<void, Ledger.BudgetExceeded | Ledger.InvalidUsage> } = {}
) => {
  const counted = <A>(step: string, value: A) =>
    Effect.suspend(() => {
      runs[step] = (runs[step] ?? 0) + 1
      return Effect.as(paidCall(1_000), value)
    })
  const top = Step.make("top", { output: Schema.String, run: () => counted("top", "doc") })
  const left = Step.make("left", { after: { top }, output: Schema.Number, run: ({ top }) => counted("left", top.length) })
  const right = Step.make("right", {
    after: { top },
    output: Schema.Struct({ words: Schema.Array(Schema.String) }),
    run: ({ top }) => Effect.zipRight(hooks.right ?? Effect.void, counted("right", { words: [top, top] }))
  })
  const bottom = Step.make("bottom", {
    after: { left, right },
    output: Schema.String,
    run: ({ left, right }) => counted("bottom", `${left}:${right.words.join("+")}`)
  })
  return Pipeline.make(name, { output: bottom, budget: Cost.nanos(100_000) })
}

describe("Durable.make", () => {
  it("refuses a pipeline with a step that declares no output schema, naming it", () => {
    const a = Step.make("a", { output: Schema.Number, run: () => Effect.succeed(1) })
    const b = Step.make("b", { after: { a }, run: ({ a }) => Effect.succeed(a + 1) })
    const c = Step.make("c", { after: { b }, run: ({ b }) => Effect.succeed(b + 1) })
    const error = Either.getLeft(Durable.makeEither(Pipeline.make("p", { output: c })))
    expect(Option.map(error, (e) => [e._tag, e.steps])).toEqual(Option.some(["MissingSchema", ["b", "c"]]))
    expect(() => Durable.make(Pipeline.make("q", { output: b }))).toThrow(
      `Pipeline "q" cannot run durably: step "b" declares no output schema (Step.make's output option), so its output cannot be journaled`
    )
  })
})

describe("Durable.run", () => {
  it.live("runs a pipeline as a workflow: the same result as a plain run, usage included", () =>
    Effect.gen(function*() {
      const runs: Record<string, number> = {}
      const pipeline = diamond("diamond", runs)
      const plain = yield* Pipeline.run(pipeline)
      const durable = Durable.make(pipeline)
      const result = yield* Durable.run(durable, { id: "one" }).pipe(Effect.provide(storeWith(freshFile(), durable)))
      expect(result.output).toBe(plain.output)
      expect(result.outputs).toEqual(plain.outputs)
      expect(result.usage).toEqual(plain.usage)
      expect(result.usage.total.cost).toBe(4_000)
      expect(runs).toEqual({ top: 2, left: 2, right: 2, bottom: 2 })
    }))

  it.live("returns a finished run's stored result for its id and runs nothing, in a later process too", () =>
    Effect.gen(function*() {
      const runs: Record<string, number> = {}
      const durable = Durable.make(diamond("stored", runs))
      const file = freshFile()
      const first = yield* Durable.run(durable, { id: "done" }).pipe(Effect.provide(storeWith(file, durable)))
      expect(runs).toEqual({ top: 1, left: 1, right: 1, bottom: 1 })
      const again = yield* Durable.run(durable, { id: "done" }).pipe(Effect.provide(storeWith(file, durable)))
      expect(again).toEqual(first)
      expect(runs).toEqual({ top: 1, left: 1, right: 1, bottom: 1 })
      // Another id is another run.
      yield* Durable.run(durable, { id: "other" }).pipe(Effect.provide(storeWith(file, durable)))
      expect(runs).toEqual({ top: 2, left: 2, right: 2, bottom: 2 })
    }))

  it.live("gives each run its own input, stored with the run: a resumed run reads the same", () =>
    Effect.gen(function*() {
      class Document extends Context.Tag("Document")<Document, { readonly text: string }>() {}
      const entered = yield* Deferred.make<void>()
      let hang = true
      const words = Step.make("words", {
        output: Schema.Array(Schema.String),
        run: () => Effect.map(Document, (d) => d.text.split(" "))
      })
      const count = Step.make("count", {
        after: { words },
        output: Schema.Number,
        run: ({ words }) =>
          Effect.zipRight(
            Effect.suspend(() => hang ? Effect.zipRight(Deferred.succeed(entered, undefined), Effect.never) : Effect.void),
            Effect.succeed(words.length)
          )
      })
      const durable = Durable.make(Pipeline.make("words", { output: count }), {
        input: { tag: Document, schema: Schema.Struct({ text: Schema.String }) }
      })
      // @ts-expect-error a run of this pipeline needs its input
      Durable.run(durable, { id: "c" })
      // The layer needs nothing for the input: each run brings its own.
      const live: Layer.Layer<never, never, WorkflowEngine> = Durable.layer(durable)
      const file = freshFile()
      const store = () => Layer.provideMerge(live, Layer.orDie(Store.layerSqlite({ filename: file, shutdownTimeout: "200 millis" })))
      const first = yield* Effect.fork(
        Durable.run(durable, { id: "a", input: { text: "one two three" } }).pipe(Effect.provide(store()))
      )
      yield* Deferred.await(entered)
      yield* Fiber.interrupt(first)
      hang = false
      const results = yield* Effect.all([
        Durable.run(durable, { id: "a", input: { text: "ignored: the run has its input" } }),
        Durable.run(durable, { id: "b", input: { text: "four five" } })
      ]).pipe(Effect.provide(store()))
      expect(results.map((r) => r.output)).toEqual([3, 2])
    }))

  it.live("refuses an input the journal cannot carry, or that does not fit its schema, with InvalidInput; starts nothing", () =>
    Effect.gen(function*() {
      class Numbers extends Context.Tag("Numbers")<Numbers, { readonly values: ReadonlyArray<number> }>() {}
      const sum = Step.make("sum", {
        output: Schema.Number,
        run: () => Effect.map(Numbers, ({ values }) => values.reduce((a, b) => a + b, 0))
      })
      const durable = Durable.make(Pipeline.make("sum", { output: sum }), {
        input: { tag: Numbers, schema: Schema.Struct({ values: Schema.Array(Schema.Number) }) }
      })
      const result = yield* Effect.gen(function*() {
        const nan = yield* Effect.flip(runValid(durable, { id: "a", input: { values: [1, Number.NaN] } }))
        expect(nan._tag).toBe("InvalidInput")
        expect(nan.message).toContain(`Cannot start run "a" of pipeline "sum": its input `)
        expect(nan.message).toContain("NaN and Infinity become null")
        const wrong = yield* Effect.flip(Durable.start(durable, { id: "a", input: { values: ["1"] } as never }))
        expect(wrong._tag).toBe("InvalidInput")
        expect(wrong.message).toContain(`Expected number, actual "1"`)
        expect((yield* Durable.status(durable, { id: "a" }))._tag).toBe("Pending")
        // Nothing of the refused runs was stored: the id takes its first good input.
        const result = yield* Durable.run(durable, { id: "a", input: { values: [1, 2] } })
        // The run is reached by its id alone: its input is stored with it.
        expect((yield* Durable.status(durable, { id: "a" }))._tag).toBe("Finished")
        return result
      }).pipe(Effect.provide(Layer.provideMerge(Durable.layer(durable), storeWith(freshFile()))))
      expect(result.output).toBe(3)
    }))

  it.live("runs several ids at once on one file, each step once per run", () =>
    Effect.gen(function*() {
      const runs: Record<string, number> = {}
      const durable = Durable.make(diamond("many", runs))
      const ids = Array.from({ length: 8 }, (_, i) => `run-${i}`)
      const results = yield* Effect.forEach(ids, (id) => Durable.run(durable, { id }), { concurrency: "unbounded" }).pipe(
        Effect.provide(storeWith(freshFile(), durable))
      )
      expect(results.map((r) => [r.output, r.usage.total.cost])).toEqual(ids.map(() => ["3:doc+doc", 4_000]))
      expect(runs).toEqual({ top: 8, left: 8, right: 8, bottom: 8 })
    }))

  it.live("resumes a run whose runtime was torn down mid-way: finished steps are replayed, not run, and paid once", () =>
    Effect.gen(function*() {
      const runs: Record<string, number> = {}
      const file = freshFile()
      const entered = yield* Deferred.make<void>()
      let hang = true
      const durable = Durable.make(diamond("resumed", runs, {
        right: Effect.suspend(() => hang ? Effect.zipRight(Deferred.succeed(entered, undefined), Effect.never) : Effect.void)
      }))
      const first = yield* Effect.fork(Durable.run(durable, { id: "r" }).pipe(Effect.provide(storeWith(file, durable))))
      yield* Deferred.await(entered)
      // `right` is in flight: stopping the fiber tears the engine and its database connection down.
      yield* Fiber.interrupt(first)
      expect(runs).toEqual({ top: 1, left: 1 })
      hang = false
      const result = yield* Durable.run(durable, { id: "r" }).pipe(Effect.provide(storeWith(file, durable)))
      expect(result.output).toBe("3:doc+doc")
      // `top` and `left` were journaled: replayed. `right` was in flight: it runs again (at least once).
      expect(runs).toEqual({ top: 1, left: 1, right: 1, bottom: 1 })
      expect(result.usage.total.cost).toBe(4_000)
      expect(result.usage.byStep.top?.cost).toBe(1_000)
    }))

  it.live("counts what a torn-down attempt spent, settled or in flight, before the step runs again", () =>
    Effect.gen(function*() {
      const runs: Record<string, number> = {}
      const file = freshFile()
      const entered = yield* Deferred.make<void>()
      let hang = true
      // The first attempt of `right` pays 1,000 (settled), then holds 3,000 for a call that never returns.
      const inFlight = Ledger.metered({
        worstCase: Cost.nanos(3_000),
        run: Effect.zipRight(Deferred.succeed(entered, undefined), Effect.never),
        usage: () => Usage.make({ requests: 1, cost: Cost.nanos(3_000) })
      })
      const durable = Durable.make(diamond("lost", runs, {
        right: Effect.suspend(() => hang ? Effect.zipRight(paidCall(1_000), inFlight) : Effect.void)
      }))
      const first = yield* Effect.fork(Durable.run(durable, { id: "l" }).pipe(Effect.provide(storeWith(file, durable))))
      yield* Deferred.await(entered)
      yield* Fiber.interrupt(first)
      hang = false
      const result = yield* Durable.run(durable, { id: "l" }).pipe(Effect.provide(storeWith(file, durable)))
      expect(result.output).toBe("3:doc+doc")
      expect(runs).toEqual({ top: 1, left: 1, right: 1, bottom: 1 })
      // 4,000 for the four steps, plus the first attempt's 1,000 settled and 3,000 held: estimated.
      expect([result.usage.byStep.right?.cost, result.usage.byStep.right?.requests]).toEqual([5_000, 3])
      expect([result.usage.total.cost, result.usage.total.estimated]).toEqual([8_000, true])
      expect(result.usage.byStep.top?.estimated).toBe(false)
    }))

  it.live("stores a stopped run with its data (through the stop schema) and returns it for the id", () =>
    Effect.gen(function*() {
      let runs = 0
      const ask = Step.make("ask", { output: Schema.String, run: () => Effect.sync(() => (runs++, "name?")) })
      const answer = Step.make("answer", {
        after: { ask },
        output: Schema.String,
        run: ({ ask }) => Pipeline.stop({ question: ask, missing: ["name"] })
      })
      const Question = Schema.Struct({ question: Schema.String, missing: Schema.Array(Schema.String) })
      const durable = Durable.make(Pipeline.make("form", { output: answer }), { stop: Question })
      const file = freshFile()
      const result = yield* Durable.run(durable, { id: "f" }).pipe(Effect.provide(storeWith(file, durable)))
      expect(result._tag).toBe("Stopped")
      if (result._tag !== "Stopped") return
      expect([result.step, result.data, result.outputs]).toEqual(["answer", { question: "name?", missing: ["name"] }, { ask: "name?" }])
      const again = yield* Durable.run(durable, { id: "f" }).pipe(Effect.provide(storeWith(file, durable)))
      expect(again).toEqual(result)
      expect(runs).toBe(1)
    }))

  it.live("stores a failed run as RunFailed, naming the step and its error's tag, with what it finished, and returns it for the id", () =>
    Effect.gen(function*() {
      let runs = 0
      class Refused extends Data.TaggedError("Refused")<{ readonly reason: string }> {
        override get message() {
          return `refused: ${this.reason}`
        }
      }
      const paid = Step.make("paid", { output: Schema.Number, run: () => Effect.as(paidCall(2_000), 1) })
      const failing = Step.make("failing", {
        after: { paid },
        output: Schema.Number,
        retry: 1,
        run: () => Effect.suspend(() => (runs++, Effect.fail(new Refused({ reason: "no" }))))
      })
      const durable = Durable.make(Pipeline.make("fails", { output: failing }))
      const file = freshFile()
      const error = yield* Effect.flip(runValid(durable, { id: "x" }).pipe(Effect.provide(storeWith(file, durable))))
      expect(error).toBeInstanceOf(Durable.RunFailed)
      expect([error.reason, error.step, error.errorTag, error.usage.total.cost]).toEqual(["StepFailed", "failing", "Refused", 2_000])
      expect(error.message).toMatch(/^Durable run "x" of pipeline "fails" failed: .*refused: no/)
      // What the run finished, as a plain run's error carries it.
      expect(error.partial.outputs).toEqual({ paid: 1 })
      expect(error.timeline.map((t) => [t.step, t.status, t.attempts])).toEqual([["paid", "succeeded", 1], ["failing", "failed", 2]])
      const plain = yield* Effect.flip(Pipeline.run(durable.pipeline))
      expect([error.partial.outputs, error.partial.usage]).toEqual([plain.partial.outputs, plain.partial.usage])
      expect(runs).toBe(4)
      const again = yield* Effect.flip(runValid(durable, { id: "x" }).pipe(Effect.provide(storeWith(file, durable))))
      expect(again).toEqual(error)
      expect(again.partial.outputs).toEqual({ paid: 1 })
      expect(runs).toBe(4)
    }))

  it.live("fails a run at once, naming the step, when a step's output cannot be journaled (NaN as a number)", () =>
    Effect.gen(function*() {
      const paid = Step.make("paid", { output: Schema.Number, run: () => Effect.as(paidCall(2_000), 1) })
      // Stored as JSON, NaN would come back as null: a resumed run could not read the step's output.
      const mean = Step.make("mean", { after: { paid }, output: Schema.Number, run: () => Effect.succeed(0 / 0) })
      const durable = Durable.make(Pipeline.make("averages", { output: mean }))
      const file = freshFile()
      const error = yield* Effect.flip(runValid(durable, { id: "x" }).pipe(Effect.provide(storeWith(file, durable))))
      expect(error).toBeInstanceOf(Durable.RunFailed)
      expect([error.reason, error.step, error.usage.total.cost]).toEqual(["StepFailed", "mean", 2_000])
      expect(error.message).toContain(`What step "mean" ended with cannot be journaled`)
      // The stored outcome reads back, in a later process too.
      const again = yield* Effect.flip(runValid(durable, { id: "x" }).pipe(Effect.provide(storeWith(file, durable))))
      expect(again).toEqual(error)
    }))

  it.live("fails a run naming the step when the data a step stops it with cannot be journaled", () =>
    Effect.gen(function*() {
      const score = Step.make("score", { output: Schema.Number, run: () => Pipeline.stop({ score: Number.NaN }) })
      const durable = Durable.make(Pipeline.make("scores", { output: score }), {
        stop: Schema.Struct({ score: Schema.Number })
      })
      const file = freshFile()
      const error = yield* Effect.flip(runValid(durable, { id: "s" }).pipe(Effect.provide(storeWith(file, durable))))
      expect([error.reason, error.step]).toEqual(["StepFailed", "score"])
      expect(error.message).toContain(`What step "score" ended with cannot be journaled`)
      const again = yield* Effect.flip(runValid(durable, { id: "s" }).pipe(Effect.provide(storeWith(file, durable))))
      expect(again).toEqual(error)
    }))

  it.live("refuses a call past the budget across a restart: replayed spend counts", () =>
    Effect.gen(function*() {
      const file = freshFile()
      let crash = true
      const entered = yield* Deferred.make<void>()
      const first = Step.make("first", { output: Schema.Number, run: () => Effect.as(paidCall(6_000), 1) })
      const second = Step.make("second", {
        after: { first },
        output: Schema.Number,
        run: () =>
          Effect.suspend(() => crash ? Effect.zipRight(Deferred.succeed(entered, undefined), Effect.never) : Effect.as(paidCall(6_000), 2))
      })
      // 6,000 spent, and the second call reserves 12,000: 18,000 is past the 15,000 budget.
      const durable = Durable.make(Pipeline.make("budgeted", { output: second, budget: Cost.nanos(15_000) }))
      const fiber = yield* Effect.fork(Durable.run(durable, { id: "b" }).pipe(Effect.provide(storeWith(file, durable))))
      yield* Deferred.await(entered)
      yield* Fiber.interrupt(fiber)
      crash = false
      const error = yield* Effect.flip(runValid(durable, { id: "b" }).pipe(Effect.provide(storeWith(file, durable))))
      expect([error.reason, error.step, error.usage.total.cost]).toEqual(["BudgetExceeded", "second", 6_000])
    }))
})


describe("Store.layerSqlite", () => {
  it.live("refuses a second runner on a file while the first holds it, and lets the next one in once it is closed", () =>
    Effect.gen(function*() {
      const file = freshFile()
      const durable = Durable.make(diamond("held", {}))
      const second = yield* Effect.scoped(Layer.build(Store.layerSqlite({ filename: file }))).pipe(
        Effect.flip,
        Effect.provide(storeWith(file, durable))
      )
      expect(second).toBeInstanceOf(Store.StoreInUse)
      expect(second.message).toBe(
        `The SQLite file "${file}" is in use by another process: one process at a time may run durable pipelines on a SQLite file (two could run a step twice)`
      )
      const result = yield* Durable.run(durable, { id: "after" }).pipe(Effect.provide(storeWith(file, durable)))
      expect(result.output).toBe("3:doc+doc")
    }))
})

describe("Retention.prune", () => {
  it.live("removes finished runs older than the period and nothing else: a running run's journal stays", () =>
    Effect.gen(function*() {
      const file = freshFile()
      const runs: Record<string, number> = {}
      const entered = yield* Deferred.make<void>()
      let hang = true
      const finishing = Durable.make(diamond("kept", runs))
      const waiting = Durable.make(diamond("waiting", runs, {
        right: Effect.suspend(() => hang ? Effect.zipRight(Deferred.succeed(entered, undefined), Effect.never) : Effect.void)
      }))
      const store = () =>
        Layer.mergeAll(Durable.layer(finishing), Durable.layer(waiting)).pipe(
          Layer.provideMerge(Store.layerSqlite({ filename: file, shutdownTimeout: "200 millis", retention: "forever" })),
          Layer.orDie
        )
      const program = Effect.gen(function*() {
        yield* Durable.run(finishing, { id: "done-1" })
        yield* Durable.run(finishing, { id: "done-2" })
        const stuck = yield* Effect.fork(Durable.run(waiting, { id: "going" }))
        yield* Deferred.await(entered)
        // Finished just now: kept for an hour.
        expect(yield* Retention.prune("1 hour")).toEqual({ runs: 0 })
        // Effect reads a negative or NaN period as zero: given as such, it would remove every finished run.
        for (const period of [-1, Number.NaN, "-1 hour", "1 huor"]) {
          const error = yield* Effect.flip(Retention.prune(period as Duration.DurationInput))
          expect(error).toBeInstanceOf(Store.InvalidOption)
          expect(error.message).toContain("retention period")
        }
        expect(yield* Retention.prune(0)).toEqual({ runs: 2 })
        yield* Fiber.interrupt(stuck)
      })
      yield* Effect.provide(program, store())
      expect(runs).toEqual({ top: 3, left: 3, right: 2, bottom: 2 })
      hang = false
      // The pruned ids are free again: they run anew. The run that was going resumes from its journal.
      yield* Effect.all([
        Durable.run(finishing, { id: "done-1" }),
        Durable.run(waiting, { id: "going" })
      ]).pipe(Effect.provide(store()))
      expect(runs).toEqual({ top: 4, left: 4, right: 4, bottom: 4 })
    }))
})
