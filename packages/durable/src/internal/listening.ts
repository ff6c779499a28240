/**
 * A durable run's listener: the events of a plain run, with a suspension told as one. A waiting step suspends the
 * run by interrupting it, which the pipeline reports as that step interrupted and the run failed; while the engine
 * says the run is suspended, those two events are told as `StepSuspended` and `RunSuspended` instead.
 */
import type { WorkflowInstance } from "@effect/workflow/WorkflowEngine"
import type { Event } from "@trellis/core"
import type * as Durable from "../Durable.js"

/** The core listener for one execution, telling `listener` its events. */
export const forExecution = (
  listener: Durable.Listener,
  id: string,
  instance: WorkflowInstance["Type"],
  isWaiting: (step: string) => boolean
): Event.Listener =>
(event) => {
  if (instance.suspended) {
    if (event._tag === "StepInterrupted" && isWaiting(event.step)) {
      const { at, durationMs, pipeline, step } = event
      return listener({ _tag: "StepSuspended", pipeline, step, at, durationMs }, id)
    }
    if (event._tag === "RunFinished") {
      const { at, pipeline, usage } = event
      return listener({ _tag: "RunSuspended", pipeline, usage, at }, id)
    }
  }
  return listener(event, id)
}
