import { describe, expect, expectTypeOf, it } from "@effect/vitest"
import { Budget, Cost, Event, Ledger, Pipeline, PipelineError, Result, Step, StepExecutor, Usage } from "@trellis/core"
import { Cause, Context, Data, Duration, Effect, Either, Exit, Fiber, Option, Schedule, Schema, Stream, Supervisor, TestClock } from "effect"
import { paidCall, runWithClock, sleeper, starts } from "./utils.js"

class Doc extends Context.Tag("Doc")<Doc, { readonly text: string }>() {}

describe("Pipeline types", () => {
  it("carries the output, the union of step errors and the union of requirements", () => {
    class Db extends Context.Tag("Db")<Db, { readonly find: (id: string) => number }>() {}
    const a = Step.make("a", { run: () => Effect.map(Doc, (d) => d.text) })
    const b = Step.make("b", {
      after: { a },
      run: ({ a }) => a.length > 3 ? Effect.succeed(a.length) : Effect.fail("short" as const)
    })
    const c = Step.make("c", { after: { a, b }, run: ({ a, b }) => Effect.map(Db, (db) => db.find(a) + b) })
    const p = Pipeline.make("typed", { output: c })
    const run = Pipeline.run(p)
    expectTypeOf(run).toEqualTypeOf<
      Effect.Effect<
        Result.Result<number, { readonly a: string; readonly b: number; readonly c: number }, never>,
        PipelineError.PipelineError<"short">,
        Doc | Db
      >
    >()
    Step.make("d", {
      after: { a },
      // @ts-expect-error reading a step that is not declared does not compile
      run: ({ b }) => Effect.succeed(b)
    })
    const stopper = Step.make("s", { run: () => Pipeline.stop({ missing: ["email"] as Array<string> }) })
    expectTypeOf(Pipeline.run(Pipeline.make("stops", { output: stopper }))).toEqualTypeOf<
      Effect.Effect<
        Result.Result<never, { readonly s: never }, { missing: Array<string> }>,
        PipelineError.PipelineError<never>,
        never
      >
    >()
  })
})

describe("Retry types", () => {
  it("a retry predicate sees the step's own errors (and StepTimeout), at the step and in the pipeline's defaults", () => {
    class Coded extends Data.TaggedError("Coded")<{ readonly code: number }> {}
    const coded = Step.make("coded", {
      retry: { times: 2, while: (e) => e._tag === "StepTimeout" || e.code === 42 },
      run: () => Effect.fail(new Coded({ code: 42 }))
    })
    const plain = Step.make("plain", { run: () => Effect.fail("plain" as const) })
    Pipeline.make("ok", { output: coded, defaults: { retry: { while: (e) => e._tag === "StepTimeout" || e.code === 42 } } })
    Pipeline.make("no code", {
      output: plain,
      defaults: {
        retry: {
          // @ts-expect-error the pipeline's errors have no `code`
          while: (e) => e.code === 42
        }
      }
    })
    Step.make("no code", {
      retry: {
        // @ts-expect-error the step's errors have no `code`
        while: (e) => e.code === 42
      },
      run: () => Effect.fail("plain" as const)
    })
    expectTypeOf(coded.retry).toEqualTypeOf<Step.Retry<Coded | Step.StepTimeout> | undefined>()
  })
})

