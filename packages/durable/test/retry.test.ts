import { describe, expect, it } from "@effect/vitest"
import { Cost, Ledger, Pipeline, Step, Usage } from "@trellis/core"
import { SqlClient } from "@effect/sql"
import { SqliteClient } from "@effect/sql-sqlite-node"
import { Durable, Runs, SpendLog, Store } from "@trellis/durable"
import { PgClient } from "@effect/sql-pg"
import { Data, Deferred, Duration, Effect, Fiber, Layer, Redacted, Schedule, Schema } from "effect"
import * as path from "node:path"
import { freshDatabase, paidCall, postgresUrl, runValid, storeWith, tempDir } from "./utils.js"

const dir = tempDir()
let files = 0
const freshFile = () => path.join(dir, `retry-${++files}.db`)

class Flaky extends Data.TaggedError("Flaky")<{ readonly attempt: number }> {
  override get message() {
    return `flaky (attempt ${this.attempt})`
  }
}

/**
 * A step retried twice on `Flaky` errors that fails its first two attempts (each after a paid call of 1,000) and
 * calls `third` on the attempts after; `calls` counts the calls of its effect.
 */
const flaky = (
  name: string,
  third: (call: number) => Effect.Effect<number, Flaky | Ledger.BudgetExceeded | Ledger.InvalidUsage>
) => {
  const calls = { count: 0 }
  const step = Step.make("flaky", {
    output: Schema.Number,
    // The predicate reads the error's tag: on replay, only the verdict taken on the error itself can answer it.
    retry: { times: 2, while: (error) => error._tag === "Flaky" },
    run: () =>
      Effect.suspend(() => {
        const call = ++calls.count
        return call <= 2 ? Effect.zipRight(paidCall(1_000), Effect.fail(new Flaky({ attempt: call }))) : third(call)
      })
  })
  return { calls, durable: Durable.make(Pipeline.make(name, { output: step, budget: Cost.nanos(100_000) })) }
}

/** Runs `id` until `entered` is completed, then tears its runtime down, as a crash would. */
const crashOnce = (
  durable: Durable.Durable<any, any, Durable.Signals, any, any>,
  file: string,
  id: string,
  entered: Deferred.Deferred<void>
) =>
  Effect.gen(function*() {
    const fiber = yield* Effect.fork(Durable.run(durable, { id }).pipe(Effect.provide(storeWith(file, durable))))
    yield* Deferred.await(entered)
    yield* Fiber.interrupt(fiber)
  })

