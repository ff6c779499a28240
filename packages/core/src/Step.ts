/**
 * A step: a named value around an Effect, with the steps it depends on, a timeout and a retry policy.
 *
 * Dependencies are declared by value (`after: { extract }`), so their outputs arrive typed and reading one that
 * is not declared does not compile. The pipeline input and the application's services reach a step as ordinary
 * Effect requirements, provided by Layers.
 *
 * @since 0.1.0
 */
import type * as Cause from "effect/Cause"
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import { identity } from "effect/Function"
import { pipeArguments, type Pipeable } from "effect/Pipeable"
import * as Schedule from "effect/Schedule"
import * as Schema from "effect/Schema"
import * as Attempts from "./internal/attempts.js"
import { isDecision } from "./internal/decision.js"
import * as Checks from "./internal/options.js"
import * as OptionKeys from "./OptionKeys.js"

/**
 * @since 0.1.0
 */
export const TypeId: unique symbol = Symbol.for("@trellis/core/Step")

/**
 * @since 0.1.0
 */
export type TypeId = typeof TypeId

/**
 * How a failing step is retried: a number of retries, a `Schedule`, or both with a predicate on the error.
 * `0` (or `{ times: 0 }`) means no retry at all, even when the pipeline sets a default.
 *
 * @since 0.1.0
 */
export type Retry<E> =
  | number
  | Schedule.Schedule<unknown, E, never>
  | {
    readonly times?: number | undefined
    readonly schedule?: Schedule.Schedule<unknown, E, never> | undefined
    readonly while?: ((error: E) => boolean) | undefined
  }

/**
 * The dependencies of a step: a record of steps, keyed by the name their outputs arrive under.
 *
 * @since 0.1.0
 */
export type Dependencies = { readonly [key: string]: Any }

/**
 * A step.
 *
 * @since 0.1.0
 */
export interface Step<out Name extends string, out A, E, out R, Deps extends Dependencies> extends Pipeable {
  readonly [TypeId]: TypeId
  readonly name: Name
  readonly after: Deps
  readonly timeout: Duration.Duration | undefined
  /** The errors it sees include `StepTimeout`: an attempt that timed out is retried like one that failed. */
  readonly retry: Retry<E | StepTimeout> | undefined
  /** The step's own work, given its dependencies' outputs. */
  readonly run: (inputs: Inputs<Deps>) => Effect.Effect<A, E, R>
  /**
   * The schema of the step's output, if it declared one (its type was checked against the output's when the step
   * was made; kept untyped here so that a step stays covariant in its output). A durable run journals the output
   * through it.
   */
  readonly output: Schema.Schema.AnyNoContext | undefined
  /**
   * The schema of the errors the step declared a store should keep as themselves, if any (checked against its
   * error type when the step was made, untyped here as `output` is). A durable run journals those errors through it.
   */
  readonly error: Schema.Schema.AnyNoContext | undefined
  /**
   * For a step made of steps, what it is made of (see {@link Shape}); `undefined` for a step whose `run` is its own
   * work.
   */
  readonly shape: Shape | undefined
}

/**
 * What a step made of steps is made of, for what draws a pipeline and for a durable run, which needs the schemas of
 * its parts. Its parts run as steps of the run (each with its own events, span, usage line, timeline entry and
 * retries, each journaled on its own by a durable run); its `run` only decides which parts run.
 *
 * - `ForEach`: one part per item of a list known at run time (`ForEach.make`).
 * - `Loop`: one part per iteration, up to a bound (`Loop.make`).
 * - `SubPipeline`: the steps of another pipeline (`SubPipeline.make`).
 *
 * @since 0.3.0
 */
export type Shape =
  | {
    readonly _tag: "ForEach"
    readonly concurrency: number
    readonly maxItems: number
    /** The schema of an item's output, if the step declared one. */
    readonly item: Schema.Schema.AnyNoContext | undefined
    /** For a step that runs a pipeline per item, that pipeline. */
    readonly pipeline?: SubPipelineOf | undefined
  }
  | {
    readonly _tag: "Loop"
    readonly maxIterations: number
    /** The schema of the loop's state, if the step declared one. */
    readonly state: Schema.Schema.AnyNoContext | undefined
  }
  | { readonly _tag: "SubPipeline"; readonly pipeline: SubPipelineOf }

/**
 * What a step made of a sub-pipeline knows of it: its name and steps (`Pipeline.Any`, kept structural here so that
 * this module does not depend on `Pipeline`).
 *
 * @since 0.3.0
 */
export interface SubPipelineOf {
  readonly name: string
  readonly output: Any
  readonly steps: ReadonlyArray<Any>
}

/**
 * Any step.
 *
 * @since 0.1.0
 */
