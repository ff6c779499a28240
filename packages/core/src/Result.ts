/**
 * What a pipeline run returns: completed, or stopped on purpose by a step.
 *
 * @since 0.1.0
 */
import type * as Usage from "./Usage.js"

/**
 * Usage in total and attributed to the step that consumed it.
 *
 * @since 0.1.0
 */
export interface UsageReport {
  readonly total: Usage.Usage
  readonly byStep: Readonly<Record<string, Usage.Usage>>
}

/**
 * When one step ran, in milliseconds of the run's `Clock` (so `TestClock` in tests).
 *
 * @since 0.1.0
 */
export interface StepTiming {
  readonly step: string
  readonly status: "succeeded" | "failed" | "stopped" | "interrupted"
  readonly startedAt: number
  readonly endedAt: number
  readonly attempts: number
  /** For a part of a step made of steps (an item, an iteration, a sub-pipeline's step), that step's name. */
  readonly parent?: string | undefined
}

/**
 * What a run had finished when it ended early: kept on every error so that nothing done or paid for is lost.
 *
 * @since 0.1.0
 */
export interface PartialResult {
  readonly pipeline: string
  /** Outputs of the steps that finished, by step name. */
  readonly outputs: Readonly<Record<string, unknown>>
  readonly usage: UsageReport
  readonly timeline: ReadonlyArray<StepTiming>
}

/**
 * A run in which every step finished.
 *
 * @since 0.1.0
 */
export interface Completed<A, Outputs> {
  readonly _tag: "Completed"
  readonly pipeline: string
  readonly output: A
  /** Every step's output, by step name. */
  readonly outputs: Outputs
  readonly usage: UsageReport
  readonly timeline: ReadonlyArray<StepTiming>
}

/**
 * A run that a step ended on purpose with `Pipeline.stop(data)`.
 *
 * `outputs` holds exactly the outputs of the stopping step's dependencies (direct and indirect): those are the
 * steps that must have finished before it, so the set does not depend on scheduling order. Usage covers
 * everything that ran, including siblings that were interrupted.
 *
 * @since 0.1.0
 */
export interface Stopped<Outputs, D> {
  readonly _tag: "Stopped"
  readonly pipeline: string
  readonly step: string
  readonly data: D
  readonly outputs: Partial<Outputs>
  readonly usage: UsageReport
  readonly timeline: ReadonlyArray<StepTiming>
}

/**
 * The result of a run: `Completed`, or `Stopped` when one of its steps can stop it.
 *
 * @since 0.1.0
 */
export type Result<A, Outputs, D> = [D] extends [never] ? Completed<A, Outputs>
  : Completed<A, Outputs> | Stopped<Outputs, D>

/**
 * Whether the run completed.
 *
 * @since 0.1.0
 */
export const isCompleted = <A, O, D>(result: Completed<A, O> | Stopped<O, D>): result is Completed<A, O> =>
  result._tag === "Completed"

/**
 * Whether a step stopped the run on purpose.
 *
 * @since 0.1.0
 */
export const isStopped = <A, O, D>(result: Completed<A, O> | Stopped<O, D>): result is Stopped<O, D> =>
  result._tag === "Stopped"