describe("a durable step's retries", () => {
  it.live("are journaled one attempt at a time: a resumed run replays the failed attempts and runs only the rest", () =>
    Effect.gen(function*() {
      const file = freshFile()
      const entered = yield* Deferred.make<void>()
      let crash = true
      const { calls, durable } = flaky("resumed", (call) =>
        crash ? Effect.zipRight(Deferred.succeed(entered, undefined), Effect.never) : Effect.succeed(call))
      yield* crashOnce(durable, file, "a", entered)
      // Two attempts failed and were journaled; the third was in flight.
      expect(calls.count).toBe(3)
      // Listed from the file alone: the step has not ended, and its two attempts cost 1,000 each.
      const listed = yield* Runs.list().pipe(Effect.provide(Runs.layer.pipe(Layer.provide(SqliteClient.layer({ filename: file })))))
      expect(listed.map((run) => [run.id, run.status, run.steps, run.cost])).toEqual([["a", "running", [], 2_000]])
      crash = false
      const result = yield* Durable.run(durable, { id: "a" }).pipe(Effect.provide(storeWith(file, durable)))
      // The third attempt ran again, and nothing more: the step's retries did not start over.
      expect(calls.count).toBe(4)
      expect(result.output).toBe(4)
      expect(result.timeline.map((t) => [t.step, t.status, t.attempts])).toEqual([["flaky", "succeeded", 3]])
      // A finished run is replayed from its stored result.
      const again = yield* Durable.run(durable, { id: "a" }).pipe(Effect.provide(storeWith(file, durable)))
      expect(again).toEqual(result)
      expect(calls.count).toBe(4)
    }))

  it.live("do not wait again between the failed attempts a resumed run replays", () =>
    Effect.gen(function*() {
      const file = freshFile()
      const entered = yield* Deferred.make<void>()
      let crash = true
      // No wait between attempts before the crash; an hour after it, which a replayed attempt must not wait.
      let wait = Duration.zero
      let calls = 0
      const step = Step.make("flaky", {
        output: Schema.Number,
        retry: { times: 2, schedule: Schedule.addDelay(Schedule.forever, () => wait) },
        run: () =>
          Effect.suspend(() => {
            const call = ++calls
            if (call <= 2) return Effect.fail(new Flaky({ attempt: call }))
            return crash ? Effect.zipRight(Deferred.succeed(entered, undefined), Effect.never) : Effect.succeed(call)
          })
      })
      const durable = Durable.make(Pipeline.make("waits", { output: step }))
      yield* crashOnce(durable, file, "w", entered)
      crash = false
      wait = Duration.hours(1)
      const result = yield* Durable.run(durable, { id: "w" }).pipe(Effect.provide(storeWith(file, durable)))
      expect([result.output, calls]).toEqual([4, 4])
      expect(result.timeline.map((t) => [t.step, t.status, t.attempts])).toEqual([["flaky", "succeeded", 3]])
    }))

  it.live("journal an error whose schema the step declares as itself: a resumed run's schedule and RunFailed have it", () =>
    Effect.gen(function*() {
      class RateLimited extends Schema.TaggedError<RateLimited>()("RateLimited", { call: Schema.Number }) {}
      const file = freshFile()
      const entered = yield* Deferred.make<void>()
      let crash = true
      let calls = 0
      const limited = Step.make("limited", {
        output: Schema.Number,
        error: RateLimited,
        // Read on replay too: an error kept as its tag and message would end the retries there.
        retry: { times: 2, schedule: Schedule.recurWhile((error: RateLimited | Step.StepTimeout) => error instanceof RateLimited) },
        run: () =>
          Effect.suspend(() => {
            const call = ++calls
            if (call === 2 && crash) return Effect.zipRight(Deferred.succeed(entered, undefined), Effect.never)
            return Effect.fail(new RateLimited({ call }))
          })
      })
      // @ts-expect-error the error schema must describe errors the step fails with
      Step.make("wrong", { output: Schema.Number, error: Schema.String, run: () => Effect.fail(new RateLimited({ call: 0 })) })
      const durable = Durable.make(Pipeline.make("limits", { output: limited }))
      yield* crashOnce(durable, file, "l", entered)
      crash = false
      const error = yield* Effect.flip(runValid(durable, { id: "l" }).pipe(Effect.provide(storeWith(file, durable))))
      expect(calls).toBe(4)
      expect(error.error).toBeInstanceOf(RateLimited)
      expect([error.reason, error.errorTag, (error.error as RateLimited).call]).toEqual(["StepFailed", "RateLimited", 4])
      // Stored, and read back through the schema in a later process.
      const stored = yield* Effect.flip(runValid(durable, { id: "l" }).pipe(Effect.provide(storeWith(file, durable))))
      expect(stored.error).toBeInstanceOf(RateLimited)
      expect(stored).toEqual(error)
      expect(calls).toBe(4)
    }))

  it.live("give a resumed step only its attempts left: the last one failing fails the run", () =>
    Effect.gen(function*() {
      const file = freshFile()
      const entered = yield* Deferred.make<void>()
      let crash = true
      const { calls, durable } = flaky("exhausted", (call) =>
        crash ? Effect.zipRight(Deferred.succeed(entered, undefined), Effect.never) : Effect.fail(new Flaky({ attempt: call })))
      yield* crashOnce(durable, file, "b", entered)
      expect(calls.count).toBe(3)
      crash = false
      const error = yield* Effect.flip(runValid(durable, { id: "b" }).pipe(Effect.provide(storeWith(file, durable))))
      expect(calls.count).toBe(4)
      expect([error._tag, error.reason, error.step]).toEqual(["RunFailed", "StepFailed", "flaky"])
      expect(error.message).toContain("flaky (attempt 4)")
    }))

  it.live("count each attempt's spend once on resume: journaled attempts from the journal, the lost one from the spend log", () =>
    Effect.gen(function*() {
      const file = freshFile()
      const entered = yield* Deferred.make<void>()
      let crash = true
      // Cut short, the third attempt has paid 1,000 (settled) and holds 3,000 for a call that never returns.
      const inFlight = Ledger.metered({
        worstCase: Cost.nanos(3_000),
        run: Effect.zipRight(Deferred.succeed(entered, undefined), Effect.never),
        usage: () => Usage.make({ requests: 1, cost: Cost.nanos(3_000) })
      })
      const { durable } = flaky("spend", (call) =>
        Effect.zipRight(paidCall(1_000), crash ? Effect.zipRight(inFlight, Effect.succeed(call)) : Effect.succeed(call)))
      yield* crashOnce(durable, file, "c", entered)
      crash = false
      const result = yield* Durable.run(durable, { id: "c" }).pipe(Effect.provide(storeWith(file, durable)))
      const usage = result.usage.byStep.flaky!
      // Two failed attempts of 1,000 each, the lost one's 1,000 settled and 3,000 held, then 1,000 for the last.
      expect([usage.cost, usage.requests, usage.inputTokens, usage.estimated]).toEqual([7_000, 5, 30, true])
      expect(result.usage.total.cost).toBe(7_000)
    }))

  it.live("run in one process give the result and usage of a plain run, and are replayed without running", () =>
    Effect.gen(function*() {
      const { calls, durable } = flaky("plain", (call) => Effect.as(paidCall(1_000), call))
      const plain = yield* Pipeline.run(durable.pipeline)
      expect(calls.count).toBe(3)
      calls.count = 0
      const file = freshFile()
      const result = yield* Durable.run(durable, { id: "d" }).pipe(Effect.provide(storeWith(file, durable)))
      expect(calls.count).toBe(3)
      expect(result.output).toBe(plain.output)
      expect(result.usage).toEqual(plain.usage)
      expect(result.timeline.map((t) => t.attempts)).toEqual([3])
      yield* Durable.run(durable, { id: "d" }).pipe(Effect.provide(storeWith(file, durable)))
      expect(calls.count).toBe(3)
    }))

  it.live("give each attempt the step's timeout: one that never ends times out, and the next attempt runs", () =>
    Effect.gen(function*() {
      let calls = 0
      const slow = Step.make("slow", {
        output: Schema.Number,
        timeout: "20 millis",
        retry: 1,
        run: () => Effect.suspend(() => ++calls === 1 ? Effect.never : Effect.succeed(calls))
      })
      const durable = Durable.make(Pipeline.make("slow", { output: slow }))
      const result = yield* Durable.run(durable, { id: "t" }).pipe(Effect.provide(storeWith(freshFile(), durable)))
      expect([result.output, calls, result.timeline[0]?.attempts]).toEqual([2, 2, 2])
    }))

  it.live("that all fail give the run's StepFailed as RunFailed, with every attempt's spend; a later run runs nothing", () =>
    Effect.gen(function*() {
      const { calls, durable } = flaky("failing", (call) =>
        Effect.zipRight(paidCall(1_000), Effect.fail(new Flaky({ attempt: call }))))
      const plain = yield* Effect.flip(Pipeline.run(durable.pipeline))
      expect(plain._tag).toBe("StepFailed")
      calls.count = 0
      const file = freshFile()
      const store = () =>
        Layer.provideMerge(
          Durable.layer(durable),
          Layer.orDie(Store.layerSqlite({ filename: file, shutdownTimeout: "200 millis" }))
        )
      const error = yield* Effect.flip(runValid(durable, { id: "e" }).pipe(Effect.provide(store())))
      expect(calls.count).toBe(3)
      expect([error.reason, error.step, error.usage.total.cost]).toEqual(["StepFailed", "flaky", 3_000])
      expect(error.usage).toEqual(plain.partial.usage)
      // The journal keeps a step's error as its tag and message.
      expect(error.message).toBe(`Durable run "e" of pipeline "failing" failed: ${plain.message.replace("Flaky", "StepError")}`)
      const [again, runs] = yield* Effect.all([Effect.flip(runValid(durable, { id: "e" })), Runs.list()]).pipe(
        Effect.provide(store())
      )
      expect(again).toEqual(error)
      expect(calls.count).toBe(3)
      expect(runs.map((run) => [run.id, run.status, run.steps, run.cost])).toEqual([["e", "failed", ["flaky"], 3_000]])
    }))
})

