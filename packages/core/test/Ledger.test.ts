import { describe, expect, it } from "@effect/vitest"
import { Budget, Cost, Ledger, Pipeline, Step, Usage } from "@trellis/core"
import { Cause, Effect, Exit, Fiber, Option, TestClock } from "effect"

const paid = (nanos: number) => Usage.make({ requests: 1, cost: Cost.nanos(nanos) })

describe("Ledger", () => {
  it.effect("reserves the worst case, then settles to the real cost", () =>
    Effect.gen(function*() {
      const ledger = yield* Ledger.make({ budget: Cost.nanos(1000) })
      const reservation = yield* ledger.reserve(Cost.nanos(600))
      expect((yield* ledger.snapshot).reserved).toBe(600)
      expect(yield* ledger.remaining).toEqual(Option.some(400))
      yield* ledger.settle(reservation, paid(250))
      const snapshot = yield* ledger.snapshot
      expect(snapshot.reserved).toBe(0)
      expect(snapshot.total.cost).toBe(250)
      expect(yield* ledger.remaining).toEqual(Option.some(750))
    }))

  it.effect("refuses a reservation that could pass the budget, naming the step and the amounts", () =>
    Effect.gen(function*() {
      const ledger = yield* Ledger.make({ budget: Cost.dollars(1) })
      const first = yield* ledger.reserve(Cost.dollars(0.5))
      yield* ledger.settle(first, paid(Cost.dollars(0.25)))
      yield* ledger.reserve(Cost.dollars(0.5))
      const error = yield* Effect.flip(ledger.forStep("classify").reserve(Cost.dollars(0.3)))
      expect(error).toMatchObject({
        _tag: "BudgetExceeded",
        budget: Cost.dollars(1),
        spent: Cost.dollars(0.25),
        reserved: Cost.dollars(0.5),
        requested: Cost.dollars(0.3),
        step: "classify"
      })
      expect(error.message).toBe(
        `A call in step "classify" could pass the budget of $1.0000, so it was not sent: it could cost up to ` +
          `$0.3000, and $0.2500 was left (spent $0.2500, reserved $0.5000)`
      )
      // The refused call holds nothing; exactly the remaining amount still fits.
      expect((yield* ledger.snapshot).reserved).toBe(Cost.dollars(0.5))
      yield* ledger.reserve(Cost.dollars(0.25))
    }))

  it.effect("metered refuses before the call runs, and settles failures and interruptions", () =>
    Effect.gen(function*() {
      let started = 0
      const call = (nanos: number) =>
        Ledger.metered({
          worstCase: Cost.nanos(nanos),
          run: Effect.sync(() => ++started).pipe(Effect.zipRight(Effect.sleep("1 second"))),
          usage: (exit) => Exit.isSuccess(exit) ? paid(nanos / 2) : Usage.make({ cost: Cost.nanos(1), estimated: true })
        })
      const ledger = yield* Ledger.make({ budget: Cost.nanos(100) })
      const program = Effect.provideService(Ledger.Ledger, ledger)
      const fiber = yield* Effect.fork(program(call(60)))
      yield* Effect.yieldNow()
      const refused = yield* Effect.flip(program(call(60)))
      expect(refused._tag).toBe("BudgetExceeded")
      expect(started).toBe(1)
      yield* TestClock.adjust("1 second")
      yield* Fiber.join(fiber)
      expect((yield* ledger.snapshot).total.cost).toBe(30)
      // An interrupted call is settled with what it may have been billed, marked estimated.
      const interrupted = yield* Effect.fork(program(call(40)))
      yield* Effect.yieldNow()
      yield* Fiber.interrupt(interrupted)
      const snapshot = yield* ledger.snapshot
      expect(snapshot.total.cost).toBe(31)
      expect(snapshot.total.estimated).toBe(true)
      expect(snapshot.reserved).toBe(0)
    }))

  it.effect("attributes usage to the step of the ledger in the fiber's context, on one set of books", () =>
    Effect.gen(function*() {
      const ledger = yield* Ledger.make()
      const inStep = (step: string, nanos: number) =>
        Effect.provideService(Ledger.record(paid(nanos)), Ledger.Ledger, ledger.forStep(step))
      yield* Effect.all([inStep("a", 1), inStep("b", 2), inStep("a", 3)], { concurrency: "unbounded" })
      yield* Effect.provideService(Ledger.record(paid(5)), Ledger.Ledger, ledger)
      const snapshot = yield* ledger.snapshot
      expect(snapshot.byStep).toMatchObject({ a: { cost: 4 }, b: { cost: 2 }, "(outside any step)": { cost: 5 } })
      expect(snapshot.total.requests).toBe(4)
    }))

  it.effect("an inner ledger reserves in and reports to its parent", () =>
    Effect.gen(function*() {
      const outer = yield* Ledger.make({ budget: Cost.nanos(100) })
      const inner = yield* Ledger.make({ parent: outer.forStep("sub") })
      const r = yield* inner.reserve(Cost.nanos(80))
      expect(yield* Effect.flip(inner.reserve(Cost.nanos(30)))).toMatchObject({ _tag: "BudgetExceeded" })
      yield* inner.settle(r, paid(50))
      expect((yield* outer.snapshot).byStep["sub"]!.cost).toBe(50)
      expect((yield* outer.snapshot).reserved).toBe(0)
    }))

  it.effect("never counts a bad figure: a bad worst case or recorded usage fails with InvalidUsage, a bad settlement costs its reservation", () =>
    Effect.gen(function*() {
      const ledger = yield* Ledger.make({ budget: Cost.nanos(100) })
      for (const [worst, shown] of [
        [Number.NaN, "NaN"],
        [-1e9, "-1000000000"],
        [2.5, "2.5"],
        [Infinity, "Infinity"],
        ["7", `"7"`]
      ] as const) {
        const error = yield* Effect.flip(ledger.forStep("ask").reserve(worst as Cost.Cost))
        expect(error).toBeInstanceOf(Ledger.InvalidUsage)
        expect(error.message).toBe(`Step "ask" gave the ledger a worst case of ${shown} nano-dollars`)
      }
      expect((yield* ledger.snapshot).reserved).toBe(0)
      // The budget still holds: nothing bad was added.
      const held = yield* ledger.reserve(Cost.nanos(60))
      expect((yield* Effect.flip(ledger.reserve(Cost.nanos(60))))._tag).toBe("BudgetExceeded")
      // A settlement whose figures are bad is charged what was reserved, and marked estimated.
      yield* ledger.settle(held, { ...paid(1), cost: Number.NaN as Cost.Cost, inputTokens: -1e9, outputTokens: "12" as unknown as number })
      const snapshot = yield* ledger.snapshot
      expect(snapshot.total).toMatchObject({ cost: 60, inputTokens: 0, outputTokens: 0, requests: 1, estimated: true })
      expect(snapshot.reserved).toBe(0)
      for (const [usage, detail] of [
        [{ ...paid(1), requests: -1 }, "requests is -1"],
        [{ ...paid(1), inputTokens: 1.5 }, "inputTokens is 1.5"],
        [{ ...paid(1), outputTokens: "12" as unknown as number }, `outputTokens is "12"`],
        [{ ...paid(1), cost: Infinity as Cost.Cost }, "cost is Infinity"]
      ] as const) {
        const recorded = yield* Effect.flip(ledger.record(usage))
        expect(recorded).toBeInstanceOf(Ledger.InvalidUsage)
        expect(recorded.message).toContain(`a usage whose ${detail}, not a whole number >= 0`)
      }
      expect((yield* ledger.snapshot).total.cost).toBe(60)
    }))

  it.effect("metered and Ledger.record fail with InvalidUsage on a bad figure, before the call runs or anything is counted", () =>
    Effect.gen(function*() {
      const ledger = yield* Ledger.make({ budget: Cost.nanos(100) })
      let ran = 0
      const call = (worstCase: number) =>
        Ledger.metered({
          worstCase: worstCase as Cost.Cost,
          run: Effect.sync(() => ++ran),
          usage: () => paid(10)
        }).pipe(Effect.provideService(Ledger.Ledger, ledger.forStep("search")))
      for (const worst of [Number.NaN, -1, 0.5, Infinity]) {
        const error = yield* Effect.flip(call(worst))
        expect(error._tag).toBe("InvalidUsage")
        expect(error.message).toMatch(/^Step "search" gave the ledger a worst case of /)
      }
      const recorded = yield* Effect.flip(
        Effect.provideService(Ledger.record(Usage.make({ cost: Number.NaN as Cost.Cost })), Ledger.Ledger, ledger)
      )
      expect(recorded._tag).toBe("InvalidUsage")
      expect(ran).toBe(0)
      const snapshot = yield* ledger.snapshot
      expect([snapshot.total, snapshot.reserved]).toEqual([Usage.empty, 0])
      // A good call still runs under the budget, which was never touched.
      expect(yield* call(100)).toBe(1)
      expect((yield* ledger.snapshot).total.cost).toBe(10)
    }))

  it.effect("a step failing with InvalidUsage is not retried, and fails its run as StepFailed", () =>
    Effect.gen(function*() {
      let attempts = 0
      const bad = Step.make("bad", {
        retry: 3,
        run: () =>
          Effect.zipRight(
            Effect.sync(() => attempts++),
            Ledger.metered({ worstCase: Number.NaN as Cost.Cost, run: Effect.void, usage: () => paid(1) })
          )
      })
      const error = yield* Effect.flip(Pipeline.run(Pipeline.make("p", { output: bad, budget: Cost.nanos(100) })))
      expect(attempts).toBe(1)
      if (error._tag !== "StepFailed") return expect.unreachable()
      expect(error.step).toBe("bad")
      expect(error.error).toBeInstanceOf(Ledger.InvalidUsage)
      expect(error.partial.usage.total).toEqual(Usage.empty)
    }))

  it.effect("close refuses every new reservation", () =>
    Effect.gen(function*() {
      const ledger = yield* Ledger.make()
      yield* ledger.close
      expect((yield* Effect.flip(ledger.reserve(Cost.nanos(1))))._tag).toBe("BudgetExceeded")
    }))

  it.effect("Budget.remaining is None outside a budgeted run", () =>
    Effect.gen(function*() {
      expect(yield* Budget.remaining).toEqual(Option.none())
      const left = yield* Budget.remaining.pipe(Effect.provide(Ledger.layer({ budget: Cost.nanos(9) })))
      expect(left).toEqual(Option.some(9))
    }))
})