describe("Pipeline.make checks the graph", () => {
  const a = Step.make("a", { run: () => Effect.succeed(1) })

  it("rejects two different steps with one name", () => {
    const twin = Step.make("a", { run: () => Effect.succeed(2) })
    const b = Step.make("b", { after: { a, twin }, run: () => Effect.void })
    expect(() => Pipeline.make("dup", { output: b })).toThrow(
      `Invalid pipeline "dup": two different steps are named "a"`
    )
    const error = Either.getLeft(Pipeline.makeEither("dup", { output: b })).pipe(Option.getOrThrow)
    expect(error).toMatchObject({ _tag: "InvalidPipeline", reason: "DuplicateName", steps: ["a"] })
  })

  it("rejects a cycle and names its steps in order", () => {
    // Cycles cannot be written with `after` by value, but graphs built at run time can make one.
    const x = Step.make("x", { run: () => Effect.void })
    const y = Step.make("y", { after: { x }, run: () => Effect.void })
    const z = Step.make("z", { after: { y }, run: () => Effect.void })
    ;(x.after as Record<string, Step.Any>)["z"] = z
    const error = Either.getLeft(Pipeline.makeEither("loop", { output: z })).pipe(Option.getOrThrow)
    expect(error.reason).toBe("Cycle")
    expect(error.steps).toEqual(["z", "y", "x", "z"])
    expect(error.message).toBe(`Invalid pipeline "loop": cycle "z" -> "y" -> "x" -> "z"`)
  })

  it("rejects a dependency that is not a step, naming the step and the key", () => {
    const b = Step.make("b", { after: { a, ghost: undefined as unknown as Step.Any }, run: () => Effect.void })
    expect(() => Pipeline.make("unknown", { output: b })).toThrow(
      `Invalid pipeline "unknown": step "b" depends on "ghost", which is not a step (got undefined)`
    )
    expect(() => Pipeline.make("unknown", { output: {} as Step.Any })).toThrow(/the output is not a step/)
    expect(() => Pipeline.make("unknown", { output: a, include: [null as unknown as Step.Any] })).toThrow(
      /include\[0\] is not a step \(got null\)/
    )
  })

  it("rejects bad options", () => {
    const bad = (options: Partial<Pipeline.Options<typeof a, never>>) =>
      Either.getLeft(Pipeline.makeEither("opts", { output: a, ...options })).pipe(
        Option.map((e) => e.message),
        Option.getOrElse(() => "accepted")
      )
    expect(bad({ concurrency: -1 })).toBe(`Invalid pipeline "opts": concurrency must be a whole number of at least 1, got -1`)
    expect(bad({ concurrency: Number.NaN })).toMatch(/concurrency must be .* got NaN/)
    expect(bad({ concurrency: 0 })).toMatch(/concurrency/)
    expect(bad({ concurrency: 2.5 })).toMatch(/concurrency/)
    expect(bad({ budget: -5 as Cost.Cost })).toMatch(/budget must be a non-negative Cost .* got -5/)
    expect(bad({ budget: Number.NaN as Cost.Cost })).toMatch(/budget .* got NaN/)
    expect(bad({ timeout: Number.NaN })).toMatch(/timeout must be a positive duration, got NaN/)
    expect(bad({ timeout: -10 })).toMatch(/timeout must be a positive duration, got -10/)
    expect(bad({ timeout: "soon" as any })).toMatch(/timeout must be a positive duration, got "soon"/)
    expect(bad({ defaults: { retry: Infinity } })).toMatch(/defaults.retry must be a whole number from 0 to 1000, got Infinity/)
    expect(bad({ defaults: { retry: { times: 1e9 } } })).toMatch(/defaults.retry.times must be a whole number/)
    expect(bad({ defaults: { timeout: 0 } })).toMatch(/defaults.timeout/)
    expect(bad({ defaults: { retry: -1 } })).toMatch(/defaults.retry/)
    expect(bad({ concurrency: 3, budget: Cost.dollars(1), timeout: "5 seconds" })).toBe("accepted")
    // Keys a TypeScript caller could not write: refused, naming the key and what it most likely meant.
    expect(bad({ steps: [] } as any)).toBe(`Invalid pipeline "opts": unknown option "steps" (did you mean "include"?)`)
    expect(bad({ concurency: 2 } as any)).toMatch(/unknown option "concurency" \(did you mean "concurrency"\?\)/)
    expect(bad({ defaults: { retries: 2 } } as any)).toMatch(/unknown option "defaults.retries" \(did you mean "defaults.retry"\?\)/)
    expect(bad({ defaults: { retry: { times: 2, delay: 5 } } } as any)).toMatch(/unknown option "defaults.retry.delay"; known: times, schedule, while/)
    expect(bad({ colour: "red" } as any)).toMatch(/unknown option "colour"; known: output, include/)
  })

  it("rejects a step's bad options when the step is made, naming the step and the option", () => {
    const bad = (options: Partial<Step.Options<{}, void, never, never>>) =>
      Either.getLeft(Step.makeEither("s", { run: () => Effect.void, ...options })).pipe(
        Option.map((e) => e.message),
        Option.getOrElse(() => "accepted")
      )
    expect(bad({ timeout: -1 })).toBe(`Invalid step "s": timeout must be a positive duration, got -1`)
    expect(bad({ timeout: Number.NaN })).toBe(`Invalid step "s": timeout must be a positive duration, got NaN`)
    expect(bad({ timeout: 0 })).toMatch(/timeout must be a positive duration, got 0/)
    expect(bad({ timeout: "abc" as Duration.DurationInput })).toMatch(/timeout must be a positive duration, got "abc"/)
    expect(bad({ retry: Infinity })).toBe(`Invalid step "s": retry must be a whole number from 0 to 1000, got Infinity`)
    expect(bad({ retries: 3 } as any)).toBe(`Invalid step "s": unknown option "retries" (did you mean "retry"?)`)
    expect(bad({ dependencies: {} } as any)).toMatch(/unknown option "dependencies" \(did you mean "after"\?\)/)
    expect(bad({ timout: 5 } as any)).toMatch(/unknown option "timout" \(did you mean "timeout"\?\)/)
    expect(bad({ retry: { times: 1, tries: 2 } } as any)).toMatch(/unknown option "retry.tries"/)
    expect(bad({ retry: 1e9 })).toMatch(/retry must be a whole number from 0 to 1000, got 1000000000/)
    expect(bad({ retry: -1 })).toMatch(/retry must be/)
    expect(bad({ retry: 2.5 })).toMatch(/retry must be/)
    expect(bad({ retry: { times: Infinity } })).toMatch(/retry.times must be a whole number/)
    expect(bad({ retry: "twice" as any })).toMatch(/retry must be a number of retries, a Schedule or/)
    expect(bad({ timeout: "2 seconds", retry: { times: 3, schedule: Schedule.spaced("1 second") } })).toBe("accepted")
    expect(() => Step.make("thrown", { timeout: -1, run: () => Effect.void })).toThrow(
      `Invalid step "thrown": timeout must be a positive duration, got -1`
    )
  })

  it("keeps the schema a step declares for its output, typed against what it returns", () => {
    const Entity = Schema.Struct({ name: Schema.String, score: Schema.Number })
    const extract = Step.make("extract", { output: Entity, run: () => Effect.succeed({ name: "Ada", score: 1 }) })
    expect(extract.output).toBe(Entity)
    expect(Step.make("plain", { run: () => Effect.void }).output).toBeUndefined()
    // @ts-expect-error the schema must describe the output: a number is not a string
    Step.make("wrong", { output: Schema.Number, run: () => Effect.succeed("text") })
    const bad = Either.getLeft(Step.makeEither("s", { output: "string" as any, run: () => Effect.succeed("x") }))
    expect(Option.map(bad, (e) => e.message)).toEqual(Option.some(`Invalid step "s": output must be a Schema, got string`))
  })

  it("keeps the schema a step declares for its errors, typed against the errors it fails with", () => {
    class Refused extends Schema.TaggedError<Refused>()("Refused", { reason: Schema.String }) {}
    class Other extends Data.TaggedError("Other")<{}> {}
    // It may describe some of the step's errors only.
    const ask = Step.make("ask", {
      error: Refused,
      run: (): Effect.Effect<never, Refused | Other> => Effect.fail(new Refused({ reason: "no" }))
    })
    expect(ask.error).toBe(Refused)
    expect(Step.make("plain", { run: () => Effect.void }).error).toBeUndefined()
    // @ts-expect-error the schema must describe errors the step fails with
    Step.make("wrong", { error: Refused, run: () => Effect.fail(new Other()) })
    const bad = Either.getLeft(Step.makeEither("s", { error: 42 as any, run: () => Effect.succeed("x") }))
    expect(Option.map(bad, (e) => e.message)).toEqual(Option.some(`Invalid step "s": error must be a Schema, got number`))
  })

  it("lists steps in dependency order and draws the graph", () => {
    const extract = Step.make("extract", { run: () => Effect.succeed("text") })
    const classify = Step.make("classify", { after: { extract }, run: () => Effect.succeed("c") })
    const market = Step.make("fetch_market", { after: { classify }, run: () => Effect.succeed(1) })
    const user = Step.make("fetch_user", { after: { classify }, run: () => Effect.succeed(2) })
    const combine = Step.make("combine", { after: { market, user }, run: () => Effect.succeed(3) })
    const p = Pipeline.make("document", { output: combine })
    expect(p.steps.map((s) => s.name)).toEqual(["extract", "classify", "fetch_market", "fetch_user", "combine"])
    expect(Pipeline.toMermaid(p)).toBe([
      "flowchart LR",
      "  extract",
      "  classify",
      "  fetch_market",
      "  fetch_user",
      "  combine",
      "  extract --> classify",
      "  classify --> fetch_market",
      "  classify --> fetch_user",
      "  fetch_market --> combine",
      "  fetch_user --> combine"
    ].join("\n"))
    const odd = Step.make("end", { after: { x: Step.make("a b", { run: () => Effect.void }) }, run: () => Effect.void })
    expect(Pipeline.toMermaid(Pipeline.make("odd", { output: odd }))).toBe(
      ["flowchart LR", `  s0["a b"]`, `  s1["end"]`, "  s0 --> s1"].join("\n")
    )
  })
})

