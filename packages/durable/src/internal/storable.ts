/**
 * Whether a value can be journaled and read back: its schema's encoded form, through JSON (as the store keeps it)
 * and decoded again. A schema can admit what JSON cannot carry (`Schema.Number` admits NaN and Infinity, which
 * JSON writes as null), and such a value would be journaled without complaint, then fail to decode when a resumed
 * run replays it. Checked where a value enters the journal, it fails there, naming what it was.
 */
import * as Data from "effect/Data"
import * as Either from "effect/Either"
import * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"

/**
 * What a step's attempt ended with (its output, or a stop's data) cannot be journaled: the attempt dies with it, and
 * the run fails naming the step.
 */
export class Unjournalable extends Data.TaggedError("Unjournalable")<{
  readonly step: string
  readonly detail: string
}> {
  override get message(): string {
    return `What step "${this.step}" ended with cannot be journaled: ${this.detail}`
  }
}

/**
 * The value, if it survives the journal; else what goes wrong, in words. The schema must need no service (what
 * Trellis journals never does: step outputs, stop data and signals are declared without one).
 */
export const check = <A, I>(schema: Schema.Schema<A, I, unknown>, value: A): Either.Either<A, string> => {
  const codec = schema as Schema.Schema<A, I>
  return Either.flatMap(
    Either.mapLeft(Schema.encodeEither(codec)(value), (error) => `it does not encode: ${error.message}`),
    (encoded) => {
      // Inside an object, as the store keeps it: a field that is undefined is left out, and reads back as such.
      const text = toJson({ value: encoded })
      if (text === undefined) return Either.left("its encoded form is not JSON")
      const readBack = (JSON.parse(text) as { readonly value?: unknown }).value
      return Either.mapLeft(
        ParseResult.decodeUnknownEither(codec)(readBack),
        (error) =>
          `its encoded form does not survive JSON (NaN and Infinity become null; a bigint, a Date or a Map needs a ` +
          `schema that encodes it as text or a plain object): ${ParseResult.TreeFormatter.formatIssueSync(error)}`
      )
    }
  )
}

const toJson = (encoded: unknown): string | undefined => {
  try {
    return JSON.stringify(encoded)
  } catch {
    // A bigint, or a cycle.
    return undefined
  }
}