describe("Ledger hooks", () => {
  it.effect("run as money is held and settled; a hold that cannot be written down is given back, and its call never runs", () =>
    Effect.gen(function*() {
      const log: Array<string> = []
      const ledger = yield* Ledger.make({
        budget: Cost.nanos(1000),
        hooks: {
          reserved: (r) => Effect.sync(() => log.push(`reserved ${r.amount}`)),
          settling: (r, usage) => Effect.sync(() => log.push(`settling ${r.amount} at ${usage.cost}`))
        }
      })
      const call = Ledger.metered({
        worstCase: Cost.nanos(600),
        run: Effect.sync(() => log.push("sent")),
        usage: () => Usage.make({ requests: 1, cost: Cost.nanos(400) })
      })
      yield* Effect.provideService(call, Ledger.Ledger, ledger)
      expect(log).toEqual(["reserved 600", "sent", "settling 600 at 400"])

      const broken = yield* Ledger.make({
        budget: Cost.nanos(1000),
        hooks: { reserved: () => Effect.fail("the log is down") }
      })
      const exit = yield* Effect.exit(Effect.provideService(call, Ledger.Ledger, broken))
      expect(Exit.isFailure(exit) && Cause.isDie(exit.cause)).toBe(true)
      expect(log).toHaveLength(3)
      const snapshot = yield* broken.snapshot
      expect(snapshot.reserved).toBe(0)
      expect(yield* broken.remaining).toEqual(Option.some(1000))
    }))
})
