/**
 * The spend log: each paid call's reservation written down before the call is sent, and its cost once it is settled,
 * in a table of Trellis's own next to the journal.
 *
 * The journal holds the usage of each attempt of a step once the attempt has ended. A call in flight when the process
 * dies, or settled in an attempt that had not ended, is in no journal; the log keeps it, with the attempt's number, so
 * that the attempt run again in place of the lost one counts what the lost one spent (the reservation for a call never
 * settled: it may have been billed) before it sends anything. A crash can therefore never carry a run past its budget.
 * One row per call is a lighter write than an Activity of its own per reservation.
 *
 * @since 0.2.0
 */
import * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import { Cost, Usage } from "@trellis/core"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Schedule from "effect/Schedule"
import * as Schema from "effect/Schema"
import { randomUUID } from "node:crypto"

/**
 * One paid call of one attempt of a step.
 *
 * @since 0.2.0
 */
export interface Hold {
  /** The workflow execution (the run). */
  readonly execution: string
  readonly step: string
  /** This execution of the attempt: one per runner process that runs it. */
  readonly attempt: string
  /** The attempt's number: 1 for the step's first attempt, one more for each retry. */
  readonly attemptNumber: number
  /** The reservation's number in the attempt's ledger. */
  readonly reservation: number
  readonly amount: Cost.Cost
}

/**
 * The spend log service.
 *
 * @since 0.2.0
 */
export interface Service {
  /** Writes a hold down; the call may be sent once this has succeeded. */
  readonly reserved: (hold: Hold) => Effect.Effect<void, SqlError>
  /** Writes down what a held call cost. */
  readonly settled: (hold: Hold, cost: Cost.Cost) => Effect.Effect<void, SqlError>
  /**
   * What the attempts made by earlier runner processes spent on a run, by step and attempt number: settled calls at
   * their cost, unsettled ones at their reservation. Estimated, one request per call; attempts with no call are
   * absent.
   */
  readonly spentBefore: (execution: string) => Effect.Effect<Spent, SqlError>
}

/**
 * What was spent on a run's steps: by step name, then by attempt number.
 *
 * @since 0.2.0
 */
export type Spent = ReadonlyMap<string, ReadonlyMap<number, Usage.Usage>>

/**
 * The spend log of the runner process.
 *
 * @since 0.2.0
 */
export class SpendLog extends Context.Tag("@trellis/durable/SpendLog")<SpendLog, Service>() {}

// PostgreSQL returns counts and sums of BIGINT as strings; SQLite as numbers.
const Count = Schema.Union(Schema.Number, Schema.NumberFromString)
const Totals = Schema.Array(Schema.Struct({ step: Schema.String, attempt: Count, calls: Count, cost: Count }))

/**
 * Creates the log's table and index if they are missing. Runners that start together on a new PostgreSQL database
 * race to create them, and PostgreSQL may refuse all but one `CREATE ... IF NOT EXISTS` with a unique violation:
 * made again once the winner's are in place, the statements succeed, so the caller retries.
 */
const tables = (sql: SqlClient.SqlClient): Effect.Effect<void, SqlError> =>
  Effect.gen(function*() {
    yield* sql`CREATE TABLE IF NOT EXISTS trellis_spend (
      execution_id TEXT NOT NULL,
      step TEXT NOT NULL,
      runner TEXT NOT NULL,
      attempt TEXT NOT NULL,
      attempt_number INTEGER,
      reservation BIGINT NOT NULL,
      amount BIGINT NOT NULL,
      cost BIGINT,
      PRIMARY KEY (attempt, reservation)
    )`
    // A table made before attempts had numbers gets the column; its rows are of first attempts (a step's attempts
    // were journaled together, under the key its first attempt has now). The column is looked for first: altering
    // the table would lock it against the other runners' writes, at every start.
    const numbered = yield* sql.onDialectOrElse({
      pg: () =>
        sql`SELECT column_name FROM information_schema.columns
          WHERE table_schema = current_schema() AND table_name = 'trellis_spend' AND column_name = 'attempt_number'`,
      orElse: () => sql`SELECT name FROM pragma_table_info('trellis_spend') WHERE name = 'attempt_number'`
    })
    if (numbered.length === 0) {
      yield* sql.onDialectOrElse({
        pg: () => sql`ALTER TABLE trellis_spend ADD COLUMN IF NOT EXISTS attempt_number INTEGER`,
        orElse: () => sql`ALTER TABLE trellis_spend ADD COLUMN attempt_number INTEGER`
      })
    }
    yield* sql`CREATE INDEX IF NOT EXISTS trellis_spend_step ON trellis_spend (execution_id, step)`
  })

/**
 * Makes the log on the SQL client's database (SQLite or PostgreSQL), creating its table if needed. Each log made is one runner's life: the
 * attempts it sees as earlier are those written by other logs.
 *
 * @since 0.2.0
 */
export const make: Effect.Effect<Service, SqlError, SqlClient.SqlClient> = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  const runner = randomUUID()
  yield* Effect.retry(tables(sql), { schedule: Schedule.spaced("50 millis"), times: 3 })
  return SpendLog.of({
    reserved: (hold) =>
      sql`INSERT INTO trellis_spend (execution_id, step, runner, attempt, attempt_number, reservation, amount)
        VALUES (${hold.execution}, ${hold.step}, ${runner}, ${hold.attempt}, ${hold.attemptNumber}, ${hold.reservation},
        ${hold.amount})`.pipe(
        Effect.asVoid
      ),
    settled: (hold, cost) =>
      sql`UPDATE trellis_spend SET cost = ${cost} WHERE attempt = ${hold.attempt} AND reservation = ${hold.reservation}`
        .pipe(Effect.asVoid),
    spentBefore: (execution) =>
      sql`SELECT step, COALESCE(attempt_number, 1) AS attempt, COUNT(*) AS calls, SUM(COALESCE(cost, amount)) AS cost
        FROM trellis_spend WHERE execution_id = ${execution} AND runner <> ${runner}
        GROUP BY step, COALESCE(attempt_number, 1)`.pipe(
        Effect.flatMap(Schema.decodeUnknown(Totals)),
        Effect.orDie,
        Effect.map((rows) => {
          const spent = new Map<string, Map<number, Usage.Usage>>()
          for (const { attempt, calls, cost, step } of rows) {
            const attempts = spent.get(step) ?? new Map<number, Usage.Usage>()
            attempts.set(attempt, Usage.make({ requests: calls, cost: Cost.nanos(cost), estimated: true }))
            spent.set(step, attempts)
          }
          return spent
        })
      )
  })
})

/**
 * A layer providing the log on the SQL client's database.
 *
 * @since 0.2.0
 */
export const layer: Layer.Layer<SpendLog, SqlError, SqlClient.SqlClient> = Layer.effect(SpendLog, make)
