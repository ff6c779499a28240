/**
 * Cancellations: the runs asked to stop (`Durable.cancel`), in a table of Trellis's own next to the journal, which the
 * runner executing a run reads while the run goes on. The workflow engine cannot tell a running workflow itself: a
 * message for it waits until the run ends or suspends.
 *
 * @since 0.2.0
 */
import * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Schedule from "effect/Schedule"

/**
 * The cancellations service.
 *
 * @since 0.2.0
 */
export interface Service {
  /** Writes down that a run (its workflow execution) is cancelled; a second time changes nothing. */
  readonly cancel: (execution: string) => Effect.Effect<void, SqlError>
  /** Whether a run is cancelled. */
  readonly isCancelled: (execution: string) => Effect.Effect<boolean, SqlError>
}

/**
 * The cancellations of the store.
 *
 * @since 0.2.0
 */
export class Cancellations extends Context.Tag("@trellis/durable/Cancellations")<Cancellations, Service>() {}

/**
 * Makes the cancellations on the SQL client's database (SQLite or PostgreSQL), creating their table if needed. Runners
 * starting together on a new PostgreSQL database may race to create it, and all but one be refused: made again once
 * the winner's is there, the statement succeeds, so it is retried.
 *
 * @since 0.2.0
 */
export const make: Effect.Effect<Service, SqlError, SqlClient.SqlClient> = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  yield* Effect.retry(
    sql`CREATE TABLE IF NOT EXISTS trellis_cancel (execution_id TEXT PRIMARY KEY, cancelled_at BIGINT NOT NULL)`,
    { schedule: Schedule.spaced("50 millis"), times: 3 }
  )
  return Cancellations.of({
    cancel: (execution) =>
      Effect.flatMap(Clock.currentTimeMillis, (now) =>
        sql`INSERT INTO trellis_cancel (execution_id, cancelled_at) VALUES (${execution}, ${now})
          ON CONFLICT (execution_id) DO NOTHING`.pipe(Effect.asVoid)),
    isCancelled: (execution) =>
      Effect.map(sql`SELECT 1 FROM trellis_cancel WHERE execution_id = ${execution}`, (rows) => rows.length > 0)
  })
})

/**
 * A layer providing the cancellations on the SQL client's database.
 *
 * @since 0.2.0
 */
export const layer: Layer.Layer<Cancellations, SqlError, SqlClient.SqlClient> = Layer.effect(Cancellations, make)
