/**
 * The benchmark: Trellis against hand-written baselines, in one process, so that their ratios hold on a noisy
 * machine.
 *
 *   pnpm bench            the table
 *   pnpm bench --json     the table, then one JSON object, last on stdout
 *   pnpm bench --quick    a few rounds only (also BENCH_QUICK=1), for CI: it keeps working, its times mean little
 *
 * `durable_diamond` and `durable_signal` run on SQLite, and on PostgreSQL too when TRELLIS_TEST_POSTGRES_URL names a
 * server (each makes a database of its own there, dropped after); `durable_pickup` (two runner processes, one
 * killed) runs only there.
 *
 * Progress goes to stderr.
 */
import { availableParallelism } from "node:os"
import { chains } from "./chain.js"
import { diamond5Noop } from "./diamond.js"
import type { DurableDiamond } from "./durable.js"
import type { DurableSignal } from "./signal.js"
import { fan100Noop, fan100Sleep20 } from "./fan.js"
import { maps } from "./map.js"
import { round3, settings } from "./harness.js"
import { checkTargets } from "./targets.js"

const args = process.argv.slice(2)
const json = args.includes("--json")
const quick = args.includes("--quick") || process.env["BENCH_QUICK"] === "1"
const s = settings(quick)

const step = async <A>(name: string, run: () => Promise<A>): Promise<A> => {
  process.stderr.write(`${name}... `)
  const start = performance.now()
  const result = await run()
  process.stderr.write(`${((performance.now() - start) / 1000).toFixed(1)} s\n`)
  return result
}

const started = performance.now()
// Every core scenario once, quickly and untimed, so that the first one timed does not pay for the process's
// start (the JIT's tiers, the heap growing to its working size).
if (!quick) {
  await step("warm-up", async () => {
    const warm = settings(true)
    await diamond5Noop(warm)
    await fan100Noop(warm)
    await chains(warm)
    await maps(warm)
    await diamond5Noop(warm)
  })
}
const diamond = await step("diamond5_noop", () => diamond5Noop(s))
const fan = await step("fan100_noop", () => fan100Noop(s))
const sleep = await step("fan100_sleep20", () => fan100Sleep20(s))
const chain = await step("chain1000_noop, chain10000_noop", () => chains(s))
const map = await step("map100_noop, map10000_noop", () => maps(s))
// The scenarios of the language model layer are loaded only now: its tokenizer's vocabulary is tens of megabytes
// of heap, which every full collection walks, and the core scenarios above measure the engine without it.
const { concurrent10k } = await import("./concurrent.js")
const { budgetContention } = await import("./budget.js")
const { llmOverhead } = await import("./llm.js")
const concurrent = await step("concurrent10k_diamond_sleep10", () => concurrent10k(s))
const budget = await step("budget_contention", () => budgetContention(s))
const llm = await step("llm_call_1kb, tokenize_10kb", () => llmOverhead(s))
// Last: it loads the durable stack (the cluster, SQLite) and keeps a database file open while it runs.
const { durableDiamond, durableDiamondPostgres } = await import("./durable.js")
const durable = await step("durable_diamond", () => durableDiamond(s))
const postgresUrl = process.env["TRELLIS_TEST_POSTGRES_URL"] || undefined
const durablePostgres = postgresUrl === undefined
  ? undefined
  : await step("durable_diamond on PostgreSQL", () => durableDiamondPostgres(s, postgresUrl))
const { durableSignal, durableSignalPostgres } = await import("./signal.js")
const signal = await step("durable_signal", () => durableSignal(s))
const signalPostgres = postgresUrl === undefined
  ? undefined
  : await step("durable_signal on PostgreSQL", () => durableSignalPostgres(s, postgresUrl))
const { durablePickupPostgres } = await import("./pickup.js")
const durablePickup = postgresUrl === undefined
  ? undefined
  : await step("durable_pickup on PostgreSQL", () => durablePickupPostgres(postgresUrl))
process.stderr.write(`total ${((performance.now() - started) / 1000).toFixed(1)} s\n`)

