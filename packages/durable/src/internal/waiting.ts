/**
 * Waiting steps: steps made by `Durable.await`, whose output is a value delivered from outside the run. A durable
 * run executes them in the workflow itself rather than as Activities, on a `DurableDeferred`: the value is stored by
 * the engine, and a run that reaches the step before the value arrives is suspended until it does.
 */
import * as DurableDeferred from "@effect/workflow/DurableDeferred"
import { WorkflowEngine, type WorkflowInstance } from "@effect/workflow/WorkflowEngine"
import type { Step } from "@trellis/core"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import type * as Schema from "effect/Schema"
import type * as Cancellations from "../Cancellations.js"
import * as Cancellation from "./cancellation.js"

/**
 * Where a waiting step gets its value. A durable run provides it to its waiting steps; a plain run of the same
 * pipeline needs one of the caller's (in a test, answers given in advance).
 *
 * @since 0.2.0
 */
export class Signals extends Context.Tag("@trellis/durable/Signals")<Signals, {
  /** The value delivered under `name`, once there is one; fails if the run is cancelled before. */
  readonly await: <A, I>(name: string, schema: Schema.Schema<A, I, never>) => Effect.Effect<A, Cancellation.Cancelled>
}>() {}

const waiting = new WeakSet<Step.Any>()

/** Marks a step as a waiting one. */
export const mark = <S extends Step.Any>(step: S): S => {
  waiting.add(step)
  return step
}

/** Whether a step is a waiting one. */
export const isWaiting = (step: Step.Any): boolean => waiting.has(step)

/** What the names of the deferreds that carry waiting steps' values start with (the rest is the step's name). */
export const signalPrefix = "Signal/"

/** The deferred a waiting step's value is stored under. */
export const deferred = <A, I>(name: string, schema: Schema.Schema<A, I, never>) =>
  DurableDeferred.make(signalPrefix + name, { success: schema })

/**
 * The signals of one execution: a value already delivered is returned at once; otherwise the run is suspended (the
 * engine lets the Activities in flight beside it finish first, so none is cut and run again on resume), or, once the
 * run is cancelled, the step fails with `Cancelled`.
 */
export const signals = (
  services: Context.Context<WorkflowEngine | WorkflowInstance>,
  cancellation: Cancellations.Watch
): Context.Tag.Service<Signals> => ({
  await: (name, schema) => {
    const signal = deferred(name, schema)
    return Effect.flatMap(cancellation.isCancelled, (isCancelled) =>
      isCancelled
        ? Effect.flatMap(WorkflowEngine, (engine) => engine.deferredResult(signal)).pipe(
          Effect.provide(services),
          Effect.flatMap((exit) => exit === undefined ? Effect.fail(new Cancellation.Cancelled({ step: name })) : exit)
        )
        : Effect.provide(DurableDeferred.await(signal), services))
  }
})