describe("Pipeline.run scheduling", () => {
  it.effect("starts a step the moment its last dependency finishes, not level by level", () =>
    Effect.gen(function*() {
      const slow = sleeper("slow", 10_000)
      const fast = sleeper("fast", 1_000)
      const next = sleeper("after_fast", 1_000, { fast })
      const join = sleeper("join", 1_000, { slow, next })
      const result = yield* runWithClock(Pipeline.run(Pipeline.make("eager", { output: join })))
      // A level barrier would start after_fast at 10s (when level 0 is done); it starts at 1s.
      expect(starts(result.timeline)).toEqual({ slow: 0, fast: 0, after_fast: 1_000, join: 10_000 })
    }))

  it.effect("bounds the number of steps running at once", () =>
    Effect.gen(function*() {
      let running = 0
      let peak = 0
      const leaf = (name: string) =>
        Step.make(name, {
          run: () =>
            Effect.acquireUseRelease(
              Effect.sync(() => (peak = Math.max(peak, ++running))),
              () => Effect.sleep("1 second"),
              () => Effect.sync(() => running--)
            )
        })
      const leaves = ["l1", "l2", "l3", "l4", "l5"].map(leaf)
      const out = Step.make("out", { after: Object.fromEntries(leaves.map((l) => [l.name, l])), run: () => Effect.void })
      const result = yield* runWithClock(Pipeline.run(Pipeline.make("bounded", { output: out, concurrency: 2 })))
      expect(peak).toBe(2)
      expect(Object.values(starts(result.timeline)).sort((x, y) => x - y)).toEqual([0, 0, 1000, 1000, 2000, 3000])
    }))

  it.effect("forks a fiber only where there is parallelism: none for a chain, one less than the width", () =>
    Effect.gen(function*() {
      const forksOf = (pipeline: Pipeline.Pipeline<unknown, never, never, unknown, never>) =>
        Effect.gen(function*() {
          const supervisor = yield* Supervisor.track
          let seen = 0
          yield* Pipeline.run(pipeline, {
            onEvent: () => Effect.map(supervisor.value, (fibers) => void (seen = Math.max(seen, fibers.length)))
          }).pipe(Effect.supervised(supervisor))
          return seen
        })
      const a = Step.make("a", { run: () => Effect.succeed(1) })
      const b = Step.make("b", { after: { a }, run: () => Effect.succeed(2) })
      const c = Step.make("c", { after: { b }, run: () => Effect.succeed(3) })
      expect(yield* forksOf(Pipeline.make("chain", { output: c }))).toBe(0)
      // a -> (d, e, f) -> g: the three in parallel need their own fibers; g runs on the fiber that ends last.
      const wide = (name: string) => Step.make(name, { after: { a }, run: () => Effect.zipRight(Effect.yieldNow(), Effect.succeed(name)) })
      const g = Step.make("g", { after: { d: wide("d"), e: wide("e"), f: wide("f") }, run: () => Effect.void })
      expect(yield* forksOf(Pipeline.make("wide", { output: g }))).toBe(3)
    }))

  it.effect("runs a long graph where every step's end starts two more, in either order of its dependents", () =>
    Effect.gen(function*() {
      // A ladder: each rung starts the next rung and a leaf; all leaves and the last rung meet at the end. Its
      // fibers start one inside another and yield half-way; the graph must neither stall nor overflow the stack.
      const ladder = (rungs: number, leavesFirst: boolean) => {
        type Rung = Step.Step<string, number, never, never, any>
        let rung: Rung = Step.make("rung0", { run: () => Effect.succeed(0) })
        const leaves: Record<string, Rung> = {}
        for (let i = 1; i <= rungs; i++) {
          const prev = rung
          leaves[`leaf${i}`] = Step.make(`leaf${i}`, { after: { prev }, run: () => Effect.succeed(1) })
          rung = Step.make(`rung${i}`, { after: { prev }, run: ({ prev }) => Effect.succeed(prev + 1) })
        }
        const after = leavesFirst ? { ...leaves, rung } : { rung, ...leaves }
        const end = Step.make("end", {
          after,
          run: (inputs: Record<string, number>) => Effect.succeed(Object.values(inputs).reduce((a, b) => a + b, 0))
        })
        return Pipeline.make("ladder", { output: end })
      }
      for (const leavesFirst of [false, true]) {
        const result = yield* Pipeline.run(ladder(3000, leavesFirst))
        expect(result._tag === "Completed" && result.output).toBe(6000)
      }
    }))
})

