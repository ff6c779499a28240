/**
 * Where durable runs are journaled: the workflow engine of `@effect/cluster` on a SQL store.
 *
 * @since 0.2.0
 */
import { PersistenceError } from "@effect/cluster/ClusterError"
import * as ClusterWorkflowEngine from "@effect/cluster/ClusterWorkflowEngine"
import type * as MessageStorage from "@effect/cluster/MessageStorage"
import * as RunnerAddress from "@effect/cluster/RunnerAddress"
import * as RunnerHealth from "@effect/cluster/RunnerHealth"
import * as RunnerStorage from "@effect/cluster/RunnerStorage"
import type * as Runners from "@effect/cluster/Runners"
import type * as Sharding from "@effect/cluster/Sharding"
import * as ShardingConfig from "@effect/cluster/ShardingConfig"
import * as SingleRunner from "@effect/cluster/SingleRunner"
import * as SocketRunner from "@effect/cluster/SocketRunner"
import * as SqlMessageStorage from "@effect/cluster/SqlMessageStorage"
import * as SqlRunnerStorage from "@effect/cluster/SqlRunnerStorage"
import * as NodeClusterSocket from "@effect/platform-node/NodeClusterSocket"
import type * as SocketServer from "@effect/platform/SocketServer"
import * as RpcSerialization from "@effect/rpc/RpcSerialization"
import * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import type { WorkflowEngine } from "@effect/workflow/WorkflowEngine"
import type * as ConfigError from "effect/ConfigError"
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Schedule from "effect/Schedule"
import * as Scope from "effect/Scope"
import type * as Redacted from "effect/Redacted"
import { OptionKeys } from "@trellis/core"
import { duration, InvalidOption } from "./internal/options.js"
import * as Health from "./internal/health.js"
import * as Postgres from "./internal/postgres.js"
import * as Sqlite from "./internal/sqlite.js"
import type * as Unavailable from "./internal/unavailable.js"
import * as Retention from "./Retention.js"
import * as Runs from "./Runs.js"
import * as Cancellations from "./Cancellations.js"
import * as SpendLog from "./SpendLog.js"

/**
 * Options of {@link layerSqlite}.
 *
 * @since 0.2.0
 */
export interface SqliteOptions extends EngineOptions {
  /** The SQLite file; created with its tables if it does not exist, unless `create` is `false`. */
  readonly filename: string
  /**
   * Whether a missing file is created (default `true`). A process that only reads or signals the runs of an existing
   * store gives `false`: a mistyped path then fails with `StoreUnavailable` (`NotFound`) instead of making an empty
   * store.
   */
  readonly create?: boolean | undefined
}

/**
 * The default of {@link EngineOptions.pollInterval}.
 *
 * @since 0.2.0
 */
export const defaultPollInterval: Duration.Duration = Duration.millis(500)

export {
  /**
   * An option given to a store (or to `Retention.prune`) cannot be right: a negative or NaN amount, text that is no
   * duration, or an interval of zero (the store would poll its database without pause). Nothing is opened.
   *
   * @since 0.2.0
   */
  InvalidOption
}

export {
  /**
   * Another process is the runner on this SQLite file.
   *
   * @since 0.2.0
   */
  StoreInUse
} from "./internal/sqlite.js"

export {
  /**
   * A store cannot be opened, or stopped being usable: the message names it (a SQLite file's path; a PostgreSQL URL
   * without its password) and says why, and `reason` tells the cases apart (see `Reason`).
   *
   * @since 0.2.0
   */
  StoreUnavailable
} from "./internal/unavailable.js"

/**
 * Why a store is unavailable: for a SQLite file `NotFound`, `NoDirectory`, `NotAFile`, `Corrupt` or `CannotOpen`; for
 * PostgreSQL `Refused`, `AuthenticationFailed`, `NoDatabase` or `Lost`.
 *
 * @since 0.2.0
 */
export type Reason = Unavailable.Reason

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
 * What every store provides: the workflow engine, the spend log, the cancellations, the retention and the run
 * listing.
 *
 * @since 0.2.0
 */
export type Services =
  | WorkflowEngine
  | SpendLog.SpendLog
  | Cancellations.Cancellations
  | Retention.Retention
  | Runs.Runs
  | Health.Health

/** The options every store takes, checked, with their defaults. */
interface Engine {
  readonly pollInterval: Duration.Duration
  readonly shutdownTimeout: Duration.Duration | undefined
  readonly retention: Duration.Duration | "forever"
}

