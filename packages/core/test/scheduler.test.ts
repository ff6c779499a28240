import { describe, expect, it } from "@effect/vitest"
import * as fc from "fast-check"
import { compile, type Graph } from "../src/internal/graph.js"
import { Scheduler } from "../src/internal/scheduler.js"
import { Step } from "@trellis/core"
import { Effect } from "effect"

/** A random DAG as lists of dependencies: step i depends on some of the steps before it. */
const dagArbitrary = fc.integer({ min: 1, max: 20 }).chain((n) =>
  fc.tuple(
    ...Array.from({ length: n }, (_, i) =>
      i === 0 ? fc.constant<Array<number>>([]) : fc.uniqueArray(fc.integer({ min: 0, max: i - 1 }), { maxLength: 4 }))
  )
)

/** Compiles a DAG given as dependency lists, with a sink after every step nothing depends on. */
const graphOf = (deps: ReadonlyArray<ReadonlyArray<number>>): Graph => {
  const steps: Array<Step.Any> = []
  deps.forEach((ds, i) => {
    steps.push(Step.make(`s${i}`, { after: Object.fromEntries(ds.map((d) => [`d${d}`, steps[d]!])), run: () => Effect.void }))
  })
  const used = new Set(deps.flat())
  const leaves = steps.filter((_, i) => !used.has(i))
  const sink = Step.make("sink", { after: Object.fromEntries(leaves.map((s) => [s.name, s])), run: () => Effect.void })
  const graph = compile(sink, [])
  if (!("nodes" in graph)) throw new Error(graph.detail)
  return graph
}

describe("Scheduler", () => {
  it("starts roots, then each step once its last dependency succeeded, within the bound", () => {
    // a -> (b, c) -> d
    const a = Step.make("a", { run: () => Effect.void })
    const b = Step.make("b", { after: { a }, run: () => Effect.void })
    const c = Step.make("c", { after: { a }, run: () => Effect.void })
    const d = Step.make("d", { after: { b, c }, run: () => Effect.void })
    const graph = compile(d, []) as Graph
    const index = (name: string) => graph.names.indexOf(name)
    const scheduler = new Scheduler<string>(graph, 1)
    expect(scheduler.startable).toBe(1)
    expect(scheduler.take()).toBe(index("a"))
    expect(scheduler.startable).toBe(0)
    scheduler.succeed(index("a"))
    // b and c are ready, but only one may run at a time.
    expect(scheduler.startable).toBe(1)
    const first = scheduler.take()
    scheduler.succeed(first)
    expect(scheduler.startable).toBe(1)
    const second = scheduler.take()
    expect([first, second].sort()).toEqual([index("b"), index("c")].sort())
    expect(scheduler.settled).toBe(false)
    scheduler.succeed(second)
    expect(scheduler.take()).toBe(index("d"))
    scheduler.succeed(index("d"))
    expect(scheduler.settled).toBe(true)
  })

  it("an abort settles at once and starts nothing; a drain settles when the running steps end", () => {
    const a = Step.make("a", { run: () => Effect.void })
    const b = Step.make("b", { run: () => Effect.void })
    const c = Step.make("c", { after: { a, b }, run: () => Effect.void })
    const graph = compile(c, []) as Graph
    for (const mode of ["abort", "drain"] as const) {
      const scheduler = new Scheduler<string>(graph, Infinity)
      const x = scheduler.take()
      const y = scheduler.take()
      scheduler.fail(x, mode, "why")
      expect(scheduler.halt).toEqual({ step: x, mode, reason: "why" })
      expect(scheduler.startable).toBe(0)
      expect(scheduler.settled).toBe(mode === "abort")
      scheduler.succeed(y)
      // Ready or not, nothing starts after a halt; the first halt stays the outcome.
      expect(scheduler.startable).toBe(0)
      expect(scheduler.settled).toBe(true)
      expect(scheduler.halt?.reason).toBe("why")
    }
  })

  it("over random DAGs, bounds and completion orders: each step once, after its dependencies, within the bound", () =>
    fc.assert(
      fc.property(dagArbitrary, fc.integer({ min: 1, max: 6 }), fc.infiniteStream(fc.nat()), (deps, bound, picks) => {
        const graph = graphOf(deps)
        const scheduler = new Scheduler<never>(graph, bound)
        const done = new Set<number>()
        const started = new Set<number>()
        const running: Array<number> = []
        const pick = picks[Symbol.iterator]()
        while (!scheduler.settled) {
          while (scheduler.startable > 0) {
            const i = scheduler.take()
            expect(started.has(i)).toBe(false)
            for (const d of graph.nodes[i]!.deps) expect(done.has(d)).toBe(true)
            started.add(i)
            running.push(i)
          }
          expect(running.length).toBeLessThanOrEqual(bound)
          expect(running.length).toBeGreaterThan(0)
          // Any running step may be the next to end.
          const [i] = running.splice(pick.next().value % running.length, 1)
          scheduler.succeed(i!)
          done.add(i!)
        }
        expect(done.size).toBe(graph.nodes.length)
        expect(scheduler.running).toBe(0)
      }),
      { numRuns: 300 }
    ))
})
