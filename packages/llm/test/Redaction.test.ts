import { describe, expect, it } from "@effect/vitest"
import { Redacted } from "effect"
import { Redaction } from "../src/index.js"

const key = "gsk_live/abc-123\"DEF"

describe("Redaction.scrubber", () => {
  it("removes a secret whatever way a server echoed it: raw, JSON-escaped, percent-encoded, in another case", () => {
    const scrub = Redaction.scrubber(Redacted.make(key))
    const json = JSON.stringify({ message: `bad key ${key}` })
    const unicode = Array.from(key).map((char) => `\\u${char.charCodeAt(0).toString(16).padStart(4, "0")}`).join("")
    const texts = [
      `bad key ${key}`,
      json,
      JSON.stringify(json),
      `bad key ${unicode}`,
      `bad key ${encodeURIComponent(key)}`,
      `bad key ${key.toUpperCase()}`
    ]
    for (const text of texts) {
      const scrubbed = scrub(text)
      expect(scrubbed).toContain(Redaction.placeholder)
      expect(scrubbed.toLowerCase()).not.toContain("abc-123")
      expect(scrubbed).not.toContain("abc\\u002d123")
    }
  })

  it("removes every secret given, the longest first; an empty one is skipped, and none leaves the text as it is", () => {
    const scrub = Redaction.scrubber([Redacted.make("abc"), Redacted.make("abcdef-token"), Redacted.make("")])
    expect(scrub("a abcdef-token and abc")).toBe("a <redacted> and <redacted>")
    expect(Redaction.scrubber(undefined)("abc")).toBe("abc")
    expect(Redaction.scrubber([])("abc")).toBe("abc")
  })

  it("isSecrets accepts Redacted strings and arrays of them, nothing else", () => {
    expect(Redaction.isSecrets(Redacted.make("k"))).toBe(true)
    expect(Redaction.isSecrets([Redacted.make("k")])).toBe(true)
    expect(Redaction.isSecrets("k")).toBe(false)
    expect(Redaction.isSecrets([Redacted.make("k"), "k"])).toBe(false)
  })
})