export interface Any extends Step<string, any, any, any, any> {}

/**
 * The outputs a step receives from its dependencies.
 *
 * @since 0.1.0
 */
export type Inputs<Deps extends Dependencies> = { readonly [K in keyof Deps]: Output<Deps[K]> }

/**
 * The output of a step.
 *
 * @since 0.1.0
 */
export type Output<S> = S extends Step<any, infer A, any, any, any> ? A : never

/**
 * A step together with every step it depends on, directly or not.
 *
 * @since 0.1.0
 */
export type Closure<S> = S extends Step<any, any, any, any, infer D> ? S | (0 extends 1 & D ? never : Closure<D[keyof D]>)
  : never

/**
 * The errors of a step and of all its dependencies.
 *
 * @since 0.1.0
 */
export type Errors<S> = Closure<S> extends infer C ? C extends Step<any, any, infer E, any, any> ? E : never : never

/**
 * The requirements of a step and of all its dependencies.
 *
 * @since 0.1.0
 */
export type Requirements<S> = Closure<S> extends infer C ? C extends Step<any, any, any, infer R, any> ? R
  : never
  : never

/**
 * The outputs of a step and of all its dependencies, by step name.
 *
 * @since 0.1.0
 */
export type Outputs<S> = { readonly [C in Closure<S> as C["name"]]: Output<C> }

/**
 * Options of {@link make}.
 *
 * @since 0.1.0
 */
export interface Options<Deps extends Dependencies, A, E, R, X extends E = never> {
  /** The steps this one needs; their outputs arrive under the same keys. */
  readonly after?: Deps | undefined
  /** Time allowed for one attempt; the step fails with `StepTimeout` past it. */
  readonly timeout?: Duration.DurationInput | undefined
  /** How failures are retried (each attempt gets the full timeout). Overrides the pipeline's default. */
  readonly retry?: Retry<NoInfer<E> | StepTimeout> | undefined
  /**
   * The schema of the output, for runs that store it (a durable run journals each step's output through it). When
   * given, it fixes the step's output type, which `run` must then return; it needs no services.
   */
  readonly output?: Schema.Schema<A, any, never> | undefined
  /**
   * The schema of errors `run` fails with, for runs that store them: a durable run journals an error it describes
   * as itself, so that a resumed run and the run's stored outcome have the error, not only its tag and message. It
   * may describe some of the step's errors only (those are kept as themselves, the others by tag and message); it
   * needs no services.
   */
  readonly error?: Schema.Schema<X, any, never> | undefined
  readonly run: (inputs: Inputs<Deps>) => Effect.Effect<A, E, R>
}

const Proto = {
  [TypeId]: TypeId,
  pipe() {
    return pipeArguments(this, arguments)
  },
  toString(this: Any) {
    return `Step(${this.name})`
  }
}

/**
 * Makes a step.
 *
 * @example
 * ```ts
 * const classify = Step.make("classify", {
 *   after: { extract },
 *   timeout: "30 seconds",
 *   retry: { times: 2, schedule: Schedule.exponential("500 millis") },
 *   run: ({ extract }) => Classifier.run(extract.summary)
 * })
 * ```
 *
 * @since 0.1.0
 */
export const make = <
  const Name extends string,
  A,
  E = never,
  R = never,
  const Deps extends Dependencies = {},
  X extends E = never
>(
  name: Name,
  options: Options<Deps, A, E, R, X>
): Step<Name, A, E, R, Deps> => Either.getOrThrowWith(makeEither(name, options), identity)

/**
 * Makes a step, returning the problem with its options instead of throwing it: for graphs built at run time.
 *
 * @since 0.1.0
 */
export const makeEither = <
  const Name extends string,
  A,
  E = never,
  R = never,
  const Deps extends Dependencies = {},
  X extends E = never
>(
  name: Name,
  options: Options<Deps, A, E, R, X>
): Either.Either<Step<Name, A, E, R, Deps>, InvalidStep> => {
  const invalid = (detail: string) => Either.left(new InvalidStep({ step: name, detail }))
  const unknownKey = OptionKeys.unknown(options, ["after", "timeout", "retry", "output", "error", "run"])
  if (unknownKey !== undefined) return invalid(unknownKey)
  if (typeof options.run !== "function") return invalid(`run must be a function, got ${typeof options.run}`)
  const timeout = Checks.timeout("timeout", options.timeout)
  if (Either.isLeft(timeout)) return invalid(timeout.left)
  const retryProblem = Checks.retry("retry", options.retry)
  if (retryProblem !== undefined) return invalid(retryProblem)
  if (options.output !== undefined && !Schema.isSchema(options.output)) {
    return invalid(`output must be a Schema, got ${typeof options.output}`)
  }
  if (options.error !== undefined && !Schema.isSchema(options.error)) {
    return invalid(`error must be a Schema, got ${typeof options.error}`)
  }
  const step = Object.create(Proto)
  step.name = name
  step.after = options.after ?? {}
  step.timeout = timeout.right
  step.retry = options.retry
  step.run = options.run
  step.output = options.output
  step.error = options.error
  step.shape = undefined
  return Either.right(step)
}

