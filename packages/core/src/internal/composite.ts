/**
 * What the steps made of steps (`ForEach`, `Loop`, `SubPipeline`) share: how such a step is made, and how it runs its
 * parts, in a pipeline as steps of the run, or alone (`Step.runWith`) as plain effects under its policy.
 */
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Step from "../Step.js"
import * as Context from "effect/Context"
import { StepFailed } from "../PipelineError.js"
import type * as Result from "../Result.js"
import { type Nest, Nesting, part, runGroup, runPart } from "./nest.js"
import type { Plan } from "./plans.js"
import { run, runNested } from "./run.js"
import { StopSignal } from "./stop.js"

/** Makes the step and marks what it is made of. */
export const make = <S extends Step.Any>(made: Either.Either<S, Step.InvalidStep>, shape: Step.Shape): S =>
  Either.getOrThrowWith(Either.map(made, (step) => Object.assign(step, { shape })), (e) => e)

/** Runs the parts of one step made of steps. */
export interface Parts {
  /** Runs one part, named `name` in the run, journaled through `output` (and the step's error schema). */
  readonly run: <A, E, R>(
    name: string,
    effect: Effect.Effect<A, E, R>,
    output: Step.Any["output"]
  ) => Effect.Effect<A, E | Step.StepTimeout, R>
  /**
   * Runs a pipeline as one part named `name` in the run, its steps parts of that part (`name/extract`), given the
   * services `input` makes; named as the step itself (`path`), its steps are the step's own parts.
   */
  readonly pipeline: (name: string, plan: Plan, input: Context.Context<never> | undefined) => Effect.Effect<unknown, unknown, unknown>
  /** The step's name in the run: its parts' names start with it. */
  readonly path: string
}

/**
 * The parts runner of `step`: in a pipeline, each part is a step of the run; alone, each part runs under the step's
 * own timeout and retries, unobserved.
 */
export const parts = (step: Step.Any): Effect.Effect<Parts> =>
  Effect.map(Effect.serviceOption(Nesting), (nest) =>
    nest._tag === "Some" ? inRun(step, nest.value) : alone(step)) as Effect.Effect<Parts>

const inRun = (step: Step.Any, nest: Nest): Parts => ({
  path: nest.path,
  run: (name, effect, output) => runPart(nest, part(step, name, effect, output)),
  pipeline: (name, plan, input) =>
    name === nest.path
      ? outputOf(provided(runNested(plan, nest), input))
      : runGroup(nest, name, (group) => outputOf(provided(runNested(plan, group), input)))
})

const alone = (step: Step.Any): Parts => ({
  path: step.name,
  run: (name, effect) => Step.withPolicy(effect, { step: name, timeout: step.timeout, retry: step.retry }),
  pipeline: (_, plan, input) => outputOf(provided(run(plan, undefined), input))
})

const provided = <A, E, R>(effect: Effect.Effect<A, E, R>, input: Context.Context<never> | undefined) =>
  input === undefined ? effect : Effect.provide(effect, input)

/**
 * What a pipeline's run means for the step it runs in: its output; a stop inside it stops the enclosing run; a
 * step's failure inside is the step's failure here, with its very cause; the rest (its timeout, its own budget) end it
 * as a whole.
 */
export const outputOf = (
  result: Effect.Effect<Result.Result<unknown, unknown, unknown>, unknown, unknown>
): Effect.Effect<unknown, unknown, unknown> =>
  result.pipe(
    Effect.flatMap((result) =>
      result._tag === "Completed" ? Effect.succeed(result.output) : Effect.fail(new StopSignal({ data: result.data }))
    ),
    Effect.catchIf((error) => error instanceof StepFailed, (error) => Effect.failCause((error as StepFailed<unknown>).cause))
  )

/** Whether a value is a whole number of at least 1 (`Infinity` too when `infinite`). */
export const isCount = (n: unknown, infinite = false): n is number =>
  typeof n === "number" && ((infinite && n === Infinity) || (Number.isSafeInteger(n) && n >= 1))
