import { describe, expect, it } from "@effect/vitest"
import { Cost, type Event, Ledger, Loop, Pipeline, Step } from "@trellis/core"
import { Effect } from "effect"
import * as fc from "fast-check"
import { paidCall } from "./utils.js"

const draft = Step.make("draft", { run: () => Effect.succeed("v0") })

/** A loop whose critic approves the answer at `approvesAt` (never when undefined); each iteration costs 1,000. */
const refine = (approvesAt: number | undefined, maxIterations: number, whenOutOfBudget?: "fail" | "end") =>
  Loop.make("refine", {
    after: { draft },
    initial: ({ draft }) => ({ text: draft, approved: false }),
    body: (state, iteration) =>
      Effect.as(paidCall(1000), { text: `${state.text}+${iteration}`, approved: iteration === approvesAt }),
    until: (state) => state.approved,
    maxIterations,
    ...(whenOutOfBudget === undefined ? {} : { whenOutOfBudget })
  })

describe("Loop", () => {
  it.effect("ends when its condition holds, each iteration a step of the run", () =>
    Effect.gen(function*() {
      const events: Array<Event.Event> = []
      const result = yield* Pipeline.run(Pipeline.make("p", { output: refine(2, 5) }), {
        onEvent: (e) => void events.push(e)
      })
      expect(result.output).toEqual({ state: { text: "v0+1+2", approved: true }, iterations: 2, ended: "Condition" })
      expect(events.filter((e) => e._tag === "StepStarted").map((e) => [e.step, e.parent])).toEqual([
        ["draft", undefined],
        ["refine", undefined],
        ["refine#1", "refine"],
        ["refine#2", "refine"]
      ])
      expect(Object.keys(result.usage.byStep)).toEqual(["refine#1", "refine#2"])
      expect(result.timeline.map((t) => t.step)).toEqual(["draft", "refine", "refine#1", "refine#2"])
    }))

  it.effect("ends after maxIterations when the condition never holds", () =>
    Effect.gen(function*() {
      const result = yield* Pipeline.run(Pipeline.make("p", { output: refine(undefined, 3) }))
      expect(result.output).toMatchObject({ iterations: 3, ended: "MaxIterations", state: { text: "v0+1+2+3" } })
      expect(result.usage.total.requests).toBe(3)
    }))

  it.effect("asked to, ends with its last state when the budget cannot pay for another iteration", () =>
    Effect.gen(function*() {
      const ending = Pipeline.make("p", { output: refine(undefined, 10, "end"), budget: Cost.nanos(2500) })
      const result = yield* Pipeline.run(ending)
      expect(result.output).toEqual({ state: { text: "v0+1+2", approved: false }, iterations: 2, ended: "OutOfBudget" })
      expect(result.usage.total.cost).toBe(2000)
      // By default a refused budget fails the run, as for any step.
      const failing = Pipeline.make("p", { output: refine(undefined, 10), budget: Cost.nanos(2500) })
      const error = yield* Effect.flip(Pipeline.run(failing))
      expect(error).toBeInstanceOf(Ledger.BudgetExceeded)
      expect(error).toMatchObject({ step: "refine#3", pipeline: "p" })
    }))

  it("the same answers give the same number of iterations, never more than the bound", () =>
    fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 1, max: 6 }),
        fc.option(fc.integer({ min: 1, max: 8 }), { nil: undefined }),
        async (max, approvesAt) => {
          const once = () => Effect.runPromise(Pipeline.run(Pipeline.make("p", { output: refine(approvesAt, max) })))
          const [a, b] = [await once(), await once()]
          expect(a.output).toEqual(b.output)
          const expected = approvesAt !== undefined && approvesAt <= max ? approvesAt : max
          expect(a.output.iterations).toBe(expected)
          expect(a.usage.total.requests).toBe(expected)
        }
      ),
      { numRuns: 40 }
    ))

  it("a loop without a whole bound of at least 1 is refused when it is made", () => {
    const options = { initial: () => 0, body: (n: number) => Effect.succeed(n), until: () => false }
    for (const maxIterations of [undefined, 0, -1, 1.5, Number.NaN, Infinity]) {
      expect(() => Loop.make("l", { ...options, maxIterations: maxIterations as number })).toThrow(
        /maxIterations is required/
      )
    }
    expect(() => Loop.make("l", { ...options, maxIterations: 2, whenOutOfBudget: "stop" as "end" })).toThrow(
      /whenOutOfBudget/
    )
  })
})
