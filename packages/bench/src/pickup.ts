/**
 * `durable_pickup` (PostgreSQL only): two runner processes (`Store.layerPgRunner`) share a database; ten runs of a
 * two-step pipeline are started from this process (`Store.layerPgClient`), and while their first steps (1 s each)
 * are in flight, the runner with more of them is killed with SIGKILL. Measured, in milliseconds from the kill: when
 * its database connections were closed, when the other runner held all of its shards (the pick-up, as the cluster
 * does it), and when each of its runs' first step started again on the other runner.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import { PgClient } from "@effect/sql-pg"
import { Durable, Store } from "@trellis/durable"
import * as Effect from "effect/Effect"
import * as ManagedRuntime from "effect/ManagedRuntime"
import * as Redacted from "effect/Redacted"
import { type ChildProcess, spawn } from "node:child_process"
import { randomUUID } from "node:crypto"
import * as net from "node:net"
import { fileURLToPath } from "node:url"
import { pickup } from "./pickup-runner.js"

/** What `durable_pickup` reports. */
export interface DurablePickup {
  readonly unit: "ms"
  /** Runs that were in flight on the killed runner. */
  readonly runs: number
  /** From the kill to the killed runner's last database connection closing. */
  readonly connectionsClosed: number
  /** From the kill to the other runner holding every shard of the killed one. */
  readonly shardsTaken: number
  /** From the kill to the first step of each of its runs starting again on the other runner: median and most. */
  readonly nextStepMedian: number
  readonly nextStepMax: number
}

const RUNS = 10

const freePort = () =>
  new Promise<number>((resolve, reject) => {
    const server = net.createServer().listen(0, "127.0.0.1", () => {
      const { port } = server.address() as net.AddressInfo
      server.close(() => resolve(port))
    })
    server.on("error", reject)
  })

const until = async <A>(what: string, check: () => Promise<A | undefined>): Promise<A> => {
  const deadline = Date.now() + 60_000
  while (Date.now() < deadline) {
    const value = await check()
    if (value !== undefined) return value
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
  throw new Error(`durable_pickup: timed out waiting for ${what}`)
}

/** `durable_pickup` in a database of its own made on the server at `url`, dropped after. */
export const durablePickupPostgres = async (url: string): Promise<DurablePickup> => {
  const server = ManagedRuntime.make(PgClient.layer({ url: Redacted.make(url) }))
  const onServer = (statement: string) =>
    server.runPromise(Effect.flatMap(SqlClient.SqlClient, (sql) => sql.unsafe(statement)))
  const name = `trellis_bench_${randomUUID().replaceAll("-", "")}`
  await onServer(`CREATE DATABASE ${name}`)
  const database = new URL(url)
  database.pathname = `/${name}`
  const db = ManagedRuntime.make(PgClient.layer({ url: Redacted.make(database.toString()) }))
  const query = <A extends object>(statement: string) =>
    db.runPromise(Effect.flatMap(SqlClient.SqlClient, (sql) => sql.unsafe<A>(statement)))
  const client = ManagedRuntime.make(Store.layerPgClient({ url: Redacted.make(database.toString()) }))
  const children: Array<ChildProcess> = []
  try {
    await query("CREATE TABLE pickup_log (run text, step text, runner int, at double precision)")
    const ports = [await freePort(), await freePort()]
    const runner = fileURLToPath(new URL("./pickup-runner.js", import.meta.url))
    const errors: Array<string> = []
    for (const port of ports) {
      const child = spawn(process.execPath, [runner, database.toString(), String(port)], { stdio: ["ignore", "ignore", "pipe"] })
      const index = children.push(child) - 1
      errors[index] = ""
      child.stderr!.on("data", (chunk) => (errors[index] = (errors[index] + chunk).slice(-400)))
    }
    const locks = (where: string) =>
      query<{ objid: number }>(
        `SELECT l.objid FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
         WHERE l.locktype = 'advisory' AND l.objsubid = 1 AND l.granted AND a.datname = current_database() AND ${where}`
      ).then((rows) => rows.map((row) => Number(row.objid)))
    const runnerName = (port: number) => `'trellis-runner 127.0.0.1:${port}'`
    // Both runners hold their share of the 300 shards.
    await until("the runners to share the shards", async () => {
      const counts = await Promise.all(ports.map((port) => locks(`a.application_name = ${runnerName(port)}`)))
      return counts.every((held) => held.length > 0) && counts[0]!.length + counts[1]!.length === 300 ? true : undefined
    }).catch((error: Error) => {
      // A runner that died at start is the likely reason: say how each one is.
      const states = children.map((child, i) => `exit ${child.exitCode}, stderr ${JSON.stringify(errors[i])}`)
      throw new Error(`${error.message} (runners: ${states.join("; ")})`)
    })

    const durable = pickup(0)
    const runs = client.runPromise(Effect.forEach(
      Array.from({ length: RUNS }, (_, i) => `pickup-${i + 1}`),
      (id) => Durable.run(durable, { id, input: { id } }),
      { concurrency: "unbounded" }
    ))
    const starts = () =>
      query<{ run: string; step: string; runner: number; at: number }>("SELECT run, step, runner, at FROM pickup_log")
    const before = await until("the first steps", async () => {
      const rows = await starts()
      return rows.length >= RUNS ? rows : undefined
    })
    const victim = [...ports].sort((a, b) =>
      before.filter((row) => row.runner === b).length - before.filter((row) => row.runner === a).length
    )[0]!
    const victimShards = await locks(`a.application_name = ${runnerName(victim)}`)
    const killedAt = Date.now()
    children[ports.indexOf(victim)]!.kill("SIGKILL")
    let connectionsClosed: number | undefined
    const shardsTaken = await until("the shards to be taken", async () => {
      const held = new Set(await locks(`a.application_name <> ${runnerName(victim)}`))
      const open = await query<{ n: string }>(
        `SELECT count(*) AS n FROM pg_stat_activity WHERE application_name = ${runnerName(victim)}`
      )
      const now = Date.now() - killedAt
      if (connectionsClosed === undefined && Number(open[0]!.n) === 0) connectionsClosed = now
      return victimShards.every((lock) => held.has(lock)) ? now : undefined
    })
    await runs
    const after = await starts()
    const victimRuns = before.filter((row) => row.runner === victim).map((row) => row.run)
    const nextSteps = victimRuns.map((run) =>
      Math.min(...after.filter((row) => row.run === run && Number(row.at) > killedAt).map((row) => Number(row.at))) -
      killedAt
    ).sort((a, b) => a - b)
    return {
      unit: "ms",
      runs: victimRuns.length,
      connectionsClosed: connectionsClosed ?? shardsTaken,
      shardsTaken,
      nextStepMedian: nextSteps[Math.floor(nextSteps.length / 2)]!,
      nextStepMax: nextSteps[nextSteps.length - 1]!
    }
  } finally {
    for (const child of children) child.kill("SIGKILL")
    await client.dispose()
    await db.dispose()
    await onServer(`DROP DATABASE ${name} WITH (FORCE)`)
    await server.dispose()
  }
}