const engineKeys = ["pollInterval", "shutdownTimeout", "retention"]

/**
 * The options every store takes, checked with their defaults; `own` are the store's other options (a key neither
 * knows is refused, naming the likely one: a JavaScript caller's `retension` would silently keep the default).
 */
const checkEngine = (options: EngineOptions, own: ReadonlyArray<string>): Either.Either<Engine, InvalidOption> =>
  Either.flatMap(knownKeys(options, [...engineKeys, ...own]), () => engineOf(options))

/** `options` with no key outside `known`, or an `InvalidOption` naming the first one. */
const knownKeys = (options: unknown, known: ReadonlyArray<string>, prefix = ""): Either.Either<void, InvalidOption> => {
  const found = OptionKeys.find(options, known, prefix)
  if (found === undefined) return Either.void
  const detail = found.meant === undefined
    ? `no such option; known: ${found.known.join(", ")}`
    : `no such option (did you mean ${JSON.stringify(found.meant)}?)`
  return Either.left(new InvalidOption({ option: found.path, detail }))
}

const engineOf = (options: EngineOptions): Either.Either<Engine, InvalidOption> =>
  Either.all({
    pollInterval: options.pollInterval === undefined
      ? Either.right(defaultPollInterval)
      : duration("pollInterval", options.pollInterval, { zero: false }),
    shutdownTimeout: options.shutdownTimeout === undefined
      ? Either.right(undefined)
      : duration("shutdownTimeout", options.shutdownTimeout, { zero: true }),
    retention: options.retention === "forever"
      ? Either.right("forever" as const)
      : options.retention === undefined
      ? Either.right(Retention.defaultPeriod)
      : duration("retention", options.retention, { zero: true })
  })

/** A store's layer, made from its options once they are checked; a bad option fails the layer with `InvalidOption`. */
const checked = <A, B, E, R>(
  options: Either.Either<A, InvalidOption>,
  make: (options: A) => Layer.Layer<B, E, R>
): Layer.Layer<B, E | InvalidOption, R> =>
  Either.match(options, { onLeft: (error) => Layer.fail(error), onRight: make })

/** Prunes on start and every hour while the layer is open; a failed pruning is logged and tried again later. */
const pruning = (engine: Engine): Layer.Layer<never, never, Retention.Retention> =>
  engine.retention === "forever" ? Layer.empty : Layer.scopedDiscard(Effect.forkScoped(
    Retention.prune(engine.retention).pipe(
      Effect.catchAll((error) => Effect.logWarning("Pruning the durable runs' store failed", error)),
      Effect.repeat(Schedule.spaced("1 hour"))
    )
  ))

/**
 * The engine, the spend log, the cancellations, retention and the run listing on the SQL client's database (tables
 * made as needed), over a cluster.
 */
const services = <E>(
  engine: Engine,
  cluster: Layer.Layer<Sharding.Sharding | MessageStorage.MessageStorage, E, SqlClient.SqlClient>,
  health: Layer.Layer<Health.Health, never, SqlClient.SqlClient>
): Layer.Layer<Services, E | SqlError, SqlClient.SqlClient> =>
  pruning(engine).pipe(Layer.provideMerge(
    Layer.mergeAll(
      ClusterWorkflowEngine.layer,
      SpendLog.layer,
      Cancellations.layer,
      Retention.layer,
      Runs.layer,
      health
    ).pipe(Layer.provide(cluster))
  ))

/**
 * Builds `layer` (a store's services on PostgreSQL) while this process holds a database-wide advisory lock, so that
 * processes starting together on a new database make its tables one after the other: the cluster's migrations
 * create their table without `IF NOT EXISTS`, and of several runners starting at once on a new database, all but
 * one died. The lock is a two-key one, apart from the single-key locks the cluster takes on shards.
 */
const oneAtATime = <A, E, R>(layer: Layer.Layer<A, E, R>): Layer.Layer<A, E | SqlError, R | SqlClient.SqlClient> =>
  Layer.scopedContext(Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const lifetime = yield* Effect.scope
    return yield* Effect.scoped(Effect.gen(function*() {
      const connection = yield* sql.reserve
      yield* Effect.acquireRelease(
        connection.executeRaw("SELECT pg_advisory_lock($1, $2)", startupLock),
        () => Effect.ignore(connection.executeRaw("SELECT pg_advisory_unlock($1, $2)", startupLock))
      )
      return yield* Scope.extend(Layer.build(layer), lifetime)
    }))
  }))

