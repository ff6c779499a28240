/**
 * Cancellations: the runs asked to stop (`Durable.cancel`), in a table of Trellis's own next to the journal, which the
 * runner executing a run reads while the run goes on. The workflow engine cannot tell a running workflow itself: a
 * message for it waits until the run ends or suspends.
 *
 * @since 0.2.0
 */
import * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import * as Arr from "effect/Array"
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Schedule from "effect/Schedule"
import type * as Scope from "effect/Scope"

/**
 * What an execution of a run knows of the run's cancellation while it is watched.
 *
 * @since 0.2.0
 */
export interface Watch {
  /** Whether the run is cancelled: waits for the first look, taken when the watch began. */
  readonly isCancelled: Effect.Effect<boolean>
  /** Succeeds once the run is found cancelled. */
  readonly whenCancelled: Effect.Effect<void>
}

/**
 * The cancellations service.
 *
 * @since 0.2.0
 */
export interface Service {
  /** Writes down that a run (its workflow execution) is cancelled; a second time changes nothing. */
  readonly cancel: (execution: string) => Effect.Effect<void, SqlError>
  /**
   * Watches a run for as long as the scope is open: looks at once, then every second with the other runs this
   * process watches (one query for them all). A look that fails is logged, and taken as "not cancelled" until the
   * next.
   */
  readonly watch: (execution: string) => Effect.Effect<Watch, never, Scope.Scope>
}

/**
 * The cancellations of the store.
 *
 * @since 0.2.0
 */
export class Cancellations extends Context.Tag("@trellis/durable/Cancellations")<Cancellations, Service>() {}

/** How often the runs this process watches are looked at. */
const interval = "1 second"

/** How many runs one look names at most (SQLite limits the parameters of a statement). */
const batch = 500

const logFailure = (error: SqlError) => Effect.logWarning("Looking whether durable runs are cancelled failed", error)

/**
 * Makes the cancellations on the SQL client's database (SQLite or PostgreSQL), creating their table if needed, and
 * looks at the watched runs every second while the scope is open. Runners starting together on a new PostgreSQL
 * database may race to create the table, and all but one be refused: made again once the winner's is there, the
 * statement succeeds, so it is retried.
 *
 * @since 0.2.0
 */
export const make: Effect.Effect<Service, SqlError, SqlClient.SqlClient | Scope.Scope> = Effect.gen(function*() {
  const sql = yield* SqlClient.SqlClient
  yield* Effect.retry(
    sql`CREATE TABLE IF NOT EXISTS trellis_cancel (execution_id TEXT PRIMARY KEY, cancelled_at BIGINT NOT NULL)`,
    { schedule: Schedule.spaced("50 millis"), times: 3 }
  )
  // The runs watched in this process, each with the deferreds of its watches.
  const watched = new Map<string, Set<Deferred.Deferred<void>>>()
  const found = (executions: ReadonlyArray<string>) =>
    Effect.forEach(executions, (execution) =>
      Effect.forEach(watched.get(execution) ?? [], (deferred) => Deferred.succeed(deferred, undefined)), {
      discard: true
    })
  const cancelledAmong = (executions: ReadonlyArray<string>) =>
    Effect.map(
      sql<{ execution_id: string }>`SELECT execution_id FROM trellis_cancel WHERE ${sql.in("execution_id", executions)}`
        .withoutTransform,
      (rows) => rows.map((row) => row.execution_id)
    )
  const look = (executions: ReadonlyArray<string>) => Effect.flatMap(cancelledAmong(executions), found)
  const lookAtAll = Effect.suspend(() =>
    Effect.forEach(Arr.chunksOf([...watched.keys()], batch), look, { discard: true })
  ).pipe(Effect.catchAll(logFailure))
  yield* Effect.forkScoped(Effect.repeat(lookAtAll, Schedule.spaced(interval)))

  const watch = (execution: string) =>
    Effect.gen(function*() {
      const cancelled = yield* Deferred.make<void>()
      const looked = yield* Deferred.make<void>()
      yield* Effect.acquireRelease(
        Effect.sync(() => watched.set(execution, (watched.get(execution) ?? new Set()).add(cancelled))),
        () =>
          Effect.sync(() => {
            const watches = watched.get(execution)
            watches?.delete(cancelled)
            if (watches?.size === 0) watched.delete(execution)
          })
      )
      // The first look, at once: the run may have been cancelled before this process began watching it.
      yield* Effect.forkScoped(
        look([execution]).pipe(Effect.catchAll(logFailure), Effect.ensuring(Deferred.succeed(looked, undefined)))
      )
      return {
        isCancelled: Effect.zipRight(Deferred.await(looked), Deferred.isDone(cancelled)),
        whenCancelled: Deferred.await(cancelled)
      }
    })

  return Cancellations.of({
    cancel: (execution) =>
      Effect.flatMap(Clock.currentTimeMillis, (now) =>
        sql`INSERT INTO trellis_cancel (execution_id, cancelled_at) VALUES (${execution}, ${now})
          ON CONFLICT (execution_id) DO NOTHING`.pipe(Effect.asVoid)),
    watch
  })
})

/**
 * A layer providing the cancellations on the SQL client's database.
 *
 * @since 0.2.0
 */
export const layer: Layer.Layer<Cancellations, SqlError, SqlClient.SqlClient> = Layer.scoped(Cancellations, make)
