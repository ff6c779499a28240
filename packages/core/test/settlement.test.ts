import { describe, expect, it } from "@effect/vitest"
import { Cost, type Event, Ledger, Pipeline, Step, Usage } from "@trellis/core"
import { Cause, Effect, Exit, Fiber, Option, TestClock } from "effect"
import { runWithClock } from "./utils.js"

/**
 * A call that reserves 40 and takes a second: 40 if it answers, 5 (its input, read by the server) if it is cut.
 */
const call = Ledger.metered({
  worstCase: Cost.nanos(40),
  // Like a request being aborted, the call takes a moment to end when it is interrupted.
  run: Effect.onInterrupt(Effect.sleep("1 second"), () => Effect.promise(() => new Promise((resolve) => setImmediate(resolve)))),
  usage: (exit) => Usage.make({ requests: 1, cost: Cost.nanos(Exit.isSuccess(exit) ? 40 : 5), estimated: !Exit.isSuccess(exit) })
})

describe("A run ends after its calls", () => {
  it.effect("calls cut by a refusal inside the same step are in the error's usage, and no usage event follows the end", () =>
    Effect.gen(function*() {
      const events: Array<Event.Event> = []
      // Three calls at once under a budget for two: the third is refused, and Effect.forEach interrupts the others
      // without waiting for their finalizers, where their settlement happens.
      const fan = Step.make("fan", { run: () => Effect.forEach([1, 2, 3, 4], () => call, { concurrency: 3 }) })
      const pipeline = Pipeline.make("cut", { output: fan, budget: Cost.nanos(100) })
      const error = yield* Effect.flip(Pipeline.run(pipeline, { onEvent: (event) => void events.push(event) }))
      expect(error._tag).toBe("BudgetExceeded")
      expect(error.partial?.usage.total).toMatchObject({ requests: 2, cost: 10 })
      const tags = events.map((event) => event._tag)
      expect(tags.at(-1)).toBe("RunFinished")
      expect(tags.filter((tag) => tag === "UsageRecorded")).toHaveLength(2)
      const finished = events.at(-1)
      expect(finished?._tag === "RunFinished" && finished.usage.requests).toBe(2)
    }))
})

/** A call that reserves 40, may honestly cost up to 100, and is reported to cost `cost`. */
const counted = (cost: number, ms = 0) =>
  Ledger.metered({
    worstCase: Cost.nanos(40),
    ceiling: Cost.nanos(100),
    run: Effect.sleep(ms),
    usage: () => Usage.make({ requests: 1, cost: Cost.nanos(cost) })
  })

describe("An honest difference and a lie", () => {
  it.effect("a call above its reservation and within its ceiling is recorded, told, and the run goes on", () =>
    Effect.gen(function*() {
      const events: Array<Event.Event> = []
      const first = Step.make("first", { run: () => counted(60) })
      const second = Step.make("second", { after: { first }, run: () => counted(30) })
      const result = yield* Pipeline.run(Pipeline.make("honest", { output: second, budget: Cost.nanos(200) }), {
        onEvent: (event) => void events.push(event)
      })
      expect(result._tag).toBe("Completed")
      expect(result.usage.total.cost).toBe(90)
      const exceeded = events.filter((event) => event._tag === "ReservationExceeded")
      expect(exceeded).toMatchObject([{ step: "first", reserved: 40, cost: 60 }])
      // Told just before the usage it explains.
      const i = events.indexOf(exceeded[0]!)
      expect(events[i + 1]).toMatchObject({ _tag: "UsageRecorded", step: "first" })
    }))

  it.effect("honest differences that take the spend past the budget fail the run as OverBudget, never Completed", () =>
    Effect.gen(function*() {
      const a = Step.make("a", { run: () => counted(70, 10) })
      const b = Step.make("b", { run: () => counted(70, 10) })
      const both = Step.make("both", { after: { a, b }, run: () => Effect.void })
      // Both reservations fit (80 of 100); both calls honestly cost more, 140 in all.
      const over = Pipeline.make("over", { output: both, budget: Cost.nanos(100) })
      const error = yield* runWithClock(Effect.flip(Pipeline.run(over)))
      expect(error).toMatchObject({ _tag: "BudgetOverrun", reason: "OverBudget", spent: 140, budget: 100 })
      expect(error.message).toContain("past its budget of")
      expect(error.message).toContain("a larger inputMargin")
    }))

  it.effect("a call past its ceiling is a lie: the run fails as Implausible even with money left", () =>
    Effect.gen(function*() {
      const liar = Step.make("liar", { run: () => counted(101) })
      const next = Step.make("next", { after: { liar }, run: () => Effect.succeed("next") })
      const error = yield* Effect.flip(Pipeline.run(Pipeline.make("lie", { output: next, budget: Cost.nanos(10_000) })))
      expect(error).toMatchObject({ _tag: "BudgetOverrun", reason: "Implausible", reported: 101, reserved: 40 })
      expect(error._tag === "BudgetOverrun" && error.partial.outputs).toEqual({})
    }))

  it.effect("a settlement its caller finds implausible fails the run whatever it cost", () =>
    Effect.gen(function*() {
      const said = Step.make("said", {
        run: () =>
          Effect.gen(function*() {
            // The run's ledger is in the context of every step (read as metered code reads it).
            const ledger = Option.getOrThrow(yield* Effect.serviceOption(Ledger.Ledger))
            const reservation = yield* ledger.reserve(Cost.nanos(40))
            yield* ledger.settle(reservation, Usage.make({ requests: 1, outputTokens: 900, cost: Cost.nanos(5) }), {
              implausible: "900 output tokens, past the call's maxTokens of 100"
            })
          })
      })
      const error = yield* Effect.flip(Pipeline.run(Pipeline.make("said", { output: said, budget: Cost.nanos(10_000) })))
      expect(error).toMatchObject({ _tag: "BudgetOverrun", reason: "Implausible", reported: 5 })
      expect(error.message).toContain("900 output tokens, past the call's maxTokens of 100")
      // Without a budget there is no guarantee to break: the same call is recorded and the run completes.
      const result = yield* Pipeline.run(Pipeline.make("unbudgeted", { output: said }))
      expect(result.usage.total.outputTokens).toBe(900)
    }))
})

