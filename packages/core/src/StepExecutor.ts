/**
 * The one place where a pipeline step is executed: given the step, its inputs and its policy, run its attempts.
 *
 * The runner decides what runs when; the executor decides how a step's attempts run. The default runs them in
 * memory under the step's timeout and retries. Another executor (a durable one that journals each step's output,
 * say) is put in its place with a layer, without touching scheduling, events or accounting.
 *
 * @since 0.1.0
 */
import type * as Cause from "effect/Cause"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Step from "./Step.js"

/**
 * One step to execute.
 *
 * @since 0.1.0
 */
export interface Execution<A, E, R> {
  readonly pipeline: string
  /**
   * The name the run knows it by: the step's own, or the path of a part of a step made of steps (`sections[3]` for an
   * item, `refine#2` for an iteration, `research/extract` for a step of a sub-pipeline). Unique within the run.
   */
  readonly name: string
  readonly step: Step.Step<string, A, E, R, any>
  /** The outputs of the step's dependencies, under the keys of its `after`. */
  readonly inputs: Step.Inputs<Step.Dependencies>
  /** The step's policy, resolved: the step's own settings, else the pipeline's defaults. */
  readonly policy: Step.Policy<E>
  /** To run before each attempt after the first, with the cause of the attempt that failed. */
  readonly onRetry: (attempt: number, cause: Cause.Cause<E | Step.StepTimeout>) => Effect.Effect<void>
}

/**
 * The executor service.
 *
 * @since 0.1.0
 */
export interface Service {
  readonly execute: <A, E, R>(execution: Execution<A, E, R>) => Effect.Effect<A, E | Step.StepTimeout, R>
}

/**
 * The executor pipelines run their steps with; {@link local} when none is provided.
 *
 * @since 0.1.0
 */
export class StepExecutor extends Context.Tag("@trellis/core/StepExecutor")<StepExecutor, Service>() {}

/**
 * Runs a step's attempts in memory: the step's effect, given its inputs, under its timeout and retries.
 *
 * @since 0.1.0
 */
export const local: Service = {
  execute: ({ inputs, name, onRetry, policy, step }) =>
    Step.withPolicy(Effect.suspend(() => step.run(inputs)), {
      step: name,
      timeout: policy.timeout,
      retry: policy.retry,
      onRetry
    })
}

/**
 * Makes an executor.
 *
 * @since 0.1.0
 */
export const make = (execute: Service["execute"]): Service => ({ execute })

/**
 * A layer providing an executor.
 *
 * @since 0.1.0
 */
export const layer = (service: Service): Layer.Layer<StepExecutor> => Layer.succeed(StepExecutor, service)
