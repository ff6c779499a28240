/**
 * `concurrent10k_diamond_sleep10`: 10,000 runs of the seed's diamond at once, each step asking the scripted model,
 * which answers after 10 ms; the fork/join baseline sleeps 10 ms per step. Measured: the heap each run in flight
 * holds (mid-flight, after a full collection) and the wall time until every run has completed. Also measured,
 * as `trellisWithoutModel`: the same pipeline whose steps sleep like the baseline's, the engine's own share; and, as
 * `trellisMetered`, steps that sleep inside `Ledger.metered`: the engine and the least a metered call holds (an
 * interruption mask, a handler for its end, an interruptible region), without the rest of the model layer.
 */
import { Cost, Ledger, Pipeline, Step, Usage } from "@trellis/core"
import { LanguageModel, ScriptedModel } from "@trellis/llm"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as ManagedRuntime from "effect/ManagedRuntime"
import { heapAfterGc, median, type Settings } from "./harness.js"

const runs = 10_000
const latencyMs = 10

/** Counts runs as they reach their parallel part, to measure the heap when the last one does. */
interface Probe {
  readonly onParallel: () => void
}

const model = ScriptedModel.make({
  reply: (request) => ({
    text: request.messages.at(-1)!.content.length > 20 ? "complex" : "simple",
    usage: { inputTokens: 20, outputTokens: 1 }
  }),
  latency: `${latencyMs} millis`,
  // The record of requests is for tests to read, no part of a run: kept, it would hold every request of a pass.
  record: false
})

const ask = (prompt: string) =>
  Effect.map(LanguageModel.generate({ messages: [{ role: "user", content: prompt }], maxTokens: 16 }), (r) => r.text)

/** The diamond with the given work in each step; the probe runs as `fetch_market` starts. */
const diamondOf = <E, R>(probe: Probe, work: (value: string) => Effect.Effect<string, E, R>) => {
  const extract = Step.make("extract", { run: () => work("Acme buys Globex") })
  const classify = Step.make("classify", {
    after: { extract },
    run: ({ extract }) => work(extract.length > 20 ? "complex" : "simple")
  })
  const market = Step.make("fetch_market", {
    after: { classify },
    run: ({ classify }) => Effect.zipRight(Effect.sync(probe.onParallel), work(`market for ${classify}`))
  })
  const user = Step.make("fetch_user", { after: { classify }, run: ({ classify }) => work(`user for ${classify}`) })
  const combine = Step.make("combine", {
    after: { market, user },
    run: ({ market, user }) => work(`${market} + ${user}`)
  })
  return Pipeline.make("document", { output: combine })
}

const meteredUsage = Usage.make({ inputTokens: 20, outputTokens: 1, requests: 1 })
function usedByEveryCall() {
  return meteredUsage
}

/** A sleep metered as a model call is, without the rest of the model layer. */
const meteredSleep = (value: string) =>
  Ledger.metered({ worstCase: Cost.nanos(1_000), run: sleepy(value), usage: usedByEveryCall })

const sleepy = <A>(value: A) => Effect.as(Effect.sleep(latencyMs), value)

const forkJoinDiamond = (probe: Probe) =>
  Effect.gen(function*() {
    const words = yield* sleepy("Acme buys Globex")
    const kind = yield* sleepy(words.length > 20 ? "complex" : "simple")
    const fiber = yield* Effect.fork(Effect.zipRight(Effect.sync(probe.onParallel), sleepy(`market for ${kind}`)))
    const user = yield* sleepy(`user for ${kind}`)
    const market = yield* Fiber.join(fiber)
    return yield* sleepy(`${market} + ${user}`)
  })

type Variant = "trellis" | "effectForkJoin" | "trellisWithoutModel" | "trellisMetered"

type Launch = (probe: Probe) => (onExit: (exit: Exit.Exit<unknown, unknown>) => void) => void

/** Runs the diamond with `work` in each step, on `runFork`. */
const launching = <E, R>(
  work: (value: string) => Effect.Effect<string, E, R>,
  runFork: (effect: Effect.Effect<unknown, unknown, R>) => Fiber.RuntimeFiber<unknown, unknown>
): Launch =>
(probe) => {
  const pipeline = diamondOf(probe, work)
  return (onExit) => runFork(Pipeline.run(pipeline)).addObserver(onExit)
}

interface Pass {
  readonly wallMs: number
  readonly heapKbPerRun: number | undefined
}

/**
 * Starts every run at once and waits for all of them. Every pass starts from a collected heap, so that the garbage
 * of the pass before is not collected on this one's time. With `measureHeap`, the heap is read (after a full
 * collection) when the last run reaches its parallel part, and divided by the runs then in flight; the
 * collection pauses everything, so the pass that measures the heap does not measure time.
 */
const pass = (launch: Launch, measureHeap: boolean): Promise<Pass> => {
  const base = heapAfterGc()
  let completed = 0
  let failed = 0
  let reached = 0
  let heapKbPerRun: number | undefined
  const probe: Probe = {
    onParallel: () => {
      if (++reached === runs && measureHeap) {
        const inFlight = runs - completed
        heapKbPerRun = (heapAfterGc() - base) / 1024 / inFlight
      }
    }
  }
  const start = launch(probe)
  const t0 = performance.now()
  return new Promise<Pass>((resolve, reject) => {
    const onExit = (exit: Exit.Exit<unknown, unknown>) => {
      if (Exit.isFailure(exit)) failed++
      if (++completed === runs) {
        const wallMs = performance.now() - t0
        if (failed > 0) reject(new Error(`${failed} of ${runs} runs failed`))
        else resolve({ wallMs, heapKbPerRun })
      }
    }
    for (let i = 0; i < runs; i++) start(onExit)
  })
}

export const concurrent10k = async (s: Settings) => {
  const runtime = ManagedRuntime.make(model.layer)
  await runtime.runtime()
  const launches: Record<Variant, Launch> = {
    trellis: launching(ask, runtime.runFork),
    trellisWithoutModel: launching(sleepy, Effect.runFork),
    trellisMetered: launching(meteredSleep, Effect.runFork),
    effectForkJoin: (probe) => (onExit) => {
      const fiber = Effect.runFork(forkJoinDiamond(probe))
      fiber.addObserver(onExit)
    }
  }
  const rounds = s.quick ? 1 : 3
  const result = {} as Record<Variant, { heapKbPerRun: number; wallMs: number }>
  for (const [name, launch] of Object.entries(launches) as Array<[keyof typeof launches, Launch]>) {
    if (!s.quick) await pass(launch, false) // warm-up
    const walls: Array<number> = []
    const heaps: Array<number> = []
    for (let round = 0; round < rounds; round++) {
      walls.push((await pass(launch, false)).wallMs)
      heaps.push((await pass(launch, true)).heapKbPerRun!)
    }
    result[name] = { heapKbPerRun: median(heaps), wallMs: median(walls) }
  }
  await runtime.dispose()
  return result
}
