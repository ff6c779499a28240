import type { WorkflowEngine } from "@effect/workflow/WorkflowEngine"
import { afterAll } from "@effect/vitest"
import { Durable, Store } from "@trellis/durable"
import { Cost, Ledger, Usage } from "@trellis/core"
import { SqlClient } from "@effect/sql"
import { PgClient } from "@effect/sql-pg"
import { Effect, Layer, Redacted } from "effect"
import { randomUUID } from "node:crypto"
import * as fs from "node:fs"
import * as net from "node:net"
import * as os from "node:os"
import * as path from "node:path"

/** A fresh folder for SQLite files, removed after the test file's tests (vitest's workers may end without an exit). */
export const tempDir = (): string => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "trellis-durable-"))
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }))
  return dir
}

/** The layer a process runs durable pipelines with: the pipelines registered on a SQLite file's engine. */
export const storeWith = (filename: string, ...pipelines: ReadonlyArray<Durable.Durable<any, any, Durable.Signals, any, any>>) =>
  storeWithOptions({ filename }, ...pipelines)

/** As {@link storeWith}, with the store's options. */
export const storeWithOptions = (
  options: Store.SqliteOptions,
  ...pipelines: ReadonlyArray<Durable.Durable<any, any, Durable.Signals, any, any>>
) =>
  pipelines.reduce(
    (layer, pipeline) => Layer.merge(layer, Durable.layer(pipeline)),
    Layer.empty as Layer.Layer<never, never, WorkflowEngine>
  ).pipe(
    Layer.provideMerge(Store.layerSqlite({ pollInterval: "100 millis", shutdownTimeout: "200 millis", ...options })),
    Layer.orDie
  )

/** A paid call that costs exactly `nanos`, reported with 10 input and 5 output tokens. */
export const paidCall = (nanos: number) =>
  Ledger.metered({
    worstCase: Cost.nanos(nanos * 2),
    run: Effect.void,
    usage: () => Usage.make({ requests: 1, inputTokens: 10, outputTokens: 5, cost: Cost.nanos(nanos) })
  })

/** The PostgreSQL server the tests that need one use (CI starts one), if any. */
export const postgresUrl: string | undefined = process.env.TRELLIS_TEST_POSTGRES_URL || undefined

if (postgresUrl === undefined) {
  console.warn("TRELLIS_TEST_POSTGRES_URL is not set: the durable tests on PostgreSQL are skipped")
}

/** Runs SQL on the PostgreSQL server's default database. */
const onServer = (url: string, statement: string) =>
  Effect.runPromise(
    Effect.flatMap(SqlClient.SqlClient, (sql) => sql.unsafe(statement)).pipe(
      Effect.provide(PgClient.layer({ url: Redacted.make(url) })),
      Effect.asVoid
    )
  )

/**
 * A new database on the PostgreSQL server, so that each test file has its own runner (and no other process's):
 * returns its URL, and a function that drops it.
 */
export const freshDatabase = async (url: string, prefix: string) => {
  const name = `${prefix}_${randomUUID().replaceAll("-", "")}`
  await onServer(url, `CREATE DATABASE ${name}`)
  const database = new URL(url)
  database.pathname = `/${name}`
  return { url: database.toString(), drop: () => onServer(url, `DROP DATABASE ${name} WITH (FORCE)`) }
}

/** Polls the run's status until it is no longer pending. */
export const settled = <A, E, R, O, D>(
  durable: Durable.Durable<A, E, R, O, D>,
  id: string
): Effect.Effect<Durable.Status<A, O, D>, never, WorkflowEngine> =>
  Effect.flatMap(
    Durable.status(durable, { id }),
    (status) => status._tag === "Pending" ? Effect.zipRight(Effect.sleep("20 millis"), settled(durable, id)) : Effect.succeed(status)
  )

/** `Durable.run` under an id known to be valid, on a store not lost: `InvalidId` and `StoreUnavailable` are defects here. */
export const runValid = <A, E, R, O, D, I, V>(durable: Durable.Durable<A, E, R, O, D, I, V>, options: Durable.RunOptions<V>) =>
  Durable.run(durable, options).pipe(
    Effect.catchIf(
      (error): error is Durable.InvalidId | Store.StoreUnavailable =>
        error instanceof Durable.InvalidId || error instanceof Store.StoreUnavailable,
      (error) => Effect.die(error)
    )
  )

/** A free TCP port on 127.0.0.1 (free when asked: whoever takes it does so a moment later). */
export const freePort = () =>
  new Promise<number>((resolve, reject) => {
    const server = net.createServer().listen(0, "127.0.0.1", () => {
      const { port } = server.address() as net.AddressInfo
      server.close(() => resolve(port))
    })
    server.on("error", reject)
  })
