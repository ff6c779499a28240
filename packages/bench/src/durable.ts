/**
 * `durable_diamond`: the seed's 5-step diamond (extract -> classify -> fetch_market || fetch_user -> combine), each
 * step sleeping 5 ms, run durably on a SQLite file: Trellis (`Durable.make` over the pipeline, each step an Activity)
 * against the same graph written by hand as raw `@effect/workflow` Activities. Both workflows are registered on one
 * store layer (`Store.layerSqlite`: the cluster's workflow engine on the file), so only the workflow differs.
 * Measured: milliseconds of wall time per run, one run after the other, each under a fresh id. The same on
 * PostgreSQL when a server is given (`Store.layerPg`).
 *
 * Also measured, with no target: the same Trellis pipeline whose steps each make one metered call
 * (`Ledger.metered` around the sleep), whose reservation and settlement the durable spend log writes down; the
 * difference from the plain one is the added cost of a paid call.
 */
import * as Activity from "@effect/workflow/Activity"
import * as SqlClient from "@effect/sql/SqlClient"
import { PgClient } from "@effect/sql-pg"
import * as Workflow from "@effect/workflow/Workflow"
import type { WorkflowEngine } from "@effect/workflow/WorkflowEngine"
import { Cost, Ledger, Pipeline, Step, Usage } from "@trellis/core"
import { Durable, Store } from "@trellis/durable"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as ManagedRuntime from "effect/ManagedRuntime"
import * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import { randomUUID } from "node:crypto"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { compareWall, type Settings } from "./harness.js"
import { combine, kind, market, text, user, words } from "./work.js"

/** Steps in the diamond. */
export const steps = 5
const sleepMs = 5

const sleepy = <A>(value: A) => Effect.as(Effect.sleep(sleepMs), value)


const Words = Schema.Array(Schema.String)
const Market = Schema.Struct({ segment: Schema.String, price: Schema.Number })
const User = Schema.Struct({ name: Schema.String })

/** A step's work, as it is run by the Trellis variants: plain, or as one metered call. */
type Work = <A>(value: A) => Effect.Effect<A, Ledger.BudgetExceeded | Ledger.InvalidUsage>

const callUsage = Usage.make({ requests: 1, inputTokens: 20, outputTokens: 1, cost: Cost.nanos(1_000) })
const usedByEveryCall = () => callUsage

/** One paid call: the ledger reserves its worst case (written to the spend log first), then settles it. */
const paid: Work = (value) => Ledger.metered({ worstCase: Cost.nanos(2_000), run: sleepy(value), usage: usedByEveryCall })

const trellisPipeline = (name: string, work: Work) => {
  const extract = Step.make("extract", { output: Words, run: () => work(words(text)) })
  const classify = Step.make("classify", {
    after: { extract },
    output: Schema.String,
    run: ({ extract }) => work(kind(extract))
  })
  const fetchMarket = Step.make("fetch_market", {
    after: { classify },
    output: Market,
    run: ({ classify }) => work(market(classify))
  })
  const fetchUser = Step.make("fetch_user", {
    after: { classify },
    output: User,
    run: ({ classify }) => work(user(classify))
  })
  const combined = Step.make("combine", {
    after: { market: fetchMarket, user: fetchUser },
    output: Schema.String,
    run: ({ market, user }) => work(combine(market, user))
  })
  // A budget, so that every paid call is reserved against one, as in a run that has a limit.
  return Durable.make(Pipeline.make(name, { output: combined, budget: Cost.nanos(1_000_000_000) }))
}

const trellis = trellisPipeline("durable_diamond", sleepy)
const trellisPaid = trellisPipeline("durable_diamond_paid", paid)

/** The same graph by hand: one Activity per step, the two fetches run concurrently, as the pipeline runs them. */
const raw = Workflow.make({
  name: "raw_diamond",
  payload: { id: Schema.String },
  idempotencyKey: ({ id }) => id,
  success: Schema.String
})

