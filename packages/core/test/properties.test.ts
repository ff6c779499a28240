import { describe, expect, it } from "@effect/vitest"
import { Cost, Ledger, Pipeline, Step, Usage } from "@trellis/core"
import { Clock, Effect, Exit, Fiber, Supervisor, TestClock, TestContext } from "effect"
import * as fc from "fast-check"

/** A random DAG: step i depends on a subset of the steps before it, and sleeps `ms[i]`. */
interface Dag {
  readonly deps: ReadonlyArray<ReadonlyArray<number>>
  readonly ms: ReadonlyArray<number>
}

const dagArbitrary: fc.Arbitrary<Dag> = fc.integer({ min: 1, max: 14 }).chain((n) =>
  fc.record({
    deps: fc.tuple(
      ...Array.from({ length: n }, (_, i) =>
        i === 0 ? fc.constant<Array<number>>([]) : fc.uniqueArray(fc.integer({ min: 0, max: i - 1 }), { maxLength: 4 }))
    ),
    ms: fc.array(fc.integer({ min: 0, max: 5 }).map((s) => s * 1000), { minLength: n, maxLength: n })
  })
)

interface Log {
  starts: Array<{ step: number; at: number; seq: number }>
  ends: Array<{ step: number; at: number; seq: number }>
  seq: number
  running: number
  /** The most steps running at once. */
  peak: number
  acquired: number
  released: number
}

/**
 * Builds the DAG's steps, plus a sink depending on every step nothing else depends on. `probe` runs as each step
 * starts.
 */
const build = (dag: Dag, log: Log, probe: Effect.Effect<void> = Effect.void) => {
  const steps: Array<Step.Any> = []
  dag.deps.forEach((deps, i) => {
    const after = Object.fromEntries(deps.map((d) => [`d${d}`, steps[d]!]))
    steps.push(Step.make(`s${i}`, {
      after,
      run: () =>
        Effect.acquireUseRelease(
          Effect.flatMap(Clock.currentTimeMillis, (at) =>
            Effect.zipRight(
              Effect.sync(() => {
                log.running++
                log.peak = Math.max(log.peak, log.running)
                log.acquired++
                log.starts.push({ step: i, at, seq: log.seq++ })
              }),
              probe
            )),
          () =>
            Effect.zipRight(
              Effect.sleep(dag.ms[i]!),
              Effect.flatMap(Clock.currentTimeMillis, (at) =>
                Effect.sync(() => log.ends.push({ step: i, at, seq: log.seq++ })))
            ),
          () => Effect.sync(() => (log.running--, log.released++))
        )
    }))
  })
  const used = new Set(dag.deps.flat())
  const leaves = steps.filter((_, i) => !used.has(i))
  const sink = Step.make("sink", { after: Object.fromEntries(leaves.map((s) => [s.name, s])), run: () => Effect.void })
  return Pipeline.make("random", { output: sink }) as Pipeline.Pipeline<void, never, never, unknown, never>
}

/** The longest path through the DAG, in milliseconds. */
const criticalPath = (dag: Dag): number => {
  const finish: Array<number> = []
  dag.deps.forEach((deps, i) => {
    finish[i] = Math.max(0, ...deps.map((d) => finish[d]!)) + dag.ms[i]!
  })
  return Math.max(...finish)
}

const newLog = (): Log => ({ starts: [], ends: [], seq: 0, running: 0, peak: 0, acquired: 0, released: 0 })

// Each property runs many pipelines; on a busy 2-core machine that takes seconds, not milliseconds.
const propertyTimeout = 60_000

const runTest = <A, E>(effect: Effect.Effect<A, E>) => Effect.runPromise(Effect.provide(effect, TestContext.TestContext))

