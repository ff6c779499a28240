import * as Context from "effect/Context"
import type * as Fiber from "effect/Fiber"
import type * as FiberRef from "effect/FiberRef"

/**
 * The step a run is running on a fiber. The runner puts it in the step's context, next to the step's span, so
 * that starting a step changes one `FiberRef` (the context) rather than two.
 */
export interface RunningStep {
  readonly step: string
  /** The value `Ledger.currentStep` had when the run started: a different value was set inside the step. */
  readonly outer: string
}

export const RunningStep = Context.GenericTag<RunningStep>("@trellis/core/RunningStep")

/**
 * The step that usage recorded on this fiber belongs to: `currentStep` when code inside the step set it (for
 * example a nested run meters into its enclosing step this way), otherwise the running step, otherwise
 * `currentStep` as it is.
 */
export const attributedStep = (
  fiber: Fiber.RuntimeFiber<unknown, unknown>,
  currentStep: FiberRef.FiberRef<string>
): string => {
  const explicit = fiber.getFiberRef(currentStep)
  const running = fiber.currentContext.unsafeMap.get(RunningStep.key) as RunningStep | undefined
  return running === undefined || explicit !== running.outer ? explicit : running.step
}