const roundAll = <T>(value: T): T =>
  typeof value === "number"
    ? round3(value) as T
    : typeof value === "object" && value !== null
    ? Object.fromEntries(Object.entries(value).map(([k, v]) => [k, roundAll(v)])) as T
    : value

const scenarios = roundAll({
  diamond5_noop: diamond,
  fan100_noop: fan,
  fan100_sleep20: sleep,
  ...chain,
  ...map,
  concurrent10k_diamond_sleep10: concurrent,
  budget_contention: budget,
  ...llm,
  durable_diamond: durable,
  durable_diamond_postgres: durablePostgres ?? { skipped: "TRELLIS_TEST_POSTGRES_URL is not set" },
  durable_signal: signal,
  durable_signal_postgres: signalPostgres ?? { skipped: "TRELLIS_TEST_POSTGRES_URL is not set" },
  durable_pickup_postgres: durablePickup ?? { skipped: "TRELLIS_TEST_POSTGRES_URL is not set" }
})

// The targets, as ratios within this run, checked on the figures before rounding. A missed target is reported in
// the table, not by the exit code: times are never asserted.
const checks = checkTargets({
  diamond5_noop: diamond,
  fan100_noop: fan,
  fan100_sleep20: sleep,
  ...chain,
  ...map,
  concurrent10k_diamond_sleep10: concurrent,
  budget_contention: budget,
  durable_diamond: durable,
  durable_diamond_postgres: durablePostgres
})

const cell = (v: unknown) => (v === undefined ? "" : String(v))
const rows: Array<Array<string>> = [
  ["scenario", "unit", "trellis", "effectForkJoin", "effectAll", "effectSequential", "promise"],
  ...(["diamond5_noop", "fan100_noop", "fan100_sleep20", "chain1000_noop", "chain10000_noop"] as const).map((name) => {
    const r = scenarios[name] as Record<string, unknown>
    return [name, cell(r["unit"]), cell(r["trellis"]), cell(r["effectForkJoin"]), cell(r["effectAll"]), cell(
      r["effectSequential"]
    ), cell(r["promise"])]
  }),
  ["map100_noop", "us/run", cell(scenarios.map100_noop.trellis), "", "", "", ""],
  ["(Effect.forEach, same concurrency)", "us/run", cell(scenarios.map100_noop.effectForEach), "", "", "", ""],
  ["map100_noop, per item", "us/item", cell(scenarios.map_per_item.map100), "", "", "", ""],
  ["map10000_noop, per item", "us/item", cell(scenarios.map_per_item.map10000), "", "", "", ""],
  [
    "concurrent10k_diamond_sleep10",
    "KB heap/run",
    cell(scenarios.concurrent10k_diamond_sleep10.trellis.heapKbPerRun),
    cell(scenarios.concurrent10k_diamond_sleep10.effectForkJoin.heapKbPerRun),
    "",
    "",
    ""
  ],
  [
    "concurrent10k_diamond_sleep10",
    "ms wall",
    cell(scenarios.concurrent10k_diamond_sleep10.trellis.wallMs),
    cell(scenarios.concurrent10k_diamond_sleep10.effectForkJoin.wallMs),
    "",
    "",
    ""
  ],
  [
    "(the same, steps sleeping: no model layer)",
    "KB heap/run",
    cell(scenarios.concurrent10k_diamond_sleep10.trellisWithoutModel.heapKbPerRun),
    "",
    "",
    "",
    ""
  ],
  [
    "(the same, steps sleeping: no model layer)",
    "ms wall",
    cell(scenarios.concurrent10k_diamond_sleep10.trellisWithoutModel.wallMs),
    "",
    "",
    "",
    ""
  ],
  [
    "(the same, steps sleeping inside Ledger.metered)",
    "KB heap/run",
    cell(scenarios.concurrent10k_diamond_sleep10.trellisMetered.heapKbPerRun),
    "",
    "",
    "",
    ""
  ],
  [
    "(the same, steps sleeping inside Ledger.metered)",
    "ms wall",
    cell(scenarios.concurrent10k_diamond_sleep10.trellisMetered.wallMs),
    "",
    "",
    "",
    ""
  ],
  ["llm_call_1kb", "us/call", cell(scenarios.llm_call_1kb.trellis), "", "", "", ""],
  ["tokenize_10kb", "ms", cell(scenarios.tokenize_10kb.trellis), "", "", "", ""],
  ["budget_contention", "admitted / overshoot", `${budget.admitted} / ${budget.overshootNanoUsd}`, "", "", "", ""]
]

