/**
 * Testing with doubles: the document pipeline with its language model swapped for a scripted one. The script
 * answers from the request, so the test says what the model "thinks" and checks what the code does with it:
 * routing, the order and overlap of steps, what reaches the model, and the usage.
 */
import { describe, expect, it } from "@effect/vitest"
import { Pipeline, Router } from "@trellis/core"
import { Prompt, ScriptedModel } from "@trellis/llm"
import { Effect, Fiber, TestClock } from "effect"
import { Document, router, sectionsOf, thorough } from "../src/document/pipeline.js"
import { quarterlyReport, shortNote } from "../src/document/samples.js"

const systemOf = (request: Prompt.ResolvedRequest): string =>
  request.messages.filter((message) => message.role === "system").map((message) => String(message.content)).join("\n")

// Answers by what the request asks for: the JSON schema's fields tell extraction from classification.
const script = (category: string): ScriptedModel.Script => ({
  reply: (request: Prompt.ResolvedRequest) => {
    const fields = Object.keys((request.json?.schema as { properties?: object } | undefined)?.properties ?? {})
    if (fields.includes("category")) return JSON.stringify({ category })
    if (systemOf(request).includes("key point")) return `Point of ${String(request.messages.at(-1)?.content).slice(0, 12)}.`
    if (fields.includes("company")) {
      return JSON.stringify({ title: "Q3 report", company: "Contoso Pharmaceuticals", summary: "Revenue grew.", topics: ["revenue"] })
    }
    return "Call the account owner this week."
  },
  latency: "1 second"
})

describe("document pipeline, with a scripted model", () => {
  it.effect("routes a long document to the thorough pipeline and combines the model's answers with the data set", () => {
    const model = ScriptedModel.make(script("acquisition"))
    return Effect.gen(function*() {
      const fiber = yield* Effect.fork(Router.run(router()))
      yield* TestClock.adjust("3 seconds")
      const { route, result } = yield* Fiber.join(fiber)
      expect(route).toBe("thorough")
      expect(result.output).toEqual({
        category: "acquisition",
        company: "Contoso Pharmaceuticals",
        account: { company: "Contoso Pharmaceuticals", tier: "growth", owner: "Liu Wei", openTickets: 0 },
        brief: "Call the account owner this week."
      })
      // Three calls of one second each, one after the other: extract, classify, combine; and beside the first two,
      // one per section of the document, three at a time.
      const asked = (words: string) => model.calls.filter((call) => systemOf(call).includes(words))
      expect(model.calls).toHaveLength(6)
      expect(asked("Read the business document")[0]!.messages.at(-1)?.content).toBe(quarterlyReport)
      const sections = sectionsOf(quarterlyReport)
      expect(sections).toHaveLength(3)
      expect(asked("key point").map((call) => call.messages.at(-1)?.content)).toEqual(sections)
      const brief = asked("short brief")[0]!.messages.at(-1)!.content
      expect(brief).toContain("Market: Mergers and acquisitions.")
      expect(brief).toContain("owner Liu Wei")
      expect(brief).toContain(`Key points: ${sections.map((section) => `Point of ${section.slice(0, 12)}.`).join(" ")}`)
      expect(result.usage.total.requests).toBe(6)
      expect(result.usage.total.cost).toBe(
        ["extract", "classify", "combine", "key_points[0]", "key_points[1]", "key_points[2]"]
          .reduce((sum, step) => sum + result.usage.byStep[step]!.cost, 0)
      )
    }).pipe(Effect.provideService(Document, { text: quarterlyReport }), Effect.provide(model.layer))
  })

  it.effect("runs the two look-ups at the same time, as soon as the classification is done", () => {
    const model = ScriptedModel.make(script("earnings"))
    return Effect.gen(function*() {
      const fiber = yield* Effect.fork(Pipeline.run(thorough()))
      yield* TestClock.adjust("3 seconds")
      const result = yield* Fiber.join(fiber)
      const at = Object.fromEntries(result.timeline.map((t) => [t.step, t]))
      expect(at["fetch_market"]!.startedAt).toBe(2000)
      expect(at["fetch_user"]!.startedAt).toBe(2000)
      expect(at["combine"]!.startedAt).toBe(2000)
      expect(at["combine"]!.endedAt).toBe(3000)
    }).pipe(Effect.provideService(Document, { text: quarterlyReport }), Effect.provide(model.layer))
  })

  it.effect("routes a short note to the fast pipeline: two calls", () => {
    const model = ScriptedModel.make(script("complaint"))
    return Effect.gen(function*() {
      const fiber = yield* Effect.fork(Router.run(router()))
      yield* TestClock.adjust("2 seconds")
      const { route } = yield* Fiber.join(fiber)
      expect(route).toBe("fast")
      expect(model.calls).toHaveLength(2)
    }).pipe(Effect.provideService(Document, { text: shortNote }), Effect.provide(model.layer))
  })
})
