import { describe, expect, it } from "@effect/vitest"
import { Cost, ForEach, Ledger, Pipeline, PipelineError, Usage } from "@trellis/core"
import { Data, Effect, Exit } from "effect"
import * as fc from "fast-check"

class Flaky extends Data.TaggedError("Flaky")<{ readonly item: number }> {}

interface Item {
  readonly cost: number
  /** Fibers yield this many times before the call, so items interleave differently. */
  readonly yields: number
  /** How many of its attempts fail, after paying for their call. */
  readonly failures: number
}

const itemArbitrary: fc.Arbitrary<Item> = fc.record({
  cost: fc.integer({ min: 0, max: 5000 }),
  yields: fc.integer({ min: 0, max: 4 }),
  failures: fc.integer({ min: 0, max: 3 })
})

describe("ForEach properties", () => {
  it("random lists, failures and budgets: every paid call counted once, the budget never passed, outputs in order", () =>
    fc.assert(
      fc.asyncProperty(
        fc.array(itemArbitrary, { maxLength: 25 }),
        fc.integer({ min: 1, max: 6 }),
        fc.option(fc.integer({ min: 0, max: 60_000 }), { nil: undefined }),
        fc.constantFrom<"failFast" | "settle">("failFast", "settle"),
        async (items, concurrency, budget, mode) => {
          let paid = 0
          const attempts = new Map<number, number>()
          const each = (item: Item, index: number) =>
            Effect.gen(function*() {
              const attempt = (attempts.get(index) ?? 0) + 1
              attempts.set(index, attempt)
              for (let n = 0; n < item.yields; n++) yield* Effect.yieldNow()
              yield* Ledger.metered({
                worstCase: Cost.nanos(item.cost),
                run: Effect.sync(() => (paid += item.cost)),
                usage: () => Usage.make({ requests: 1, cost: Cost.nanos(item.cost) })
              })
              if (attempt <= item.failures) return yield* Effect.fail(new Flaky({ item: index }))
              return index * 10
            })
          const step = ForEach.make("m", { items: () => items, each, concurrency, retry: 1, mode })
          const pipeline = Pipeline.make("p", {
            output: step,
            ...(budget === undefined ? {} : { budget: Cost.nanos(budget) })
          })
          const exit = await Effect.runPromiseExit(Pipeline.run(pipeline))
          const usage = Exit.isSuccess(exit)
            ? exit.value.usage
            : (Exit.isFailure(exit) && (exit.cause as any).error).partial.usage
          // Every call that ran is in the usage once, under its item.
          expect(usage.total.cost).toBe(paid)
          const byItem = Object.values(usage.byStep).reduce((sum: number, u: any) => sum + u.cost, 0)
          expect(byItem).toBe(paid)
          for (const step of Object.keys(usage.byStep)) expect(step).toMatch(/^m\[\d+\]$/)
          if (budget !== undefined) expect(usage.total.cost).toBeLessThanOrEqual(budget)
          if (Exit.isSuccess(exit)) {
            const expected = items.map((item, index) =>
              mode === "failFast" ? index * 10 : item.failures <= 1 ? index * 10 : new Flaky({ item: index })
            )
            const output = exit.value.output.map((o: any) => mode === "settle" ? (o._tag === "Right" ? o.right : o.left) : o)
            expect(output).toEqual(expected)
          } else {
            const error = (exit.cause as any).error
            const failing = items.some((item) => item.failures > 1)
            if (error instanceof PipelineError.StepFailed) {
              expect(mode === "failFast" && failing).toBe(true)
              expect(error.path).toMatch(/^m\[\d+\]$/)
            } else {
              expect(error).toBeInstanceOf(Ledger.BudgetExceeded)
            }
          }
        }
      ),
      { numRuns: 150 }
    ))
})
