import { describe, expect, it } from "vitest"
import { median, round3 } from "../src/stats.js"
import { type Check, checkTargets, type Figures } from "../src/targets.js"

describe("median", () => {
  it("is the middle figure of an odd count, whatever the order", () => {
    expect(median([5, 1, 3])).toBe(3)
    expect(median([7])).toBe(7)
  })

  it("is the mean of the two middle figures of an even count", () => {
    expect(median([4, 1, 3, 2])).toBe(2.5)
  })

  it("leaves its input as it was", () => {
    const xs = [3, 1, 2]
    median(xs)
    expect(xs).toEqual([3, 1, 2])
  })
})

describe("round3", () => {
  it("keeps three significant digits", () => {
    expect(round3(1234.5)).toBe(1235)
    expect(round3(12.345)).toBe(12.3)
    expect(round3(0.012345)).toBe(0.0123)
    expect(round3(0)).toBe(0)
  })
})

/** Figures that hold every target, with room to spare. */
const held: Figures = {
  diamond5_noop: { trellis: 10, effectForkJoin: 10 },
  fan100_noop: { trellis: 5, effectForkJoin: 10 },
  fan100_sleep20: { trellis: 21, promise: 20.5 },
  chain1000_noop: { trellis: 2 },
  chain10000_noop: { trellis: 2.2 },
  map100_noop: { trellis: 150, effectForEach: 100 },
  map_per_item: { map100: 1.5, map10000: 1.6 },
  concurrent10k_diamond_sleep10: {
    trellis: { heapKbPerRun: 20, wallMs: 2000 },
    trellisWithoutModel: { heapKbPerRun: 15, wallMs: 1200 },
    effectForkJoin: { heapKbPerRun: 10, wallMs: 1000 }
  },
  budget_contention: { admitted: 100, overshootNanoUsd: 0 },
  durable_diamond: { trellisPerStep: 6, rawActivitiesPerStep: 6 }
}

const row = (checks: ReadonlyArray<Check>, scenario: string): Check => {
  const found = checks.find((c) => c.scenario.startsWith(scenario))
  if (found === undefined) throw new Error(`no target for ${scenario}`)
  return found
}

const engineAlone = "concurrent10k_diamond_sleep10, engine alone"
const withModel = "concurrent10k_diamond_sleep10, with the model layer"

