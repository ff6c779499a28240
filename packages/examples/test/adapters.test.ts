/**
 * The document pipeline end to end on an Anthropic model through each adapter (the AI SDK's `@ai-sdk/anthropic`,
 * and `@effect/ai-anthropic`), against a local server that speaks Anthropic's Messages API, under a budget.
 */
import { createAnthropic } from "@ai-sdk/anthropic"
import { AnthropicClient, AnthropicLanguageModel } from "@effect/ai-anthropic"
import { FetchHttpClient } from "@effect/platform"
import { describe, expect, it } from "@effect/vitest"
import { Cost, Ledger, Router } from "@trellis/core"
import { AiSdk } from "@trellis/ai-sdk"
import { EffectAi } from "@trellis/effect-ai"
import type { LanguageModel } from "@trellis/llm"
import { Anthropic } from "@trellis/test-servers"
import { Effect, type Layer, Redacted } from "effect"
import * as EffectLayer from "effect/Layer"
import { Document, router } from "../src/document/pipeline.js"
import { quarterlyReport } from "../src/document/samples.js"
import { documentAnswers, usagePerCall } from "./anthropic.js"

const key = "sk-ant-test-KEY"
const model = "claude-haiku-4-5"

const adapters: ReadonlyArray<readonly [string, (url: string) => Layer.Layer<LanguageModel.LanguageModel, unknown>]> = [
  ["AiSdk (@ai-sdk/anthropic)", (url) => AiSdk.layer({ model: createAnthropic({ apiKey: key, baseURL: url })(model) })],
  [
    "EffectAi (@effect/ai-anthropic)",
    (url) =>
      EffectAi.layer({
        provider: "anthropic",
        model,
        configure: (request) =>
          AnthropicLanguageModel.withConfigOverride({
            max_tokens: request.maxTokens,
            ...(request.temperature === undefined ? {} : { temperature: request.temperature })
          })
      }).pipe(
        EffectLayer.provide(AnthropicLanguageModel.layer({ model })),
        EffectLayer.provide(AnthropicClient.layer({ apiKey: Redacted.make(key), apiUrl: url.replace(/\/v1$/, "") })),
        EffectLayer.provide(FetchHttpClient.layer)
      )
  ]
]

// claude-haiku-4-5 under "anthropic" in @pydantic/genai-prices: $1 per million input tokens, $5 output.
const costPerCall = usagePerCall.input_tokens * 1_000 + usagePerCall.output_tokens * 5_000

describe.each(adapters)("the document pipeline on %s", (_, layerOn) => {
  it.scoped("runs end to end under a budget, each call priced from the usage the server reported", () =>
    Effect.gen(function*() {
      const server = yield* Anthropic.start(documentAnswers)
      const budget = Cost.dollars(0.05)
      const { result, route } = yield* Router.run(router({ budget })).pipe(
        Effect.provideService(Document, { text: quarterlyReport }),
        Effect.provide(layerOn(server.url))
      )
      expect(route).toBe("thorough")
      expect(result.output).toEqual({
        category: "contract",
        company: "Fabrikam Logistics",
        account: expect.objectContaining({ company: "Fabrikam Logistics" }),
        brief: "Renew before January."
      })
      // Extraction, classification and the brief, and a key point for each of the three sections: six requests, each
      // with the key and its step's limit.
      expect(server.received.map((request) => request.body.max_tokens).sort((a, b) => a - b)).toEqual([50, 100, 100, 100, 120, 200])
      expect(server.received.every((request) => request.headers["x-api-key"] === key)).toBe(true)
      expect(result.usage.total).toMatchObject({
        requests: 6,
        inputTokens: 6 * usagePerCall.input_tokens,
        outputTokens: 6 * usagePerCall.output_tokens,
        cost: 6 * costPerCall,
        estimated: false
      })
      expect(result.usage.total.cost).toBeLessThanOrEqual(budget)
    }))

  it.scoped("a budget too small for the first call's worst case stops the run before anything is sent", () =>
    Effect.gen(function*() {
      const server = yield* Anthropic.start(documentAnswers)
      const error = yield* Effect.flip(
        Router.run(router({ budget: Cost.dollars(0.0005) })).pipe(
          Effect.provideService(Document, { text: quarterlyReport }),
          Effect.provide(layerOn(server.url))
        )
      )
      expect(error).toBeInstanceOf(Ledger.BudgetExceeded)
      expect(server.received).toHaveLength(0)
    }))
})
