import { describe, expect, it } from "@effect/vitest"
import { Tokenizer } from "../src/index.js"

describe("Tokenizer", () => {
  it("counts text that spells a special token as text, rather than throwing", () => {
    const text = "The model wrote <|endoftext|> and went on."
    expect(Tokenizer.o200k.count(text)).toBeGreaterThan(Tokenizer.o200k.count("The model wrote and went on."))
    expect(Tokenizer.o200k.countOutput(text)).toBe(Tokenizer.o200k.count(text))
  })
})