/** A SQL client on a fresh database of each kind the tests can reach, and a way to drop it. */
const databases: ReadonlyArray<{
  readonly name: string
  readonly make: () => Promise<{ readonly client: Layer.Layer<SqlClient.SqlClient, unknown>; readonly drop: () => Promise<void> }>
}> = [
  {
    name: "SQLite",
    make: async () => ({ client: SqliteClient.layer({ filename: freshFile() }), drop: async () => {} })
  },
  ...(postgresUrl === undefined ? [] : [{
    name: "PostgreSQL",
    make: async () => {
      const database = await freshDatabase(postgresUrl!, "trellis_spend")
      return { client: PgClient.layer({ url: Redacted.make(database.url) }), drop: database.drop }
    }
  }])
]

describe("SpendLog", () => {
  for (const database of databases) {
    it.live(`numbers the attempts of a table made before they had numbers, on ${database.name}: its rows are of first attempts`, () =>
      Effect.acquireUseRelease(
        Effect.promise(database.make),
        ({ client }) =>
          Effect.gen(function*() {
            const sql = yield* SqlClient.SqlClient
            // The table as it was, with one call of an attempt cut short.
            yield* sql`CREATE TABLE trellis_spend (execution_id TEXT NOT NULL, step TEXT NOT NULL, runner TEXT NOT NULL,
              attempt TEXT NOT NULL, reservation BIGINT NOT NULL, amount BIGINT NOT NULL, cost BIGINT,
              PRIMARY KEY (attempt, reservation))`
            yield* sql`INSERT INTO trellis_spend VALUES ('run', 'extract', 'gone', 'a', 0, 5000, 1200)`
            const log = yield* SpendLog.make
            const hold = { execution: "run", step: "extract", attempt: "b", attemptNumber: 2, reservation: 0 }
            yield* log.reserved({ ...hold, amount: Cost.nanos(3_000) })
            // Another runner's log sees both: the old row as the first attempt's, the new one as the second's.
            const spent = yield* Effect.flatMap(SpendLog.make, (other) => other.spentBefore("run"))
            expect([...spent.get("extract")!].sort(([a], [b]) => a - b).map(([n, usage]) => [n, usage.cost, usage.requests])).toEqual([
              [1, 1_200, 1],
              [2, 3_000, 1]
            ])
            // Made again, the log finds the column in place.
            yield* SpendLog.make
          }).pipe(Effect.provide(client), Effect.orDie),
        ({ drop }) => Effect.promise(drop)
      ))
  }
})