describe("Pipeline properties over random DAGs", () => {
  it("runs each step exactly once, never before its dependencies, in the critical path's time", () =>
    fc.assert(
      fc.asyncProperty(dagArbitrary, (dag) =>
        runTest(Effect.gen(function*() {
          const log = newLog()
          const fiber = yield* Effect.fork(Pipeline.run(build(dag, log)))
          yield* TestClock.adjust("1 hour")
          const result = yield* Fiber.join(fiber)
          expect(result._tag).toBe("Completed")
          expect(log.starts.map((s) => s.step).sort((a, b) => a - b)).toEqual(dag.ms.map((_, i) => i))
          const startOf = new Map(log.starts.map((s) => [s.step, s]))
          const endOf = new Map(log.ends.map((e) => [e.step, e]))
          dag.deps.forEach((deps, i) => {
            for (const d of deps) {
              expect(endOf.get(d)!.seq).toBeLessThan(startOf.get(i)!.seq)
              expect(endOf.get(d)!.at).toBeLessThanOrEqual(startOf.get(i)!.at)
            }
          })
          const makespan = Math.max(...log.ends.map((e) => e.at)) - Math.min(...log.starts.map((s) => s.at))
          expect(makespan).toBe(criticalPath(dag))
        }))
      ),
      { numRuns: 60 }
    ), propertyTimeout)

  it("never overshoots the budget under random concurrent reservations", () =>
    fc.assert(
      fc.asyncProperty(
        fc.array(fc.record({ worst: fc.integer({ min: 1, max: 500 }), ms: fc.integer({ min: 0, max: 3000 }) }), {
          minLength: 1,
          maxLength: 60
        }),
        fc.integer({ min: 0, max: 5000 }),
        fc.float({ min: 0, max: 1, noNaN: true }),
        (calls, budget, spendRatio) =>
          runTest(Effect.gen(function*() {
            const ledger = yield* Ledger.make({ budget: Cost.nanos(budget) })
            let peakCommitted = 0
            const call = ({ ms, worst }: { worst: number; ms: number }) =>
              Ledger.metered({
                worstCase: Cost.nanos(worst),
                run: Effect.zipRight(
                  Effect.flatMap(ledger.snapshot, (s) =>
                    Effect.sync(() => (peakCommitted = Math.max(peakCommitted, s.total.cost + s.reserved)))),
                  Effect.sleep(ms)
                ),
                // Real cost is at most the worst case.
                usage: () => Usage.make({ requests: 1, cost: Cost.nanos(Math.floor(worst * spendRatio)) })
              }).pipe(Effect.either)
            const fiber = yield* Effect.fork(
              Effect.all(calls.map(call), { concurrency: "unbounded" }).pipe(
                Effect.provideService(Ledger.Ledger, ledger)
              )
            )
            yield* TestClock.adjust("1 hour")
            const outcomes = yield* Fiber.join(fiber)
            const snapshot = yield* ledger.snapshot
            expect(snapshot.reserved).toBe(0)
            expect(snapshot.total.cost).toBeLessThanOrEqual(budget)
            expect(peakCommitted).toBeLessThanOrEqual(budget)
            expect(snapshot.total.requests).toBe(outcomes.filter((o) => o._tag === "Right").length)
          }))
      ),
      { numRuns: 100 }
    ), propertyTimeout)

  it("a run under a budget never completes past it, whatever the calls report, and reports an overshoot", () =>
    fc.assert(
      fc.asyncProperty(
        fc.array(
          fc.record({
            worst: fc.integer({ min: 1, max: 300 }),
            ms: fc.integer({ min: 0, max: 3000 }),
            // What the call reports it cost: honest (at most its worst case), over-reported, or malformed.
            reported: fc.oneof(
              fc.float({ min: 0, max: 1, noNaN: true }).map((ratio) => ({ kind: "honest" as const, ratio })),
              fc.integer({ min: 2, max: 50 }).map((times) => ({ kind: "over" as const, times })),
              fc.constantFrom(Number.NaN, -1e9, 1.5, Infinity).map((cost) => ({ kind: "bad" as const, cost }))
            )
          }),
          { minLength: 1, maxLength: 12 }
        ),
        fc.integer({ min: 0, max: 2000 }),
        (calls, budget) =>
          runTest(Effect.gen(function*() {
            const steps = calls.map(({ ms, reported, worst }, i) =>
              Step.make(`call${i}`, {
                run: () =>
                  Ledger.metered({
                    worstCase: Cost.nanos(worst),
                    run: Effect.sleep(ms),
                    usage: () =>
                      Usage.make({
                        requests: 1,
                        cost: (reported.kind === "honest"
                          ? Math.floor(worst * reported.ratio)
                          : reported.kind === "over"
                          ? worst * reported.times
                          : reported.cost) as Cost.Cost
                      })
                  })
              })
            )
            const sink = Step.make("sink", { after: Object.fromEntries(steps.map((s) => [s.name, s])), run: () => Effect.void })
            // An application-wide ledger around the run sees every reservation and settlement of it.
            const outer = yield* Ledger.make()
            const fiber = yield* Effect.fork(Effect.either(
              Pipeline.run(Pipeline.make("spend", { output: sink, budget: Cost.nanos(budget) }))
            ).pipe(Effect.provideService(Ledger.Ledger, outer)))
            yield* TestClock.adjust("1 hour")
            const outcome = yield* Fiber.join(fiber)
            const outerSnapshot = yield* outer.snapshot
            expect(outerSnapshot.reserved).toBe(0)
            const usage = outcome._tag === "Right" ? outcome.right.usage : outcome.left.partial.usage
            if (outcome._tag === "Right") expect(usage.total.cost).toBeLessThanOrEqual(budget)
            if (usage.total.cost > budget) expect(outcome._tag === "Left" && outcome.left._tag).toBe("BudgetOverrun")
            // Every settled call is counted, at a whole, non-negative cost, in the run and around it.
            expect(Number.isSafeInteger(usage.total.cost) && usage.total.cost >= 0).toBe(true)
            expect(outerSnapshot.total.cost).toBe(usage.total.cost)
          }))
      ),
      { numRuns: 150 }
    ), propertyTimeout)

  it("interrupting at a random moment leaves no running fiber and runs every acquired finalizer", () =>
    fc.assert(
      fc.asyncProperty(dagArbitrary, fc.integer({ min: 0, max: 12_000 }), (dag, at) =>
        runTest(Effect.gen(function*() {
          const log = newLog()
          const supervisor = yield* Supervisor.track
          let seen = 0
          const probe = Effect.map(supervisor.value, (fibers) => void (seen = Math.max(seen, fibers.length)))
          const fiber = yield* Effect.fork(Effect.supervised(Pipeline.run(build(dag, log, probe)), supervisor))
          yield* TestClock.adjust(at)
          const exit = yield* Fiber.interrupt(fiber)
          expect(Exit.isSuccess(exit) || Exit.isInterrupted(exit)).toBe(true)
          expect(log.released).toBe(log.acquired)
          expect(log.running).toBe(0)
          // Steps that ran at the same time ran on fibers of their own, which the supervisor saw while they lived...
          if (log.peak >= 2) expect(seen).toBeGreaterThanOrEqual(log.peak)
          // ...and none is left.
          expect(yield* supervisor.value).toEqual([])
        }))
      ),
      { numRuns: 80 }
    ), propertyTimeout)
})
