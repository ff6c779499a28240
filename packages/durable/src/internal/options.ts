/**
 * Checks of the durations a store is given, made before anything is opened: Effect reads a negative or NaN number
 * of milliseconds as zero, so a typo would have the store poll its database without pause, or prune every finished
 * run at once.
 */
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import * as Either from "effect/Either"

/**
 * An option given to a store, or to a pruning, cannot be right: the message names it and what was given.
 *
 * @since 0.2.0
 */
export class InvalidOption extends Data.TaggedError("InvalidOption")<{
  readonly option: string
  readonly detail: string
}> {
  override get message(): string {
    return `Invalid ${this.option}: ${this.detail}`
  }
}

/**
 * A duration option: not negative, not NaN, and longer than zero unless `zero` allows it (infinite is allowed).
 * Effect reads a negative or NaN amount as zero, so the sign is checked on what was given.
 */
export const duration = (
  option: string,
  input: unknown,
  { zero }: { readonly zero: boolean }
): Either.Either<Duration.Duration, InvalidOption> => {
  const decoded = negative(input) ? undefined : Duration.decodeUnknown(input)
  if (decoded === undefined || decoded._tag === "None" || (!zero && Duration.isZero(decoded.value))) {
    const wanted = zero ? "a duration of zero or more" : "a duration longer than zero"
    return Either.left(new InvalidOption({ option, detail: `${wanted} is needed, got ${describe(input)}` }))
  }
  return Either.right(decoded.value)
}

/** Whether a duration as given has a negative (or NaN) amount. */
const negative = (input: unknown): boolean => {
  if (typeof input === "number") return !(input >= 0)
  if (typeof input === "bigint") return input < BigInt(0)
  if (typeof input === "string") return /^\s*-/.test(input)
  if (Array.isArray(input)) return input.some((part) => !(part >= 0))
  return false
}

const describe = (input: unknown): string =>
  typeof input === "string" ? JSON.stringify(input) : Array.isArray(input) ? `[${input.join(", ")}]` : String(input)
