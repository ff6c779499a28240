/**
 * The runs a store holds, as a list: each run's pipeline, id, status, the steps it has finished and what they cost.
 *
 * `@effect/cluster` keeps no index of workflows, so the list is read from its message tables (as `Retention` prunes
 * them): a run is its workflow's `run` message, its status that message's reply, its finished steps the attempts
 * (Activities) with a reply that ended their step and the signals delivered to its waiting steps. It needs only the SQL
 * client, so a process can list the runs of a PostgreSQL store without becoming a runner.
 *
 * @since 0.2.0
 */
import * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import { Cost } from "@trellis/core"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import * as Waiting from "./internal/waiting.js"

/**
 * Where a run stands: going (or cut by a crash and not yet resumed), waiting for a signal, or finished (`cancelled`:
 * it failed because it was cancelled).
 *
 * @since 0.2.0
 */
export type Status = "running" | "waiting" | "completed" | "stopped" | "failed" | "cancelled"

/**
 * One stored run.
 *
 * @since 0.2.0
 */
export interface Run {
  readonly pipeline: string
  readonly id: string
  readonly status: Status
  /**
   * The steps whose outcome is journaled (succeeded, or failed for good) and the waiting steps whose signal was
   * delivered, in the order they finished.
   */
  readonly steps: ReadonlyArray<string>
  /** What the journaled attempts of its steps cost; for a finished run, what the run cost. */
  readonly cost: Cost.Cost
}

/**
 * The run listing service.
 *
 * @since 0.2.0
 */
export interface Service {
  /** The store's runs, of one pipeline if named, by pipeline then id. */
  readonly list: (options?: { readonly pipeline?: string | undefined }) => Effect.Effect<ReadonlyArray<Run>, SqlError>
  /** Whether the store holds a run of the pipeline, by its workflow's execution id (finished or not). */
  readonly exists: (options: { readonly pipeline: string; readonly execution: string }) => Effect.Effect<boolean, SqlError>
}

/**
 * The run listing of the store.
 *
 * @since 0.2.0
 */
export class Runs extends Context.Tag("@trellis/durable/Runs")<Runs, Service>() {}

const workflowPrefix = "Workflow/"

// What the engine stores, read loosely: the parts a listing needs, each optional, so that a reply of another shape
// counts as nothing rather than failing the listing.
const Usage = Schema.Struct({ cost: Schema.NonNegativeInt })
const StepExit = Schema.Union(
  Schema.Struct({ _tag: Schema.Literal("Success"), value: Schema.Struct({ usage: Usage }) }),
  Schema.Struct({
    _tag: Schema.Literal("Failure"),
    cause: Schema.Struct({
      error: Schema.Struct({ usage: Usage, retryable: Schema.optionalWith(Schema.Boolean, { default: () => false }) })
    })
  })
)
const Reply = <A, I>(exit: Schema.Schema<A, I>) =>
  Schema.parseJson(Schema.Struct({
    _tag: Schema.Literal("Success"),
    value: Schema.Union(
      Schema.Struct({ _tag: Schema.Literal("Suspended") }),
      Schema.Struct({ _tag: Schema.Literal("Complete"), exit })
    )
  }))
const StepReply = Schema.decodeUnknownOption(Reply(StepExit))
const RunExit = Schema.Union(
  Schema.Struct({
    _tag: Schema.Literal("Success"),
    value: Schema.Struct({
      _tag: Schema.Literal("Completed", "Stopped"),
      usage: Schema.Struct({ total: Usage })
    })
  }),
  Schema.Struct({
    _tag: Schema.Literal("Failure"),
    cause: Schema.Struct({
      error: Schema.Struct({ reason: Schema.optional(Schema.String), usage: Schema.Struct({ total: Usage }) })
    })
  })
)
const RunReply = Schema.decodeUnknownOption(Reply(RunExit))
const RunPayload = Schema.decodeUnknownOption(Schema.parseJson(Schema.Struct({ id: Schema.String })))
const Named = Schema.decodeUnknownOption(Schema.parseJson(Schema.Struct({ name: Schema.String })))

interface Row {
  readonly entity_type: string
  readonly entity_id: string
  readonly tag: string
  readonly payload: string
  readonly reply: string | null
  /** The message's and its reply's ids, as text: 64-bit, they would round as SQLite's numbers. */
  readonly message_id: string
  readonly reply_id: string | null
}

/** A run's status and cost from its reply, if it finished or waits. */
const fromRunReply = (reply: string | null): { readonly status: Status; readonly cost?: number } => {
  const parsed = reply === null ? Option.none() : RunReply(reply)
  if (Option.isNone(parsed)) return { status: "running" }
  const value = parsed.value.value
  if (value._tag === "Suspended") return { status: "waiting" }
  const exit = value.exit
  return exit._tag === "Failure"
    ? { status: exit.cause.error.reason === "Cancelled" ? "cancelled" : "failed", cost: exit.cause.error.usage.total.cost }
    : { status: exit.value._tag === "Completed" ? "completed" : "stopped", cost: exit.value.usage.total.cost }
}

/** How an attempt of a step ended, from its Activity's reply, if it has ended. */
interface Attempt {
  readonly cost: number
  /** A failure the step's policy would retry: the step goes on if the run does. */
  readonly retryable: boolean
}

