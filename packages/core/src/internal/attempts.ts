/**
 * The one retry loop of a step (an item, an iteration): wherever its attempts run (in memory, or each journaled by a
 * durable executor), they are retried here, as the step's policy says. An attempt tells how it ended: ran here,
 * replayed from a journal (its outcome and its retry verdict read back, not run), or suspended (it waits for the
 * outside world, and the run stops for now).
 */
import * as Cause from "effect/Cause"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Schedule from "effect/Schedule"

/** How one attempt ended. A defect or an interruption is not an ending: it ends the step as it is. */
export type Attempted<A, E> =
  | { readonly _tag: "Succeeded"; readonly value: A; readonly replayed: boolean }
  | {
    readonly _tag: "Failed"
    /** What the step fails with if this is its last attempt. */
    readonly error: E
    /** How the attempt failed, as this process saw it (the error alone, for an attempt replayed). */
    readonly cause: Cause.Cause<E>
    /** The policy's verdict on the error: whether another attempt may follow (taken when the attempt ran). */
    readonly retryable: boolean
    readonly replayed: boolean
  }
  | { readonly _tag: "Suspended" }

/** What the loop tells of a step's end beyond its exit. */
export interface Hooks<E> {
  /** Before each attempt after the first, with the cause of the attempt that failed. */
  readonly onRetry?: ((attempt: number, cause: Cause.Cause<E>) => Effect.Effect<void>) | undefined
  /** The step's outcome was read from a journal: it succeeded without running here. */
  readonly onReplayed?: (() => void) | undefined
  /** The step's attempt suspended: the step ends interrupted, and the run stops for now. */
  readonly onSuspended?: (() => void) | undefined
}

/** The retry settings of a policy, as `Step.retryOptions` gives them. */
export interface Retry<E> {
  readonly schedule?: Schedule.Schedule<unknown, E> | undefined
  readonly times?: number | undefined
}

type Failed<E> = Extract<Attempted<unknown, E>, { readonly _tag: "Failed" }>

/**
 * Runs `attempt(1)`, `attempt(2)`... as `retry` says. Whether a failure is retried is the attempt's verdict. The
 * schedule sees the error as this process saw it; after an attempt replayed from a journal it does not wait: that
 * wait was waited, or cut short, where the attempt ran. The step fails with its last attempt's cause, or with the
 * error its executor gives in place of the cause's own (an error as journaled).
 */
export const retrying = <A, E, R>(
  attempt: (number: number) => Effect.Effect<Attempted<A, E>, never, R>,
  retry: Retry<E> | undefined,
  hooks: Hooks<E>
): Effect.Effect<A, E, R> =>
  Effect.suspend(() => {
    let count = 0
    let last: Failed<E> | undefined
    const next: Effect.Effect<A, Failed<E>, R> = Effect.suspend(() => {
      const number = ++count
      const run = last === undefined || hooks.onRetry === undefined
        ? attempt(number)
        : Effect.zipRight(hooks.onRetry(number, last.cause), attempt(number))
      return Effect.flatMap(run, (outcome): Effect.Effect<A, Failed<E>> => {
        switch (outcome._tag) {
          case "Succeeded":
            if (outcome.replayed) hooks.onReplayed?.()
            return Effect.succeed(outcome.value)
          case "Failed":
            last = outcome
            return Effect.fail(outcome)
          case "Suspended":
            hooks.onSuspended?.()
            return Effect.interrupt
        }
      })
    })
    const retried = retry === undefined ? next : retryWith(next, retry)
    return Effect.catchAll(retried, (failed) =>
      Option.getOrUndefined(Cause.failureOption(failed.cause)) === failed.error
        ? Effect.failCause(failed.cause)
        : Effect.fail(failed.error))
  })

const retryWith = <A, E, R>(next: Effect.Effect<A, Failed<E>, R>, retry: Retry<E>): Effect.Effect<A, Failed<E>, R> => {
  const policy = Schedule.mapInput(
    retry.schedule ?? Schedule.forever,
    (failed: Failed<E>) => Option.getOrElse(Cause.failureOption(failed.cause), () => failed.error)
  )
  const schedule = Schedule.modifyDelay(
    Schedule.passthrough(policy),
    (failed, delay) => failed.replayed ? Duration.zero : delay
  )
  const retryable = (failed: Failed<E>) => failed.retryable
  return retry.times === undefined
    ? Effect.retry(next, { schedule, while: retryable })
    : Effect.retry(next, { schedule, times: retry.times, while: retryable })
}

/**
 * One attempt run here: how `effect` ended, as the loop needs it, the policy's `retryable` giving the verdict on a
 * failure.
 */
export const ran = <A, E, R>(
  effect: Effect.Effect<A, E, R>,
  retryable: ((error: E) => boolean) | undefined
): Effect.Effect<Attempted<A, E>, never, R> =>
  Effect.catchAllCause(
    Effect.map(effect, (value): Attempted<A, E> => ({ _tag: "Succeeded", value, replayed: false })),
    (cause) =>
      Option.match(Cause.failureOption(cause), {
        onNone: () => Effect.failCause(cause as Cause.Cause<never>),
        onSome: (error) =>
          Effect.succeed<Attempted<A, E>>({
            _tag: "Failed",
            error,
            cause,
            retryable: retryable !== undefined && retryable(error),
            replayed: false
          })
      })
  )