describe("Pipeline.run timeouts and retries", () => {
  it.effect("fails a step that passes its timeout with StepTimeout", () =>
    Effect.gen(function*() {
      const slow = Step.make("slow", { timeout: "1 second", run: () => Effect.sleep("10 seconds") })
      const error = yield* runWithClock(Effect.flip(Pipeline.run(Pipeline.make("t", { output: slow }))))
      expect(error._tag).toBe("StepFailed")
      if (error._tag !== "StepFailed") return
      expect(error.step).toBe("slow")
      expect(error.error).toBeInstanceOf(Step.StepTimeout)
      expect(error.message).toBe(`Step "slow" of pipeline "t" failed: StepTimeout: Step "slow" timed out after 1s`)
    }))

  it.effect("retries with a schedule, each attempt with its own timeout, and reports retries as events", () =>
    Effect.gen(function*() {
      let calls = 0
      const flaky = Step.make("flaky", {
        timeout: "2 seconds",
        retry: { times: 3, schedule: Schedule.spaced("1 second") },
        run: () => Effect.suspend(() => ++calls < 3 ? Effect.fail(`attempt ${calls}` as const) : Effect.succeed(calls))
      })
      const events: Array<Event.Event> = []
      const result = yield* runWithClock(
        Pipeline.run(Pipeline.make("r", { output: flaky }), { onEvent: (e) => {
          events.push(e)
        } })
      )
      expect(Result.isCompleted(result) && result.output).toBe(3)
      expect(result.timeline[0]).toMatchObject({ step: "flaky", attempts: 3, status: "succeeded" })
      expect(result.timeline[0]!.endedAt - result.timeline[0]!.startedAt).toBe(2000)
      const retries = events.filter((e) => e._tag === "StepRetrying")
      expect(retries.map((e) => e._tag === "StepRetrying" && e.attempt)).toEqual([2, 3])
    }))

  it.effect("resolves settings step > pipeline, and an explicit 0 retries wins over a default", () =>
    Effect.gen(function*() {
      const counts: Record<string, number> = {}
      const failing = (name: string, retry?: Step.Retry<string | Step.StepTimeout>) =>
        Step.make(name, {
          ...(retry === undefined ? {} : { retry }),
          run: () => Effect.suspend(() => Effect.fail(`${name} failed ${counts[name] = (counts[name] ?? 0) + 1}`))
        })
      const run = (step: Step.Step<string, unknown, any, never, any>) =>
        Effect.either(Pipeline.run(Pipeline.make("defaults", { output: step, defaults: { retry: 3 } })))
      yield* run(failing("inherits"))
      yield* run(failing("explicit_zero", 0))
      yield* run(failing("times_zero", { times: 0, schedule: Schedule.forever }))
      yield* run(failing("own", 1))
      expect(counts).toEqual({ inherits: 4, explicit_zero: 1, times_zero: 1, own: 2 })
      const slow = Step.make("slow", { run: () => Effect.sleep("5 seconds") })
      const quick = Step.make("quick", { timeout: "10 seconds", run: () => Effect.sleep("5 seconds") })
      const timed = (step: Step.Step<string, unknown, any, never, any>) =>
        runWithClock(Effect.either(Pipeline.run(Pipeline.make("d", { output: step, defaults: { timeout: "1 second" } }))))
      expect(Either.isLeft(yield* timed(slow))).toBe(true)
      expect(Either.isRight(yield* timed(quick))).toBe(true)
    }))

  it.effect("never retries a stop or a refused budget", () =>
    Effect.gen(function*() {
      let stops = 0
      let refusals = 0
      const stopper = Step.make("stopper", { retry: 5, run: () => Effect.suspend(() => (stops++, Pipeline.stop("done"))) })
      const spender = Step.make("spender", {
        retry: 5,
        run: () => Effect.suspend(() => (refusals++, paidCall(100)))
      })
      yield* Pipeline.run(Pipeline.make("s", { output: stopper }))
      yield* Effect.either(Pipeline.run(Pipeline.make("b", { output: spender, budget: Cost.nanos(10) })))
      expect([stops, refusals]).toEqual([1, 1])
    }))

  it.effect("times out the whole run, keeping what finished", () =>
    Effect.gen(function*() {
      const first = sleeper("first", 1_000)
      const second = sleeper("second", 10_000, { first })
      const error = yield* runWithClock(
        Effect.flip(Pipeline.run(Pipeline.make("whole", { output: second, timeout: "5 seconds" })))
      )
      expect(error._tag).toBe("PipelineTimeout")
      if (error._tag !== "PipelineTimeout") return
      expect(error.message).toBe(`Pipeline "whole" timed out after 5s`)
      expect(error.partial.outputs).toEqual({ first: "first" })
      expect(error.partial.timeline.map((t) => [t.step, t.status])).toEqual([
        ["first", "succeeded"],
        ["second", "interrupted"]
      ])
    }))
})

