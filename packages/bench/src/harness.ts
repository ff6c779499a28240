/**
 * Timing helpers shared by the benchmark's scenarios.
 *
 * Every variant of a scenario is timed in the same process, round by round, in a rotating order, so that
 * a noisy machine slows all of them alike and their ratios hold. A figure is the median of the rounds that
 * follow the warm-up ones.
 */
import * as Effect from "effect/Effect"
import { setFlagsFromString } from "node:v8"
import { runInNewContext } from "node:vm"
import { median } from "./stats.js"

export { median, round3 } from "./stats.js"

/** How hard to try: the full run, or a few rounds so that CI checks the benchmark still works. */
export interface Settings {
  readonly quick: boolean
  /** Timed rounds per variant, after the warm-up. */
  readonly rounds: number
  /** How long each scenario runs its variants, round by round, before the timed rounds, in milliseconds. */
  readonly warmupMs: number
  /** Rough length of one timed batch, in milliseconds. */
  readonly batchMs: number
}

export const settings = (quick: boolean): Settings =>
  quick
    ? { quick, rounds: 3, warmupMs: 100, batchMs: 10 }
    : { quick, rounds: 21, warmupMs: 2_000, batchMs: 50 }

setFlagsFromString("--expose-gc")
const exposedGc = runInNewContext("gc") as () => void

/** A full collection. */
export const gc = (): void => exposedGc()

/** Heap in use after a full collection, in bytes. */
export const heapAfterGc = (): number => {
  gc()
  return process.memoryUsage().heapUsed
}

/** Runs `n` times, one after the other. */
export type Batch = (n: number) => Promise<void>

/** A batch running an effect `n` times in a row on one fiber, with the cheapest loop Effect has. */
export const effectBatch = (make: () => Effect.Effect<unknown, unknown>): Batch => (n) => {
  let i = 0
  return Effect.runPromise(
    Effect.whileLoop({ while: () => i++ < n, body: make, step: () => {} })
  )
}

/** A batch awaiting an async function `n` times in a row. */
export const promiseBatch = (make: () => Promise<unknown>): Batch => async (n) => {
  for (let i = 0; i < n; i++) await make()
}

// No collection before a batch: a full collection throws away what the JIT learnt and makes the next batch
// pay for it again, which is not what a program that runs pipelines all day sees.
const timeBatch = async (batch: Batch, n: number): Promise<number> => {
  const start = performance.now()
  await batch(n)
  return performance.now() - start
}

/**
 * Microseconds per call of each variant: how many calls fill a batch is found once per variant, then every
 * round times one batch of each variant, the order rotating from round to round.
 */
export const compare = async <K extends string>(
  s: Settings,
  variants: Readonly<Record<K, Batch>>
): Promise<Record<K, number>> => {
  const names = Object.keys(variants) as Array<K>
  const sizes = {} as Record<K, number>
  for (const name of names) {
    let n = 1
    // Grow the batch until it lasts a tenth of the target, then scale it to the target.
    for (;;) {
      const ms = await timeBatch(variants[name], n)
      if (ms >= s.batchMs / 10 || n >= 1 << 24) {
        sizes[name] = Math.max(1, Math.round(n * s.batchMs / Math.max(ms, 0.001)))
        break
      }
      n *= 4
    }
  }
  // The JIT and the collector's heuristics take a while to settle: a fixed time of rounds that are not kept.
  const warmupEnd = performance.now() + s.warmupMs
  for (let round = 0; performance.now() < warmupEnd || round < 2; round++) {
    for (const name of names) await timeBatch(variants[name], sizes[name])
  }
  const samples = Object.fromEntries(names.map((name) => [name, [] as Array<number>])) as Record<K, Array<number>>
  for (let round = 0; round < s.rounds; round++) {
    for (let k = 0; k < names.length; k++) {
      const name = names[(round + k) % names.length]!
      const ms = await timeBatch(variants[name], sizes[name])
      samples[name].push((ms * 1000) / sizes[name])
    }
  }
  return Object.fromEntries(names.map((name) => [name, median(samples[name])])) as Record<K, number>
}

/** Milliseconds of wall time per run of each variant, for runs that wait on real timers. */
export const compareWall = async <K extends string>(
  s: Settings,
  variants: Readonly<Record<K, () => Promise<unknown>>>
): Promise<Record<K, number>> => {
  const names = Object.keys(variants) as Array<K>
  const samples = Object.fromEntries(names.map((name) => [name, [] as Array<number>])) as Record<K, Array<number>>
  const warmup = s.quick ? 1 : 5
  const rounds = s.quick ? 3 : 31
  for (let round = 0; round < warmup + rounds; round++) {
    for (let k = 0; k < names.length; k++) {
      const name = names[(round + k) % names.length]!
      const start = performance.now()
      await variants[name]()
      const ms = performance.now() - start
      if (round >= warmup) samples[name].push(ms)
    }
  }
  return Object.fromEntries(names.map((name) => [name, median(samples[name])])) as Record<K, number>
}

/**
 * The run options Trellis is timed with: an event listener, so that events are made as a user who watches a
 * run gets them. One listener for all runs, so that what is timed is the run, not the making of the listener.
 */
export const withEvents = {
  onEvent(_event: unknown) {}
}
