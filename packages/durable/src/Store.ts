/**
 * Where durable runs are journaled: the workflow engine of `@effect/cluster` on a SQL store.
 *
 * @since 0.2.0
 */
import * as ClusterWorkflowEngine from "@effect/cluster/ClusterWorkflowEngine"
import * as SingleRunner from "@effect/cluster/SingleRunner"
import { SqliteClient } from "@effect/sql-sqlite-node"
import type { WorkflowEngine } from "@effect/workflow/WorkflowEngine"
import type * as ConfigError from "effect/ConfigError"
import * as Duration from "effect/Duration"
import * as Layer from "effect/Layer"

/**
 * Options of {@link layerSqlite}.
 *
 * @since 0.2.0
 */
export interface SqliteOptions {
  /** The SQLite file; created with its tables if it does not exist. */
  readonly filename: string
  /**
   * How often the runner looks in the file for work it was not told about in process (a signal or a wake-up written
   * by another process). The cluster's default is 10 seconds; 500 milliseconds costs a few statements a second idle.
   */
  readonly pollInterval?: Duration.DurationInput | undefined
  /**
   * How long closing the layer waits for the steps still running to finish; past it they are left to the journal,
   * and run again when their run resumes. Default: 15 seconds (the cluster's).
   */
  readonly shutdownTimeout?: Duration.DurationInput | undefined
}

/**
 * The default of {@link SqliteOptions.pollInterval}.
 *
 * @since 0.2.0
 */
export const defaultPollInterval: Duration.Duration = Duration.millis(500)

/**
 * A workflow engine journaling in a SQLite file, with this process as its one runner: runs left unfinished in the file
 * (by a crash) resume as soon as the layer is built and their pipelines are registered. One process only may run on a
 * file: SQLite has no advisory locks, so two runners on one file could run a step twice.
 *
 * @since 0.2.0
 */
export const layerSqlite = (options: SqliteOptions): Layer.Layer<WorkflowEngine, ConfigError.ConfigError> =>
  ClusterWorkflowEngine.layer.pipe(
    Layer.provide(SingleRunner.layer({
      runnerStorage: "sql",
      shardingConfig: {
        entityMessagePollInterval: options.pollInterval ?? defaultPollInterval,
        ...(options.shutdownTimeout === undefined ? {} : { entityTerminationTimeout: options.shutdownTimeout })
      }
    })),
    Layer.provide(SqliteClient.layer({ filename: options.filename }))
  )
