/**
 * What happens during a run, as it happens: enough to draw a progress display.
 *
 * Every step that starts gets exactly one end event: `StepSucceeded` (or `StepReplayed`, its output read from a
 * journal), `StepFailed`, `StepStopped`, or `StepInterrupted` (stopped from outside the step: a sibling's failure or
 * stop, the run's timeout, or the run's interruption; `StepSuspended` when the step waits for the outside world). A
 * run ends with `RunFinished`, or `RunSuspended` when a step suspended it. The parts of a step made of steps (a `ForEach`'s items, a `Loop`'s iterations, a `SubPipeline`'s
 * steps) are steps of the run here too, named by their path (`sections[3]`, `refine#2`, `research/extract`), their
 * `StepStarted` naming the step they belong to.
 *
 * @since 0.1.0
 */
import type * as Cause from "effect/Cause"
import * as Data from "effect/Data"
import type * as Effect from "effect/Effect"
import type * as Cost from "./Cost.js"
import type * as Usage from "./Usage.js"

/**
 * An event of a run. `at` is the run's clock in milliseconds.
 *
 * @since 0.1.0
 */
export type Event = Data.TaggedEnum<{
  RunStarted: { readonly pipeline: string; readonly steps: ReadonlyArray<string>; readonly at: number }
  StepStarted: {
    readonly pipeline: string
    readonly step: string
    readonly at: number
    /**
     * For a part of a step made of steps (an item of a `ForEach`, an iteration of a `Loop`, a step of a
     * `SubPipeline`), the name of that step; absent for a step of the pipeline itself.
     */
    readonly parent?: string | undefined
  }
  StepRetrying: {
    readonly pipeline: string
    readonly step: string
    /** The attempt about to start, from 2. */
    readonly attempt: number
    /** Why the attempt before it failed. */
    readonly cause: Cause.Cause<unknown>
    readonly at: number
  }
  StepSucceeded: { readonly pipeline: string; readonly step: string; readonly at: number; readonly durationMs: number }
  StepFailed: {
    readonly pipeline: string
    readonly step: string
    readonly cause: Cause.Cause<unknown>
    readonly at: number
    readonly durationMs: number
  }
  StepStopped: { readonly pipeline: string; readonly step: string; readonly at: number; readonly durationMs: number }
  /**
   * The step's output was read from a journal (an executor that keeps one, such as a durable run's, had it from an
   * earlier execution of the run): its end event, in place of `StepSucceeded`.
   */
  StepReplayed: { readonly pipeline: string; readonly step: string; readonly at: number; readonly durationMs: number }
  /**
   * The step waits for the outside world (a durable run's waiting step whose value has not come): its end event, in
   * place of `StepInterrupted`. The run stops for now, and ends with `RunSuspended`.
   */
  StepSuspended: { readonly pipeline: string; readonly step: string; readonly at: number; readonly durationMs: number }
  StepInterrupted: {
    readonly pipeline: string
    readonly step: string
    readonly at: number
    readonly durationMs: number
  }
  UsageRecorded: { readonly pipeline: string; readonly step: string; readonly usage: Usage.Usage }
  /**
   * A call cost more than it reserved, by less than a lie would (a server counting tokens otherwise than the
   * reservation did): recorded as reported, and the run goes on while its spend is within the budget. Comes just
   * before the call's `UsageRecorded`.
   */
  ReservationExceeded: {
    readonly pipeline: string
    readonly step: string
    readonly reserved: Cost.Cost
    readonly cost: Cost.Cost
  }
  RunFinished: {
    readonly pipeline: string
    readonly status: "completed" | "stopped" | "failed" | "interrupted"
    readonly usage: Usage.Usage
    readonly at: number
  }  /**
   * A step suspended the run: the run's last event for now, in place of `RunFinished`. The run goes on, with
   * `RunStarted`, when what it waits for arrives.
   */
  RunSuspended: { readonly pipeline: string; readonly usage: Usage.Usage; readonly at: number }
}>

/**
 * The events' constructors, `$is` and `$match`.
 *
 * @example
 * ```ts
 * const line = Event.$match(event, {
 *   StepStarted: ({ step }) => `${step} started`,
 *   ...
 * })
 * ```
 *
 * @since 0.1.0
 */
export const {
  $is,
  $match,
  RunFinished,
  ReservationExceeded,
  RunStarted,
  RunSuspended,
  StepFailed,
  StepInterrupted,
  StepReplayed,
  StepRetrying,
  StepStarted,
  StepStopped,
  StepSucceeded,
  StepSuspended,
  UsageRecorded
} = Data.taggedEnum<Event>()

/**
 * Receives events in the order they happen, on the fiber where they happen. It may return an `Effect`, which runs
 * there before the run goes on (so keep it quick, or hand the event to a queue); it cannot fail.
 *
 * @since 0.1.0
 */
export type Listener = (event: Event) => void | Effect.Effect<void>
