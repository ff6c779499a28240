import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { SqlClient } from "@effect/sql"
import { PgClient } from "@effect/sql-pg"
import { Effect, ManagedRuntime, Redacted } from "effect"
import { type ChildProcess, spawn } from "node:child_process"
import { fileURLToPath } from "node:url"
import { freePort, freshDatabase, postgresUrl } from "./utils.js"

const fixture = fileURLToPath(new URL("./fixtures/relay.mjs", import.meta.url))

/** The relay pipeline's steps, in order (see the fixture). */
const steps = ["a", "b", "c", "d"]
const RUNS = 100
/** Runs going at once: enough for each runner to have several in flight when one is killed. */
const CONCURRENCY = 15
/** The pick-up bound the store is configured for. */
const PICK_UP_BOUND_MS = 1_000

interface LogRow {
  readonly run: string
  readonly step: string
  readonly event: "start" | "end"
  readonly runner: number
  readonly at: number
}


/** Starts the fixture; its output is kept, and an unexpected exit is remembered. */
const start = (...args: ReadonlyArray<string>) => {
  const child = spawn(process.execPath, [fixture, ...args], { stdio: ["ignore", "pipe", "pipe"] })
  let stdout = ""
  let stderr = ""
  child.stdout!.on("data", (chunk) => (stdout += chunk))
  child.stderr!.on("data", (chunk) => (stderr += chunk))
  const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)))
  return { child, exited, output: () => stdout, errors: () => stderr }
}

/** Waits until `check` holds, reading the database every 25 ms; fails after `timeoutMs`. */
const until = async <A>(what: string, timeoutMs: number, check: () => Promise<A | undefined>): Promise<A> => {
  const deadline = Date.now() + timeoutMs
  while (Date.now() < deadline) {
    const value = await check()
    if (value !== undefined) return value
    await new Promise((resolve) => setTimeout(resolve, 25))
  }
  throw new Error(`timed out waiting for ${what}`)
}

