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
import { compile, type Graph } from "./internal/graph.js"
import { attributedStep } from "./internal/attribution.js"
import { LedgerImpl } from "./internal/ledger.js"
import { makePlan, type Plan, Runner } from "./internal/runner.js"
import * as Ledger from "./Ledger.js"
import { InvalidPipeline, type PipelineError } from "./PipelineError.js"
import type * as Result from "./Result.js"
import * as Step from "./Step.js"
import type * as Usage from "./Usage.js"

export {
  /**
   * @since 0.1.0
   */
  InvalidPipeline,
  /**
   * @since 0.1.0
   */
  type PipelineError,
  /**
   * @since 0.1.0
   */
  PipelineTimeout,
  /**
   * @since 0.1.0
   */
  StepFailed
} from "./PipelineError.js"

/**
 * Ends the run on purpose from inside a step: the result is `Stopped` with `data`. See `Step.stop`.
 *
 * @since 0.1.0
 */
export const stop = Step.stop

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
  /** @internal */
  readonly graph: Graph
  /** @internal */
  readonly defaults: { readonly timeout: Duration.Duration | undefined; readonly retry: Step.Retry<any> | undefined }
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
export type StopData<E> = E extends Step.StopSignal<infer D> ? D : never

/**
 * The result type of a pipeline.
 *
 * @since 0.1.0
 */
export type ResultOf<P> = P extends Pipeline<infer A, any, any, infer O, infer D> ? Result.Result<A, D, O> : never

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
  readonly steps?: ReadonlyArray<X>
  /** At most this many steps run at once. Default: unbounded. */
  readonly concurrency?: number | "unbounded"
  /** A cap on the money the run's metered calls may spend. */
  readonly budget?: Cost.Cost
  /** Time allowed for the whole run. */
  readonly timeout?: Duration.DurationInput
  /** Settings for steps that have none of their own (a step's own setting, even `retry: 0`, wins). */
  readonly defaults?: {
    readonly timeout?: Duration.DurationInput
    readonly retry?: Step.Retry<any>
  }
}

type Made<S extends Step.Any, X extends Step.Any> = Pipeline<
  Step.Output<S>,
  Exclude<Step.Errors<S | X>, Step.StopSignal<any>>,
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

const decodeDuration = (
  pipeline: string,
  option: string,
  input: Duration.DurationInput | undefined
): Either.Either<Duration.Duration | undefined, InvalidPipeline> => {
  if (input === undefined) return Either.right(undefined)
  const decoded = Duration.decodeUnknown(input)
  if (decoded._tag === "None" || !(Duration.toMillis(decoded.value) > 0)) {
    return Either.left(invalidOption(pipeline, `${option} must be a positive duration, got ${String(input)}`))
  }
  return Either.right(decoded.value)
}

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
    const timeout = yield* decodeDuration(name, "timeout", options.timeout)
    const stepTimeout = yield* decodeDuration(name, "defaults.timeout", options.defaults?.timeout)
    const retry = options.defaults?.retry
    if (typeof retry === "number" && !(Number.isInteger(retry) && retry >= 0)) {
      return yield* Either.left(invalidOption(name, `defaults.retry must be a whole number >= 0, got ${retry}`))
    }
    const graph = compile(options.output, options.steps ?? [])
    if (!("nodes" in graph)) {
      return yield* Either.left(new InvalidPipeline({ pipeline: name, ...graph }))
    }
    const pipeline = Object.create(Proto)
    Object.assign(pipeline, {
      [TypeId]: TypeId,
      name,
      output: options.output,
      steps: graph.nodes.map((node) => node.step),
      concurrency,
      budget,
      timeout,
      graph,
      defaults: { timeout: stepTimeout, retry }
    })
    return pipeline as Made<S, X>
  })

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
  /** Receives every event of the run as it happens. */
  readonly onEvent?: Event.Listener | undefined
}

