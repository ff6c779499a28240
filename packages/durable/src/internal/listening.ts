/**
 * A durable run's listener: the events of a plain run, with a replay and a suspension told as such. A step whose
 * output is read from the journal (an item, an iteration or a sub-pipeline's step too, named by its path in the run)
 * ends with `StepReplayed` in place of `StepSucceeded`. A waiting step suspends the
 * run by interrupting it, which the pipeline reports as that step interrupted and the run failed; while the engine
 * says the run is suspended, those two events are told as `StepSuspended` and `RunSuspended` instead.
 */
import type { WorkflowInstance } from "@effect/workflow/WorkflowEngine"
import type { Event } from "@trellis/core"
import type * as Durable from "../Durable.js"

/**
 * The core listener for one execution, telling `listener` its events; `replayed` holds the names in the run of the
 * steps whose output the execution read from the journal.
 */
export const forExecution = (
  listener: Durable.Listener,
  id: string,
  instance: WorkflowInstance["Type"],
  isWaiting: (step: string) => boolean,
  replayed: ReadonlySet<string>
): Event.Listener =>
(event) => {
  if (event._tag === "StepSucceeded" && replayed.has(event.step)) {
    const { at, durationMs, pipeline, step } = event
    return listener({ _tag: "StepReplayed", pipeline, step, at, durationMs }, id)
  }
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
