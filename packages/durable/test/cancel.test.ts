import { describe, expect, it } from "@effect/vitest"
import { Pipeline, Step } from "@trellis/core"
import { SqlClient } from "@effect/sql"
import { SqliteClient } from "@effect/sql-sqlite-node"
import { Cancellations, Durable, Runs } from "@trellis/durable"
import { Deferred, Effect, Fiber, Layer, Schema } from "effect"
import * as path from "node:path"
import { paidCall, runValid, settled, storeWith, tempDir } from "./utils.js"

const dir = tempDir()
let files = 0
const freshFile = () => path.join(dir, `cancel-${++files}.db`)

describe("Durable.cancel", () => {
  it.live("ends a run waiting for a signal at once, as Cancelled, with what it finished; the outcome is stored", () =>
    Effect.gen(function*() {
      let replies = 0
      const question = Step.make("question", { output: Schema.String, run: () => Effect.as(paidCall(1_000), "Your name?") })
      const answer = Durable.await("answer", { schema: Schema.String, after: { question } })
      const reply = Step.make("reply", {
        after: { answer },
        output: Schema.String,
        run: ({ answer }) => Effect.sync(() => (replies++, `Hello, ${answer}`))
      })
      const durable = Durable.make(Pipeline.make("asking", { output: reply }))
      const file = freshFile()
      const error = yield* Effect.gen(function*() {
        yield* Durable.start(durable, { id: "r" })
        expect((yield* settled(durable, "r"))._tag).toBe("Waiting")
        yield* Durable.cancel(durable, { id: "r" })
        return yield* Effect.flip(runValid(durable, { id: "r" }))
      }).pipe(Effect.provide(storeWith(file, durable)))
      expect([error._tag, error.reason, error.step, error.errorTag]).toEqual(["RunFailed", "Cancelled", "answer", "Cancelled"])
      expect(error.outputs).toEqual({ question: "Your name?" })
      expect(error.usage.total.cost).toBe(1_000)
      // A signal that comes after changes nothing: the stored outcome is returned, in a later process too, and the
      // waiting step is not listed as done.
      const [again, listed] = yield* Effect.zipRight(
        Durable.signal(durable, { id: "r", step: "answer", value: "Ada" }),
        Effect.all([Effect.flip(runValid(durable, { id: "r" })), Runs.list()])
      ).pipe(Effect.provide(storeWith(file, durable)))
      expect(again).toEqual(error)
      expect(replies).toBe(0)
      expect(listed.map((run) => [run.status, run.steps])).toEqual([["cancelled", ["question"]]])
    }))

  it.live("ends a run that was about to suspend, a step still running beside its waiting one", () =>
    Effect.gen(function*() {
      const entered = yield* Deferred.make<void>()
      const slow = Step.make("slow", {
        output: Schema.Number,
        run: () => Effect.zipRight(Deferred.succeed(entered, undefined), Effect.never)
      })
      const answer = Durable.await("answer", { schema: Schema.Number })
      const sum = Step.make("sum", {
        after: { slow, answer },
        output: Schema.Number,
        run: ({ answer, slow }) => Effect.succeed(slow + answer)
      })
      const durable = Durable.make(Pipeline.make("beside", { output: sum }))
      const error = yield* Effect.gen(function*() {
        const running = yield* Effect.fork(Effect.flip(runValid(durable, { id: "r" })))
        yield* Deferred.await(entered)
        // The waiting step has found no value; the run suspends once `slow` ends.
        yield* Effect.sleep("100 millis")
        yield* Durable.cancel(durable, { id: "r" })
        const error = yield* Fiber.join(running)
        expect((yield* Durable.status(durable, { id: "r" }))._tag).toBe("Finished")
        return error
      }).pipe(Effect.provide(storeWith(freshFile(), durable)))
      expect([error.reason, error.step]).toEqual(["Cancelled", "slow"])
    }))

  it.live("cuts a running run's step in flight (its finalizer runs, its call counts) and starts no other step", () =>
    Effect.gen(function*() {
      const entered = yield* Deferred.make<void>()
      const steps: Array<string> = []
      const first = Step.make("first", { output: Schema.Number, run: () => Effect.as(paidCall(1_000), 1) })
      const slow = Step.make("slow", {
        after: { first },
        output: Schema.Number,
        run: () =>
          paidCall(2_000).pipe(
            Effect.zipRight(Deferred.succeed(entered, undefined)),
            Effect.zipRight(Effect.never),
            Effect.onInterrupt(() => Effect.sync(() => steps.push("slow cleaned up")))
          )
      })
      const last = Step.make("last", {
        after: { slow },
        output: Schema.Number,
        run: () => Effect.sync(() => (steps.push("last ran"), 3))
      })
      const durable = Durable.make(Pipeline.make("cut", { output: last }))
      const error = yield* Effect.gen(function*() {
        const running = yield* Effect.fork(Effect.flip(runValid(durable, { id: "r" })))
        yield* Deferred.await(entered)
        yield* Durable.cancel(durable, { id: "r" })
        const error = yield* Fiber.join(running)
        expect((yield* Durable.status(durable, { id: "r" }))._tag).toBe("Finished")
        return error
      }).pipe(Effect.provide(storeWith(freshFile(), durable)))
      expect([error.reason, error.step]).toEqual(["Cancelled", "slow"])
      expect(error.message).toBe(`Durable run "r" of pipeline "cut" failed: it was cancelled, at step "slow"`)
      expect(error.outputs).toEqual({ first: 1 })
      expect([error.usage.total.cost, error.usage.byStep.slow?.cost]).toEqual([3_000, 2_000])
      expect(steps).toEqual(["slow cleaned up"])
    }))

  it.live("cuts only the run cancelled among several running at once", () =>
    Effect.gen(function*() {
      const release = yield* Deferred.make<void>()
      let entered = 0
      const wait = Step.make("wait", {
        output: Schema.Number,
        run: () => Effect.zipRight(Effect.sync(() => ++entered), Effect.as(Deferred.await(release), 1))
      })
      const durable = Durable.make(Pipeline.make("several", { output: wait }))
      const outcomes = yield* Effect.gen(function*() {
        const runs = yield* Effect.forEach(["r1", "r2", "r3"], (id) => Effect.fork(Effect.either(runValid(durable, { id }))))
        while (entered < 3) yield* Effect.sleep("10 millis")
        yield* Durable.cancel(durable, { id: "r2" })
        const cut = yield* Fiber.join(runs[1]!)
        yield* Deferred.succeed(release, undefined)
        return [yield* Fiber.join(runs[0]!), cut, yield* Fiber.join(runs[2]!)]
      }).pipe(Effect.provide(storeWith(freshFile(), durable)))
      expect(outcomes.map((outcome) => outcome._tag === "Right" ? outcome.right.output : outcome.left.reason)).toEqual([
        1,
        "Cancelled",
        1
      ])
    }))

  it.live("cancels a run cut short by a crash: resumed, it fails as cancelled, counting what the lost attempt spent", () =>
    Effect.gen(function*() {
      const entered = yield* Deferred.make<void>()
      let calls = 0
      const first = Step.make("first", { output: Schema.Number, run: () => Effect.as(paidCall(1_000), 1) })
      const hanging = Step.make("hanging", {
        after: { first },
        output: Schema.Number,
        run: () =>
          Effect.suspend(() => (calls++, paidCall(2_000))).pipe(
            Effect.zipRight(Deferred.succeed(entered, undefined)),
            Effect.zipRight(Effect.never)
          )
      })
      const durable = Durable.make(Pipeline.make("crashed", { output: hanging }))
      const file = freshFile()
      // The first process is torn down with the run in flight, as a crash would leave it.
      const fiber = yield* Effect.fork(Durable.run(durable, { id: "r" }).pipe(Effect.provide(storeWith(file, durable))))
      yield* Deferred.await(entered)
      yield* Fiber.interrupt(fiber)
      // While no runner is up, the run is written down as cancelled (as `Durable.cancel` does, from the file alone).
      const execution = yield* durable.workflow.executionId({ id: "r" })
      yield* Effect.flatMap(Cancellations.Cancellations, (cancellations) => cancellations.cancel(execution)).pipe(
        Effect.provide(Cancellations.layer.pipe(Layer.provide(SqliteClient.layer({ filename: file })))),
        Effect.orDie
      )
      // The next runner resumes the run, which ends without running the step again.
      const error = yield* Effect.flip(runValid(durable, { id: "r" })).pipe(Effect.provide(storeWith(file, durable)))
      expect([error.reason, error.step, error.outputs]).toEqual(["Cancelled", "hanging", { first: 1 }])
      expect(calls).toBe(1)
      // The lost attempt's settled call counts, from the spend log.
      expect([error.usage.total.cost, error.usage.byStep.hanging?.cost]).toEqual([3_000, 2_000])
    }))

  it.live("refuses a run the store does not hold with UnknownRun, naming it, and writes nothing: a later run is not cancelled", () =>
    Effect.gen(function*() {
      let runs = 0
      const only = Step.make("only", { output: Schema.Number, run: () => Effect.sync(() => ++runs) })
      const durable = Durable.make(Pipeline.make("early", { output: only }))
      const file = freshFile()
      const error = yield* Effect.flip(Durable.cancel(durable, { id: "nope" })).pipe(Effect.provide(storeWith(file, durable)))
      expect(error).toBeInstanceOf(Durable.UnknownRun)
      expect(error.message).toBe(
        `No run "nope" of pipeline "early" in the store: it was never started, or was removed as finished long ago`
      )
      const rows = yield* Effect.flatMap(SqlClient.SqlClient, (sql) =>
        sql<{ readonly n: number }>`SELECT count(*) AS n FROM trellis_cancel`).pipe(
          Effect.provide(SqliteClient.layer({ filename: file })),
          Effect.orDie
        )
      expect(rows[0]?.n).toBe(0)
      const result = yield* runValid(durable, { id: "nope" }).pipe(Effect.provide(storeWith(file, durable)))
      expect([result.output, runs]).toEqual([1, 1])
    }))
})