/**
 * Runs a pipeline. Succeeds with `Completed` or `Stopped`; fails with `StepFailed` (the first step that failed
 * after its retries; its running siblings are interrupted), `BudgetExceeded` or `PipelineTimeout`, each with the
 * partial result. Interrupting the run interrupts every step and waits for their finalizers.
 *
 * @since 0.1.0
 */
export const run = <A, E, R, O, D>(
  self: Pipeline<A, E, R, O, D>,
  options?: RunOptions
): Effect.Effect<Result.Result<A, D, O>, PipelineError<E>, R> => {
  const listener = options?.onEvent
  const plan = planOf(self)
  const onRecord = listener &&
    ((step: string, usage: Usage.Usage) => listener({ _tag: "UsageRecorded", pipeline: self.name, step, usage }))
  return Effect.withFiberRuntime<Result.Result<unknown, unknown, any>, unknown>((fiber) => {
    // A run inside a step of another run meters into the enclosing run's ledger too.
    const parent = fiber.currentContext.unsafeMap.get(Ledger.Ledger.key) as Ledger.Service | undefined
    const ledger = new LedgerImpl(attributedStep(fiber, Ledger.currentStep), { budget: plan.budget, parent, onRecord })
    const runner = new Runner(plan, fiber, ledger, listener)
    // The run opens its span and starts inside `onExit`, so that whatever it opens is closed however it ends.
    const run = Effect.suspend(() => {
      runner.open()
      return plan.timeout === undefined ? runner.drive() : withTimeout(runner, plan.timeout)
    })
    return Effect.onExit(run, (exit) => runner.finish(exit))
  }) as any
}

/** The run under the pipeline's timeout: past it, running steps are interrupted and the partial result kept. */
const withTimeout = (runner: Runner, timeout: Duration.Duration) =>
  Effect.flatten(Effect.timeoutTo(Effect.onInterrupt(runner.drive(), () => runner.interruptAll()), {
    duration: timeout,
    onSuccess: Effect.succeed,
    onTimeout() {
      return Effect.suspend(() => Effect.fail(runner.timedOut(timeout)))
    }
  }))

const plans = new WeakMap<Any, Plan>()

/** What a run needs of a pipeline, worked out once per pipeline. */
const planOf = (self: Any): Plan => {
  let plan = plans.get(self)
  if (plan === undefined) {
    plan = makePlan({
      name: self.name,
      graph: self.graph,
      concurrency: self.concurrency,
      budget: self.budget,
      timeout: self.timeout,
      stepTimeout: self.defaults.timeout,
      retry: self.defaults.retry
    })
    plans.set(self, plan)
  }
  return plan
}

/**
 * The last element of {@link stream}: the run's result.
 *
 * @since 0.1.0
 */
export interface Done<A, D, O> {
  readonly _tag: "Done"
  readonly result: Result.Result<A, D, O>
}

/**
 * Runs a pipeline as a stream of its events, ending with `Done` carrying the result (or failing with the run's
 * error after the events that led to it). Stopping the stream early interrupts the run.
 *
 * @since 0.1.0
 */
export const stream = <A, E, R, O, D>(
  self: Pipeline<A, E, R, O, D>
): Stream.Stream<Event.Event | Done<A, D, O>, PipelineError<E>, R> =>
  Stream.asyncScoped<Event.Event | Done<A, D, O>, PipelineError<E>, R>((emit) =>
    run(self, { onEvent: (event) => void emit.single(event) }).pipe(
      Effect.matchCauseEffect({
        onSuccess: (result) =>
          Effect.promise(() => emit.single({ _tag: "Done", result })).pipe(Effect.zipRight(Effect.promise(() => emit.end()))),
        onFailure: (cause) => Effect.promise(() => emit.halt(cause))
      }),
      Effect.forkScoped
    ), "unbounded")

export {
  /**
   * Draws the pipeline's graph as a Mermaid `flowchart`.
   *
   * @since 0.1.0
   */
  toMermaid,
  /**
   * Draws a finished (or partial) run's timeline as a Mermaid Gantt chart.
   *
   * @since 0.1.0
   */
  toGantt
} from "./internal/mermaid.js"