describe("Pipeline.run failures", () => {
  it.effect("the first failure interrupts running siblings, starts nothing new, and keeps the partial result", () =>
    Effect.gen(function*() {
      const interrupted: Array<string> = []
      const started: Array<string> = []
      const root = Step.make("root", { run: () => Effect.as(Ledger.record(Usage.make({ cost: Cost.nanos(7) })), "r") })
      const failing = Step.make("failing", {
        after: { root },
        run: () => Effect.zipRight(Effect.sleep("1 second"), Effect.fail({ _tag: "Boom" as const, reason: "bad input" }))
      })
      const slow = Step.make("slow", {
        after: { root },
        run: () =>
          Effect.zipRight(paidCall(5), Effect.sleep("1 minute")).pipe(
            Effect.onInterrupt(() => Effect.sync(() => interrupted.push("slow")))
          )
      })
      const later = Step.make("later", {
        after: { failing, slow },
        run: () => Effect.sync(() => started.push("later"))
      })
      const error = yield* runWithClock(Effect.flip(Pipeline.run(Pipeline.make("fail", { output: later }))))
      expect(error._tag).toBe("StepFailed")
      if (error._tag !== "StepFailed") return
      expect(error.step).toBe("failing")
      expect(error.error).toEqual({ _tag: "Boom", reason: "bad input" })
      expect(error.message).toBe(`Step "failing" of pipeline "fail" failed: Boom`)
      expect(interrupted).toEqual(["slow"])
      expect(started).toEqual([])
      expect(error.partial.outputs).toEqual({ root: "r" })
      // Paid for before the failure: kept.
      expect(error.partial.usage.total.cost).toBe(12)
      expect(error.partial.usage.byStep).toMatchObject({ root: { cost: 7 }, slow: { cost: 5 } })
      const status = Object.fromEntries(error.partial.timeline.map((t) => [t.step, t.status]))
      expect(status).toEqual({ root: "succeeded", failing: "failed", slow: "interrupted" })
    }))

  it.effect("a parallel step that fails as it starts keeps the steps not yet started from starting", () =>
    Effect.gen(function*() {
      const started: Array<string> = []
      const root = Step.make("root", { run: () => Effect.succeed(1) })
      const failing = Step.make("failing", { after: { root }, run: () => Effect.fail("at once" as const) })
      const sibling = (name: string) =>
        Step.make(name, {
          after: { root },
          run: () => Effect.zipRight(Effect.sync(() => started.push(name)), Effect.sleep("1 minute"))
        })
      const s1 = sibling("s1")
      const s2 = sibling("s2")
      const join = Step.make("join", { after: { failing, s1, s2 }, run: () => Effect.void })
      const error = yield* runWithClock(Effect.flip(Pipeline.run(Pipeline.make("fast-fail", { output: join }))))
      expect(error._tag === "StepFailed" && error.step).toBe("failing")
      expect(started).toEqual([])
      if (error._tag !== "StepFailed") return
      expect(error.partial.timeline.map((t) => `${t.step}:${t.status}`)).toEqual(["root:succeeded", "failing:failed"])
    }))

  it.effect("StepFailed.error is the very object the step failed with", () =>
    Effect.gen(function*() {
      class Refused extends Data.TaggedError("Refused")<{ readonly reason: string }> {}
      const refused = new Refused({ reason: "no" })
      const plain = { code: 7 }
      for (const thrown of [refused, plain]) {
        const step = Step.make("fails", { run: () => Effect.fail(thrown) })
        const error = yield* Effect.flip(Pipeline.run(Pipeline.make("identity", { output: step })))
        expect(error._tag === "StepFailed" && error.error).toBe(thrown)
        expect(new Set([error._tag === "StepFailed" && error.error]).has(thrown)).toBe(true)
      }
      // A defect too, thrown or given to Effect.die.
      const thrown = new RangeError("out of range")
      for (const run of [() => Effect.die(thrown), () => Effect.sync(() => { throw thrown })]) {
        const error = yield* Effect.flip(Pipeline.run(Pipeline.make("identity", { output: Step.make("dies", { run }) })))
        expect(error._tag === "StepFailed" && error.defect).toBe(thrown)
        expect(error._tag === "StepFailed" && error.error).toBeUndefined()
      }
    }))

  it.effect("steps named __proto__ or constructor keep their outputs, as outputs and as inputs", () =>
    Effect.gen(function*() {
      const proto = Step.make("__proto__", { run: () => Effect.succeed({ polluted: false }) })
      const ctor = Step.make("constructor", { run: () => Effect.succeed(2) })
      const uses = Step.make("uses", {
        after: { ["__proto__"]: proto, ctor },
        run: (inputs) => Effect.succeed(Object.keys(inputs).sort())
      })
      const result = yield* Pipeline.run(Pipeline.make("names", { output: uses }))
      expect(Object.keys(result.outputs).sort()).toEqual(["__proto__", "constructor", "uses"])
      expect(Object.getOwnPropertyDescriptor(result.outputs, "__proto__")?.value).toEqual({ polluted: false })
      expect(result.output).toEqual(["__proto__", "ctor"])
      expect(Object.keys(result.usage.byStep)).toEqual([])
    }))

  it.effect("reports a defect thrown inside a step as StepFailed, never as a crash", () =>
    Effect.gen(function*() {
      const a = Step.make("a", { run: () => Effect.succeed(1) })
      const thrower = Step.make("thrower", {
        after: { a },
        run: (): Effect.Effect<number> => {
          throw new TypeError("cannot read properties of undefined")
        }
      })
      const error = yield* Effect.flip(Pipeline.run(Pipeline.make("defect", { output: thrower })))
      expect(error._tag).toBe("StepFailed")
      if (error._tag !== "StepFailed") return
      expect(error.step).toBe("thrower")
      expect(error.error).toBeUndefined()
      expect(error.message).toBe(
        `Step "thrower" of pipeline "defect" failed: TypeError: cannot read properties of undefined`
      )
      expect(error.partial.outputs).toEqual({ a: 1 })
    }))
})

describe("Pipeline.run early termination", () => {
  it.effect("a step stops the run; the result holds its data, its dependencies' outputs and all usage", () =>
    Effect.gen(function*() {
      const start = Step.make("start", { run: () => Effect.succeed({ fields: { name: "Ada" } }) })
      const quick = Step.make("quick", {
        after: { start },
        run: () => Effect.as(Ledger.record(Usage.make({ cost: Cost.nanos(3) })), "quick done")
      })
      const ask = Step.make("ask", {
        after: { start },
        run: ({ start }) =>
          Effect.zipRight(Effect.sleep("1 second"), Pipeline.stop({ state: start.fields, missing: "email" }))
      })
      const slowSibling = Step.make("slow_sibling", { after: { start }, run: () => Effect.sleep("1 minute") })
      const submit = Step.make("submit", { after: { ask, quick, slowSibling }, run: () => Effect.succeed("sent") })
      const result = yield* runWithClock(Pipeline.run(Pipeline.make("form", { output: submit })))
      expect(result._tag).toBe("Stopped")
      if (result._tag !== "Stopped") return
      expect(result.step).toBe("ask")
      expect(result.data).toEqual({ state: { name: "Ada" }, missing: "email" })
      // "quick" finished before the stop but is not upstream of "ask": kept out, so the set never depends on timing.
      expect(result.outputs).toEqual({ start: { fields: { name: "Ada" } } })
      expect(result.usage.byStep["quick"]!.cost).toBe(3)
      const status = Object.fromEntries(result.timeline.map((t) => [t.step, t.status]))
      expect(status).toEqual({ start: "succeeded", quick: "succeeded", ask: "stopped", slow_sibling: "interrupted" })
    }))
})

