import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { Cost, Pipeline, Step } from "@trellis/core"
import { Durable, Retention, Store } from "@trellis/durable"
import { Deferred, Effect, Fiber, Layer, Redacted, Schema } from "effect"
import type { WorkflowEngine } from "@effect/workflow/WorkflowEngine"
import { freshDatabase, paidCall, postgresUrl, runValid } from "./utils.js"

describe.skipIf(postgresUrl === undefined)("Durable.run on PostgreSQL", () => {
  let database: Awaited<ReturnType<typeof freshDatabase>>
  beforeAll(async () => {
    database = await freshDatabase(postgresUrl!, "trellis_durable")
  })
  afterAll(() => database?.drop())

  const store = (durable: Durable.Durable<any, any, never, any, any>) =>
    Durable.layer(durable).pipe(
      Layer.provideMerge(Store.layerPg({ url: Redacted.make(database.url), pollInterval: "100 millis", shutdownTimeout: "200 millis" })),
      Layer.orDie
    ) as Layer.Layer<WorkflowEngine | Retention.Retention>

  const chain = (name: string, runs: Record<string, number>, hang: () => boolean, entered: Deferred.Deferred<void>) => {
    const counted = (step: string, value: number) =>
      Effect.suspend(() => {
        runs[step] = (runs[step] ?? 0) + 1
        return Effect.as(paidCall(1_000), value)
      })
    const a = Step.make("a", { output: Schema.Number, run: () => counted("a", 1) })
    const b = Step.make("b", {
      after: { a },
      output: Schema.Number,
      run: ({ a }) =>
        Effect.zipRight(
          Effect.suspend(() => (hang() ? Effect.zipRight(Deferred.succeed(entered, undefined), Effect.never) : Effect.void)),
          counted("b", a + 1)
        )
    })
    const c = Step.make("c", { after: { b }, output: Schema.Number, run: ({ b }) => counted("c", b * 10) })
    return Durable.make(Pipeline.make(name, { output: c, budget: Cost.nanos(100_000) }))
  }

  it.live("runs, resumes a run torn down mid-way without running finished steps again, returns a finished run's result, prunes it", () =>
    Effect.gen(function*() {
      const runs: Record<string, number> = {}
      const entered = yield* Deferred.make<void>()
      let hang = true
      const durable = chain("pg_chain", runs, () => hang, entered)
      const first = yield* Effect.fork(Durable.run(durable, { id: "pg-1" }).pipe(Effect.provide(store(durable))))
      yield* Deferred.await(entered)
      yield* Fiber.interrupt(first)
      expect(runs).toEqual({ a: 1 })
      hang = false
      const result = yield* Durable.run(durable, { id: "pg-1" }).pipe(Effect.provide(store(durable)))
      expect([result.output, result.usage.total.cost]).toEqual([20, 3_000])
      expect(runs).toEqual({ a: 1, b: 1, c: 1 })
      const again = yield* Durable.run(durable, { id: "pg-1" }).pipe(Effect.provide(store(durable)))
      expect(again).toEqual(result)
      expect(runs).toEqual({ a: 1, b: 1, c: 1 })
      // Pruned, the id is free again.
      expect(yield* Retention.prune(0).pipe(Effect.provide(store(durable)))).toEqual({ runs: 1 })
      yield* Durable.run(durable, { id: "pg-1" }).pipe(Effect.provide(store(durable)))
      expect(runs).toEqual({ a: 2, b: 2, c: 2 })
    }), 30_000)

  it.live("cancels a running run from a client's process: its runner cuts the step; pruned, the id runs again", () =>
    Effect.gen(function*() {
      const runs: Record<string, number> = {}
      const entered = yield* Deferred.make<void>()
      let hang = true
      const durable = chain("pg_cancel", runs, () => hang, entered)
      const runner = store(durable)
      const client = Store.layerPgClient({ url: Redacted.make(database.url) }).pipe(Layer.orDie)
      const error = yield* Effect.gen(function*() {
        const running = yield* Effect.fork(Effect.flip(runValid(durable, { id: "pg-2" })))
        yield* Deferred.await(entered)
        yield* Durable.cancel(durable, { id: "pg-2" }).pipe(Effect.provide(client))
        return yield* Fiber.join(running)
      }).pipe(Effect.provide(runner))
      expect([error.reason, error.step, error.outputs, error.usage.total.cost]).toEqual(["Cancelled", "b", { a: 1 }, 1_000])
      expect(runs).toEqual({ a: 1 })
      // Pruned, the id is free again, and a new run under it is not taken as cancelled.
      hang = false
      const result = yield* Effect.zipRight(
        Retention.prune(0),
        Durable.run(durable, { id: "pg-2" })
      ).pipe(Effect.provide(store(durable)))
      expect(result.output).toBe(20)
    }), 30_000)
})