/** The keys of the lock held while a store starts: "trel", then 1. */
const startupLock = [0x7472656c, 1]

/** The engine with this process as the one runner. */
const singleRunner = (
  engine: Engine,
  health: Layer.Layer<Health.Health, never, SqlClient.SqlClient>
): Layer.Layer<Services, ConfigError.ConfigError | SqlError, SqlClient.SqlClient> =>
  services(engine, SingleRunner.layer({ runnerStorage: "sql", shardingConfig: shardingOf(engine) }), health)

/** What the cluster is told of the checked options. */
const shardingOf = (engine: Engine): Partial<ShardingConfig.ShardingConfig["Type"]> => ({
  entityMessagePollInterval: engine.pollInterval,
  ...(engine.shutdownTimeout === undefined ? {} : { entityTerminationTimeout: engine.shutdownTimeout })
})

/**
 * A workflow engine journaling in a SQLite file, with this process as its one runner, and the spend log in the same
 * file: runs left unfinished in the file (by a crash) resume as soon as the layer is built and their pipelines are
 * registered. The process holds the file while the layer is open: another process that opens it fails with
 * `StoreInUse`. A file that cannot be a store (a folder, a missing folder, a missing file with `create: false`, a
 * file that is not a SQLite database or has damaged pages) fails with `StoreUnavailable`, naming it and why.
 *
 * @since 0.2.0
 */
export const layerSqlite = (
  options: SqliteOptions
): Layer.Layer<
  Services,
  ConfigError.ConfigError | Sqlite.StoreInUse | Unavailable.StoreUnavailable | SqlError | InvalidOption
> =>
  checked(
    checkEngine(options, ["filename", "create"]),
    (engine) =>
      singleRunner(engine, Health.never).pipe(Layer.provide(Sqlite.client(options.filename, options.create ?? true)))
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
 * registered. A connection the server refuses fails with `StoreUnavailable`, its reason saying which refusal it is
 * (`Refused`, `AuthenticationFailed`, `NoDatabase`), as it does for {@link layerPgRunner} and {@link layerPgClient}.
 *
 * @since 0.2.0
 */
export const layerPg = (
  options: PgOptions
): Layer.Layer<Services, ConfigError.ConfigError | SqlError | Unavailable.StoreUnavailable | InvalidOption> =>
  checked(checkEngine(options, ["url"]), (engine) =>
    oneAtATime(singleRunner(engine, Health.watching(Postgres.displayUrl(options.url)))).pipe(
      Layer.provide(Postgres.client(options.url))
    ))

/**
 * Where a runner is reached by the other runners and clients: a host name or IP address they can connect to, and
 * the TCP port this process listens on for them.
 *
 * @since 0.2.0
 */
export interface RunnerOptions {
  readonly host: string
  readonly port: number
}

/**
 * Options of {@link layerPgRunner}.
 *
 * @since 0.2.0
 */
export interface PgRunnerOptions extends PgOptions {
  /** This runner's address: each runner on a database has its own. */
  readonly runner: RunnerOptions
  /**
   * How often each runner (and client) reads which runners are alive. A runner whose process ended has its runs
   * picked up by the others at the next read after its database connections close (at once for a process that
   * crashed on a host that is still up), so this bounds the pick-up time. Each read is two statements per process.
   * Default: 100 milliseconds.
   */
  readonly pickUpInterval?: Duration.DurationInput | undefined
}

/**
 * Options of {@link layerPgClient}.
 *
 * @since 0.2.0
 */
export interface PgClientOptions {
  /** The database, as a `postgres://` URL. */
  readonly url: Redacted.Redacted<string>
  /** As {@link PgRunnerOptions.pickUpInterval}: how soon a client stops sending new runs to a runner that died. */
  readonly pickUpInterval?: Duration.DurationInput | undefined
}

/**
 * The default of {@link PgRunnerOptions.pickUpInterval}.
 *
 * @since 0.2.0
 */
export const defaultPickUpInterval: Duration.Duration = Duration.millis(100)

/**
 * A runner's address is not one other processes can connect to.
 *
 * @since 0.2.0
 */
export class InvalidRunner extends Data.TaggedError("InvalidRunner")<{
  readonly host: string
  readonly port: number
}> {
  override get message(): string {
    return `Invalid runner address "${this.host}:${this.port}": the host must be a name or an IP address (with the ` +
      `port, at most ${maxAddressLength} characters) and the port an integer from 1 to 65535`
  }
}

/** The runner address as the cluster stores it (`host:port`). */
const addressKey = (address: { readonly host: string; readonly port: number }): string =>
  `${address.host}:${address.port}`

/** What a runner's database connections are named, so that the others can see from the database that it is alive. */
const connectionPrefix = "trellis-runner "

/** PostgreSQL cuts a connection's name to 63 bytes: the address must fit in what is left after the prefix. */
const maxAddressLength = 63 - connectionPrefix.length

/** The addresses of the runners that have a connection open to this database. */
const connectedRunners = (sql: SqlClient.SqlClient): Effect.Effect<ReadonlySet<string>, SqlError> =>
  sql<{ readonly address: string }>`
    SELECT DISTINCT substr(application_name, ${connectionPrefix.length + 1}) AS address FROM pg_stat_activity
    WHERE datname = current_database() AND starts_with(application_name, ${connectionPrefix})`.pipe(
    Effect.map((rows) => new Set(rows.map((row) => row.address)))
  )

/**
 * The cluster's SQL runner storage, where a runner counts as present only while it has a connection open to the
 * database. The cluster alone learns that a runner died when its heartbeat is older than the shard lock expiry (35 s
 * by default), or when a health check that runs once a minute fails to reach it five times. PostgreSQL closes a
 * dead process's connections at once and frees the advisory locks they held on its shards, so one look at
 * `pg_stat_activity` when the runners are read lets the others take its shards at their next read.
 */
const liveRunnerStorage: Layer.Layer<
  RunnerStorage.RunnerStorage,
  SqlError,
  SqlClient.SqlClient | ShardingConfig.ShardingConfig
> = Layer.scoped(
  RunnerStorage.RunnerStorage,
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    const storage = yield* SqlRunnerStorage.make({})
    return RunnerStorage.RunnerStorage.of({
      ...storage,
      getRunners: Effect.flatMap(storage.getRunners, (runners) =>
        connectedRunners(sql).pipe(
          Effect.map((live) => runners.filter(([runner]) => live.has(addressKey(runner.address)))),
          PersistenceError.refail
        ))
    })
  })
)

