/**
 * A step that repeats its body over a state until a condition holds, at most a given number of times: draft,
 * critique and revise until the critic approves or three rounds pass. The bound is required, so the guarantee that a
 * run ends is the library's. Each iteration is a step of the run (`refine#1`, `refine#2`...) in everything that can
 * be seen and paid for, and a durable run journals each on its own. The condition is code, so the same answers give
 * the same number of iterations.
 *
 * @since 0.3.0
 */
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import * as Composite from "./internal/composite.js"
import { BudgetExceeded } from "./Ledger.js"
import * as OptionKeys from "./OptionKeys.js"
import * as Step from "./Step.js"

/**
 * Why a loop ended: its condition held, it ran its maximum number of iterations, or (when it was asked to end so)
 * the budget could not pay for another iteration.
 *
 * @since 0.3.0
 * @category models
 */
export type Ending = "Condition" | "MaxIterations" | "OutOfBudget"

/**
 * A loop's output: its last state (the one before the iteration the budget refused, when it ended so), how many
 * iterations completed, and why it ended.
 *
 * @since 0.3.0
 * @category models
 */
export interface Outcome<S> {
  readonly state: S
  readonly iterations: number
  readonly ended: Ending
}

/**
 * The schema of a loop's output, given its state's.
 *
 * @since 0.3.0
 * @category schemas
 */
export const Outcome = <S, I>(state: Schema.Schema<S, I, never>) =>
  Schema.Struct({
    state,
    iterations: Schema.NonNegativeInt,
    ended: Schema.Literal("Condition", "MaxIterations", "OutOfBudget")
  })

/**
 * Options of {@link make}.
 *
 * @since 0.3.0
 * @category models
 */
export interface Options<Deps extends Step.Dependencies, S, E, R, X extends E> {
  /** The steps this one needs; their outputs arrive under the same keys. */
  readonly after?: Deps | undefined
  /** The state before the first iteration, from the dependencies' outputs. */
  readonly initial: (inputs: Step.Inputs<Deps>) => S
  /** One iteration: the next state from the last. `iteration` counts from 1. */
  readonly body: (state: S, iteration: number, inputs: Step.Inputs<Deps>) => Effect.Effect<S, E, R>
  /** Checked after each iteration, on its state: the loop ends once it holds. */
  readonly until: (state: S, iteration: number) => boolean
  /** The most iterations the loop runs. Required: a loop without a bound is not a loop Trellis runs. */
  readonly maxIterations: number
  /**
   * What a refused budget does to the loop: `"fail"` (the default) fails the step, as it would any step; `"end"`
   * ends the loop with the state it had, as `OutOfBudget`, and the run goes on.
   */
  readonly whenOutOfBudget?: "fail" | "end" | undefined
  /** Time allowed for one attempt of one iteration. */
  readonly timeout?: Step.Options<Deps, S, E, R>["timeout"]
  /** How an iteration's failures are retried (each iteration has its own attempts). */
  readonly retry?: Step.Retry<NoInfer<E> | Step.StepTimeout> | undefined
  /** The schema of the state, for runs that store it (a durable run journals each iteration's state through it). */
  readonly state?: Schema.Schema<S, any, never> | undefined
  /** The schema of errors `body` fails with that a store should keep as themselves (see `Step.make`). */
  readonly error?: Schema.Schema<X, any, never> | undefined
}

/**
 * Makes a bounded loop.
 *
 * @example
 * ```ts
 * const refine = Loop.make("refine", {
 *   after: { draft },
 *   initial: ({ draft }) => ({ text: draft, approved: false }),
 *   body: (state) => critiqueAndRevise(state.text),
 *   until: (state) => state.approved,
 *   maxIterations: 3
 * })
 * ```
 *
 * @since 0.3.0
 * @category constructors
 */
export const make = <const Name extends string, S, E = never, R = never, const Deps extends Step.Dependencies = {}, X extends E = never>(
  name: Name,
  options: Options<Deps, S, E, R, X>
): Step.Step<Name, Outcome<S>, E, R, Deps> => {
  const invalid = (detail: string) => {
    throw new Step.InvalidStep({ step: name, detail })
  }
  const unknownKey = OptionKeys.unknown(options, [
    "after", "initial", "body", "until", "maxIterations", "whenOutOfBudget", "timeout", "retry", "state", "error"
  ])
  if (unknownKey !== undefined) invalid(unknownKey)
  for (const key of ["initial", "body", "until"] as const) {
    if (typeof options[key] !== "function") invalid(`${key} must be a function, got ${typeof options[key]}`)
  }
  const { body, initial, maxIterations, state, until } = options
  if (!Composite.isCount(maxIterations)) {
    invalid(`maxIterations is required, a whole number of at least 1; got ${String(maxIterations)}`)
  }
  const whenOutOfBudget = options.whenOutOfBudget ?? "fail"
  if (whenOutOfBudget !== "fail" && whenOutOfBudget !== "end") {
    invalid(`whenOutOfBudget must be "fail" or "end", got ${String(whenOutOfBudget)}`)
  }
  if (state !== undefined && !Schema.isSchema(state)) invalid(`state must be a Schema, got ${typeof state}`)
  const step: Step.Step<Name, Outcome<S>, E, R, Deps> = Composite.make(
    Step.makeEither(name, {
      after: options.after,
      timeout: options.timeout,
      retry: options.retry as Step.Retry<unknown>,
      output: state === undefined ? undefined : Outcome(state) as Schema.Schema<Outcome<S>, any, never>,
      error: options.error,
      run: (inputs) =>
        Effect.gen(function*() {
          const parts = yield* Composite.parts(step)
          let current = initial(inputs)
          for (let iteration = 1; iteration <= maxIterations; iteration++) {
            const last = current
            const next = parts.run(`${parts.path}#${iteration}`, Effect.suspend(() => body(last, iteration, inputs)), state)
            const ran = whenOutOfBudget === "end"
              ? yield* Effect.catchIf(Effect.asSome(next), (e) => e instanceof BudgetExceeded, () => Effect.succeedNone)
              : yield* Effect.asSome(next)
            if (ran._tag === "None") return { state: current, iterations: iteration - 1, ended: "OutOfBudget" as const }
            current = ran.value
            if (until(current, iteration)) return { state: current, iterations: iteration, ended: "Condition" as const }
          }
          return { state: current, iterations: maxIterations, ended: "MaxIterations" as const }
          // An iteration's `StepTimeout` is the step's, which every step's errors include.
        }) as Effect.Effect<Outcome<S>, E, R>
    }),
    { _tag: "Loop", maxIterations, state }
  )
  return step
}
