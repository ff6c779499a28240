import { describe, expect, it } from "@effect/vitest"
import { countTokens } from "gpt-tokenizer/encoding/o200k_base"
import { Tokenizer } from "../src/index.js"

const exactCount = (text: string) => countTokens(text, { disallowedSpecial: new Set() })

describe("Tokenizer", () => {
  it("counts text that spells a special token as text, rather than throwing", () => {
    const text = "The model wrote <|endoftext|> and went on."
    expect(Tokenizer.o200k.count(text)).toBeGreaterThan(Tokenizer.o200k.count("The model wrote and went on."))
    expect(Tokenizer.o200k.countOutput(text)).toBe(Tokenizer.o200k.count(text))
  })
})

describe("Tokenizer counting long runs", () => {
  // Without breaks, byte-pair encoding takes time that grows with the square of a run's length: 1 MB of one letter
  // took minutes. Counted in pieces, it takes a fraction of a second (the test's own timeout would catch a relapse).
  it("counts a megabyte without a break, and CJK text without spaces, in time linear in their length", () => {
    expect(Tokenizer.o200k.count("x".repeat(1_000_000))).toBeGreaterThan(100_000)
    expect(Tokenizer.o200k.count("漢字".repeat(200_000))).toBeGreaterThan(200_000)
    expect(Tokenizer.o200k.count(" ".repeat(200_000) + "end")).toBeGreaterThan(1)
    expect(Tokenizer.o200k.count("!?".repeat(100_000))).toBeGreaterThan(1)
  })

  it("counts long runs within a token or so per piece of the exact count, and JSON exactly", () => {
    // The exact counts of these are still quick at 8 KB.
    const json = JSON.stringify({ type: "object", properties: { verdict: { enum: ["approve", "reject"] } } }).repeat(40)
    for (const text of ["x".repeat(8_000), "漢字".repeat(4_000), "ab1!".repeat(2_000), `short ${"y".repeat(3_000)} words`, json]) {
      const counted = Tokenizer.o200k.count(text)
      const truth = exactCount(text)
      expect(Math.abs(counted - truth)).toBeLessThanOrEqual(Math.ceil(text.length / 256) + 1)
      if (text === json) expect(counted).toBe(truth)
    }
  })
})