/**
 * A step's options were rejected when it was made: the message names the step and the option.
 *
 * @since 0.1.0
 */
export class InvalidStep extends Data.TaggedError("InvalidStep")<{
  readonly step: string
  readonly detail: string
}> {
  override get message(): string {
    return `Invalid step "${this.step}": ${this.detail}`
  }
}

/**
 * Whether a value is a step.
 *
 * @since 0.1.0
 */
export const isStep = (u: unknown): u is Any => typeof u === "object" && u !== null && TypeId in u

/**
 * A step's attempt took longer than its timeout.
 *
 * @since 0.1.0
 */
export class StepTimeout extends Data.TaggedError("StepTimeout")<{
  readonly step: string
  readonly timeout: Duration.Duration
}> {
  override get message(): string {
    return `Step "${this.step}" timed out after ${Duration.format(this.timeout)}`
  }
}

const isRetryable = (error: unknown): boolean => !isDecision(error)

/**
 * How a step's attempts are run: the time allowed for each, and how failures are retried.
 *
 * @since 0.1.0
 */
export interface Policy<E> {
  readonly timeout?: Duration.Duration | undefined
  readonly retry?: Retry<E | StepTimeout> | undefined
}

/**
 * Runs `attempt` under a policy: each attempt with its timeout, failures retried as the policy says (never a stop,
 * a refused budget or a bad figure given to the ledger). `onRetry` runs before each attempt after the first, with
 * the cause of the one that failed.
 *
 * @since 0.1.0
 */
export const withPolicy = <A, E, R>(
  attempt: Effect.Effect<A, E, R>,
  options: Policy<E> & {
    readonly step: string
    readonly onRetry?: ((attempt: number, cause: Cause.Cause<E | StepTimeout>) => Effect.Effect<void>) | undefined
  }
): Effect.Effect<A, E | StepTimeout, R> => {
  const { onRetry, retry, step, timeout } = options
  const timed: Effect.Effect<A, E | StepTimeout, R> = timeout === undefined
    ? attempt
    : Effect.timeoutFail(attempt, { duration: timeout, onTimeout: () => new StepTimeout({ step, timeout }) })
  const settings = retryOptions(retry)
  if (settings === undefined) return timed
  return Attempts.retrying(() => Attempts.ran(timed, settings.while), settings, { onRetry })
}

/**
 * What a policy's retry means, as the options of `Effect.retry`: the schedule, the number of retries, and the
 * predicate on the error, which refuses a stop, a refused budget and a bad figure given to the ledger whatever the
 * policy says.
 *
 * @since 0.2.0
 */
export interface RetryOptions<E> {
  readonly schedule?: Schedule.Schedule<unknown, E> | undefined
  readonly times?: number | undefined
  readonly while: (error: E) => boolean
}

/**
 * The options of `Effect.retry` a policy's retry means, or `undefined` when it never retries. {@link withPolicy}
 * retries with them; an executor that runs each attempt on its own (a durable one journals each) retries with them
 * too, so that a step is retried the same way wherever it runs.
 *
 * @since 0.2.0
 */
export const retryOptions = <E>(retry: Retry<E> | undefined): RetryOptions<E> | undefined => {
  if (retry === undefined || retry === 0) return undefined
  if (typeof retry === "number") return { times: retry, while: isRetryable }
  if (Schedule.isSchedule(retry)) return { schedule: retry, while: isRetryable }
  if (retry.times === 0) return undefined
  const own = retry.while
  const retryWhile = own === undefined ? isRetryable : (e: E) => isRetryable(e) && own(e)
  const schedule: Schedule.Schedule<unknown, E> = retry.schedule ?? Schedule.forever
  return retry.times === undefined ? { schedule, while: retryWhile } : { schedule, times: retry.times, while: retryWhile }
}

/**
 * Runs a step alone, as a pipeline would (timeout and retry applied), given its dependencies' outputs. This is how
 * a step is tested on its own: provide its layers and call it.
 *
 * @since 0.1.0
 */
export const runWith = <Name extends string, A, E, R, Deps extends Dependencies>(
  step: Step<Name, A, E, R, Deps>,
  inputs: Inputs<Deps>
): Effect.Effect<A, E | StepTimeout, R> =>
  withPolicy(Effect.suspend(() => step.run(inputs)), { step: step.name, timeout: step.timeout, retry: step.retry })
