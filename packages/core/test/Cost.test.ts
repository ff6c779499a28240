import { describe, expect, it } from "@effect/vitest"
import { Cost, Usage } from "@trellis/core"

describe("Cost", () => {
  it("counts exact nano-dollars", () => {
    expect(Cost.dollars(0.1)).toBe(100_000_000)
    expect(Cost.format(Cost.dollars(0.1))).toBe("$0.1000")
    expect(Cost.format(Cost.dollars(1.23456), 2)).toBe("$1.23")
    expect(Cost.format(Cost.nanos(94_350))).toBe("$0.000094")
    expect(Cost.format(Cost.zero)).toBe("$0.0000")
    expect(Cost.format(Cost.nanos(500))).toBe("$0.000000500")
  })

  it("keeps sums exact where floating dollars drift", () => {
    // 0.1 + 0.2 !== 0.3 in floating point; in nano-dollars it is.
    const sum = Cost.sum([Cost.dollars(0.1), Cost.dollars(0.2)])
    expect(sum).toBe(Cost.dollars(0.3))
    // A million calls at 150 nano-dollars each: exactly $0.15, no drift.
    let total = Cost.zero
    for (let i = 0; i < 1_000_000; i++) total = Cost.add(total, Cost.nanos(150))
    expect(total).toBe(150_000_000)
  })

  it("prices tokens per million without losing sub-micro-dollar amounts", () => {
    // $0.15 per million tokens: 7 tokens cost 1,050 nano-dollars, where whole micro-dollars would say 1.
    expect(Cost.perMillionTokens(7, 0.15)).toBe(1050)
    // $0.02 per million (an embedding model): one token is 20 nano-dollars, not zero.
    expect(Cost.perMillionTokens(1, 0.02)).toBe(20)
    expect(Cost.perMillionTokens(1_000_000, 0.15)).toBe(150_000_000)
  })

  it("rejects amounts that are not whole non-negative nano-dollars", () => {
    expect(() => Cost.nanos(-1)).toThrow(/non-negative whole number/)
    expect(() => Cost.nanos(1.5)).toThrow(/non-negative whole number/)
    expect(() => Cost.dollars(Number.NaN)).toThrow(/NaN/)
    expect(Cost.subtract(Cost.nanos(5), Cost.nanos(9))).toBe(0)
  })
})

describe("Usage", () => {
  it("adds field by field and keeps the estimated flag", () => {
    const a = Usage.make({ inputTokens: 10, outputTokens: 5, requests: 1, cost: Cost.nanos(100) })
    const b = Usage.make({ inputTokens: 1, reasoningTokens: 2, toolCalls: 3, cost: Cost.nanos(7), estimated: true })
    expect(Usage.add(a, b)).toEqual({
      inputTokens: 11,
      outputTokens: 5,
      cachedInputTokens: 0,
      reasoningTokens: 2,
      requests: 1,
      toolCalls: 3,
      cost: 107,
      estimated: true
    })
    expect(Usage.sum([a, a, a]).cost).toBe(300)
    expect(Usage.totalTokens(a)).toBe(15)
  })
})
