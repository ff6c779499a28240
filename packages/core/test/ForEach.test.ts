import { describe, expect, it } from "@effect/vitest"
import { Cost, type Event, ForEach, Ledger, Pipeline, PipelineError, Step, Usage } from "@trellis/core"
import { Context, Data, Effect, Either, Exit, Schedule } from "effect"
import { paidCall, runWithClock } from "./utils.js"

class ItemError extends Data.TaggedError("ItemError")<{ readonly item: number }> {}

const listed = (events: ReadonlyArray<Event.Event>) =>
  events.map((e) => `${e._tag}${"step" in e ? ` ${e.step}` : ""}${"parent" in e && e.parent ? ` <${e.parent}` : ""}`)

const source = <A>(value: A) => Step.make("source", { run: () => Effect.succeed(value) })

describe("ForEach", () => {
  it.effect("runs each item as a step of the run: its events, usage line and timeline entry, outputs in order", () =>
    Effect.gen(function*() {
      const chunks = source([30, 10, 20])
      const sizes = ForEach.make("sizes", {
        after: { chunks },
        items: ({ chunks }) => chunks,
        // Later items end first: the output is still in the list's order.
        each: (ms, index) => Effect.as(Effect.zipRight(Effect.sleep(ms), paidCall(1000 * (index + 1))), ms * 2),
        concurrency: 3
      })
      const events: Array<Event.Event> = []
      const result = yield* runWithClock(
        Pipeline.run(Pipeline.make("p", { output: sizes }), { onEvent: (e) => void events.push(e) })
      )
      expect(result.output).toEqual([60, 20, 40])
      expect(listed(events).filter((line) => line.startsWith("StepStarted"))).toEqual([
        "StepStarted source",
        "StepStarted sizes",
        "StepStarted sizes[0] <sizes",
        "StepStarted sizes[1] <sizes",
        "StepStarted sizes[2] <sizes"
      ])
      expect(listed(events).filter((line) => line.startsWith("StepSucceeded"))).toEqual([
        "StepSucceeded source",
        "StepSucceeded sizes[1]",
        "StepSucceeded sizes[2]",
        "StepSucceeded sizes[0]",
        "StepSucceeded sizes"
      ])
      expect(Object.fromEntries(Object.entries(result.usage.byStep).map(([step, u]) => [step, u.cost]))).toEqual({
        "sizes[0]": 1000,
        "sizes[1]": 2000,
        "sizes[2]": 3000
      })
      const items = result.timeline.filter((t) => t.parent === "sizes")
      expect(items.map((t) => [t.step, t.endedAt - t.startedAt])).toEqual([["sizes[0]", 30], ["sizes[1]", 10], [
        "sizes[2]",
        20
      ]])
    }))

  it.effect("items run at most `concurrency` at a time, one after another by default", () =>
    Effect.gen(function*() {
      const run = (concurrency: number | undefined) =>
        Effect.gen(function*() {
          let running = 0
          let peak = 0
          const step = ForEach.make("m", {
            items: () => [1, 2, 3, 4, 5],
            each: () =>
              Effect.acquireUseRelease(
                Effect.sync(() => (peak = Math.max(peak, ++running))),
                () => Effect.sleep(10),
                () => Effect.sync(() => running--)
              ),
            ...(concurrency === undefined ? {} : { concurrency })
          })
          yield* runWithClock(Pipeline.run(Pipeline.make("p", { output: step })))
          return peak
        })
      expect(yield* run(undefined)).toBe(1)
      expect(yield* run(2)).toBe(2)
    }))

  it.effect("the first item that fails interrupts the others and fails the step, naming the item", () =>
    Effect.gen(function*() {
      const events: Array<Event.Event> = []
      const step = ForEach.make("m", {
        items: () => [0, 1, 2],
        each: (i) => i === 1 ? Effect.zipRight(Effect.sleep(5), Effect.fail(new ItemError({ item: i }))) : Effect.sleep(100),
        concurrency: "unbounded"
      })
      const exit = yield* Effect.exit(runWithClock(Pipeline.run(Pipeline.make("p", { output: step }), {
        onEvent: (e) => void events.push(e)
      })))
      expect(Exit.isFailure(exit)).toBe(true)
      const error = Exit.isFailure(exit) ? exit.cause : undefined
      const failed = (error as any).failure ?? (error as any).error
      expect(failed).toBeInstanceOf(PipelineError.StepFailed)
      expect(failed.step).toBe("m")
      expect(failed.path).toBe("m[1]")
      expect(failed.error).toEqual(new ItemError({ item: 1 }))
      expect(failed.message).toContain(`Step "m" (in "m[1]")`)
      const lines = listed(events)
      expect(lines).toContain("StepFailed m[1]")
      expect(lines).toContain("StepInterrupted m[0]")
      expect(lines).toContain("StepInterrupted m[2]")
      expect(failed.partial.timeline.find((t: any) => t.step === "m[0]").status).toBe("interrupted")
    }))

  it.effect("settle mode returns each item's success or failure, in order", () =>
    Effect.gen(function*() {
      const step = ForEach.make("m", {
        items: () => [0, 1, 2],
        each: (i) => i === 1 ? Effect.fail(new ItemError({ item: i })) : Effect.succeed(i * 10),
        mode: "settle"
      })
      const result = yield* Pipeline.run(Pipeline.make("p", { output: step }))
      expect(result.output).toEqual([Either.right(0), Either.left(new ItemError({ item: 1 })), Either.right(20)])
    }))

  it.effect("settle mode still ends on a refused budget: it is a decision, not an item's failure", () =>
    Effect.gen(function*() {
      const step = ForEach.make("m", { items: () => [0, 1, 2], each: () => paidCall(4000), mode: "settle" })
      const error = yield* Effect.flip(Pipeline.run(Pipeline.make("p", { output: step, budget: Cost.nanos(10_000) })))
      expect(error).toBeInstanceOf(Ledger.BudgetExceeded)
      expect(error).toMatchObject({ step: "m[2]", pipeline: "p", spent: 8000 })
    }))

  it.effect("a list longer than maxItems fails the step before any item runs", () =>
    Effect.gen(function*() {
      let ran = 0
      const step = ForEach.make("m", {
        items: () => Effect.succeed(Array.from({ length: 1001 }, (_, i) => i)),
        each: () => Effect.sync(() => ran++)
      })
      const error = yield* Effect.flip(Pipeline.run(Pipeline.make("p", { output: step })))
      expect(error._tag).toBe("StepFailed")
      const cause = (error as PipelineError.StepFailed<unknown>).error
      expect(cause).toBeInstanceOf(ForEach.InvalidItems)
      expect(cause).toMatchObject({ reason: "TooMany", step: "m" })
      expect((cause as ForEach.InvalidItems).message).toContain("1001 items is more than maxItems (1000)")
      expect(ran).toBe(0)
      const small = ForEach.make("m", { items: () => [1, 2, 3], each: Effect.succeed, maxItems: 2 })
      const refused = yield* Effect.flip(Pipeline.run(Pipeline.make("p", { output: small })))
      expect((refused as any).error.reason).toBe("TooMany")
    }))

  it.effect("items named by key; two items under one key, or a bad key, fail before any runs", () =>
    Effect.gen(function*() {
      const events: Array<Event.Event> = []
      const named = ForEach.make("m", {
        items: () => ["intro", "body"],
        each: (s) => Effect.succeed(s.length),
        key: (s) => s
      })
      yield* Pipeline.run(Pipeline.make("p", { output: named }), { onEvent: (e) => void events.push(e) })
      expect(listed(events)).toContain("StepSucceeded m[intro]")
      const twice = ForEach.make("m", { items: () => ["a", "a"], each: Effect.succeed, key: (s) => s })
      const error = yield* Effect.flip(Pipeline.run(Pipeline.make("p", { output: twice })))
      expect((error as any).error).toMatchObject({ reason: "DuplicateKey" })
      const bad = ForEach.make("m", { items: () => ["a"], each: Effect.succeed, key: () => 42 as unknown as string })
      expect((yield* Effect.flip(Pipeline.run(Pipeline.make("p", { output: bad })))) as any).toMatchObject({
        error: { reason: "InvalidKey" }
      })
      const notAList = ForEach.make("m", { items: () => "abc" as unknown as Array<string>, each: Effect.succeed })
      expect((yield* Effect.flip(Pipeline.run(Pipeline.make("p", { output: notAList })))) as any).toMatchObject({
        error: { reason: "NotAList" }
      })
    }))

  it.effect("each item has its own retries and timeout, from the step's policy", () =>
    Effect.gen(function*() {
      const tries = new Map<number, number>()
      const events: Array<Event.Event> = []
      const step = ForEach.make("m", {
        items: () => [0, 1],
        each: (i) =>
          Effect.suspend(() => {
            const n = (tries.get(i) ?? 0) + 1
            tries.set(i, n)
            return i === 1 && n === 1 ? Effect.never : Effect.succeed(i)
          }),
        timeout: "1 second",
        retry: { times: 2, schedule: Schedule.spaced("1 second") }
      })
      const result = yield* runWithClock(
        Pipeline.run(Pipeline.make("p", { output: step }), { onEvent: (e) => void events.push(e) })
      )
      expect(result.output).toEqual([0, 1])
      expect(Object.fromEntries(tries)).toEqual({ 0: 1, 1: 2 })
      expect(result.timeline.find((t) => t.step === "m[1]")!.attempts).toBe(2)
      const retrying = events.filter((e) => e._tag === "StepRetrying")
      expect(retrying.map((e) => e.step)).toEqual(["m[1]"])
      expect(String((retrying[0] as any).cause)).toContain(`Step "m[1]" timed out`)
    }))

  it.effect("a pipeline per item: each item's steps are steps of the run, under the item", () =>
    Effect.gen(function*() {
      class Company extends Context.Tag("Company")<Company, string>() {}
      const look = Step.make("look", { run: () => Effect.map(Company, (c) => c.toUpperCase()) })
      const cost = Step.make("cost", { after: { look }, run: ({ look }) => Effect.as(paidCall(500), `${look}!`) })
      const research = Pipeline.make("research", { output: cost })
      const companies = ForEach.pipeline("research", {
        items: () => ["acme", "globex"],
        key: (c) => c,
        pipeline: research,
        input: (company) => Context.make(Company, company)
      })
      const events: Array<Event.Event> = []
      const result = yield* Pipeline.run(Pipeline.make("p", { output: companies }), { onEvent: (e) => void events.push(e) })
      expect(result.output).toEqual(["ACME!", "GLOBEX!"])
      expect(listed(events).filter((l) => l.startsWith("StepStarted"))).toEqual([
        "StepStarted research",
        "StepStarted research[acme] <research",
        "StepStarted research[acme]/look <research[acme]",
        "StepStarted research[acme]/cost <research[acme]",
        "StepStarted research[globex] <research",
        "StepStarted research[globex]/look <research[globex]",
        "StepStarted research[globex]/cost <research[globex]"
      ])
      expect(Object.keys(result.usage.byStep).sort()).toEqual(["research[acme]/cost", "research[globex]/cost"])
      expect(events.filter((e) => e._tag === "RunStarted" || e._tag === "RunFinished")).toHaveLength(2)
    }))

  it("bad options are refused when the step is made, naming the option", () => {
    const items = () => [1]
    expect(() => ForEach.make("m", { items, each: Effect.succeed, maxItems: 0 })).toThrow(/maxItems must be a whole number/)
    expect(() => ForEach.make("m", { items, each: Effect.succeed, concurrency: Number.NaN })).toThrow(/concurrency must be/)
    expect(() => ForEach.make("m", { items, each: Effect.succeed, mode: "all" as "settle" })).toThrow(/mode must be/)
    expect(() => ForEach.make("m", { items: [1] as any, each: Effect.succeed })).toThrow(/items must be a function/)
    expect(() => ForEach.make("m", { items, each: Effect.succeed, concurency: 2 } as any)).toThrow(/concurency/)
  })
})