/**
 * The runners' health check, on the same evidence: a runner is alive while it has a connection to the database.
 * The cluster's own check pings runners over TCP, and a runner too busy to answer in time was seen marked unhealthy
 * and its shards moved, steps in flight and all; a failed look at the database counts as alive, as the heartbeat's
 * expiry still removes a runner that is gone.
 */
const connectionHealth: Layer.Layer<RunnerHealth.RunnerHealth, never, SqlClient.SqlClient> = Layer.effect(
  RunnerHealth.RunnerHealth,
  Effect.map(SqlClient.SqlClient, (sql) =>
    RunnerHealth.RunnerHealth.of({
      isAlive: (address) =>
        connectedRunners(sql).pipe(
          Effect.map((live) => live.has(addressKey(address))),
          Effect.orElseSucceed(() => true)
        )
    }))
)

/** The cluster over the SQL storage: a runner reached over TCP, or a client only (`runnerAddress` none). */
const cluster = (
  shardingConfig: Partial<ShardingConfig.ShardingConfig["Type"]>
): Layer.Layer<
  Sharding.Sharding | Runners.Runners | MessageStorage.MessageStorage,
  ConfigError.ConfigError | SocketServer.SocketServerError | SqlError,
  SqlClient.SqlClient
> => {
  const storage = Layer.merge(liveRunnerStorage, Layer.orDie(SqlMessageStorage.layer))
  const sockets = Option.isNone(shardingConfig.runnerAddress ?? Option.none())
    ? SocketRunner.layerClientOnly
    : SocketRunner.layer.pipe(Layer.provide([NodeClusterSocket.layerSocketServer, connectionHealth]))
  return sockets.pipe(
    Layer.provide(NodeClusterSocket.layerClientProtocol),
    Layer.provideMerge(storage),
    Layer.provide([ShardingConfig.layerFromEnv(shardingConfig), RpcSerialization.layerMsgPack])
  )
}