describe("What a run's ledger refuses", () => {
  it.effect("a reservation settled twice, or one it never made, releases nothing and counts nothing", () =>
    Effect.gen(function*() {
      const ledger = yield* Ledger.make({ budget: Cost.nanos(1000) })
      const x = yield* ledger.reserve(Cost.nanos(500))
      yield* ledger.reserve(Cost.nanos(400))
      yield* ledger.settle(x, Usage.make({ requests: 1, cost: Cost.nanos(100) }))
      yield* ledger.settle(x, Usage.make({ requests: 1, cost: Cost.nanos(100) }))
      yield* ledger.settle({ id: 999, step: "made up", amount: Cost.nanos(400), ceiling: Cost.nanos(400) }, Usage.empty)
      const snapshot = yield* ledger.snapshot
      expect(snapshot.reserved).toBe(400)
      expect(snapshot.total).toMatchObject({ requests: 1, cost: 100 })
    }))

  it.effect("a call a step left behind cannot start after the run ended", () =>
    Effect.gen(function*() {
      let late: Exit.Exit<unknown, unknown> | undefined
      const leaves = Step.make("leaves", {
        run: () => Effect.asVoid(Effect.forkDaemon(Effect.zipRight(Effect.sleep("1 second"), Effect.exit(call)).pipe(
          Effect.tap((exit) => Effect.sync(() => (late = exit)))
        )))
      })
      const result = yield* Pipeline.run(Pipeline.make("left", { output: leaves, budget: Cost.nanos(1000) }))
      expect(result._tag).toBe("Completed")
      yield* TestClock.adjust("2 seconds")
      expect(late !== undefined && Exit.isFailure(late) && Cause.failureOption(late.cause)).toMatchObject({
        _tag: "Some",
        value: { _tag: "BudgetExceeded" }
      })
    }))

  it.effect("under a timeout, a reservation that is never settled holds the run's end no longer than the timeout", () =>
    Effect.gen(function*() {
      const holds = Step.make("holds", {
        run: () =>
          Effect.gen(function*() {
            const ledger = Option.getOrThrow(yield* Effect.serviceOption(Ledger.Ledger))
            yield* ledger.reserve(Cost.nanos(10))
            yield* Effect.never
          })
      })
      const pipeline = Pipeline.make("held", { output: holds, timeout: "1 second" })
      const fiber = yield* Effect.fork(Effect.flip(Pipeline.run(pipeline)))
      // The timeout, then as long again for the calls to settle: the run has ended by then.
      for (let step = 0; step < 4; step++) yield* TestClock.adjust("500 millis")
      const error = yield* Fiber.join(fiber)
      expect(error._tag).toBe("PipelineTimeout")
    }))
})
