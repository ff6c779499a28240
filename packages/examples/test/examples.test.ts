import { describe, expect, it } from "@effect/vitest"
import { InMemorySpanExporter } from "@opentelemetry/sdk-trace-base"
import { Cost, Pipeline } from "@trellis/core"
import { OfflineModel } from "@trellis/llm"
import { Effect, Fiber, TestClock } from "effect"
import { models, program as budgetProgram } from "../src/budget-routing.js"
import { converse, pipeline as booking, Turn, emptyForm } from "../src/form-filling.js"
import { cancelAfter } from "../src/interruption.js"
import { program as traced, tracing } from "../src/tracing.js"

describe("budget-aware routing", () => {
  it.effect("switches to the cheaper model when the budget runs low, and stays within it", () =>
    Effect.gen(function*() {
      const budget = Cost.dollars(0.004)
      const { spent, steps } = yield* budgetProgram(budget)
      const used = steps.map((step) => step.model)
      expect(used).toEqual([models.large, models.large, models.large, models.large, models.small])
      expect(spent).toBeLessThanOrEqual(budget)
      const [large, small] = [steps[0]!.cost, steps[4]!.cost]
      expect(small).toBeLessThan(large / 10)
    }).pipe(Effect.provide(OfflineModel.layer())))

  it.effect("uses the large model throughout when money is plentiful", () =>
    Effect.gen(function*() {
      const { steps } = yield* budgetProgram(Cost.dollars(1))
      expect(new Set(steps.map((step) => step.model))).toEqual(new Set([models.large]))
    }).pipe(Effect.provide(OfflineModel.layer())))
})

describe("form filling", () => {
  it.effect("stops while fields are missing, with the form so far and a question", () =>
    Effect.gen(function*() {
      const result = yield* Pipeline.run(booking).pipe(
        Effect.provideService(Turn, { form: emptyForm, message: "Book it for Maria Anders please." })
      )
      expect(result._tag).toBe("Stopped")
      if (result._tag !== "Stopped") return
      expect(result.step).toBe("check")
      expect(result.data).toEqual({
        form: { name: "Maria Anders", email: "", date: "" },
        missing: ["email", "date"],
        question: "Which email address should the confirmation go to?"
      })
      expect(result.outputs).toHaveProperty("read")
      expect(result.usage.total.requests).toBe(1)
    }).pipe(Effect.provide(OfflineModel.layer())))

  it.effect("resumes from the returned state until the form is complete", () =>
    Effect.gen(function*() {
      const { done, form, transcript } = yield* converse([
        "Hi, I would like to book a table for Maria Anders.",
        "You can reach me at maria.anders@northwind.example",
        "Let's say 2026-12-18."
      ])
      expect(done).toBe(true)
      expect(form).toEqual({ name: "Maria Anders", email: "maria.anders@northwind.example", date: "2026-12-18" })
      expect(transcript.at(-1)).toBe(
        "assistant: Booked for Maria Anders on 2026-12-18; confirmation sent to maria.anders@northwind.example."
      )
      expect(transcript.filter((line) => line.startsWith("assistant:"))).toHaveLength(3)
    }).pipe(Effect.provide(OfflineModel.layer())))
})

describe("interruption", () => {
  it.effect("runs every finalizer, keeps the usage of the cut calls, and leaves no fiber running", () =>
    Effect.gen(function*() {
      const fiber = yield* Effect.fork(cancelAfter("500 millis"))
      yield* TestClock.adjust("500 millis")
      const { journal, runningBefore, stillRunning, usage } = yield* Fiber.join(fiber)
      expect(runningBefore).toBeGreaterThan(0)
      expect(stillRunning).toBe(0)
      for (const step of ["market", "competitors", "risks"]) {
        expect(journal).toContain(`${step}: opened its connection`)
        expect(journal).toContain(`${step}: released its connection (interrupted)`)
      }
      expect(journal.at(-1)).toBe("run cancelled after 500ms")
      expect(usage).toMatchObject({ requests: 3, outputTokens: 0, estimated: true })
      expect(usage.cost).toBeGreaterThan(0)
    }).pipe(Effect.provide(OfflineModel.layer({ latency: "2 seconds" }))))
})

describe("tracing", () => {
  it.effect("exports router > pipeline > step > llm.generate spans with GenAI attributes through OpenTelemetry", () => {
    const exporter = new InMemorySpanExporter()
    return Effect.gen(function*() {
      const { result } = yield* traced
      const spans = exporter.getFinishedSpans()
      const byName = (name: string) => spans.filter((span) => span.name === name)
      const parentOf = (name: string) => {
        const parentId = byName(name)[0]?.parentSpanContext?.spanId
        return spans.find((span) => span.spanContext().spanId === parentId)?.name
      }
      expect(parentOf("pipeline document")).toBe("router")
      expect(parentOf("step extract")).toBe("pipeline document")
      expect(parentOf("llm.generate")).toMatch(/^step /)
      const calls = byName("llm.generate")
      expect(calls).toHaveLength(3)
      expect(calls[0]!.attributes).toMatchObject({
        "gen_ai.request.model": "gpt-4o-mini",
        "gen_ai.usage.input_tokens": result.usage.byStep["extract"]!.inputTokens
      })
      const traceCost = calls.reduce((sum, span) => sum + Number(span.attributes["trellis.cost_nano_usd"]), 0)
      expect(traceCost).toBe(result.usage.total.cost)
    }).pipe(Effect.provide(tracing(exporter)))
  })
})
