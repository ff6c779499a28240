import { describe, expect, it } from "@effect/vitest"
import { Effect, Fiber, Option, Schema, TestClock } from "effect"
import { LanguageModel, OfflineModel, Pricing, Tokenizer } from "../src/index.js"

const report = `Acme Corporation published its quarterly report. Revenue grew 12 percent to 4,200,000 dollars.
The report notes strong demand in Europe. Contact jane@acme.com before 2026-12-01.`

const Analysis = Schema.Struct({
  category: Schema.Literal("invoice", "contract", "report", "complaint"),
  company: Schema.String,
  email: Schema.String,
  deadline: Schema.String,
  summary: Schema.String,
  topics: Schema.Array(Schema.String).pipe(Schema.maxItems(3)),
  confidence: Schema.Number.pipe(Schema.between(0, 1))
})

describe("OfflineModel", () => {
  it.effect("fills a schema from the text: a choice by keywords, names, patterns, bounds respected", () =>
    Effect.gen(function*() {
      const { value } = yield* LanguageModel.generateObject(Analysis, report)
      expect(value.category).toBe("report")
      expect(value.company).toBe("Acme Corporation")
      expect(value.email).toBe("jane@acme.com")
      expect(value.deadline).toBe("2026-12-01")
      expect(value.summary).toContain("Acme Corporation published its quarterly report.")
      expect(value.topics.length).toBeLessThanOrEqual(3)
      expect(value.confidence).toBeGreaterThanOrEqual(0)
      expect(value.confidence).toBeLessThanOrEqual(1)

      const complaint = yield* LanguageModel.generateObject(
        Analysis,
        "I want to file a complaint: the delivery was late and nobody answered my complaints."
      )
      expect(complaint.value.category).toBe("complaint")
    }).pipe(Effect.provide(OfflineModel.layer())))

  it.effect("is deterministic, counts tokens like the tokenizer, and prices them as the named model", () =>
    Effect.gen(function*() {
      const model = yield* LanguageModel.LanguageModel
      expect(model.provider).toBe("offline")
      expect(OfflineModel.label).toBe("offline, simulated prices")
      expect(model.model).toBe("gpt-4.1")
      const request = { system: "Summarise the revenue.", messages: [{ role: "user" as const, content: report }] }
      const first = yield* model.generate(request)
      const second = yield* model.generate(request)
      expect(second.text).toBe(first.text)
      expect(first.text).toContain("Revenue grew 12 percent")
      const inputTokens = Tokenizer.o200k.countMessages([{ role: "system", content: "Summarise the revenue." }, {
        role: "user",
        content: report
      }])
      const outputTokens = Tokenizer.o200k.count(first.text)
      expect(first.usage).toMatchObject({ inputTokens, outputTokens, estimated: false })
      const rates = Option.getOrThrow(Pricing.make().rates("gpt-4.1"))
      expect(first.usage.cost).toBe(
        Math.round(inputTokens * rates.inputPerMillion * 1000) + Math.round(outputTokens * rates.outputPerMillion * 1000)
      )
    }).pipe(Effect.provide(OfflineModel.layer({ model: "gpt-4.1" }))))

  it.effect("calls the tool the prompt names, with arguments filled from its parameters", () =>
    Effect.gen(function*() {
      const response = yield* LanguageModel.generate({
        messages: [{ role: "user", content: "Use lookup_company for Acme Corporation." }],
        tools: [
          { name: "get_weather", description: "Weather", parameters: { type: "object", properties: {} } },
          {
            name: "lookup_company",
            description: "Facts about a company",
            parameters: { type: "object", properties: { name: { type: "string" } }, required: ["name"] }
          }
        ]
      })
      expect(response.finishReason).toBe("tool_calls")
      expect(response.toolCalls.map((c) => [c.name, JSON.parse(c.arguments)])).toEqual([
        ["lookup_company", { name: "Acme Corporation" }]
      ])
    }).pipe(Effect.provide(OfflineModel.layer())))

  it.effect("stops at the request's max tokens", () =>
    Effect.gen(function*() {
      const response = yield* LanguageModel.generate({ messages: [{ role: "user", content: report }], maxTokens: 5 })
      expect(response.finishReason).toBe("length")
      expect(response.usage.outputTokens).toBeLessThanOrEqual(5)
      expect(response.usage.outputTokens).toBeGreaterThan(0)
    }).pipe(Effect.provide(OfflineModel.layer())))

  it.effect("waits its latency on the test clock", () =>
    Effect.gen(function*() {
      const fiber = yield* Effect.fork(LanguageModel.generate("hello"))
      yield* TestClock.adjust("299 millis")
      expect(Option.isNone(yield* Fiber.poll(fiber))).toBe(true)
      yield* TestClock.adjust("1 millis")
      yield* Fiber.join(fiber)
    }).pipe(Effect.provide(OfflineModel.layer({ latency: "300 millis" }))))
})
