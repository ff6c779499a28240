/**
 * Cancelling a durable run, as its executions see it. `Durable.cancel` writes the run down as cancelled (see
 * `Cancellations`) and resumes it if it is suspended. Each execution of the run looks when it starts and every second
 * while it goes on: once the run is cancelled, no attempt starts, the attempts in flight are interrupted, and each
 * fails with `Cancelled`, journaled with what it spent; a waiting step whose value has not come fails the same way
 * rather than suspend. The run then fails, and its stored outcome says it was cancelled.
 */
import * as Deferred from "effect/Deferred"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Schedule from "effect/Schedule"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import type * as Cancellations from "../Cancellations.js"

/** How often a running execution looks whether its run was cancelled. */
const interval = "1 second"

/** A step's attempt was cut, or not started, because the run was cancelled. Journaled as the attempt's error. */
export class Cancelled extends Schema.TaggedError<Cancelled>("@trellis/durable/Cancelled")("Cancelled", {
  step: Schema.String
}) {
  override get message(): string {
    return `Step "${this.step}" was cancelled with its run`
  }
}

/** What an execution knows of its run's cancellation. */
export interface Cancellation {
  /** Whether the run is cancelled: waits for the execution's first look. */
  readonly isCancelled: Effect.Effect<boolean>
  /** Succeeds once the run is found cancelled. */
  readonly whenCancelled: Effect.Effect<void>
}

/** An execution that cannot be cancelled: the store keeps no cancellations. */
const never: Cancellation = { isCancelled: Effect.succeed(false), whenCancelled: Effect.never }

/**
 * Starts looking whether an execution's run is cancelled, for as long as the scope (the execution's) is open: at once,
 * then every second until it is. A look that fails is logged, and taken as "not cancelled" until the next.
 */
export const watch = (
  cancellations: Option.Option<Cancellations.Service>,
  execution: string
): Effect.Effect<Cancellation, never, Scope.Scope> =>
  Option.match(cancellations, {
    onNone: () => Effect.succeed(never),
    onSome: (cancellations) =>
      Effect.gen(function*() {
        const looked = yield* Deferred.make<void>()
        const found = yield* Deferred.make<void>()
        const look = cancellations.isCancelled(execution).pipe(
          Effect.flatMap((isCancelled) => isCancelled ? Deferred.succeed(found, undefined) : Effect.void),
          Effect.catchAll((error) => Effect.logWarning("Looking whether a durable run is cancelled failed", error)),
          Effect.zipRight(Deferred.succeed(looked, undefined))
        )
        // Looks until the run is found cancelled, or the execution ends.
        yield* Effect.forkScoped(Effect.raceFirst(Effect.repeat(look, Schedule.spaced(interval)), Deferred.await(found)))
        return {
          isCancelled: Effect.zipRight(Deferred.await(looked), Deferred.isDone(found)),
          whenCancelled: Deferred.await(found)
        }
      })
  })
