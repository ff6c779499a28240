/**
 * Whether the store's database is still there. A runner whose PostgreSQL database went away while a step ran could
 * not write the step's outcome, and `@effect/cluster` waits for that outcome for ever, even once the database is
 * back (a new process finishes the run from its journal). So the runner looks at the database every second, and
 * the first look that fails or hangs ends it, as `StoreUnavailable` with the reason `Lost`: what waits on a run fails
 * with it, and a process that only runs work can wait on `Store.lost` to end, for a supervisor to start it again.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import * as Context from "effect/Context"
import * as Deferred from "effect/Deferred"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Schedule from "effect/Schedule"
import { StoreUnavailable } from "./unavailable.js"

/**
 * The health of the store a process runs on.
 *
 * @since 0.2.0
 */
export class Health extends Context.Tag("@trellis/durable/Store/Health")<Health, {
  /** Fails once the store is lost; never succeeds. */
  readonly lost: Effect.Effect<never, StoreUnavailable>
}>() {}

/** A store that cannot be lost while the process holds it: a SQLite file. */
export const never: Layer.Layer<Health> = Layer.succeed(Health, { lost: Effect.never })

/** How often the database is looked at, and how long a look may take before the database counts as lost. */
export const interval = Duration.seconds(1)
export const timeout = Duration.seconds(5)

/** Looks at the database every second while the layer is open; the first look that fails or hangs loses it. */
export const watching = (store: string): Layer.Layer<Health, never, SqlClient.SqlClient> =>
  Layer.scoped(
    Health,
    Effect.gen(function*() {
      const sql = yield* SqlClient.SqlClient
      const lost = yield* Deferred.make<never, StoreUnavailable>()
      const look = sql`SELECT 1`.pipe(
        Effect.timeoutFail({
          duration: timeout,
          onTimeout: () => `it did not answer within ${Duration.format(timeout)}`
        }),
        Effect.mapError((error) => typeof error === "string" ? error : error.message)
      )
      yield* Effect.forkScoped(
        look.pipe(
          Effect.repeat(Schedule.spaced(interval)),
          Effect.catchAll((detail) =>
            Effect.zipRight(
              Effect.logError(`The durable runs' database is lost: ${detail}`),
              Deferred.fail(lost, new StoreUnavailable({ store, reason: "Lost", detail }))
            )
          )
        )
      )
      return { lost: Deferred.await(lost) }
    })
  )
