/**
 * `durable_signal`: the time from a signal to the waiting step going on. A durable pipeline of three steps (one that
 * returns at once, a `Durable.await` step, and a step that notes when it starts) is started with `Durable.start`;
 * once `Durable.status` says the run is `Waiting`, `Durable.signal` delivers its value from the same process (the
 * runner's). Measured, in milliseconds from the call to `Durable.signal`: when the call returned, when the step after
 * the waiting one started, and when `Durable.status` first said the run was finished (polled every millisecond).
 * Each round is a fresh run; the figures are medians over the rounds (and the most, for the next step). On a SQLite
 * file, and on PostgreSQL when a server is given. Reported only: no target.
 */
import { Pipeline, Step } from "@trellis/core"
import { Durable, Store } from "@trellis/durable"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as ManagedRuntime from "effect/ManagedRuntime"
import * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { withFreshDatabase } from "./durable.js"
import type { Settings } from "./harness.js"
import { median } from "./stats.js"

/** What `durable_signal` reports on one store, in milliseconds from the call to `Durable.signal`. */
export interface DurableSignal {
  readonly unit: "ms"
  readonly rounds: number
  /** The call to `Durable.signal` returned. */
  readonly signalReturned: number
  /** The step after the waiting one started: median and most. */
  readonly nextStepMedian: number
  readonly nextStepMax: number
  /** `Durable.status` said the run was finished. */
  readonly finishedMedian: number
}

// Rounds run one after the other: the step after the waiting one tells the round in progress that it started.
let nextStepStarted: (at: number) => void = () => {}

const ask = Step.make("ask", { output: Schema.String, run: () => Effect.succeed("approve?") })
const approval = Durable.await("approval", { schema: Schema.Boolean, after: { ask } })
const next = Step.make("next", {
  after: { approval },
  output: Schema.Boolean,
  run: ({ approval }) => Effect.sync(() => (nextStepStarted(performance.now()), approval))
})
const approve = Durable.make(Pipeline.make("durable_signal", { output: next }))

/** Polls `check` every millisecond until it holds. */
const until = <R>(check: Effect.Effect<boolean, never, R>): Effect.Effect<void, never, R> =>
  Effect.flatMap(check, (holds) => holds ? Effect.void : Effect.zipRight(Effect.sleep("1 millis"), until(check)))

const measure = async (s: Settings, store: Layer.Layer<Store.Services, unknown>): Promise<DurableSignal> => {
  const runtime = ManagedRuntime.make(Durable.layer(approve).pipe(Layer.provideMerge(store)))
  try {
    // The store's start (tables, shard locks) is not part of any round.
    await runtime.runPromise(Effect.void)
    const warmup = s.quick ? 1 : 3
    const rounds = s.quick ? 3 : 21
    const returned: Array<number> = []
    const nextStep: Array<number> = []
    const finished: Array<number> = []
    for (let round = 0; round < warmup + rounds; round++) {
      const id = `run-${round}`
      const started = new Promise<number>((resolve) => (nextStepStarted = resolve))
      const figures = await runtime.runPromise(Effect.gen(function*() {
        yield* Durable.start(approve, { id })
        yield* until(Effect.map(Durable.status(approve, { id }), (status) => status._tag === "Waiting"))
        const signalled = performance.now()
        yield* Durable.signal(approve, { id, step: approval, value: true })
        const returned = performance.now() - signalled
        yield* until(Effect.map(Durable.status(approve, { id }), (status) => status._tag === "Finished"))
        const finished = performance.now() - signalled
        const next = (yield* Effect.promise(() => started)) - signalled
        return { returned, next, finished }
      }))
      if (round < warmup) continue
      returned.push(figures.returned)
      nextStep.push(figures.next)
      finished.push(figures.finished)
    }
    return {
      unit: "ms",
      rounds,
      signalReturned: median(returned),
      nextStepMedian: median(nextStep),
      nextStepMax: Math.max(...nextStep),
      finishedMedian: median(finished)
    }
  } finally {
    await runtime.dispose()
  }
}

/** `durable_signal` on a SQLite file in a fresh temporary folder, removed after. */
export const durableSignal = async (s: Settings): Promise<DurableSignal> => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "trellis-bench-"))
  try {
    return await measure(s, Store.layerSqlite({ filename: path.join(dir, "runs.db"), retention: "forever" }))
  } finally {
    fs.rmSync(dir, { recursive: true, force: true })
  }
}

/** `durable_signal` on PostgreSQL, in a database of its own made on the server at `url` and dropped after. */
export const durableSignalPostgres = (s: Settings, url: string): Promise<DurableSignal> =>
  withFreshDatabase(url, (database) => measure(s, Store.layerPg({ url: Redacted.make(database), retention: "forever" })))
