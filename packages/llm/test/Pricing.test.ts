import { describe, expect, it } from "@effect/vitest"
import { Usage } from "@trellis/core"
import { Effect, Option } from "effect"
import { calcPrice } from "@pydantic/genai-prices"
import { Pricing } from "../src/index.js"

describe("Pricing", () => {
  it("reads a model's rates from the bundled prices, offline", () => {
    // gpt-4o-mini: $0.15 per million input tokens, $0.075 cached, $0.60 output.
    expect(Pricing.make().rates("gpt-4o-mini")).toEqual(
      Option.some({ inputPerMillion: 0.15, outputPerMillion: 0.6, cachedInputPerMillion: 0.075 })
    )
  })

  it.effect("prices usage in exact nano-dollars, cached input at its own rate", () =>
    Effect.gen(function*() {
      const pricing = Pricing.make()
      // 1M input tokens of which 200k cached, 10k output:
      // 800,000 x 150 + 200,000 x 75 + 10,000 x 600 nano-dollars.
      const cost = yield* pricing.cost(
        "gpt-4o-mini",
        Usage.make({ inputTokens: 1_000_000, cachedInputTokens: 200_000, outputTokens: 10_000 })
      )
      expect(cost).toBe(120_000_000 + 15_000_000 + 6_000_000)
      expect(pricing.worstCase("gpt-4o-mini", 1000, 500)).toBe(1000 * 150 + 500 * 600)
    }))

  it.effect("lets an override win over the bundled price, and prices a model it does not know", () =>
    Effect.gen(function*() {
      const pricing = Pricing.make({
        overrides: {
          "gpt-4o-mini": { inputPerMillion: 1, outputPerMillion: 1 },
          "my-llama": { inputPerMillion: 0.02, outputPerMillion: 0.04 }
        }
      })
      expect(yield* pricing.cost("gpt-4o-mini", Usage.make({ inputTokens: 10, outputTokens: 10 }))).toBe(20_000)
      expect(yield* pricing.cost("my-llama", Usage.make({ inputTokens: 1000, outputTokens: 1000 }))).toBe(60_000)
      expect(Option.isNone(Pricing.make().rates("my-llama"))).toBe(true)
    }))

  it.effect("refuses an override that cannot be right, naming the model and the rate: make throws, layer fails", () =>
    Effect.gen(function*() {
      const bad: Array<readonly [Pricing.Rates, string]> = [
        [{ inputPerMillion: -1, outputPerMillion: 1 }, "inputPerMillion"],
        [{ inputPerMillion: 1, outputPerMillion: Number.NaN }, "outputPerMillion"],
        [{ inputPerMillion: 1, outputPerMillion: 1, cachedInputPerMillion: Infinity }, "cachedInputPerMillion"],
        [{ inputPerMillion: "2" as unknown as number, outputPerMillion: 1 }, "inputPerMillion"],
        [{ inputPerMillion: 1e7, outputPerMillion: 1 }, "inputPerMillion"]
      ]
      for (const [rates, rate] of bad) {
        const options = { overrides: { "my-model": rates } }
        expect(() => Pricing.make(options)).toThrow(Pricing.InvalidPrice)
        const error = yield* Effect.flip(Effect.provide(Pricing.Pricing, Pricing.layer(options)))
        expect(error).toMatchObject({ _tag: "InvalidPrice", model: "my-model", rate })
        expect(error.message).toContain(`${rate} must be a number of dollars per million tokens from 0 to 1000000`)
      }
      // Zero says free; the bound itself is allowed.
      const free = Pricing.make({ overrides: { "my-model": { inputPerMillion: 0, outputPerMillion: 1e6 } } })
      expect(free.worstCase("my-model", 1_000_000, 0)).toBe(0)
    }))

  it.effect("prices a call at the tier its size falls in, as @pydantic/genai-prices computes it", () =>
    Effect.gen(function*() {
      const cases: Array<[model: string, provider: string, input: number, cached: number, output: number]> = [
        ["claude-sonnet-4-5", "anthropic", 1_000, 0, 100],
        ["claude-sonnet-4-5", "anthropic", 200_000, 0, 10],
        ["claude-sonnet-4-5", "anthropic", 200_001, 0, 10],
        ["claude-sonnet-4-5", "anthropic", 250_000, 100_000, 2_000],
        ["gemini-2.5-pro", "google", 1_000, 0, 100],
        ["gemini-2.5-pro", "google", 300_000, 0, 1_000],
        ["gpt-4o-mini", "openai", 123_456, 23_456, 789]
      ]
      for (const [model, provider, input, cached, output] of cases) {
        const ours = yield* Pricing.make({ provider }).cost(
          model,
          Usage.make({ inputTokens: input, cachedInputTokens: cached, outputTokens: output })
        )
        const theirs = calcPrice({ input_tokens: input, cache_read_tokens: cached, output_tokens: output }, model, {
          providerId: provider
        })!.total_price
        // Theirs is a float in dollars; ours whole nano-dollars, each kind of token rounded once.
        expect(Math.abs(ours - theirs * 1e9)).toBeLessThanOrEqual(1.5)
      }
      // A small call is priced at the base: $3 / $15 per million, not the long-prompt tier.
      expect(yield* Pricing.make({ provider: "anthropic" }).cost("claude-sonnet-4-5", Usage.make({ inputTokens: 1000, outputTokens: 100 })))
        .toBe(4_500_000)
      expect(Pricing.make({ provider: "anthropic" }).worstCase("claude-sonnet-4-5", 1000, 100)).toBe(4_500_000)
    }))
})
