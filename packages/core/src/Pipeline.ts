/**
 * A pipeline: a graph of steps, walked from its output, run with dependency-driven scheduling under a
 * concurrency bound, a budget and a timeout.
 *
 * @since 0.1.0
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import { pipeArguments, type Pipeable } from "effect/Pipeable"
import * as Stream from "effect/Stream"
import type * as Types from "effect/Types"
import type * as Cost from "./Cost.js"
import type * as Event from "./Event.js"
import { compile } from "./internal/graph.js"
import * as mermaid from "./internal/mermaid.js"
import * as Checks from "./internal/options.js"
import * as OptionKeys from "./OptionKeys.js"
import * as Plans from "./internal/plans.js"
import { run as runPlan } from "./internal/run.js"
import { StopSignal } from "./internal/stop.js"
import { InvalidPipeline, type PipelineError } from "./PipelineError.js"
import type * as Result from "./Result.js"
import type * as Step from "./Step.js"

export {
  /**
   * The signal a step fails with to end the run on purpose (see {@link stop}). Never retried.
   *
   * @since 0.1.0
   */
  StopSignal
} from "./internal/stop.js"

/**
 * Ends the run on purpose from inside a step. The run's result is then `Stopped`, not an error, carrying `data`,
 * the stopping step, the outputs of the steps it depends on, and the usage.
 *
 * @since 0.1.0
 */
export const stop = <D>(data: D): Effect.Effect<never, StopSignal<D>> => Effect.fail(new StopSignal({ data }))

/**
 * @since 0.1.0
 */
export const TypeId: unique symbol = Symbol.for("@trellis/core/Pipeline")

/**
 * @since 0.1.0
 */
export type TypeId = typeof TypeId

/**
 * A pipeline whose output is `A`, whose steps can fail with `E` and need `R`, whose step outputs by name are
 * `Outputs`, and that a step can stop with data `D`.
 *
 * @since 0.1.0
 */
export interface Pipeline<out A, out E, out R, out Outputs, out D> extends Pipeable {
  readonly [TypeId]: {
    readonly _A: Types.Covariant<A>
    readonly _E: Types.Covariant<E>
    readonly _R: Types.Covariant<R>
    readonly _Outputs: Types.Covariant<Outputs>
    readonly _D: Types.Covariant<D>
  }
  readonly name: string
  readonly output: Step.Any
  /** Every step, each after its dependencies. */
  readonly steps: ReadonlyArray<Step.Any>
  readonly concurrency: number
  readonly budget: Cost.Cost | undefined
  readonly timeout: Duration.Duration | undefined
}

/**
 * Any pipeline.
 *
 * @since 0.1.0
 */
export interface Any extends Pipeline<any, any, any, any, any> {}

/**
 * The data a step can stop a run with, from the union of step errors.
 *
 * @since 0.1.0
 */
export type StopData<E> = E extends StopSignal<infer D> ? D : never

/**
 * The result type of a pipeline.
 *
 * @since 0.1.0
 */
export type ResultOf<P> = P extends Pipeline<infer A, any, any, infer O, infer D> ? Result.Result<A, O, D> : never

/**
 * The error type of running a pipeline.
 *
 * @since 0.1.0
 */
export type ErrorOf<P> = P extends Pipeline<any, infer E, any, any, any> ? PipelineError<E> : never

/**
 * The requirements of a pipeline.
 *
 * @since 0.1.0
 */
export type RequirementsOf<P> = P extends Pipeline<any, any, infer R, any, any> ? R : never

/**
 * Options of {@link make}.
 *
 * @since 0.1.0
 */
export interface Options<S extends Step.Any, X extends Step.Any> {
  /** The step whose output is the pipeline's output; the graph is walked from it. */
  readonly output: S
  /** Steps to run as well although the output does not depend on them (for example an audit step). */
  readonly include?: ReadonlyArray<X> | undefined
  /** At most this many steps run at once. Default: unbounded. */
  readonly concurrency?: number | "unbounded" | undefined
  /** A cap on the money the run's metered calls may spend. */
  readonly budget?: Cost.Cost | undefined
  /** Time allowed for the whole run. */
  readonly timeout?: Duration.DurationInput | undefined
  /** Settings for steps that have none of their own (a step's own setting, even `retry: 0`, wins). */
  readonly defaults?: {
    readonly timeout?: Duration.DurationInput | undefined
    readonly retry?: Step.Retry<Step.Errors<S | X> | Step.StepTimeout> | undefined
  } | undefined
}

