import { describe, expect, it } from "@effect/vitest"
import { InMemorySpanExporter, type ReadableSpan } from "@opentelemetry/sdk-trace-base"
import { Cost, Pipeline } from "@trellis/core"
import { Agent, OfflineModel, ScriptedModel, Tool } from "@trellis/llm"
import { Effect, Fiber, Layer, Schema, TestClock } from "effect"
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
  const CLIENT = 2
  const INTERNAL = 0
  const parentOf = (spans: ReadonlyArray<ReadableSpan>, span: ReadableSpan) =>
    spans.find((other) => other.spanContext().spanId === span.parentSpanContext?.spanId)

  it.effect("exports router > pipeline > step > `chat {model}` spans by the GenAI conventions through OpenTelemetry", () => {
    const exporter = new InMemorySpanExporter()
    return Effect.gen(function*() {
      const { result } = yield* traced
      const spans = exporter.getFinishedSpans()
      const byName = (name: string) => spans.filter((span) => span.name === name)
      // Every span but the root names a parent that was exported too.
      const roots = spans.filter((span) => span.parentSpanContext === undefined)
      expect(roots.map((span) => span.name)).toEqual(["router"])
      for (const span of spans) {
        if (span !== roots[0]) expect(parentOf(spans, span), span.name).toBeDefined()
      }
      expect(parentOf(spans, byName("pipeline document")[0]!)?.name).toBe("router")
      expect(parentOf(spans, byName("step extract")[0]!)?.name).toBe("pipeline document")
      expect(byName("step extract")[0]!.attributes).toMatchObject({ "trellis.step": "extract" })
      expect(byName("pipeline document")[0]!.attributes).toMatchObject({ "trellis.pipeline": "document" })
      const calls = byName("chat gpt-4o-mini")
      // Extraction, classification, the brief, and a key point for each of the document's three sections, whose
      // calls sit under the item's step span, under the map's.
      expect(calls).toHaveLength(6)
      expect(spans.filter((span) => span.name.startsWith("chat "))).toHaveLength(6)
      expect(parentOf(spans, byName("step key_points[1]")[0]!)?.name).toBe("step key_points")
      for (const call of calls) {
        expect(call.kind).toBe(CLIENT)
        expect(parentOf(spans, call)?.name).toMatch(/^step /)
        expect(call.attributes).not.toHaveProperty("gen_ai.system")
      }
      const extract = calls.find((call) => parentOf(spans, call)?.name === "step extract")!
      expect(extract.attributes).toEqual({
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "offline",
        "gen_ai.request.model": "gpt-4o-mini",
        "gen_ai.request.max_tokens": expect.any(Number),
        "gen_ai.output.type": "json",
        "gen_ai.response.model": "gpt-4o-mini",
        "gen_ai.response.finish_reasons": ["stop"],
        "gen_ai.usage.input_tokens": result.usage.byStep["extract"]!.inputTokens,
        "gen_ai.usage.output_tokens": result.usage.byStep["extract"]!.outputTokens,
        "trellis.cost_nano_usd": result.usage.byStep["extract"]!.cost,
        "trellis.usage_estimated": false
      })
      const traceCost = calls.reduce((sum, span) => sum + Number(span.attributes["trellis.cost_nano_usd"]), 0)
      expect(traceCost).toBe(result.usage.total.cost)
    }).pipe(Effect.provide(tracing(exporter)))
  })

  it.effect("exports an agent's run as `invoke_agent`, its model calls and each tool's `execute_tool` span", () => {
    const exporter = new InMemorySpanExporter()
    const add = Tool.make("add", {
      description: "Adds two numbers",
      parameters: Schema.Struct({ a: Schema.Number, b: Schema.Number }),
      run: ({ a, b }) => Effect.succeed(a + b)
    })
    const model = ScriptedModel.make({
      reply: (request, index) =>
        index === 0
          ? { toolCalls: [{ id: "call_1", name: "add", arguments: `{"a":2,"b":3}` }] }
          : `It is ${request.messages.flatMap((m) => (m.role === "tool" ? [m.content] : [])).join("")}.`
    })
    const agent = Agent.make({ name: "adder", instructions: "You add numbers.", tools: [add] })
    return Effect.gen(function*() {
      const result = yield* agent.run("2+3?")
      expect(result.output).toBe("It is 5.")
      const spans = exporter.getFinishedSpans()
      const [run] = spans.filter((span) => span.name === "invoke_agent adder")
      expect(run!.kind).toBe(INTERNAL)
      expect(run!.attributes).toMatchObject({ "gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "adder" })
      const calls = spans.filter((span) => span.name === "chat gpt-4o-mini")
      expect(calls.map((call) => parentOf(spans, call)?.name)).toEqual(["invoke_agent adder", "invoke_agent adder"])
      expect(calls.map((call) => call.attributes["gen_ai.response.finish_reasons"])).toEqual([["tool_calls"], ["stop"]])
      const [tool] = spans.filter((span) => span.name === "execute_tool add")
      expect(tool!.kind).toBe(INTERNAL)
      expect(parentOf(spans, tool!)?.name).toBe("invoke_agent adder")
      expect(tool!.attributes).toEqual({
        "gen_ai.operation.name": "execute_tool",
        "gen_ai.tool.name": "add",
        "gen_ai.tool.description": "Adds two numbers",
        "gen_ai.tool.call.id": "call_1",
        "gen_ai.tool.type": "function"
      })
    }).pipe(Effect.provide(Layer.merge(model.layer, tracing(exporter))))
  })
})