const rawLayer = raw.toLayer(() =>
  Effect.gen(function*() {
    const w = yield* Activity.make({ name: "extract", success: Words, execute: sleepy(words(text)) })
    const k = yield* Activity.make({ name: "classify", success: Schema.String, execute: sleepy(kind(w)) })
    const [m, u] = yield* Effect.all([
      Activity.make({ name: "fetch_market", success: Market, execute: sleepy(market(k)) }),
      Activity.make({ name: "fetch_user", success: User, execute: sleepy(user(k)) })
    ], { concurrency: "unbounded" })
    return yield* Activity.make({ name: "combine", success: Schema.String, execute: sleepy(combine(m, u)) })
  })
)

/** Milliseconds per run of each variant, and per step. */
export interface DurableDiamond {
  readonly unit: "ms/run"
  readonly trellis: number
  readonly rawActivities: number
  /** Trellis with every step making one metered call. */
  readonly trellisPaid: number
  readonly trellisPerStep: number
  readonly rawActivitiesPerStep: number
  readonly trellisPaidPerStep: number
  /** Trellis's time over the raw Activities'. */
  readonly trellisOverRaw: number
  /** What one paid call adds to its step: (paid - plain) / steps. */
  readonly paidCallAddedPerStep: number
}

/** Runs the three variants, round by round, on the workflow engine of one store. */
const measure = async (
  s: Settings,
  store: Layer.Layer<Store.Services, unknown>
): Promise<DurableDiamond> => {
  const live = Layer.mergeAll(Durable.layer(trellis), Durable.layer(trellisPaid), rawLayer).pipe(
    Layer.provideMerge(store)
  )
  const runtime = ManagedRuntime.make(live)
  try {
    // The store's start (tables, shard locks) is not part of any run.
    await runtime.runPromise(Effect.void)
    let next = 0
    // A fresh id per run: an id already run would return its stored result.
    const id = () => `run-${next++}`
    const run = (effect: (id: string) => Effect.Effect<unknown, unknown, WorkflowEngine>) => () =>
      runtime.runPromise(effect(id()))
    const ms = await compareWall(s, {
      trellis: run((id) => Durable.run(trellis, { id })),
      rawActivities: run((id) => raw.execute({ id })),
      trellisPaid: run((id) => Durable.run(trellisPaid, { id }))
    })
    return {
      unit: "ms/run",
      ...ms,
      trellisPerStep: ms.trellis / steps,
      rawActivitiesPerStep: ms.rawActivities / steps,
      trellisPaidPerStep: ms.trellisPaid / steps,
      trellisOverRaw: ms.trellis / ms.rawActivities,
      paidCallAddedPerStep: (ms.trellisPaid - ms.trellis) / steps
    }
  } finally {
    await runtime.dispose()
  }
}

/** `durable_diamond` on a SQLite file in a fresh temporary folder, removed after. */
export const durableDiamond = async (s: Settings): Promise<DurableDiamond> => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "trellis-bench-"))
  try {
    return await measure(s, Store.layerSqlite({ filename: path.join(dir, "runs.db"), retention: "forever" }))
  } finally {
    fs.rmSync(dir, { recursive: true, force: true })
  }
}

/** Runs one statement on the PostgreSQL server at `url`. */
const onServer = (url: string, statement: string) =>
  Effect.runPromise(
    Effect.flatMap(SqlClient.SqlClient, (sql) => sql.unsafe(statement)).pipe(
      Effect.provide(PgClient.layer({ url: Redacted.make(url) })),
      Effect.asVoid
    )
  )

/**
 * Runs `f` with the URL of a database of its own, made on the PostgreSQL server at `url` and dropped after, so that
 * no other runner shares its engine and nothing is left behind.
 */
export const withFreshDatabase = async <A>(url: string, f: (database: string) => Promise<A>): Promise<A> => {
  const name = `trellis_bench_${randomUUID().replaceAll("-", "")}`
  await onServer(url, `CREATE DATABASE ${name}`)
  try {
    const database = new URL(url)
    database.pathname = `/${name}`
    return await f(database.toString())
  } finally {
    await onServer(url, `DROP DATABASE ${name} WITH (FORCE)`)
  }
}

/** `durable_diamond` on PostgreSQL, in a database of its own (see {@link withFreshDatabase}). */
export const durableDiamondPostgres = (s: Settings, url: string): Promise<DurableDiamond> =>
  withFreshDatabase(url, (database) => measure(s, Store.layerPg({ url: Redacted.make(database), retention: "forever" })))