/** How an attempt ended, from its Activity's reply, if it has one. */
const fromStepReply = (reply: string | null): Option.Option<Attempt> =>
  Option.flatMap(reply === null ? Option.none() : StepReply(reply), ({ value }) =>
    value._tag === "Suspended"
      ? Option.none()
      : Option.some(
        value.exit._tag === "Success"
          ? { cost: value.exit.value.usage.cost, retryable: false }
          : { cost: value.exit.cause.error.usage.cost, retryable: value.exit.cause.error.retryable }
      ))

/**
 * Makes the listing on the SQL client's database (the one the cluster's tables are in, with their default prefix).
 *
 * @since 0.2.0
 */
export const make: Effect.Effect<Service, never, SqlClient.SqlClient> = Effect.map(SqlClient.SqlClient, (sql) => ({
  exists: ({ execution, pipeline }) =>
    Effect.map(
      sql`SELECT 1 AS found FROM cluster_messages
        WHERE entity_type = ${workflowPrefix + pipeline} AND entity_id = ${execution} AND tag = 'run'`.withoutTransform,
      (rows) => rows.length > 0
    ),
  list: (options) =>
    Effect.map(
      sql<Row>`
        SELECT m.entity_type AS entity_type, m.entity_id AS entity_id, m.tag AS tag, m.payload AS payload,
          r.payload AS reply, CAST(m.id AS TEXT) AS message_id, CAST(r.id AS TEXT) AS reply_id
        FROM cluster_messages m LEFT JOIN cluster_replies r ON r.request_id = m.request_id AND r.kind = 0
        WHERE m.tag IN ('run', 'activity', 'deferred') AND m.entity_type ${
        options?.pipeline === undefined
          ? sql`LIKE 'Workflow/%'`
          : sql`= ${workflowPrefix + options.pipeline}`
      }
        ORDER BY m.id`.withoutTransform,
      (rows) => {
        const runs = new Map<
          string,
          {
            pipeline: string
            id: string
            reply: string | null
            replyId: bigint | undefined
            steps: Array<{ readonly name: string; readonly retryable: boolean; readonly signalledAt?: bigint }>
            cost: number
          }
        >()
        const entry = (row: Row) => {
          const key = `${row.entity_type}\u0000${row.entity_id}`
          let run = runs.get(key)
          if (run === undefined) {
            run = {
              pipeline: row.entity_type.slice(workflowPrefix.length),
              id: "",
              reply: null,
              replyId: undefined,
              steps: [],
              cost: 0
            }
            runs.set(key, run)
          }
          return run
        }
        for (const row of rows) {
          const run = entry(row)
          if (row.tag === "run") {
            run.id = Option.match(RunPayload(row.payload), { onNone: () => row.entity_id, onSome: ({ id }) => id })
            run.reply = row.reply
            run.replyId = row.reply_id === null ? undefined : BigInt(row.reply_id)
            continue
          }
          const name = Option.getOrUndefined(Named(row.payload))?.name
          if (name === undefined) continue
          if (row.tag === "deferred") {
            if (name.startsWith(Waiting.signalPrefix)) {
              run.steps.push({
                name: name.slice(Waiting.signalPrefix.length),
                retryable: false,
                signalledAt: BigInt(row.message_id)
              })
            }
            continue
          }
          // A step's attempts are one Activity each, one after another: a later one means the earlier one failed
          // and did not end the step.
          const earlier = run.steps.findIndex((step) => step.name === name)
          if (earlier !== -1) run.steps.splice(earlier, 1)
          const attempt = fromStepReply(row.reply)
          if (Option.isNone(attempt)) continue
          run.steps.push({ name, retryable: attempt.value.retryable })
          run.cost += attempt.value.cost
        }
        return [...runs.values()]
          .filter((run) => run.id !== "")
          .map((run): Run => {
            const { cost, status } = fromRunReply(run.reply)
            // A failed attempt that would be retried ended its step only if the run is over (its retries ran out).
            const over = status !== "running" && status !== "waiting"
            // A signal stored after the run's outcome (ids grow with time) came too late to be used: a cancelled
            // run's waiting step did not finish with it.
            const late = (step: { readonly signalledAt?: bigint }) =>
              over && step.signalledAt !== undefined && run.replyId !== undefined && step.signalledAt > run.replyId
            return {
              pipeline: run.pipeline,
              id: run.id,
              status,
              steps: run.steps.filter((step) => (over || !step.retryable) && !late(step)).map((step) => step.name),
              cost: Cost.nanos(cost ?? run.cost)
            }
          })
          .sort((a, b) => a.pipeline.localeCompare(b.pipeline) || a.id.localeCompare(b.id))
      }
    )
}))

/**
 * A layer providing the listing on the SQL client's database.
 *
 * @since 0.2.0
 */
export const layer: Layer.Layer<Runs, never, SqlClient.SqlClient> = Layer.effect(Runs, make)

/**
 * The runs of the store in the context, of one pipeline if named.
 *
 * @since 0.2.0
 */
export const list = (
  options?: { readonly pipeline?: string | undefined }
): Effect.Effect<ReadonlyArray<Run>, SqlError, Runs> => Effect.flatMap(Runs, (runs) => runs.list(options))