const table = (rows: ReadonlyArray<ReadonlyArray<string>>) => {
  const [head, ...body] = rows
  return [
    `| ${head!.join(" | ")} |`,
    `|${head!.map(() => "---").join("|")}|`,
    ...body.map((row) => `| ${row.join(" | ")} |`)
  ].join("\n")
}

const machine = `Node ${process.version}, ${availableParallelism()} cores${quick ? ", quick mode (few rounds)" : ""}`
console.log(`Trellis benchmark: ${machine}\n`)
console.log(table(rows))
console.log()
const durableRows = (store: string, d: DurableDiamond) => [
  [`durable_diamond, ${store}`, "ms/run", cell(d.trellis), cell(d.rawActivities), cell(d.trellisPaid)],
  [`durable_diamond, ${store}`, "ms/step", cell(d.trellisPerStep), cell(d.rawActivitiesPerStep), cell(
    d.trellisPaidPerStep
  )],
  [`durable_diamond, ${store}`, "trellis / raw", cell(d.trellisOverRaw), "", ""],
  [`durable_diamond, ${store}`, "paid call's added ms/step", "", "", cell(d.paidCallAddedPerStep)]
]
console.log(
  table([
    ["scenario (5 steps sleeping 5 ms)", "unit", "trellis", "rawActivities", "trellis, each step one paid call"],
    ...durableRows("SQLite", scenarios.durable_diamond),
    ...(durablePostgres === undefined ? [] : durableRows("PostgreSQL", roundAll(durablePostgres)))
  ])
)
if (durablePostgres === undefined) {
  console.log("\ndurable_diamond on PostgreSQL: skipped (TRELLIS_TEST_POSTGRES_URL is not set)")
}
console.log()
const signalRow = (store: string, d: DurableSignal) => [
  `durable_signal, ${store}`,
  cell(d.rounds),
  cell(d.signalReturned),
  `${cell(d.nextStepMedian)} (most ${cell(d.nextStepMax)})`,
  cell(d.finishedMedian)
]
console.log(
  table([
    ["scenario (ms from Durable.signal, medians)", "rounds", "signal returned", "next step started", "run finished"],
    signalRow("SQLite", scenarios.durable_signal),
    ...(signalPostgres === undefined ? [] : [signalRow("PostgreSQL", roundAll(signalPostgres))])
  ])
)
if (signalPostgres === undefined) {
  console.log("\ndurable_signal on PostgreSQL: skipped (TRELLIS_TEST_POSTGRES_URL is not set)")
}
console.log(
  durablePickup === undefined
    ? "durable_pickup on PostgreSQL: skipped (TRELLIS_TEST_POSTGRES_URL is not set)"
    : `\ndurable_pickup, PostgreSQL, ms from a runner's SIGKILL (${durablePickup.runs} runs in flight on it): ` +
      `its connections closed ${Math.round(durablePickup.connectionsClosed)}, its shards taken by the other runner ` +
      `${Math.round(durablePickup.shardsTaken)}, its runs' first steps started again ` +
      `${Math.round(durablePickup.nextStepMedian)} (median) to ${Math.round(durablePickup.nextStepMax)}`
)
console.log()
console.log(
  table([
    ["scenario", "target", "measured", "holds"],
    ...checks.map((c) => [c.scenario, c.target, c.measured, c.verdict])
  ])
)
if (json) {
  console.log(JSON.stringify({
    node: process.version,
    scenarios,
    targets: checks.map(({ holds, measured, missed, scenario, target }) => ({
      scenario,
      target,
      measured,
      holds,
      missed
    }))
  }))
}
