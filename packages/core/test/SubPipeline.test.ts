import { describe, expect, it } from "@effect/vitest"
import { Cost, type Event, ForEach, Ledger, Pipeline, PipelineError, Result, Step, SubPipeline } from "@trellis/core"
import { Tracing } from "@trellis/test-servers"
import { Context, Data, Effect, Option } from "effect"
import { paidCall, runWithClock } from "./utils.js"

class Company extends Context.Tag("Company")<Company, string>() {}
class Missing extends Data.TaggedError("Missing")<{ readonly what: string }> {}

const look = Step.make("look", { run: () => Effect.map(Company, (c) => c.toUpperCase()) })
const report = Step.make("report", {
  after: { look },
  run: ({ look }) => Effect.as(paidCall(3000), `${look} report`)
})
const research = (budget?: Cost.Cost) => Pipeline.make("research", { output: report, ...(budget ? { budget } : {}) })

const outer = (inner: ReturnType<typeof research>, budget?: Cost.Cost) => {
  const company = Step.make("company", { run: () => Effect.succeed("acme") })
  const sub = SubPipeline.make("sub", {
    after: { company },
    pipeline: inner,
    input: ({ company }) => Context.make(Company, company)
  })
  const summary = Step.make("summary", { after: { sub }, run: ({ sub }) => Effect.as(paidCall(1000), `${sub}.`) })
  return Pipeline.make("outer", { output: summary, ...(budget ? { budget } : {}) })
}

describe("SubPipeline", () => {
  it.effect("its steps are steps of the enclosing run: events, usage lines, timeline, one budget", () =>
    Effect.gen(function*() {
      const events: Array<Event.Event> = []
      const result = yield* Pipeline.run(outer(research()), { onEvent: (e) => void events.push(e) })
      expect(result.output).toBe("ACME report.")
      expect(events.filter((e) => e._tag === "StepStarted").map((e) => [e.step, e.parent])).toEqual([
        ["company", undefined],
        ["sub", undefined],
        ["sub/look", "sub"],
        ["sub/report", "sub"],
        ["summary", undefined]
      ])
      expect(events.every((e) => e.pipeline === "outer")).toBe(true)
      expect(events.filter((e) => e._tag === "RunStarted")).toHaveLength(1)
      expect(Object.fromEntries(Object.entries(result.usage.byStep).map(([s, u]) => [s, u.cost]))).toEqual({
        "sub/report": 3000,
        summary: 1000
      })
      expect(result.timeline.map((t) => [t.step, t.parent])).toEqual([
        ["company", undefined],
        ["sub", undefined],
        ["sub/look", "sub"],
        ["sub/report", "sub"],
        ["summary", undefined]
      ])
    }))

  it.effect("a refused budget says whose budget it was", () =>
    Effect.gen(function*() {
      const inner = yield* Effect.flip(Pipeline.run(outer(research(Cost.nanos(2000)), Cost.nanos(100_000))))
      expect(inner).toBeInstanceOf(Ledger.BudgetExceeded)
      expect(inner).toMatchObject({ pipeline: "research", step: "sub/report", budget: 2000 })
      expect(inner.message).toContain(`step "sub/report" could pass the budget of pipeline "research"`)
      const whole = yield* Effect.flip(Pipeline.run(outer(research(Cost.nanos(100_000)), Cost.nanos(3500))))
      expect(whole).toMatchObject({ pipeline: "outer", step: "summary", spent: 3000 })
    }))

  it.effect("an inner step's failure fails the step with its very error, naming the inner step", () =>
    Effect.gen(function*() {
      const broken = Step.make("broken", { after: { look }, run: () => Effect.fail(new Missing({ what: "filings" })) })
      const error = yield* Effect.flip(Pipeline.run(outer(Pipeline.make("research", { output: broken }) as any)))
      expect(error).toBeInstanceOf(PipelineError.StepFailed)
      const failed = error as PipelineError.StepFailed<unknown>
      expect(failed.step).toBe("sub")
      expect(failed.path).toBe("sub/broken")
      expect(failed.error).toEqual(new Missing({ what: "filings" }))
      expect(failed.partial.timeline.map((t) => [t.step, t.status])).toContainEqual(["sub/look", "succeeded"])
    }))

  it.effect("a stop inside stops the enclosing run with its data", () =>
    Effect.gen(function*() {
      const halt = Step.make("halt", { after: { look }, run: ({ look }) => Pipeline.stop({ reason: look }) })
      const result = yield* Pipeline.run(outer(Pipeline.make("research", { output: halt }) as any))
      expect(Result.isStopped(result as any)).toBe(true)
      expect(result).toMatchObject({ _tag: "Stopped", step: "sub", data: { reason: "ACME" } })
    }))

  it.effect("its steps' spans sit under the step's span", () =>
    Effect.gen(function*() {
      const { spans, tracer } = Tracing.recordingTracer()
      yield* Effect.withTracer(Pipeline.run(outer(research())), tracer)
      const parentOf = (name: string) => {
        const parent = Option.getOrUndefined(spans.find((span) => span.name === name)!.parent)
        return spans.find((span) => span.spanId === parent?.spanId)?.name
      }
      expect(parentOf("step sub")).toBe("pipeline outer")
      expect(parentOf("pipeline research")).toBe("step sub")
      expect(parentOf("step sub/report")).toBe("pipeline research")
    }))
})

describe("SubPipeline, when things go wrong", () => {
  it.effect("a refusal by its own budget leaves no empty usage line in the enclosing run", () =>
    Effect.gen(function*() {
      const events: Array<Event.Event> = []
      const error = yield* Effect.flip(
        Pipeline.run(outer(research(Cost.nanos(2000)), Cost.nanos(100_000)), { onEvent: (e) => void events.push(e) })
      )
      expect(events.filter((e) => e._tag === "UsageRecorded")).toEqual([])
      expect((error as Ledger.BudgetExceeded).partial!.usage.byStep).toEqual({})
    }))

  it.effect("an item it tolerated inside is not blamed for an inner step's failure", () =>
    Effect.gen(function*() {
      const settled = ForEach.make("m", {
        items: () => [0, 1],
        each: (i) => i === 0 ? Effect.fail(new Missing({ what: "item" })) : Effect.succeed(i),
        mode: "settle"
      })
      const after = Step.make("x", { after: { settled }, run: () => Effect.fail(new Missing({ what: "x" })) })
      const sub = SubPipeline.make("s", { pipeline: Pipeline.make("inner", { output: after }) })
      const error = yield* Effect.flip(Pipeline.run(Pipeline.make("p", { output: sub })))
      expect((error as PipelineError.StepFailed<unknown>).path).toBe("s/x")
      expect((error as PipelineError.StepFailed<unknown>).error).toEqual(new Missing({ what: "x" }))
    }))

  it.effect("its steps take their places in the timeline as they start, beside the enclosing run's", () =>
    Effect.gen(function*() {
      const a = Step.make("a", { run: () => Effect.sleep(20) })
      const s = SubPipeline.make("s", { pipeline: Pipeline.make("in", { output: a }) })
      const t = Step.make("t", { run: () => Effect.sleep(20) })
      const j = Step.make("j", { after: { s, t }, run: () => Effect.void })
      const started: Array<string> = []
      const result = yield* runWithClock(Pipeline.run(Pipeline.make("p", { output: j }), {
        onEvent: (e) => void (e._tag === "StepStarted" && started.push(e.step))
      }))
      expect(result.timeline.map((entry) => entry.step)).toEqual(started)
    }))
})
