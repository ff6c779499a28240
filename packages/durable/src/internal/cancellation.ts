/**
 * Cancelling a durable run, as its executions see it. `Durable.cancel` writes the run down as cancelled (see
 * `Cancellations`) and resumes it if it is suspended. Each execution of the run watches it while it goes on: once the
 * run is cancelled, no attempt starts, the attempts in flight are interrupted, and each fails with `Cancelled`,
 * journaled with what it spent; a waiting step whose value has not come fails the same way rather than suspend. The
 * run then fails, and its stored outcome says it was cancelled.
 */
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Schema from "effect/Schema"
import type * as Scope from "effect/Scope"
import type * as Cancellations from "../Cancellations.js"

/**
 * The key core reads to know an error is a decision, not an accident: a cancellation ends a map that tolerates its
 * items' failures, as a stop or a refused budget does.
 */
const decision: unique symbol = Symbol.for("@trellis/core/Decision")

/** A step's attempt was cut, or not started, because the run was cancelled. Journaled as the attempt's error. */
export class Cancelled extends Schema.TaggedError<Cancelled>("@trellis/durable/Cancelled")("Cancelled", {
  step: Schema.String
}) {
  get [decision](): true {
    return true
  }

  override get message(): string {
    return `Step "${this.step}" was cancelled with its run`
  }
}

/** An execution on a store that keeps no cancellations: never cancelled. */
const never: Cancellations.Watch = { isCancelled: Effect.succeed(false), whenCancelled: Effect.never }

/** Watches an execution's run for as long as the scope (the execution's) is open, if the store keeps cancellations. */
export const watch = (
  cancellations: Option.Option<Cancellations.Service>,
  execution: string
): Effect.Effect<Cancellations.Watch, never, Scope.Scope> =>
  Option.match(cancellations, { onNone: () => Effect.succeed(never), onSome: (service) => service.watch(execution) })
