/**
 * Retention: finished runs are removed from the store once they are older than a retention period; the journal of a
 * run that is still going is never removed. `@effect/cluster` keeps every message and reply for ever, so this is
 * the store's only pruning.
 *
 * @since 0.2.0
 */
import * as Snowflake from "@effect/cluster/Snowflake"
import * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import { duration, type InvalidOption } from "./internal/options.js"

/**
 * The retention period used when none is given: 7 days.
 *
 * @since 0.2.0
 */
export const defaultPeriod: Duration.Duration = Duration.days(7)

/**
 * What a pruning removed.
 *
 * @since 0.2.0
 */
export interface Pruned {
  /** The finished runs removed (their ids are then free: running one again starts a new run). */
  readonly runs: number
}

/**
 * The retention service.
 *
 * @since 0.2.0
 */
export interface Service {
  /**
   * Removes every run that finished (completed, stopped or failed) longer than `period` ago (zero: every finished
   * run); a negative or NaN period, or text that is no duration, fails with `InvalidOption` and removes nothing.
   */
  readonly prune: (period?: Duration.DurationInput) => Effect.Effect<Pruned, SqlError | InvalidOption>
}

/**
 * The retention of the store.
 *
 * @since 0.2.0
 */
export class Retention extends Context.Tag("@trellis/durable/Retention")<Retention, Service>() {}

/** The entity of a durable clock shares its workflow's execution id. */
const clockEntity = "Workflow/-/DurableClock"

/** Whether a stored reply to a run says the run finished (it may say it is only suspended). */
const finished = (payload: string): boolean => {
  const exit = JSON.parse(payload) as { readonly _tag: string; readonly value?: { readonly _tag?: string } }
  return exit._tag !== "Success" || exit.value?._tag !== "Suspended"
}

/** A snowflake id as SQLite (a number) or PostgreSQL (a string) returns it. */
const snowflake = (id: unknown): Snowflake.Snowflake =>
  Snowflake.Snowflake(typeof id === "bigint" ? id : BigInt(typeof id === "number" ? Math.trunc(id) : String(id)))

/**
 * Makes the retention on the SQL client's database (the one the cluster's tables are in, with their default prefix).
 * A run's end is the moment in the id of its stored reply.
 *
 * @since 0.2.0
 */
export const make: Effect.Effect<Service, never, SqlClient.SqlClient> = Effect.map(SqlClient.SqlClient, (sql) => ({
  prune: (period = defaultPeriod) =>
    Effect.gen(function*() {
      const kept = yield* duration("retention period", period, { zero: true })
      const cutoff = (yield* Clock.currentTimeMillis) - Duration.toMillis(kept)
      const rows = yield* sql<{ entity_type: string; entity_id: string; reply_id: unknown; payload: string }>`
        SELECT m.entity_type AS entity_type, m.entity_id AS entity_id, r.id AS reply_id, r.payload AS payload
        FROM cluster_messages m JOIN cluster_replies r ON r.request_id = m.request_id
        WHERE m.tag = 'run' AND m.entity_type LIKE 'Workflow/%' AND m.entity_type <> ${clockEntity} AND r.kind = 0`
        .withoutTransform
      const old = rows.filter((row) =>
        Snowflake.timestamp(snowflake(row.reply_id)) < cutoff && finished(row.payload)
      )
      for (const { entity_id, entity_type } of old) {
        // By entity, not by message id: ids are 64-bit and SQLite returns them as numbers, which can round.
        yield* sql.withTransaction(Effect.all([
          sql`DELETE FROM cluster_replies WHERE request_id IN (SELECT request_id FROM cluster_messages
            WHERE entity_id = ${entity_id} AND entity_type IN (${entity_type}, ${clockEntity}))`,
          sql`DELETE FROM cluster_messages WHERE entity_id = ${entity_id} AND entity_type IN (${entity_type}, ${clockEntity})`,
          sql`DELETE FROM trellis_spend WHERE execution_id = ${entity_id}`,
          // The id is free again: a new run under it must not be taken as cancelled.
          sql`DELETE FROM trellis_cancel WHERE execution_id = ${entity_id}`
        ], { discard: true }))
      }
      return { runs: old.length }
    })
}))

/**
 * A layer providing retention on the SQL client's database.
 *
 * @since 0.2.0
 */
export const layer: Layer.Layer<Retention, never, SqlClient.SqlClient> = Layer.effect(Retention, make)

/**
 * Removes the finished runs older than `period` (default {@link defaultPeriod}) from the store in the context.
 *
 * @since 0.2.0
 */
export const prune = (period?: Duration.DurationInput): Effect.Effect<Pruned, SqlError | InvalidOption, Retention> =>
  Effect.flatMap(Retention, (retention) => retention.prune(period))
