/**
 * The benchmark's targets, checked as ratios within one run (absolute figures move too much between runs on a
 * shared machine to mean much). Pure: the figures in, one row per target out. A missed target is reported, never
 * thrown: CI runs the benchmark to check that it works, not to assert its times.
 */

/** Heap and wall time of one variant of `concurrent10k_diamond_sleep10`. */
export interface Footprint {
  readonly heapKbPerRun: number
  readonly wallMs: number
}

/** The figures the targets are checked against, as the scenarios measure them (before any rounding). */
export interface Figures {
  readonly diamond5_noop: { readonly trellis: number; readonly effectForkJoin: number }
  readonly fan100_noop: { readonly trellis: number; readonly effectForkJoin: number }
  readonly fan100_sleep20: { readonly trellis: number; readonly promise: number }
  /** Microseconds per step. */
  readonly chain1000_noop: { readonly trellis: number }
  /** Microseconds per step. */
  readonly chain10000_noop: { readonly trellis: number }
  /** Microseconds per run: a `ForEach` of 100 no-op items against `Effect.forEach` with the same concurrency. */
  readonly map100_noop: { readonly trellis: number; readonly effectForEach: number }
  /** Microseconds per item, over 100 and over 10,000 items. */
  readonly map_per_item: { readonly map100: number; readonly map10000: number }
  readonly concurrent10k_diamond_sleep10: {
    /** With the model layer: every step asks the scripted model. */
    readonly trellis: Footprint
    /** The engine alone: steps sleep like the baseline's, no model layer. */
    readonly trellisWithoutModel: Footprint
    readonly effectForkJoin: Footprint
  }
  readonly budget_contention: { readonly admitted: number; readonly overshootNanoUsd: number }
  /** Milliseconds per step, run durably on SQLite: Trellis against raw `@effect/workflow` Activities. */
  readonly durable_diamond: DurablePerStep
  /** The same on PostgreSQL: measured only when a server is given. */
  readonly durable_diamond_postgres?: DurablePerStep | undefined
}

/** Milliseconds per step of `durable_diamond` on one store. */
export interface DurablePerStep {
  readonly trellisPerStep: number
  readonly rawActivitiesPerStep: number
}

/** One target: what it asks, what was measured, and which of its parts were missed (none: it holds). */
export interface Check {
  readonly scenario: string
  readonly target: string
  readonly measured: string
  readonly holds: boolean
  /** The parts of the target missed, by name (`heap`, `wall`, ...): empty when it holds. */
  readonly missed: ReadonlyArray<string>
  /** The table's cell: `yes`, or `no`, naming the parts missed when the target has more than one. */
  readonly verdict: string
}

interface Part {
  readonly name: string
  readonly measured: string
  readonly holds: boolean
}

const x = (r: number) => `${r.toFixed(2)}x`

/** `value / base` at most `limit`; a ratio that is not a number (a figure missing) is missed. */
const ratioAtMost = (name: string, value: number, base: number, limit: number): Part => {
  const r = value / base
  return { name, measured: x(r), holds: r <= limit }
}

const check = (scenario: string, target: string, parts: ReadonlyArray<Part>): Check => {
  const named = parts.length > 1
  const missed = parts.filter((p) => !p.holds).map((p) => p.name)
  return {
    scenario,
    target,
    measured: parts.map((p) => (named ? `${p.name} ${p.measured}` : p.measured)).join(", "),
    holds: missed.length === 0,
    missed,
    verdict: missed.length === 0 ? "yes" : named ? `no (${missed.join(", ")})` : "no"
  }
}

/** A durable step: at most 1.1x a raw Activity's time, and at most `limitMs` milliseconds. */
const durable = (store: string, d: DurablePerStep, limitMs: number): Check =>
  check(`durable_diamond, ${store}`, `<= 1.1x raw Activities per step; <= ${limitMs} ms per step`, [
    ratioAtMost("ratio", d.trellisPerStep, d.rawActivitiesPerStep, 1.1),
    { name: "per step", measured: `${d.trellisPerStep.toFixed(2)} ms`, holds: d.trellisPerStep <= limitMs }
  ])

/** Every target, in the order of the table. */
export const checkTargets = (f: Figures): Array<Check> => {
  const c = f.concurrent10k_diamond_sleep10
  const fj = c.effectForkJoin
  const chain1000 = f.chain1000_noop.trellis
  return [
    check("diamond5_noop", "<= 1.5x effectForkJoin", [
      ratioAtMost("time", f.diamond5_noop.trellis, f.diamond5_noop.effectForkJoin, 1.5)
    ]),
    check("fan100_noop", "<= 1.0x effectForkJoin", [
      ratioAtMost("time", f.fan100_noop.trellis, f.fan100_noop.effectForkJoin, 1.0)
    ]),
    check("fan100_sleep20", "<= 1.10x promise", [
      ratioAtMost("wall", f.fan100_sleep20.trellis, f.fan100_sleep20.promise, 1.1)
    ]),
    check("chain1000_noop", "<= 3 us/step; chain10000 per step <= 1.2x chain1000's", [
      { name: "chain1000", measured: `${chain1000.toFixed(2)} us/step`, holds: chain1000 <= 3 },
      ratioAtMost("chain10000", f.chain10000_noop.trellis, chain1000, 1.2)
    ]),
    check("map100_noop", "<= 2x Effect.forEach (same concurrency); per item over 10,000 <= 1.2x over 100", [
      ratioAtMost("time", f.map100_noop.trellis, f.map100_noop.effectForEach, 2),
      ratioAtMost("per item", f.map_per_item.map10000, f.map_per_item.map100, 1.2)
    ]),
    check(
      "concurrent10k_diamond_sleep10, engine alone (steps sleeping, no model layer)",
      "heap <= 1.6x, wall <= 1.5x effectForkJoin",
      [
        ratioAtMost("heap", c.trellisWithoutModel.heapKbPerRun, fj.heapKbPerRun, 1.6),
        ratioAtMost("wall", c.trellisWithoutModel.wallMs, fj.wallMs, 1.5)
      ]
    ),
    check(
      "concurrent10k_diamond_sleep10, with the model layer",
      "heap <= 2.5x, wall <= 2.5x effectForkJoin",
      [
        ratioAtMost("heap", c.trellis.heapKbPerRun, fj.heapKbPerRun, 2.5),
        ratioAtMost("wall", c.trellis.wallMs, fj.wallMs, 2.5)
      ]
    ),
    check("budget_contention", "exactly 100 admitted, overshoot 0", [
      {
        name: "admitted",
        measured: `${f.budget_contention.admitted}`,
        holds: f.budget_contention.admitted === 100
      },
      {
        name: "overshoot",
        measured: `${f.budget_contention.overshootNanoUsd}`,
        holds: f.budget_contention.overshootNanoUsd === 0
      }
    ]),
    durable("SQLite", f.durable_diamond, 8),
    ...(f.durable_diamond_postgres === undefined ? [] : [durable("PostgreSQL", f.durable_diamond_postgres, 25)])
  ]
}
