/**
 * A pipeline used as a step of another. Its output is the step's output; its errors and requirements join the
 * enclosing pipeline's (what `input` provides excepted); a stop inside it stops the enclosing run. Its steps are steps
 * of the enclosing run, named by their paths (`research/extract`): their events reach the enclosing run's listener,
 * their spans sit under the step's, their usage has its own lines, their timings are in the enclosing timeline, and a
 * durable run journals them as its own steps. Its spend is the enclosing run's (one budget); a budget of its own
 * binds too, and a refusal names whose budget it was.
 *
 * @since 0.3.0
 */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Composite from "./internal/composite.js"
import * as Plans from "./internal/plans.js"
import type { StopSignal } from "./internal/stop.js"
import * as OptionKeys from "./OptionKeys.js"
import type * as Pipeline from "./Pipeline.js"
import type { BudgetOverrun, PipelineTimeout } from "./PipelineError.js"
import * as Step from "./Step.js"

/**
 * Options of {@link make}.
 *
 * @since 0.3.0
 * @category models
 */
export interface Options<Deps extends Step.Dependencies, P extends Pipeline.Any, I> {
  /** The steps this one needs; their outputs arrive under the same keys. */
  readonly after?: Deps | undefined
  /** The pipeline to run. */
  readonly pipeline: P
  /** Services the pipeline takes as its input, made from the dependencies' outputs. */
  readonly input?: ((inputs: Step.Inputs<Deps>) => Context.Context<I>) | undefined
}

/**
 * The errors a step made of `P` can fail with: its steps' errors, a stop inside it (which stops the enclosing run),
 * and what can end it as a whole: its own timeout, and its own budget passed.
 *
 * @since 0.3.0
 * @category models
 */
export type Errors<P> = P extends Pipeline.Pipeline<any, infer E, any, any, infer D>
  ? E | ([D] extends [never] ? never : StopSignal<D>) | PipelineTimeout | BudgetOverrun
  : never

/**
 * Makes a step that runs `pipeline`.
 *
 * @example
 * ```ts
 * const research = SubPipeline.make("research", {
 *   after: { company },
 *   pipeline: researchPipeline,
 *   input: ({ company }) => Context.make(Company, company)
 * })
 * ```
 *
 * @since 0.3.0
 * @category constructors
 */
export const make = <
  const Name extends string,
  A,
  E,
  R,
  O,
  D,
  I = never,
  const Deps extends Step.Dependencies = {}
>(
  name: Name,
  options: Options<Deps, Pipeline.Pipeline<A, E, R, O, D>, I>
): Step.Step<Name, A, Errors<Pipeline.Pipeline<A, E, R, O, D>>, Exclude<R, I>, Deps> => {
  const unknownKey = OptionKeys.unknown(options, ["after", "pipeline", "input"])
  if (unknownKey !== undefined) throw new Step.InvalidStep({ step: name, detail: unknownKey })
  const { input, pipeline } = options
  const plan = Plans.planOf(pipeline) as Plans.Plan | undefined
  if (plan === undefined) throw new Step.InvalidStep({ step: name, detail: "pipeline must be made by Pipeline.make" })
  if (input !== undefined && typeof input !== "function") {
    throw new Step.InvalidStep({ step: name, detail: `input must be a function, got ${typeof input}` })
  }
  const step: Step.Step<Name, A, Errors<Pipeline.Pipeline<A, E, R, O, D>>, Exclude<R, I>, Deps> = Composite.make(
    Step.makeEither(name, {
      after: options.after,
      output: pipeline.output.output,
      run: (inputs) =>
        Effect.flatMap(
          Composite.parts(step),
          (parts) => parts.pipeline(parts.path, plan, input?.(inputs) as Context.Context<never> | undefined)
        ) as Effect.Effect<any, any, any>
    }),
    { _tag: "SubPipeline", pipeline }
  )
  return step
}
