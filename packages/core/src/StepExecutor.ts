/**
 * The one place where a pipeline step is executed: given the step, its inputs and its policy, run its attempts.
 *
 * The runner decides what runs when; the executor decides how a step's attempts run. The default runs them in
 * memory under the step's timeout and retries. Another executor (a durable one that journals each attempt, say) is
 * put in its place with a layer, without touching scheduling, events or accounting: made with {@link fromAttempt},
 * it runs one attempt at a time (of a step, an item or an iteration) and says whether it ran, was replayed from its
 * journal, or suspended, while the retry loop and the step's lifecycle stay the runner's.
 *
 * @since 0.1.0
 */
import type * as Cause from "effect/Cause"
import * as Context from "effect/Context"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Attempts from "./internal/attempts.js"
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
  /** To call when the step's output was read from a journal rather than run: it ends with `StepReplayed`. */
  readonly onReplayed?: (() => void) | undefined
  /** To call when the step's attempt suspended the run: it ends with `StepSuspended`, the run with `RunSuspended`. */
  readonly onSuspended?: (() => void) | undefined
}

/**
 * One attempt of a step (an item, an iteration) to run.
 *
 * @since 0.3.0
 */
export interface Attempt<A, E, R> {
  readonly pipeline: string
  /** The step's name in the run (see {@link Execution}). */
  readonly name: string
  readonly step: Step.Step<string, A, E, R, any>
  readonly inputs: Step.Inputs<Step.Dependencies>
  /** The attempt's number: 1 for the first, one more for each retry. */
  readonly number: number
  /** Time allowed for the attempt. */
  readonly timeout: Duration.Duration | undefined
  /**
   * The policy's verdict on an error of the attempt: whether another attempt may follow. An executor that journals
   * the attempt keeps the verdict with it, as a journaled error may not be the error itself.
   */
  readonly retryable: (error: E | Step.StepTimeout) => boolean
}

/**
 * How one attempt ended: it succeeded or failed, here (`replayed: false`) or in an earlier execution whose outcome a
 * journal keeps (`replayed: true`), or it suspended the run. A defect or an interruption ends the step as it is.
 *
 * @since 0.3.0
 */
export type Attempted<A, E> = Attempts.Attempted<A, E | Step.StepTimeout>

/**
 * The executor service.
 *
 * @since 0.1.0
 */
export interface Service {
  readonly execute: <A, E, R>(execution: Execution<A, E, R>) => Effect.Effect<A, E | Step.StepTimeout, R>
  /** Runs one attempt, for an executor made with {@link fromAttempt}. */
  readonly attempt?: (<A, E, R>(attempt: Attempt<A, E, R>) => Effect.Effect<Attempted<A, E>, never, R>) | undefined
}

/**
 * The executor pipelines run their steps with; {@link local} when none is provided.
 *
 * @since 0.1.0
 */
export class StepExecutor extends Context.Tag("@trellis/core/StepExecutor")<StepExecutor, Service>() {}

/**
 * Runs a step's attempts, one at a time through `attempt`, as its policy says: the retry loop every executor made
 * with {@link fromAttempt} shares. Whether a failure is retried is the attempt's verdict; after an attempt replayed
 * from a journal the policy's schedule does not wait (it was waited, or cut short, where the attempt ran); the
 * execution is told when the step's output was replayed, or when it suspended.
 *
 * @since 0.3.0
 */
export const attempts = <A, E, R>(
  attempt: NonNullable<Service["attempt"]>,
  execution: Execution<A, E, R>
): Effect.Effect<A, E | Step.StepTimeout, R> => {
  const { inputs, name, onReplayed, onRetry, onSuspended, pipeline, policy, step } = execution
  const retry = Step.retryOptions(policy.retry)
  const retryable = (error: E | Step.StepTimeout) => retry !== undefined && retry.while(error)
  return Attempts.retrying(
    (number) => attempt({ pipeline, name, step, inputs, number, timeout: policy.timeout, retryable }),
    retry,
    { onRetry, onReplayed, onSuspended }
  )
}

/**
 * Makes an executor from how it runs one attempt: the retry loop is {@link attempts}.
 *
 * @since 0.3.0
 */
export const fromAttempt = (attempt: NonNullable<Service["attempt"]>): Service => ({
  attempt,
  execute: (execution) => attempts(attempt, execution)
})

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
    }),
  attempt: ({ inputs, name, retryable, step, timeout }) =>
    Attempts.ran(Step.withPolicy(Effect.suspend(() => step.run(inputs)), { step: name, timeout }), retryable)
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