describe("Pipeline.run budget", () => {
  it.effect("refuses the call that could pass the budget, lets reserved calls finish, and reports the spend", () =>
    Effect.gen(function*() {
      let sent = 0
      const call = (nanos: number, ms: number) => Effect.zipRight(Effect.sync(() => sent++), paidCall(nanos, ms))
      const a = Step.make("a", { run: () => Effect.as(call(40, 1000), "a") })
      const b = Step.make("b", { run: () => Effect.as(call(40, 5000), "b") })
      const c = Step.make("c", {
        run: () => Effect.zipRight(Effect.sleep("2 seconds"), Effect.as(paidCall(40), "c"))
      })
      const d = Step.make("d", { after: { a, b, c }, run: () => call(1, 0) })
      const error = yield* runWithClock(
        Effect.flip(Pipeline.run(Pipeline.make("budget", { output: d, budget: Cost.nanos(100) })))
      )
      expect(error._tag).toBe("BudgetExceeded")
      if (error._tag !== "BudgetExceeded") return
      expect(error.step).toBe("c")
      expect(error.budget).toBe(100)
      // b was already reserved and in flight when c was refused: it finished and its output is kept.
      expect(error.partial?.outputs).toEqual({ a: "a", b: "b" })
      // At the refusal a was settled (40) and b still reserved; b then finished, so the run spent 80.
      expect([error.spent, error.reserved]).toEqual([40, 40])
      expect(error.partial?.usage.total.cost).toBe(80)
      expect(sent).toBe(2)
    }))

  it.effect("a call that costs more than its ceiling is recorded as reported, and the run fails instead of completing", () =>
    Effect.gen(function*() {
      const started: Array<string> = []
      // The server reports 50 times what the call reserved.
      const overreported = Ledger.metered({
        worstCase: Cost.nanos(10),
        run: Effect.sleep("1 second"),
        usage: () => Usage.make({ requests: 1, inputTokens: 5000, cost: Cost.nanos(500) })
      })
      const liar = Step.make("liar", { run: () => Effect.as(overreported, "said") })
      const sibling = Step.make("sibling", {
        run: () => Effect.zipRight(Effect.sleep("2 seconds"), Effect.as(paidCall(5), "finished"))
      })
      const next = Step.make("next", {
        after: { liar, sibling },
        run: () => Effect.sync(() => started.push("next"))
      })
      const error = yield* runWithClock(
        Effect.flip(Pipeline.run(Pipeline.make("overrun", { output: next, budget: Cost.nanos(100) })))
      )
      expect(error._tag).toBe("BudgetOverrun")
      if (error._tag !== "BudgetOverrun") return
      expect(error).toMatchObject({ reason: "Implausible", step: "liar", budget: 100, reserved: 10, reported: 500, spent: 500 })
      expect(error.message).toBe(
        `Pipeline "overrun" stopped with $0.000000500 spent of its budget of $0.000000100: the figures of a call in ` +
          `step "liar" cannot be right: its cost is past the $0.000000010 an honest answer could cost (reported to ` +
          `cost $0.000000500 where $0.000000010 was reserved)`
      )
      // Honest books: the real figure is kept. The sibling's own call was refused (the ledger closed), and nothing
      // new started.
      expect(error.partial.usage.total.cost).toBe(500)
      expect(error.partial.outputs).toEqual({ liar: "said" })
      expect(started).toEqual([])
    }))

  it.effect("a call that costs more than its ceiling fails the run under a budget even with room left", () =>
    Effect.gen(function*() {
      const overreported = Ledger.metered({
        worstCase: Cost.nanos(10),
        run: Effect.void,
        usage: () => Usage.make({ requests: 1, cost: Cost.nanos(11) })
      })
      const liar = Step.make("liar", { run: () => Effect.as(overreported, "said") })
      const next = Step.make("next", { after: { liar }, run: () => Effect.succeed("next") })
      const error = yield* Effect.flip(Pipeline.run(Pipeline.make("overrun", { output: next, budget: Cost.nanos(1000) })))
      expect(error).toMatchObject({
        _tag: "BudgetOverrun",
        reason: "Implausible",
        step: "liar",
        budget: 1000,
        reserved: 10,
        reported: 11
      })
      expect(error.message).toBe(
        `Pipeline "overrun" stopped with $0.000000011 spent of its budget of $0.000001: the figures of a call in step ` +
          `"liar" cannot be right: its cost is past the $0.000000010 an honest answer could cost (reported to cost ` +
          `$0.000000011 where $0.000000010 was reserved)`
      )
      if (error._tag === "BudgetOverrun") expect(error.partial.outputs).toEqual({ liar: "said" })
      // Without a budget there is nothing to guarantee: the same call is recorded as reported.
      const result = yield* Pipeline.run(Pipeline.make("unbudgeted", { output: next }))
      expect(result.usage.total.cost).toBe(11)
    }))

  it.effect("usage recorded without a reservation past the budget fails the run, even one a step stopped", () =>
    Effect.gen(function*() {
      const spends = Step.make("spends", { run: () => Effect.as(Ledger.record(Usage.make({ cost: Cost.nanos(150) })), 1) })
      const stops = Step.make("stops", { after: { spends }, run: () => Pipeline.stop("done") })
      for (const output of [spends, stops]) {
        const error = yield* Effect.flip(Pipeline.run(Pipeline.make("recorded", { output, budget: Cost.nanos(100) })))
        expect(error).toMatchObject({
          _tag: "BudgetOverrun",
          reason: "OverBudget",
          step: "spends",
          reserved: 0,
          reported: 150,
          spent: 150
        })
      }
    }))

  it.effect("Budget.remaining is readable inside steps", () =>
    Effect.gen(function*() {
      const first = Step.make("first", { run: () => paidCall(30) })
      const pick = Step.make("pick", {
        after: { first },
        run: () =>
          Effect.map(Budget.remaining, (left) =>
            Option.match(left, { onNone: () => "no budget", onSome: (n) => n < 50 ? "cheap model" : "big model" }))
      })
      const run = (budget?: number) =>
        Pipeline.run(Pipeline.make("remaining", { output: pick, ...(budget ? { budget: Cost.nanos(budget) } : {}) }))
      expect(yield* Effect.map(run(200), (r) => Result.isCompleted(r) && r.output)).toBe("big model")
      expect(yield* Effect.map(run(70), (r) => Result.isCompleted(r) && r.output)).toBe("cheap model")
      expect(yield* Effect.map(run(), (r) => Result.isCompleted(r) && r.output)).toBe("no budget")
    }))

  it.effect("a pipeline run inside a step meters into the outer run", () =>
    Effect.gen(function*() {
      const innerStep = Step.make("inner_call", { run: () => paidCall(25) })
      const inner = Pipeline.make("inner", { output: innerStep })
      const outerStep = Step.make("outer_call", { run: () => Pipeline.run(inner) })
      const result = yield* Pipeline.run(Pipeline.make("outer", { output: outerStep, budget: Cost.nanos(100) }))
      expect(result.usage.byStep).toMatchObject({ outer_call: { cost: 25 } })
      expect(result.usage.total.cost).toBe(25)
    }))
})

