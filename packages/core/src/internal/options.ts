/**
 * Checks of the options steps and pipelines share (a timeout, a retry policy), made once when the step or the
 * pipeline is made. Each answers the problem in words, naming the option, or the decoded value.
 */
import * as Duration from "effect/Duration"
import * as Either from "effect/Either"
import * as Schedule from "effect/Schedule"
import * as OptionKeys from "../OptionKeys.js"

/** The most retries a count may ask for: past it, a typo (`1e9`, `Infinity`) would retry for ever. */
export const maxRetries = 1000

/** A timeout: a positive duration, or none. */
export const timeout = (
  option: string,
  input: Duration.DurationInput | undefined
): Either.Either<Duration.Duration | undefined, string> => {
  if (input === undefined) return Either.right(undefined)
  const decoded = Duration.decodeUnknown(input)
  if (decoded._tag === "None" || !(Duration.toMillis(decoded.value) > 0)) {
    return Either.left(`${option} must be a positive duration, got ${describe(input)}`)
  }
  return Either.right(decoded.value)
}

/** A retry policy: a count, a `Schedule`, or `{ times, schedule, while }`, with whole, bounded counts. */
export const retry = (option: string, input: unknown): string | undefined => {
  if (input === undefined || Schedule.isSchedule(input)) return undefined
  if (typeof input === "number") return count(option, input)
  if (typeof input !== "object" || input === null) {
    return `${option} must be a number of retries, a Schedule or { times, schedule, while }, got ${describe(input)}`
  }
  const unknownKey = OptionKeys.unknown(input, ["times", "schedule", "while"], `${option}.`)
  if (unknownKey !== undefined) return unknownKey
  const { schedule, times, while: predicate } = input as Record<string, unknown>
  if (times !== undefined) {
    const problem = typeof times === "number" ? count(`${option}.times`, times) : `${option}.times must be a number`
    if (problem !== undefined) return problem
  }
  if (schedule !== undefined && !Schedule.isSchedule(schedule)) return `${option}.schedule must be a Schedule`
  if (predicate !== undefined && typeof predicate !== "function") return `${option}.while must be a function`
  return undefined
}

const count = (option: string, n: number): string | undefined =>
  Number.isInteger(n) && n >= 0 && n <= maxRetries
    ? undefined
    : `${option} must be a whole number from 0 to ${maxRetries}, got ${describe(n)}`

const describe = (u: unknown): string => (typeof u === "string" ? JSON.stringify(u) : String(u))