type Made<S extends Step.Any, X extends Step.Any> = Pipeline<
  Step.Output<S>,
  Exclude<Step.Errors<S | X>, StopSignal<any>>,
  Step.Requirements<S | X>,
  Step.Outputs<S | X>,
  StopData<Step.Errors<S | X>>
>

const Proto = {
  pipe() {
    return pipeArguments(this, arguments)
  },
  toString(this: Any) {
    return `Pipeline(${this.name})`
  }
}

const invalidOption = (pipeline: string, detail: string) =>
  new InvalidPipeline({ pipeline, reason: "InvalidOption", steps: [], detail })

const checked = <A>(pipeline: string, check: Either.Either<A, string>): Either.Either<A, InvalidPipeline> =>
  Either.mapLeft(check, (detail) => invalidOption(pipeline, detail))

/**
 * Checks and compiles a pipeline, returning the problem instead of throwing it: for graphs built at run time.
 *
 * @since 0.1.0
 */
export const makeEither = <S extends Step.Any, X extends Step.Any = never>(
  name: string,
  options: Options<S, X>
): Either.Either<Made<S, X>, InvalidPipeline> =>
  Either.gen(function*() {
    const unknownKey = OptionKeys.unknown(options, ["output", "include", "concurrency", "budget", "timeout", "defaults"]) ??
      OptionKeys.unknown(options.defaults, ["timeout", "retry"], "defaults.")
    if (unknownKey !== undefined) return yield* Either.left(invalidOption(name, unknownKey))
    const concurrency = options.concurrency === undefined || options.concurrency === "unbounded"
      ? Infinity
      : options.concurrency
    if (!(concurrency === Infinity || (Number.isInteger(concurrency) && concurrency >= 1))) {
      return yield* Either.left(
        invalidOption(name, `concurrency must be a whole number of at least 1, got ${String(options.concurrency)}`)
      )
    }
    const budget = options.budget
    if (budget !== undefined && !(Number.isSafeInteger(budget) && budget >= 0)) {
      return yield* Either.left(
        invalidOption(name, `budget must be a non-negative Cost (see Cost.dollars), got ${String(budget)}`)
      )
    }
    const timeout = yield* checked(name, Checks.timeout("timeout", options.timeout))
    const stepTimeout = yield* checked(name, Checks.timeout("defaults.timeout", options.defaults?.timeout))
    const retry = options.defaults?.retry
    const retryProblem = Checks.retry("defaults.retry", retry)
    if (retryProblem !== undefined) return yield* Either.left(invalidOption(name, retryProblem))
    const graph = compile(options.output, options.include ?? [])
    if (!("nodes" in graph)) {
      return yield* Either.left(new InvalidPipeline({ pipeline: name, ...graph }))
    }
    const clash = partNameClash(graph.nodes.map((node) => node.step))
    if (clash !== undefined) return yield* Either.left(new InvalidPipeline({ pipeline: name, ...clash }))
    const pipeline: Made<S, X> = Object.assign(Object.create(Proto), {
      [TypeId]: TypeId,
      name,
      output: options.output,
      steps: graph.nodes.map((node) => node.step),
      concurrency,
      budget,
      timeout
    })
    const policies = graph.nodes.map(({ step }) => ({
      timeout: step.timeout ?? stepTimeout,
      retry: step.retry ?? retry
    }))
    Plans.register(pipeline, { name, graph, concurrency, budget, timeout, policies })
    return pipeline
  })

/**
 * A step named as a part of a step made of steps would be told apart from it nowhere (events, usage, timeline): the
 * names of parts (`m[0]`, `l#1`, `s/inner`) are the step's, followed by `[`, `#` or `/`.
 */
