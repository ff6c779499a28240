/**
 * Where durable runs are journaled: the workflow engine of `@effect/cluster` on a SQL store.
 *
 * @since 0.2.0
 */
import * as ClusterWorkflowEngine from "@effect/cluster/ClusterWorkflowEngine"
import * as SingleRunner from "@effect/cluster/SingleRunner"
import * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import { PgClient } from "@effect/sql-pg"
import { SqliteClient } from "@effect/sql-sqlite-node"
import type { WorkflowEngine } from "@effect/workflow/WorkflowEngine"
import type * as ConfigError from "effect/ConfigError"
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Schedule from "effect/Schedule"
import type * as Redacted from "effect/Redacted"
import * as Retention from "./Retention.js"
import * as Runs from "./Runs.js"
import * as SpendLog from "./SpendLog.js"

/**
 * Options of {@link layerSqlite}.
 *
 * @since 0.2.0
 */
export interface SqliteOptions extends EngineOptions {
  /** The SQLite file; created with its tables if it does not exist. */
  readonly filename: string
}

/**
 * The default of {@link EngineOptions.pollInterval}.
 *
 * @since 0.2.0
 */
export const defaultPollInterval: Duration.Duration = Duration.millis(500)

/**
 * Another process is the runner on this SQLite file.
 *
 * @since 0.2.0
 */
export class StoreInUse extends Data.TaggedError("StoreInUse")<{
  readonly filename: string
}> {
  override get message(): string {
    return `The SQLite file "${this.filename}" is in use by another process: one process at a time may run durable ` +
      `pipelines on a SQLite file (two could run a step twice)`
  }
}

/**
 * Takes the file for this process until the connection closes, or fails at once with `StoreInUse`. SQLite has no
 * advisory locks, and the cluster's shard locks do not tell two runners on one file apart, so the file's own lock
 * does it: in exclusive locking mode the connection keeps the write lock it takes here, and the operating system
 * releases it when the process ends, however it ends. WAL is turned on here rather than by the client, after the
 * busy timeout is set to 0, so that a second process is refused at once instead of waiting.
 */
const takeFile = (filename: string): Layer.Layer<never, StoreInUse | SqlError, SqlClient.SqlClient> =>
  Layer.effectDiscard(Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    yield* sql.unsafe("PRAGMA busy_timeout = 0")
    yield* sql.unsafe("PRAGMA locking_mode = EXCLUSIVE")
    yield* Effect.catchIf(
      Effect.zipRight(sql.unsafe("PRAGMA journal_mode = WAL"), sql.unsafe("BEGIN EXCLUSIVE")),
      (error) => (error.cause as { readonly code?: unknown } | undefined)?.code === "SQLITE_BUSY",
      () => Effect.fail(new StoreInUse({ filename }))
    )
    yield* sql.unsafe("COMMIT")
    yield* sql.unsafe("PRAGMA busy_timeout = 5000")
  }))

/**
 * Options every store takes.
 *
 * @since 0.2.0
 */
export interface EngineOptions {
  /**
   * How often the runner looks in the store for work it was not told about in process (a signal or a wake-up written
   * by another process). The cluster's default is 10 seconds; the default here is 500 milliseconds, which costs a few
   * statements a second while idle.
   */
  readonly pollInterval?: Duration.DurationInput | undefined
  /**
   * How long closing the layer waits for the steps still running to finish; past it they are left to the journal,
   * and run again when their run resumes. Default: 15 seconds (the cluster's).
   */
  readonly shutdownTimeout?: Duration.DurationInput | undefined
  /**
   * How long finished runs are kept: the store removes older ones when the layer starts and every hour after. Default:
   * 7 days. `"forever"` keeps them (`Retention.prune` still removes them on demand).
   */
  readonly retention?: Duration.DurationInput | "forever" | undefined
}

/**
 * What every store provides: the workflow engine, the spend log, the retention and the run listing.
 *
 * @since 0.2.0
 */
export type Services = WorkflowEngine | SpendLog.SpendLog | Retention.Retention | Runs.Runs

/** Prunes on start and every hour while the layer is open; a failed pruning is logged and tried again later. */
const pruning = (options: EngineOptions): Layer.Layer<never, never, Retention.Retention> =>
  options.retention === "forever" ? Layer.empty : Layer.scopedDiscard(Effect.forkScoped(
    Retention.prune(options.retention ?? Retention.defaultPeriod).pipe(
      Effect.catchAll((error) => Effect.logWarning("Pruning the durable runs' store failed", error)),
      Effect.repeat(Schedule.spaced("1 hour"))
    )
  ))

/** The engine, one runner, the spend log, retention and the run listing, on the SQL client's database (tables made as needed). */
const engine = (
  options: EngineOptions
): Layer.Layer<Services, ConfigError.ConfigError | SqlError, SqlClient.SqlClient> =>
  pruning(options).pipe(Layer.provideMerge(
    Layer.mergeAll(ClusterWorkflowEngine.layer, SpendLog.layer, Retention.layer, Runs.layer).pipe(
      Layer.provide(SingleRunner.layer({
        runnerStorage: "sql",
        shardingConfig: {
          entityMessagePollInterval: options.pollInterval ?? defaultPollInterval,
          ...(options.shutdownTimeout === undefined ? {} : { entityTerminationTimeout: options.shutdownTimeout })
        }
      }))
    )
  ))

/**
 * A workflow engine journaling in a SQLite file, with this process as its one runner, and the spend log in the same
 * file: runs left unfinished in the file (by a crash) resume as soon as the layer is built and their pipelines are
 * registered. The process holds the file while the layer is open: another process that opens it fails with
 * `StoreInUse`.
 *
 * @since 0.2.0
 */
export const layerSqlite = (
  options: SqliteOptions
): Layer.Layer<Services, ConfigError.ConfigError | StoreInUse | SqlError> =>
  engine(options).pipe(
    Layer.provide(takeFile(options.filename).pipe(
      Layer.provideMerge(SqliteClient.layer({ filename: options.filename, disableWAL: true }))
    ))
  )

/**
 * Options of {@link layerPg}.
 *
 * @since 0.2.0
 */
export interface PgOptions extends EngineOptions {
  /** The database, as a `postgres://` URL. */
  readonly url: Redacted.Redacted<string>
}

/**
 * A workflow engine journaling in a PostgreSQL database, with this process as its one runner, and the spend log in
 * the same database: runs left unfinished (by a crash) resume as soon as the layer is built and their pipelines are
 * registered.
 *
 * @since 0.2.0
 */
export const layerPg = (
  options: PgOptions
): Layer.Layer<Services, ConfigError.ConfigError | SqlError> =>
  engine(options).pipe(Layer.provide(PgClient.layer({ url: options.url })))
