/**
 * What a run needs of each pipeline, kept out of the pipeline's public shape: registered when the pipeline is
 * made, read when it runs (by `Pipeline.run` and by a `Router`).
 */
import type { Plan } from "./runner.js"

export type { Plan }

const plans = new WeakMap<object, Plan>()

export const register = (pipeline: object, plan: Plan): void => {
  plans.set(pipeline, plan)
}

export const planOf = (pipeline: object): Plan => plans.get(pipeline)!