describe("Pipeline observability", () => {
  it.effect("emits events in order, with usage", () =>
    Effect.gen(function*() {
      const a = Step.make("a", { run: () => paidCall(10) })
      const b = Step.make("b", { after: { a }, run: () => Effect.void })
      const events: Array<Event.Event> = []
      yield* Pipeline.run(Pipeline.make("ev", { output: b }), { onEvent: (e) => {
          events.push(e)
        } })
      expect(events.map((e) => `${e._tag}${"step" in e ? ` ${e.step}` : ""}`)).toEqual([
        "RunStarted",
        "StepStarted a",
        "UsageRecorded a",
        "StepSucceeded a",
        "StepStarted b",
        "StepSucceeded b",
        "RunFinished"
      ])
      expect(events.at(-1)).toMatchObject({ status: "completed", usage: { cost: 10 } })
    }))

  it.effect("every started step gets exactly one end event; siblings stopped by a failure are interrupted", () =>
    Effect.gen(function*() {
      const root = Step.make("root", { run: () => Effect.succeed(1) })
      const failing = Step.make("failing", { after: { root }, run: () => Effect.zipRight(Effect.sleep("1 second"), Effect.fail("boom")) })
      const slow = Step.make("slow", { after: { root }, run: () => Effect.sleep("1 minute") })
      const never = Step.make("never", { after: { failing, slow }, run: () => Effect.void })
      const events: Array<Event.Event> = []
      yield* runWithClock(Effect.either(Pipeline.run(Pipeline.make("ends", { output: never }), {
        onEvent: (e) => {
          events.push(e)
        }
      })))
      const ends = events.filter((e) => e._tag !== "StepStarted" && "step" in e && e._tag !== "UsageRecorded" && e._tag !== "StepRetrying")
      const started = events.filter((e) => e._tag === "StepStarted").map((e) => "step" in e && e.step)
      expect(started.sort()).toEqual(["failing", "root", "slow"])
      expect(ends.map((e) => `${e._tag} ${"step" in e ? e.step : ""}`).sort()).toEqual([
        "StepFailed failing",
        "StepInterrupted slow",
        "StepSucceeded root"
      ])
      const interrupted = events.find(Event.$is("StepInterrupted"))
      expect(interrupted).toMatchObject({ step: "slow", durationMs: 1000 })
      expect(events.at(-1)).toMatchObject({ _tag: "RunFinished", status: "failed" })
    }))

  it.effect("StepRetrying carries the cause of the attempt that just failed", () =>
    Effect.gen(function*() {
      let attempt = 0
      const flaky = Step.make("flaky", {
        timeout: "1 second",
        retry: 2,
        // First a failure, then a timeout, then success.
        run: () =>
          Effect.suspend(() => {
            attempt++
            if (attempt === 1) return Effect.fail("first" as const)
            if (attempt === 2) return Effect.sleep("1 minute")
            return Effect.succeed("ok")
          })
      })
      const causes: Array<unknown> = []
      yield* runWithClock(Pipeline.run(Pipeline.make("retry", { output: flaky }), {
        onEvent: (e) => {
          if (e._tag === "StepRetrying") causes.push(Option.getOrUndefined(Cause.failureOption(e.cause)))
        }
      }))
      expect(causes[0]).toBe("first")
      expect(causes[1]).toBeInstanceOf(Step.StepTimeout)
    }))

  it.effect("a listener may return an Effect, which runs before the run goes on", () =>
    Effect.gen(function*() {
      const seen: Array<string> = []
      const a = Step.make("a", { run: () => Effect.sync(() => seen.push("a ran")) })
      yield* Pipeline.run(Pipeline.make("effects", { output: a }), {
        onEvent: (e) => Effect.sync(() => void seen.push(e._tag))
      })
      expect(seen).toEqual(["RunStarted", "StepStarted", "a ran", "StepSucceeded", "RunFinished"])
      Pipeline.run(Pipeline.make("effects", { output: a }), {
        // @ts-expect-error a listener's Effect cannot fail: its failure would have nowhere to go
        onEvent: () => Effect.fail("no")
      })
    }))

  it.effect("Pipeline.stream gives the events and ends with the result", () =>
    Effect.gen(function*() {
      const a = Step.make("a", { run: () => Effect.succeed(42) })
      const items = yield* Stream.runCollect(Pipeline.stream(Pipeline.make("s", { output: a })))
      const tags = Array.from(items, (i) => i._tag)
      expect(tags).toEqual(["RunStarted", "StepStarted", "StepSucceeded", "RunFinished", "Done"])
      const last = Array.from(items).at(-1)
      expect(last?._tag === "Done" && last.result._tag === "Completed" && last.result.output).toBe(42)
      const failing = Step.make("f", { run: () => Effect.fail("nope" as const) })
      const error = yield* Effect.flip(Stream.runDrain(Pipeline.stream(Pipeline.make("s", { output: failing }))))
      expect(error._tag).toBe("StepFailed")
    }))

  it.effect("opens a span per step under the pipeline's span", () =>
    Effect.gen(function*() {
      const spanOf = Effect.map(Effect.currentSpan, (span) => ({
        name: span.name,
        parent: Option.flatMap(span.parent, (p) => p._tag === "Span" ? Option.some(p.name) : Option.none()).pipe(
          Option.getOrNull
        )
      }))
      const a = Step.make("a", { run: () => spanOf })
      const b = Step.make("b", { run: () => spanOf })
      const both = Step.make("both", { after: { a, b }, run: (inputs) => Effect.succeed(inputs) })
      const result = yield* Pipeline.run(Pipeline.make("traced", { output: both }))
      expect(Result.isCompleted(result) && result.output).toEqual({
        a: { name: "step a", parent: "pipeline traced" },
        b: { name: "step b", parent: "pipeline traced" }
      })
    }))

  it.effect("draws a finished run's timeline as a Gantt chart", () =>
    Effect.gen(function*() {
      const a = sleeper("a", 1000)
      const b = sleeper("b", 500, { a })
      const result = yield* runWithClock(Pipeline.run(Pipeline.make("g", { output: b })))
      expect(Pipeline.toGantt(result)).toBe([
        "gantt",
        "  title pipeline g",
        "  dateFormat x",
        "  axisFormat %S.%L",
        "  section steps",
        "  a :done, t0, 0, 1000",
        "  b :done, t1, 1000, 1500"
      ].join("\n"))
    }))
})