const partNameClash = (steps: ReadonlyArray<Step.Any>) => {
  for (const owner of steps) {
    if (owner.shape === undefined) continue
    const clash = steps.find((step) => step !== owner && /^[[#/]/.test(step.name.slice(owner.name.length)) &&
      step.name.startsWith(owner.name))
    if (clash !== undefined) {
      return {
        reason: "DuplicateName" as const,
        steps: [clash.name, owner.name],
        detail: `step "${clash.name}" is named as a part of step "${owner.name}" would be`
      }
    }
  }
  return undefined
}

/**
 * Makes a pipeline from its output step (and any extra steps). The graph is checked now: duplicate names,
 * cycles, dependencies that are not steps and bad options throw `InvalidPipeline`, whose message names them.
 *
 * @example
 * ```ts
 * const document = Pipeline.make("document", { output: combine, concurrency: 8, budget: Cost.dollars(0.10) })
 * ```
 *
 * @since 0.1.0
 */
export const make = <S extends Step.Any, X extends Step.Any = never>(
  name: string,
  options: Options<S, X>
): Made<S, X> => Either.getOrThrowWith(makeEither(name, options), (e) => e)

/**
 * Options of {@link run}.
 *
 * @since 0.1.0
 */
export interface RunOptions {
  /** Receives every event of the run as it happens; an `Effect` it returns is run before the run goes on. */
  readonly onEvent?: Event.Listener | undefined
}

/**
 * Runs a pipeline. Succeeds with `Completed` or `Stopped`; fails with `StepFailed` (the first step that failed
 * after its retries; its running siblings are interrupted), `BudgetExceeded` (a call was refused before it could
 * pass the budget), `BudgetOverrun` (the spend passed the budget, or a call's figures cannot be right) or
 * `PipelineTimeout`, each with the partial result, built once every call the run reserved for has settled.
 * Interrupting the run interrupts every step and waits for their finalizers.
 *
 * @since 0.1.0
 */
export const run = <A, E, R, O, D>(
  self: Pipeline<A, E, R, O, D>,
  options?: RunOptions | undefined
): Effect.Effect<Result.Result<A, O, D>, PipelineError<E>, R> =>
  runPlan(Plans.planOf(self), options?.onEvent) as Effect.Effect<Result.Result<A, O, D>, PipelineError<E>, R>

/**
 * The last element of {@link stream}: the run's result.
 *
 * @since 0.1.0
 */
export interface Done<A, Outputs, D> {
  readonly _tag: "Done"
  readonly result: Result.Result<A, Outputs, D>
}

/**
 * Runs a pipeline as a stream of its events, ending with `Done` carrying the result (or failing with the run's
 * error after the events that led to it). Stopping the stream early interrupts the run.
 *
 * @since 0.1.0
 */
export const stream = <A, E, R, O, D>(
  self: Pipeline<A, E, R, O, D>
): Stream.Stream<Event.Event | Done<A, O, D>, PipelineError<E>, R> =>
  Stream.asyncScoped<Event.Event | Done<A, O, D>, PipelineError<E>, R>((emit) =>
    run(self, {
      onEvent: (event) => {
        emit.single(event)
      }
    }).pipe(
      Effect.matchCauseEffect({
        onSuccess: (result) =>
          Effect.promise(() => emit.single({ _tag: "Done", result })).pipe(Effect.zipRight(Effect.promise(() => emit.end()))),
        onFailure: (cause) => Effect.promise(() => emit.halt(cause))
      }),
      Effect.forkScoped
    ), "unbounded")

/**
 * Draws the pipeline's graph as a Mermaid `flowchart`.
 *
 * @since 0.1.0
 */
export const toMermaid = (self: Any): string => mermaid.flowchart(Plans.planOf(self).graph)

/**
 * Draws a finished (or partial) run's timeline as a Mermaid Gantt chart.
 *
 * @since 0.1.0
 */
export const toGantt = (run: { readonly pipeline: string; readonly timeline: ReadonlyArray<Result.StepTiming> }): string =>
  mermaid.gantt(run.pipeline, run.timeline)