describe.skipIf(postgresUrl === undefined)("three runners on one PostgreSQL database", () => {
  let database: Awaited<ReturnType<typeof freshDatabase>>
  let db: ManagedRuntime.ManagedRuntime<SqlClient.SqlClient, unknown>
  const children: Array<ChildProcess> = []
  const query = <A extends object>(statement: string) =>
    db.runPromise(Effect.flatMap(SqlClient.SqlClient, (sql) => sql.unsafe<A>(statement)))

  beforeAll(async () => {
    database = await freshDatabase(postgresUrl!, "trellis_runners")
    db = ManagedRuntime.make(PgClient.layer({ url: Redacted.make(database.url) }))
    await query("CREATE TABLE relay_log (run text, step text, event text, runner int, at double precision)")
  })
  afterAll(async () => {
    for (const child of children) child.kill("SIGKILL")
    await db?.dispose()
    await database?.drop()
  })

  it("100 runs, each step once; the runs of a runner killed mid-way are picked up by the others in under 1 s", async () => {
    const ports = [await freePort(), await freePort(), await freePort()]
    const runners = ports.map((port) => start("runner", database.url, String(port)))
    children.push(...runners.map((runner) => runner.child))

    // All 300 shards locked, by three runners: each has its share before any run starts.
    await until("the runners to share the shards", 60_000, async () => {
      const rows = await query<{ holders: string; shards: string }>(
        `SELECT count(DISTINCT a.application_name) AS holders, count(*) AS shards FROM pg_locks l
         JOIN pg_stat_activity a ON a.pid = l.pid
         WHERE l.locktype = 'advisory' AND l.objsubid = 1 AND l.granted AND a.datname = current_database()
           AND a.application_name LIKE 'trellis-runner %'`
      )
      return Number(rows[0]!.holders) === 3 && Number(rows[0]!.shards) === 300 ? true : undefined
    }).catch((error: Error) => {
      // A runner that died at start is the likely reason: say how each one is.
      const states = runners.map(({ child, errors }) => `exit ${child.exitCode}, stderr ${JSON.stringify(errors().slice(-400))}`)
      throw new Error(`${error.message} (runners: ${states.join("; ")})`)
    })

    const client = start("client", database.url, String(RUNS), String(CONCURRENCY))
    children.push(client.child)

    // Mid-way (a quarter of the steps done), kill the runner with the most steps in flight.
    const victim = await until("a quarter of the steps", 60_000, async () => {
      const rows = await query<{ runner: number; inFlight: string; ended: string }>(
        `SELECT runner, count(*) FILTER (WHERE event = 'start') - count(*) FILTER (WHERE event = 'end') AS "inFlight",
                (SELECT count(*) FROM relay_log WHERE event = 'end') AS ended
         FROM relay_log GROUP BY runner ORDER BY 2 DESC`
      )
      return rows.length === 3 && Number(rows[0]!.ended) >= RUNS ? rows[0]!.runner : undefined
    })
    // The shards the victim holds: the cluster locks shard n of its group with the advisory lock 1000000 + n.
    const held = (runner: string) =>
      query<{ objid: number }>(
        `SELECT l.objid FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
         WHERE l.locktype = 'advisory' AND l.objsubid = 1 AND l.granted AND a.datname = current_database() AND a.application_name ${runner}`
      ).then((rows) => rows.map((row) => Number(row.objid)))
    const victimName = `'trellis-runner 127.0.0.1:${victim}'`
    const victimShards = await held(`= ${victimName}`)
    // Which runner holds each shard.
    const holders = async () => {
      const rows = await query<{ objid: number; name: string }>(
        `SELECT l.objid, a.application_name AS name FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
         WHERE l.locktype = 'advisory' AND l.objsubid = 1 AND l.granted AND a.datname = current_database()
           AND a.application_name LIKE 'trellis-runner %'`
      )
      return new Map(rows.map((row) => [Number(row.objid), Number(row.name.split(":").pop())]))
    }
    const holdersBefore = await holders()
    const killedAt = Date.now()
    runners[ports.indexOf(victim)]!.child.kill("SIGKILL")
    // When its connections are closed (when the database, and so the other runners, can see that it died), and when
    // each of its shards is taken by a surviving runner (seen at the latest when the answer that shows it arrives).
    let closed: number | undefined
    const taken = new Map<number, number>()
    await until("the killed runner's shards to be taken", 30_000, async () => {
      const locks = await held(`LIKE 'trellis-runner %' AND a.application_name <> ${victimName}`)
      const connections = await query<{ n: string }>(
        `SELECT count(*) AS n FROM pg_stat_activity WHERE application_name = ${victimName}`
      )
      const now = Date.now()
      if (closed === undefined && Number(connections[0]!.n) === 0) closed = now - killedAt
      for (const lock of locks) {
        if (!taken.has(lock)) taken.set(lock, now - killedAt)
      }
      return victimShards.every((lock) => taken.has(lock)) ? true : undefined
    })

    expect(await client.exited).toBe(0)
    const outputs = JSON.parse(client.output().trim().split("\n").pop()!) as Array<string>
    expect(outputs).toEqual(Array.from({ length: RUNS }, (_, i) => `relay-${i + 1}>a>b>c>d`))

    const log = (await query<LogRow>("SELECT run, step, event, runner, at FROM relay_log ORDER BY at")).map((row) => ({
      ...row,
      at: Number(row.at)
    }))
    // The runs were spread: every runner started steps before the kill.
    expect(new Set(log.filter((row) => row.at < killedAt).map((row) => row.runner))).toEqual(new Set(ports))

    // A run's shard is its messages': the cluster locks shard n of its group with the advisory lock 1000000 + n.
    const shards = await query<{ run: string; shard: string }>(
      `SELECT payload::json->>'id' AS run, shard_id AS shard FROM cluster_messages WHERE tag = 'run'`
    )
    const lockOf = (run: string) => 1_000_000 + Number(shards.find((row) => row.run === run)!.shard.split(":")[1])
    // The shards that changed hands: the killed runner's, and a few of the others' (the cluster balances the shards
    // over the runners left, which moves some between two that are alive).
    const holdersAfter = await holders()
    const moved = [...holdersBefore].filter(([lock, runner]) => holdersAfter.get(lock) !== runner).map(([lock]) => lock)
    expect(moved.filter((lock) => victimShards.includes(lock)).length).toBe(victimShards.length)

    // Exactly once: a step runs once, except one in flight on a shard that changed hands (it had started on the
    // shard's former holder, and its next step had not started, so its output may not have been journaled): it runs
    // once more, on the shard's new holder. A step whose next step had started before the kill is never run again.
    const startsOf = (run: string, step: string) =>
      log.filter((row) => row.run === run && row.step === step && row.event === "start")
    const again: Array<string> = []
    for (let i = 1; i <= RUNS; i++) {
      const run = `relay-${i}`
      const lock = lockOf(run)
      steps.forEach((step, index) => {
        const starts = startsOf(run, step)
        const next = steps[index + 1]
        const detail = `${run}/${step} started ${JSON.stringify(starts)}, ${victim} killed at ${killedAt}`
        if (starts.length === 2) {
          expect(moved, detail).toContain(lock)
          expect([starts[0]!.runner, starts[1]!.runner], detail).toEqual([holdersBefore.get(lock), holdersAfter.get(lock)])
          expect(starts[1]!.at, detail).toBeGreaterThan(killedAt)
          expect(next === undefined || !startsOf(run, next).some((row) => row.at < starts[1]!.at), detail).toBe(true)
          again.push(`${run}/${step}`)
        } else {
          expect(starts.length, detail).toBe(1)
        }
        expect(log.filter((row) => row.run === run && row.step === step && row.event === "end").length)
          .toBeGreaterThanOrEqual(1)
      })
    }
    const againElsewhere = again.filter((name) => !victimShards.includes(lockOf(name.split("/")[0]!)))

    // The killed runner's runs are those on its shards. It ran no others, and those it had started and not finished
    // ran on, on the others.
    const ranOnVictim = new Set(log.filter((row) => row.runner === victim && row.at < killedAt).map((row) => row.run))
    expect([...ranOnVictim].filter((run) => !victimShards.includes(lockOf(run)))).toEqual([])
    const unfinished = [...ranOnVictim].filter((run) =>
      !log.some((row) => row.run === run && row.step === "d" && row.event === "end" && row.at < killedAt)
    )
    expect(unfinished.length).toBeGreaterThan(0)
    const restarts = unfinished.map((run) => {
      const after = log.filter((row) => row.run === run && row.event === "start" && row.at > killedAt)
      expect(after.length, `${run} ran on after the kill`).toBeGreaterThan(0)
      expect(after.every((row) => row.runner !== victim)).toBe(true)
      return after[0]!.at - killedAt
    }).sort((a, b) => a - b)

    // Picked up: a surviving runner holds the run's shard, and reads its unfinished messages from the store. The
    // cluster can only know once the runner's connections are closed (at once for the database, but the process's
    // end and the server's notice of it take a while on a busy machine), so the bound is kept from then, for every
    // shard of the killed runner and so for each of its runs. The times from the kill are reported, with when each
    // run's next step started (after its finished steps were replayed from the journal).
    const pickUps = unfinished.map((run) => taken.get(lockOf(run))!).sort((a, b) => a - b)
    console.info(
      `killed runner ${victim}: ${unfinished.length} runs picked up, ${again.length} steps in flight run again ` +
        `(${againElsewhere.length} on the ${moved.length - victimShards.length} shards moved between live runners); ` +
        `from the kill (ms): its connections closed by ${closed}, its runs' shards taken ${pickUps.join(" ")}, ` +
        `all ${victimShards.length} of its shards by ${Math.max(...taken.values())}, ` +
        `its runs' next steps started ${restarts.map(Math.round).join(" ")}`
    )
    expect(
      victimShards.filter((lock) => taken.get(lock)! - closed! >= PICK_UP_BOUND_MS),
      "shards taken 1 s or more after the killed runner's connections closed"
    ).toEqual([])
  }, 120_000)
})
