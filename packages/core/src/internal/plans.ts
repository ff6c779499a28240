/**
 * What a run needs of each pipeline, kept out of the pipeline's public shape: registered when the pipeline is
 * made, read when it runs (by `Pipeline.run` and by a `Router`).
 */
import type * as Duration from "effect/Duration"
import type * as Cost from "../Cost.js"
import type * as Step from "../Step.js"
import type { Graph } from "./graph.js"

/** What a run needs to know of a pipeline; made once per pipeline. */
export interface Plan {
  readonly name: string
  readonly graph: Graph
  readonly concurrency: number
  readonly budget: Cost.Cost | undefined
  readonly timeout: Duration.Duration | undefined
  /**
   * Each step's policy, by index: its own settings, else the pipeline's defaults (typed by the pipeline's errors
   * there, opaque here).
   */
  readonly policies: ReadonlyArray<Step.Policy<any>>
}

const plans = new WeakMap<object, Plan>()

export const register = (pipeline: object, plan: Plan): void => {
  plans.set(pipeline, plan)
}

export const planOf = (pipeline: object): Plan => plans.get(pipeline)!
