import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { Pipeline, Step } from "@trellis/core"
import { Durable, Runs, Store } from "@trellis/durable"
import { PgClient } from "@effect/sql-pg"
import { Effect, Layer, Redacted, Schema } from "effect"
import type { WorkflowEngine } from "@effect/workflow/WorkflowEngine"
import { freshDatabase, paidCall, postgresUrl } from "./utils.js"

describe.skipIf(postgresUrl === undefined)("Durable.await and Runs.list on PostgreSQL", () => {
  let database: Awaited<ReturnType<typeof freshDatabase>>
  beforeAll(async () => {
    database = await freshDatabase(postgresUrl!, "trellis_signals")
  })
  afterAll(() => database?.drop())

  let questions = 0
  const question = Step.make("question", {
    output: Schema.String,
    run: () => Effect.suspend(() => Effect.as(paidCall(1_000), `question ${++questions}`))
  })
  const answer = Durable.await("answer", { schema: Schema.Number, after: { question } })
  const reply = Step.make("reply", {
    after: { question, answer },
    output: Schema.String,
    run: ({ answer, question }) => Effect.succeed(`${question}: ${answer}`)
  })
  const durable = Durable.make(Pipeline.make("pg_ask", { output: reply }))

  const store = () =>
    Durable.layer(durable).pipe(
      Layer.provideMerge(
        Store.layerPg({ url: Redacted.make(database.url), pollInterval: "100 millis", shutdownTimeout: "200 millis" })
      ),
      Layer.orDie
    ) as Layer.Layer<WorkflowEngine | Runs.Runs>

  it.live("a waiting run survives its runner, completes when signalled, and is listed with its status", () =>
    Effect.gen(function*() {
      yield* Effect.gen(function*() {
        yield* Durable.start(durable, { id: "q" })
        while ((yield* Durable.status(durable, { id: "q" }))._tag !== "Waiting") yield* Effect.sleep("20 millis")
      }).pipe(Effect.provide(store()))
      // Listed with the SQL client alone: no runner is needed.
      const client = PgClient.layer({ url: Redacted.make(database.url) })
      const listed = yield* Runs.list().pipe(Effect.provide(Runs.layer.pipe(Layer.provide(client))), Effect.orDie)
      expect(listed).toEqual([{ pipeline: "pg_ask", id: "q", status: "waiting", steps: ["question"], cost: 1_000 }])
      const result = yield* Effect.zipRight(
        Durable.signal(durable, { id: "q", step: answer, value: 42 }),
        Durable.run(durable, { id: "q" })
      ).pipe(Effect.provide(store()))
      expect([result.output, result.usage.total.cost, questions]).toEqual(["question 1: 42", 1_000, 1])
      const done = yield* Runs.list({ pipeline: "pg_ask" }).pipe(Effect.provide(store()), Effect.orDie)
      expect(done).toEqual([{ pipeline: "pg_ask", id: "q", status: "completed", steps: ["question", "answer", "reply"], cost: 1_000 }])
    }))
})