/**
 * A workflow engine journaling in a PostgreSQL database, with this process as one of several runners: runs are
 * spread over the runners by their ids (the cluster's shards), and the runs of a runner that dies are picked up by
 * the others, within about {@link PgRunnerOptions.pickUpInterval} of its connections closing. The database closes them
 * at once when the process ends; when its host goes down instead, not before TCP gives up on them, and its runs wait
 * until then. The process listens on the runner's port for the others. Fails with `InvalidRunner` for an address
 * others could not connect to.
 *
 * @example
 * ```ts
 * const store = Store.layerPgRunner({ url: Redacted.make(url), runner: { host: "10.0.0.5", port: 34431 } })
 * ```
 *
 * @since 0.2.0
 */
export const layerPgRunner = (
  options: PgRunnerOptions
): Layer.Layer<
  Services,
  | ConfigError.ConfigError
  | SocketServer.SocketServerError
  | SqlError
  | Unavailable.StoreUnavailable
  | InvalidRunner
  | InvalidOption
> => {
  const { host, port } = options.runner
  if (
    host.trim() === "" || !Number.isInteger(port) || port < 1 || port > 65535 ||
    new TextEncoder().encode(addressKey({ host, port })).length > maxAddressLength
  ) {
    return Layer.fail(new InvalidRunner({ host, port }))
  }
  const checks = Either.all([
    checkEngine(options, ["url", "runner", "pickUpInterval"]),
    knownKeys(options.runner, ["host", "port"], "runner."),
    pickUpInterval(options.pickUpInterval)
  ])
  return checked(checks, ([engine, , pickUp]) =>
    oneAtATime(services(
      engine,
      cluster({
        ...shardingOf(engine),
        runnerAddress: Option.some(RunnerAddress.make(host, port)),
        refreshAssignmentsInterval: pickUp
      }),
      Health.watching(Postgres.displayUrl(options.url))
    )).pipe(
      Layer.provide(Postgres.client(options.url, connectionPrefix + addressKey({ host, port })))
    ))
}

/** `pickUpInterval`, checked, or its default. */
const pickUpInterval = (input: Duration.DurationInput | undefined): Either.Either<Duration.Duration, InvalidOption> =>
  input === undefined ? Either.right(defaultPickUpInterval) : duration("pickUpInterval", input, { zero: false })

/**
 * A workflow engine on a PostgreSQL database that its runners ({@link layerPgRunner}) use, in a process that runs
 * nothing itself: runs it starts, and signals it sends, go to the runners. It has the spend log and retention of
 * the database too, but does not prune on its own.
 *
 * @since 0.2.0
 */
export const layerPgClient = (
  options: PgClientOptions
): Layer.Layer<
  Services,
  ConfigError.ConfigError | SocketServer.SocketServerError | SqlError | Unavailable.StoreUnavailable | InvalidOption
> =>
  checked(
    Either.flatMap(knownKeys(options, ["url", "pickUpInterval"]), () => pickUpInterval(options.pickUpInterval)),
    (pickUp) =>
    oneAtATime(services(
      { pollInterval: defaultPollInterval, shutdownTimeout: undefined, retention: "forever" },
      cluster({ runnerAddress: Option.none(), refreshAssignmentsInterval: pickUp }),
      Health.watching(Postgres.displayUrl(options.url))
    )).pipe(Layer.provide(Postgres.client(options.url)))
  )

export {
  /**
   * The health of the store a process runs on: every store provides it. A PostgreSQL store's database is looked at
   * every second, and the first look that fails, or does not answer within 5 seconds, loses it (see {@link lost}).
   *
   * @since 0.2.0
   */
  Health
} from "./internal/health.js"

/**
 * Fails with `StoreUnavailable` (reason `Lost`) once the store's database is lost, and never succeeds: what a process
 * that only runs work waits on, so that it ends, for a supervisor to start it again, rather than stay up unable to
 * finish its runs. A runner that lost its PostgreSQL database while a step ran cannot finish that run (the engine
 * waits for ever for the outcome it could not write); a new process resumes it from the journal. `Durable.run` fails
 * the same way. A SQLite store is never lost.
 *
 * @example
 * ```ts
 * NodeRuntime.runMain(Store.lost.pipe(Effect.provide(Durable.layer(document).pipe(Layer.provideMerge(store)))))
 * ```
 *
 * @since 0.2.0
 */
export const lost: Effect.Effect<never, Unavailable.StoreUnavailable, Health.Health> = Effect.flatMap(
  Health.Health,
  (health) => health.lost
)