describe("steps made of steps, run alone", () => {
  it.effect("Step.runWith runs a ForEach's items and a Loop's iterations as plain effects, under the step's policy", () =>
    Effect.gen(function*() {
      let tries = 0
      const step = ForEach.make("m", {
        after: { source: source([1, 2]) },
        items: ({ source }) => source,
        each: (n) => Effect.suspend(() => ++tries === 1 ? Effect.fail(new ItemError({ item: n })) : Effect.succeed(n * 3)),
        retry: 1
      })
      expect(yield* Step.runWith(step, { source: [1, 2] })).toEqual([3, 6])
      expect(tries).toBe(3)
    }))
})

describe("ForEach, when things go wrong", () => {
  it.effect("a failure waits for the items it interrupts: their ends and finalizers come before the step's end", () =>
    Effect.gen(function*() {
      const log: Array<string> = []
      const step = ForEach.make("m", {
        items: () => [0, 1, 2],
        // Two at a time: item 2 is still waiting when item 0 fails.
        each: (i) =>
          i === 0
            ? Effect.zipRight(Effect.sleep(20), Effect.fail(new ItemError({ item: 0 })))
            : Effect.onInterrupt(Effect.never, () => Effect.zipRight(Effect.sleep(50), Effect.sync(() => log.push(`m[${i}] released`)))),
        concurrency: 2
      })
      const error = yield* Effect.flip(runWithClock(Pipeline.run(Pipeline.make("p", { output: step }), {
        onEvent: (e) => void log.push(`${e._tag}${"step" in e ? ` ${e.step}` : ""}`)
      })))
      log.push("run returned")
      expect(log.slice(log.indexOf("StepFailed m[0]"))).toEqual([
        "StepFailed m[0]",
        "m[1] released",
        "StepInterrupted m[1]",
        "StepFailed m",
        "RunFinished",
        "run returned"
      ])
      expect(log).not.toContain("StepStarted m[2]")
      expect((error as PipelineError.StepFailed<unknown>).partial.timeline.map((t) => [t.step, t.status])).toEqual([
        ["m", "failed"],
        ["m[0]", "failed"],
        ["m[1]", "interrupted"]
      ])
    }))

  it.effect("an item whose each throws is a part that fails, named in the error", () =>
    Effect.gen(function*() {
      const events: Array<Event.Event> = []
      const step = ForEach.make("m", {
        items: () => [1, 2],
        each: (i) => {
          if (i === 2) throw new Error("thrown")
          return Effect.succeed(i)
        }
      })
      const error = yield* Effect.flip(Pipeline.run(Pipeline.make("p", { output: step }), { onEvent: (e) => void events.push(e) }))
      expect((error as PipelineError.StepFailed<unknown>).path).toBe("m[1]")
      expect(listed(events)).toContain("StepFailed m[1]")
    }))

  it.effect("an item kept as a failure in settle mode is not blamed for the step's own failure", () =>
    Effect.gen(function*() {
      const bad = Usage.make({ inputTokens: -1 })
      const step = ForEach.make("m", {
        items: () => [0, 1],
        each: (i): Effect.Effect<void, ItemError | Ledger.InvalidUsage> => i === 0 ? Effect.fail(new ItemError({ item: 0 })) : Ledger.record(bad),
        mode: "settle"
      })
      const error = yield* Effect.flip(Pipeline.run(Pipeline.make("p", { output: step })))
      expect((error as PipelineError.StepFailed<unknown>).error).toBeInstanceOf(Ledger.InvalidUsage)
      expect((error as PipelineError.StepFailed<unknown>).path).toBe("m[1]")
    }))

  it("a step named as a part of a step made of steps is refused, and so is a key that would read as another name", () => {
    const step = ForEach.make("m", { items: () => [1], each: Effect.succeed })
    const twin = Step.make("m[0]", { run: () => Effect.void })
    const out = Step.make("out", { after: { step, twin }, run: () => Effect.void })
    expect(() => Pipeline.make("p", { output: out })).toThrow(`step "m[0]" is named as a part of step "m" would be`)
    const fine = Step.make("m_all", { run: () => Effect.void })
    expect(() => Pipeline.make("p", { output: Step.make("out", { after: { step, fine }, run: () => Effect.void }) }))
      .not.toThrow()
  })

  it.effect("keys with [, ], /, # or control characters are refused before any item runs", () =>
    Effect.gen(function*() {
      for (const key of ["a]/b", "a#1", "x/y", "Acme\nInc"]) {
        const step = ForEach.make("m", { items: () => [key], each: Effect.succeed, key: (k) => k })
        const error = yield* Effect.flip(Pipeline.run(Pipeline.make("p", { output: step })))
        expect((error as any).error).toMatchObject({ reason: "InvalidKey" })
      }
    }))
})