describe("Pipeline interruption", () => {
  it.effect("interrupting the run interrupts every step and runs their finalizers", () =>
    Effect.gen(function*() {
      const released: Array<string> = []
      const held = (name: string, ms: number) =>
        Step.make(name, {
          run: () =>
            Effect.scoped(Effect.zipRight(
              Effect.addFinalizer(() => Effect.sync(() => released.push(name))),
              Effect.sleep(ms)
            ))
        })
      const a = held("a", 10_000)
      const b = held("b", 20_000)
      const c = held("c", 30_000)
      const out = Step.make("out", { after: { a, b, c }, run: () => Effect.void })
      const fiber = yield* Effect.fork(Pipeline.run(Pipeline.make("cancel", { output: out })))
      yield* TestClock.adjust("15 seconds")
      const exit = yield* Fiber.interrupt(fiber)
      expect(Exit.isInterrupted(exit)).toBe(true)
      expect(released.sort()).toEqual(["a", "b", "c"])
    }))
})

describe("StepExecutor", () => {
  it.effect("another executor takes the local one's place for every step, with the step, its inputs and its policy", () =>
    Effect.gen(function*() {
      const seen: Array<string> = []
      // An executor that remembers outputs by step name, as a journal would: a step it has seen is not run again.
      const journal = new Map<string, unknown>()
      const journaling = StepExecutor.make((execution) =>
        Effect.suspend(() => {
          const name = execution.step.name
          seen.push(`${name} ${JSON.stringify(execution.inputs)} timeout=${execution.policy.timeout === undefined ? "none" : Duration.format(execution.policy.timeout)}`)
          if (journal.has(name)) return Effect.succeed(journal.get(name) as never)
          return Effect.tap(StepExecutor.local.execute(execution), (output) => Effect.sync(() => journal.set(name, output)))
        })
      )
      let runs = 0
      const a = Step.make("a", { run: () => Effect.sync(() => ++runs) })
      const b = Step.make("b", { after: { a }, timeout: "5 seconds", run: ({ a }) => Effect.succeed(a * 10) })
      const pipeline = Pipeline.make("journaled", { output: b, defaults: { timeout: "1 minute" } })
      const first = yield* Pipeline.run(pipeline).pipe(Effect.provide(StepExecutor.layer(journaling)))
      const second = yield* Pipeline.run(pipeline).pipe(Effect.provide(StepExecutor.layer(journaling)))
      expect([first.output, second.output, runs]).toEqual([10, 10, 1])
      expect(seen).toEqual([
        "a {} timeout=1m",
        `b {"a":1} timeout=5s`,
        "a {} timeout=1m",
        `b {"a":1} timeout=5s`
      ])
      // Without the layer, the local executor runs the step again.
      yield* Pipeline.run(pipeline)
      expect(runs).toBe(2)
    }))
})

describe("Step.runWith", () => {
  it.effect("runs one step alone with its inputs, timeout and retry", () =>
    Effect.gen(function*() {
      const extract = Step.make("extract", { run: () => Effect.succeed(["Ada"]) })
      let attempts = 0
      const classify = Step.make("classify", {
        after: { extract },
        retry: 1,
        run: ({ extract }) => Effect.suspend(() => ++attempts === 1 ? Effect.fail("flaky") : Effect.map(Doc, (d) => `${d.text}:${extract.join()}`))
      })
      const out = yield* Step.runWith(classify, { extract: ["Grace"] }).pipe(Effect.provideService(Doc, { text: "doc" }))
      expect(out).toBe("doc:Grace")
      expect(attempts).toBe(2)
    }))
})