describe("checkTargets", () => {
  it("holds map100_noop at 2x Effect.forEach and a per-item cost that stays flat", () => {
    expect(row(checkTargets({ ...held, map100_noop: { trellis: 200, effectForEach: 100 } }), "map100_noop").holds)
      .toBe(true)
    const slow = row(checkTargets({ ...held, map100_noop: { trellis: 201, effectForEach: 100 } }), "map100_noop")
    expect(slow.missed).toEqual(["time"])
    const growing = row(checkTargets({ ...held, map_per_item: { map100: 1.5, map10000: 1.81 } }), "map100_noop")
    expect(growing.missed).toEqual(["per item"])
  })

  it("has one row per target", () => {
    expect(checkTargets(held).map((c) => c.scenario)).toEqual([
      "diamond5_noop",
      "fan100_noop",
      "fan100_sleep20",
      "chain1000_noop",
      "map100_noop",
      "concurrent10k_diamond_sleep10, engine alone (steps sleeping, no model layer)",
      "concurrent10k_diamond_sleep10, with the model layer",
      "budget_contention",
      "durable_diamond, SQLite"
    ])
  })

  it("reports ratios under their targets as held", () => {
    for (const c of checkTargets(held)) {
      expect(c.holds, c.scenario).toBe(true)
      expect(c.missed).toEqual([])
      expect(c.verdict).toBe("yes")
    }
  })

  it("holds a ratio exactly at its target", () => {
    const checks = checkTargets({ ...held, diamond5_noop: { trellis: 15, effectForkJoin: 10 } })
    expect(row(checks, "diamond5_noop").holds).toBe(true)
    expect(row(checks, "diamond5_noop").measured).toBe("1.50x")
  })

  it("reports a ratio over its target as missed, and only that one", () => {
    const checks = checkTargets({ ...held, diamond5_noop: { trellis: 16, effectForkJoin: 10 } })
    expect(row(checks, "diamond5_noop")).toMatchObject({ holds: false, measured: "1.60x", verdict: "no" })
    expect(checks.filter((c) => !c.holds)).toHaveLength(1)
  })

  it("checks the fan-out against fork/join at 1.0x and waiting steps against promises at 1.10x", () => {
    expect(row(checkTargets({ ...held, fan100_noop: { trellis: 10.1, effectForkJoin: 10 } }), "fan100_noop").holds)
      .toBe(false)
    expect(row(checkTargets({ ...held, fan100_sleep20: { trellis: 22.6, promise: 20.5 } }), "fan100_sleep20").holds)
      .toBe(false)
    expect(row(checkTargets({ ...held, fan100_sleep20: { trellis: 22.5, promise: 20.5 } }), "fan100_sleep20").holds)
      .toBe(true)
  })

  it("checks a chain step's cost and how it grows with the chain", () => {
    const slow = row(
      checkTargets({ ...held, chain1000_noop: { trellis: 3.1 }, chain10000_noop: { trellis: 3.1 } }),
      "chain1000_noop"
    )
    expect(slow).toMatchObject({ holds: false, missed: ["chain1000"], verdict: "no (chain1000)" })
    const growing = row(checkTargets({ ...held, chain10000_noop: { trellis: 2.5 } }), "chain1000_noop")
    expect(growing).toMatchObject({ holds: false, missed: ["chain10000"] })
  })

  it("checks the engine alone against 1.6x heap and 1.5x wall", () => {
    const c = held.concurrent10k_diamond_sleep10
    const over = checkTargets({
      ...held,
      concurrent10k_diamond_sleep10: { ...c, trellisWithoutModel: { heapKbPerRun: 16.5, wallMs: 1400 } }
    })
    expect(row(over, engineAlone)).toMatchObject({ holds: false, missed: ["heap"], verdict: "no (heap)" })
    expect(row(over, withModel).holds).toBe(true)
    const slow = checkTargets({
      ...held,
      concurrent10k_diamond_sleep10: { ...c, trellisWithoutModel: { heapKbPerRun: 15, wallMs: 1600 } }
    })
    expect(row(slow, engineAlone).missed).toEqual(["wall"])
  })

  it("checks the model layer against 2.5x heap and 2.5x wall", () => {
    const c = held.concurrent10k_diamond_sleep10
    const checks = checkTargets({
      ...held,
      concurrent10k_diamond_sleep10: { ...c, trellis: { heapKbPerRun: 26, wallMs: 2600 } }
    })
    expect(row(checks, withModel)).toMatchObject({
      holds: false,
      measured: "heap 2.60x, wall 2.60x",
      missed: ["heap", "wall"]
    })
    expect(row(checks, engineAlone).holds).toBe(true)
  })

  it("wants exactly 100 calls admitted and no overshoot", () => {
    const admitted = (n: number, over: number) =>
      row(checkTargets({ ...held, budget_contention: { admitted: n, overshootNanoUsd: over } }), "budget_contention")
    expect(admitted(100, 0).holds).toBe(true)
    expect(admitted(99, 0).missed).toEqual(["admitted"])
    expect(admitted(101, 0).missed).toEqual(["admitted"])
    expect(admitted(100, 1).missed).toEqual(["overshoot"])
  })

  it("checks a durable step against 1.1x a raw Activity and 8 ms", () => {
    const durable = (trellisPerStep: number, rawActivitiesPerStep: number) =>
      row(checkTargets({ ...held, durable_diamond: { trellisPerStep, rawActivitiesPerStep } }), "durable_diamond")
    expect(durable(5.5, 5)).toMatchObject({ holds: true, measured: "ratio 1.10x, per step 5.50 ms", verdict: "yes" })
    expect(durable(5.6, 5)).toMatchObject({ holds: false, missed: ["ratio"], verdict: "no (ratio)" })
    expect(durable(8.1, 8)).toMatchObject({ holds: false, missed: ["per step"] })
    expect(durable(9, 7).missed).toEqual(["ratio", "per step"])
    expect(durable(Number.NaN, 5).missed).toEqual(["ratio", "per step"])
  })

  it("checks PostgreSQL only when it was measured, against 1.1x and 25 ms", () => {
    const pg = (trellisPerStep: number, rawActivitiesPerStep: number) =>
      checkTargets({ ...held, durable_diamond_postgres: { trellisPerStep, rawActivitiesPerStep } })
    expect(checkTargets(held).some((c) => c.scenario.includes("PostgreSQL"))).toBe(false)
    expect(row(pg(20, 20), "durable_diamond, PostgreSQL")).toMatchObject({
      holds: true,
      target: "<= 1.1x raw Activities per step; <= 25 ms per step"
    })
    expect(row(pg(26, 25), "durable_diamond, PostgreSQL").missed).toEqual(["per step"])
    expect(row(pg(26, 25), "durable_diamond, SQLite").holds).toBe(true)
  })

  it("misses a target whose figure is not a number", () => {
    const checks = checkTargets({ ...held, diamond5_noop: { trellis: Number.NaN, effectForkJoin: 10 } })
    expect(row(checks, "diamond5_noop").holds).toBe(false)
  })
})
