/**
 * Keeps secrets (API keys) out of the text a provider's errors are made of, by their value: a server may echo a key
 * back in an error body, and from there it would reach logs, spans, recordings and journals. Patterns
 * (`Provider.errorDetail`) only catch keys of known shapes; a provider that knows its keys removes them whatever
 * their shape (a Groq `gsk_...` key, a Mistral key, a proxy's token).
 *
 * @since 0.3.0
 */
import * as Redacted from "effect/Redacted"

/**
 * What stands in for a secret in a text.
 *
 * @since 0.3.0
 * @category constants
 */
export const placeholder = "<redacted>"

/**
 * The secrets an option gives: one, or several (a key and a proxy's token).
 *
 * @since 0.3.0
 * @category models
 */
export type Secrets = Redacted.Redacted<string> | ReadonlyArray<Redacted.Redacted<string>>

/**
 * Whether a value is {@link Secrets}: a `Redacted` string, or an array of them. The value of a `Redacted` is not
 * read here, so a check can fail without showing it.
 *
 * @since 0.3.0
 * @category guards
 */
export const isSecrets = (value: unknown): value is Secrets =>
  Array.isArray(value) ? value.every(Redacted.isRedacted) : Redacted.isRedacted(value)

const escapeRegExp = (text: string) => text.replace(/[.*+?^${}()|[\]\\/-]/g, "\\$&")

// One secret as a pattern: raw, JSON-escaped (`\/`, `\u0041`, escaped again inside a JSON string) or
// percent-encoded, in any case.
const patternOf = (secret: string): RegExp =>
  new RegExp(
    Array.from(secret).map((char) => {
      const code = char.codePointAt(0)!
      if (code > 0xffff) return escapeRegExp(char)
      const hex = code.toString(16).padStart(4, "0")
      const ways = [escapeRegExp(char), `\\\\+u${hex}`]
      if (code < 0x80) ways.push(`%${hex.slice(2)}`)
      if (char === "/" || char === "\"" || char === "\\") ways.push(`\\\\+${escapeRegExp(char)}`)
      return `(?:${ways.join("|")})`
    }).join(""),
    "gi"
  )

/**
 * A function that replaces every one of the secrets in a text with {@link placeholder}, whatever way a server chose
 * to echo it: raw, JSON-escaped or percent-encoded, in any case. Empty secrets are skipped (there is nothing to
 * remove); the longest are removed first, so a secret that holds another goes whole.
 *
 * @since 0.3.0
 * @category constructors
 */
export const scrubber = (secrets: Secrets | undefined): (text: string) => string => {
  const list: ReadonlyArray<Redacted.Redacted<string>> = secrets === undefined
    ? []
    : Redacted.isRedacted(secrets)
    ? [secrets as Redacted.Redacted<string>]
    : secrets as ReadonlyArray<Redacted.Redacted<string>>
  const values = list
    .map((secret) => Redacted.value(secret))
    .filter((value) => value.length > 0)
    .sort((a, b) => b.length - a.length)
  if (values.length === 0) return (text) => text
  const patterns = values.map(patternOf)
  return (text) => patterns.reduce((scrubbed, pattern) => scrubbed.replace(pattern, placeholder), text)
}
