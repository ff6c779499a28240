/**
 * Durable runs: a pipeline run as an `@effect/workflow` workflow whose steps are Activities, so that the run outlives
 * its process.
 *
 * Each finished step's output (through the schema the step declares with `Step.make`'s `output` option) and the usage
 * it recorded are journaled by the workflow engine, one attempt at a time: each attempt of a step (its retry policy's
 * retries) is an Activity of its own. A run resumed after a crash replays the finished steps and the failed attempts
 * from the journal without running them, counts their usage in its ledger (so the budget holds across restarts), and
 * runs the rest: a step's retries do not start over. Running the id of a finished run returns its stored result and
 * runs nothing. A run can be cancelled from any process on its store, and a listener given to its layer hears its
 * events where it runs.
 *
 * @since 0.2.0
 */
import type { SqlError } from "@effect/sql/SqlError"
import * as DurableDeferred from "@effect/workflow/DurableDeferred"
import * as Workflow from "@effect/workflow/Workflow"
import { WorkflowEngine, WorkflowInstance } from "@effect/workflow/WorkflowEngine"
import {
  type Event as CoreEvent,
  Pipeline,
  type PipelineError,
  type Result,
  Step,
  StepExecutor
} from "@trellis/core"
import * as Context from "effect/Context"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import { identity } from "effect/Function"
import type * as Layer from "effect/Layer"
import * as Schedule from "effect/Schedule"
import * as Schema from "effect/Schema"
import * as Cancellation from "./internal/cancellation.js"
import * as Executor from "./internal/executor.js"
import * as Health from "./internal/health.js"
import * as Ids from "./internal/ids.js"
import * as Journal from "./internal/journal.js"
import * as Shapes from "./internal/shapes.js"
import * as Storable from "./internal/storable.js"
import type { StoreUnavailable } from "./internal/unavailable.js"
import * as Waiting from "./internal/waiting.js"
import * as Cancellations from "./Cancellations.js"
import type * as Runs from "./Runs.js"
import * as SpendLog from "./SpendLog.js"

/**
 * @since 0.2.0
 */
export const TypeId: unique symbol = Symbol.for("@trellis/durable/Durable")

/**
 * @since 0.2.0
 */
export type TypeId = typeof TypeId

/**
 * The payload a durable run's workflow is started with: the run's id (and, for a pipeline made with an `input`, the
 * run's input).
 *
 * @since 0.2.0
 */
export const Payload = Schema.Struct({ id: Schema.String })

/**
 * A run's input: a service its steps read (the pipeline's input, as in a plain run), given to each run and stored
 * with it through its schema, so that a resumed run reads the same.
 *
 * @since 0.2.0
 */
export interface Input<I, V> {
  readonly tag: Context.Tag<I, V>
  readonly schema: Schema.Schema<V, any, never>
}

/**
 * A pipeline made ready to run durably: its workflow, whose result and steps' outputs have schemas. `I` is the
 * service each run is given as its input (`V` its value), if any.
 *
 * @since 0.2.0
 */
export interface Durable<out A, out E, out R, out O, out D, I = never, V = void> {
  readonly [TypeId]: TypeId
  readonly pipeline: Pipeline.Pipeline<A, E, R, O, D>
  /** The `@effect/workflow` workflow the runs execute: its name is the pipeline's, its payload the id and input. */
  readonly workflow: Workflow.Workflow<string, typeof Payload, Schema.Schema<any, any>, Schema.Schema<RunFailed, any>>
  /** The schema of the data a step can stop the run with, if it can be stopped. */
  readonly stop: Schema.Schema.AnyNoContext | undefined
  /** The run's input, if each run is given one. */
  readonly input: Input<I, V> | undefined
}

/**
 * Any durable pipeline.
 *
 * @since 0.2.0
 */
export interface Any extends Durable<any, any, any, any, any, any, any> {}

/**
 * A pipeline cannot run durably: the message names the steps that lack a schema (at any depth: an item's, an
 * iteration's and a sub-pipeline's steps are journaled on their own) and the option that declares it. `steps` are
 * their names in the run (`research/extract` for a sub-pipeline's step).
 *
 * @since 0.2.0
 */
export class MissingSchema extends Data.TaggedError("MissingSchema")<{
  readonly pipeline: string
  readonly steps: ReadonlyArray<string>
  /** For each step of `steps`, which schema it lacks and the option that declares it. */
  readonly missing: ReadonlyArray<Shapes.Missing>
}> {
  override get message(): string {
    const kinds = [...new Set(this.missing.map((missing) => missing.option))].map((option) => {
      const group = this.missing.filter((missing) => missing.option === option)
      const one = group.length === 1
      const names = group.map((missing) => `"${missing.step}"`).join(", ")
      return `${one ? "step" : "steps"} ${names} declare${one ? "s" : ""} no ${group[0]!.schema} schema (${option})`
    })
    const one = this.missing.length === 1
    return `Pipeline "${this.pipeline}" cannot run durably: ${kinds.join("; ")}, so ` +
      `${one ? "its output" : "their outputs"} cannot be journaled`
  }
}

/**
 * A pipeline cannot run durably: a sub-pipeline of it has a waiting step ({@link await}). A signal is addressed to a
 * waiting step of the durable pipeline itself, by its name; the waiting step must be a step of that pipeline.
 *
 * @since 0.3.0
 */
export class NestedWaiting extends Data.TaggedError("NestedWaiting")<{
  readonly pipeline: string
  readonly steps: ReadonlyArray<string>
}> {
  override get message(): string {
    const one = this.steps.length === 1
    return `Pipeline "${this.pipeline}" cannot run durably: ${one ? "step" : "steps"} ` +
      `${this.steps.map((step) => `"${step}"`).join(", ")} wait${one ? "s" : ""} for a signal inside a sub-pipeline; ` +
      `a durable run's waiting steps must be steps of the pipeline itself`
  }
}

/**
 * A durable run failed. It is stored as the run's outcome, so it is what every later run of the same id returns:
 * the pipeline error's kind, the step it names, the `_tag` of the error that step failed with (`errorTag`, when it
 * had one) and the error itself (`error`, when the step declared its schema with `Step.make`'s `error`), its
 * message, and what the run had finished: the outputs of the steps that finished (through their schemas), the usage
 * up to the failure and the timeline, as a plain run's `partial`.
 *
 * @since 0.2.0
 */
export class RunFailed extends Data.TaggedError("RunFailed")<Journal.FailureFields> {
  /** What the run had finished, as a plain run's error carries it. */
  get partial(): Result.PartialResult {
    return { pipeline: this.pipeline, outputs: this.outputs, usage: this.usage, timeline: this.timeline }
  }
  override get message(): string {
    return `Durable run "${this.id}" of pipeline "${this.pipeline}" failed: ${this.detail}`
  }
}

/**
 * Options of {@link make}. A pipeline whose steps can stop it (`Pipeline.stop(data)`) needs a schema for the data;
 * `input` makes each run take its own input.
 *
 * @since 0.2.0
 */
export type Options<D, I, V> =
  & ([D] extends [never] ? { readonly stop?: undefined } : { readonly stop: Schema.Schema<D, any, never> })
  & { readonly input?: Input<I, V> | undefined }

// A caller waiting on a suspended run polls the store on this schedule (the engine's default grows to 30 s between
// polls): quick at first, and never more than a second late.
const suspendedRetrySchedule = Schedule.union(Schedule.exponential("100 millis", 1.5), Schedule.spaced("1 second"))

/**
 * Makes a pipeline durable, returning the problem instead of throwing it: for pipelines built at run time.
 *
 * @since 0.2.0
 */
export const makeEither = <A, E, R, O, D, I = never, V = void>(
  pipeline: Pipeline.Pipeline<A, E, R, O, D>,
  ...[options]: [D] extends [never] ? [options?: Options<D, I, V>] : [options: Options<D, I, V>]
): Either.Either<Durable<A, E, R, O, D, I, V>, MissingSchema | NestedWaiting> => {
  const missing = Shapes.missingSchemas(pipeline)
  if (missing.length > 0) {
    return Either.left(
      new MissingSchema({ pipeline: pipeline.name, steps: missing.map((missing) => missing.step), missing })
    )
  }
  const waiting = Shapes.nestedWaiting(pipeline)
  if (waiting.length > 0) return Either.left(new NestedWaiting({ pipeline: pipeline.name, steps: waiting }))
  const stop: Schema.Schema.AnyNoContext | undefined = options?.stop
  const input = options?.input
  const workflow = Workflow.make({
    name: pipeline.name,
    // With an input, the payload has it as well (the type says `id` only: the rest is this module's business).
    // The input is optional to the schema so that a run's execution id can be made from its id alone; a run is always
    // started with its input (see `run`).
    payload: (input === undefined ? Payload : Schema.Struct({ id: Schema.String, input: Schema.optional(input.schema) })) as typeof Payload,
    // The run is its id: running an id again with another input returns the run that id already has.
    idempotencyKey: ({ id }: { readonly id: string }) => id,
    success: Journal.result(pipeline, stop),
    error: Journal.failure(pipeline, RunFailed),
    suspendedRetrySchedule
  })
  return Either.right({ [TypeId]: TypeId, pipeline, workflow, stop, input })
}

/**
 * Makes a pipeline durable. Every step must declare the schema of its output (`Step.make`'s `output` option; for a
 * `ForEach`, its items' output; for a `Loop`, its `state`; for a `SubPipeline`, each of its steps), and a pipeline
 * that can be stopped the schema of the stop data: a step without one throws `MissingSchema`, naming it. A waiting
 * step inside a sub-pipeline throws `NestedWaiting`.
 *
 * @example
 * ```ts
 * const extract = Step.make("extract", { output: Schema.Array(Schema.String), run: () => Extractor.run(doc) })
 * const document = Durable.make(Pipeline.make("document", { output: extract }))
 * ```
 *
 * @since 0.2.0
 */
export const make = <A, E, R, O, D, I = never, V = void>(
  pipeline: Pipeline.Pipeline<A, E, R, O, D>,
  ...options: [D] extends [never] ? [options?: Options<D, I, V>] : [options: Options<D, I, V>]
): Durable<A, E, R, O, D, I, V> => Either.getOrThrowWith(makeEither(pipeline, ...options), identity)

/** A pipeline error as the run's stored outcome. */
const runFailed = (self: Any, id: string, error: PipelineError.PipelineError<unknown>): RunFailed => {
  const { outputs, pipeline, timeline, usage } = error.partial
  // The executor fails a step with its error as journaled: the original error's tag is kept there, or the error
  // itself if the step declared its schema.
  const cause = error._tag === "StepFailed" ? error.error : undefined
  const errorTag = cause instanceof Journal.StepError ? cause.tag : Journal.tagOf(cause)
  const step = "step" in error ? self.pipeline.steps.find((step) => step.name === error.step) : undefined
  const cancelled = cause instanceof Cancellation.Cancelled
  return new RunFailed({
    id,
    pipeline,
    reason: cancelled ? "Cancelled" : error._tag,
    ...("step" in error ? { step: error.step } : {}),
    ...(errorTag === undefined ? {} : { errorTag }),
    ...(step !== undefined && Journal.isDeclared(step, cause) ? { error: cause } : {}),
    detail: cancelled ? `it was cancelled, at step "${cause.step}"` : error.message,
    usage,
    outputs,
    timeline
  })
}

/**
 * A step's output was read from the journal (it finished in an earlier execution of the run): the step's end event,
 * in place of `StepSucceeded` (core's `Event.StepReplayed`).
 *
 * @since 0.2.0
 */
export type StepReplayed = Extract<CoreEvent.Event, { readonly _tag: "StepReplayed" }>

/**
 * A waiting step ended the run's progress for now: the run suspends until its value arrives. This is the step's end
 * event, in place of `StepInterrupted` (core's `Event.StepSuspended`).
 *
 * @since 0.2.0
 */
export type StepSuspended = Extract<CoreEvent.Event, { readonly _tag: "StepSuspended" }>

/**
 * The run suspended, waiting for signals: the last event of this execution, in place of `RunFinished`. The run
 * goes on, with `RunStarted`, when a signal resumes it (core's `Event.RunSuspended`).
 *
 * @since 0.2.0
 */
export type RunSuspended = Extract<CoreEvent.Event, { readonly _tag: "RunSuspended" }>

/**
 * What a listener of durable runs hears: the events of a plain run, a replayed step and a suspension among them (a
 * resumed run tells each replayed step as started, then replayed).
 *
 * @since 0.2.0
 */
export type Event = CoreEvent.Event

/**
 * Receives the events of every run of a durable pipeline in this process, with the run's id. It runs where the steps
 * run: in the runner process that executes the run.
 *
 * @since 0.2.0
 */
export type Listener = (event: Event, id: string) => void | Effect.Effect<void>

/**
 * Options of {@link layer}.
 *
 * @since 0.2.0
 */
export interface LayerOptions {
  /** Hears the events of every run of the pipeline this process executes. */
  readonly onEvent?: Listener | undefined
}

/**
 * Registers a durable pipeline with the workflow engine, so that its runs can be started and those interrupted by
 * a crash resume when the engine starts. The layer needs what the pipeline's steps need (its waiting steps' signals
 * come from the engine). When the store keeps a `SpendLog` (both stores of `Store` do), each paid call's reservation
 * is written down before the call is sent, so that what a crash cut short counts on resume.
 *
 * @since 0.2.0
 */
export const layer = <A, E, R, O, D, I, V>(
  self: Durable<A, E, R, O, D, I, V>,
  options?: LayerOptions | undefined
): Layer.Layer<never, never, WorkflowEngine | Exclude<R, I | Signals>> => {
  const outcomes = Journal.stepOutcomes(self.stop ?? Schema.Never)
  return self.workflow.toLayer((payload) =>
    Effect.gen(function*() {
      const instance = yield* WorkflowInstance
      const services = Context.make(WorkflowEngine, yield* WorkflowEngine).pipe(Context.add(WorkflowInstance, instance))
      const executor = yield* Executor.make(
        outcomes,
        services,
        yield* Effect.serviceOption(SpendLog.SpendLog),
        yield* Cancellation.watch(yield* Effect.serviceOption(Cancellations.Cancellations), instance.executionId)
      )
      const listener = options?.onEvent
      const onEvent = listener === undefined ? undefined : (event: CoreEvent.Event) => listener(event, payload.id)
      const run = Effect.provideService(Pipeline.run(self.pipeline, { onEvent }), StepExecutor.StepExecutor, executor)
      const input: Input<any, any> | undefined = self.input
      const given = (payload as { readonly input?: unknown }).input
      return yield* (input === undefined ? run : Effect.provideService(run, input.tag, given)).pipe(
        // A waiting step suspended the run: it ended the pipeline, but the run is not over.
        Effect.catchAll((error) =>
          instance.suspended
            ? Workflow.suspend(instance)
            : Effect.fail(runFailed(self, payload.id, error as PipelineError.PipelineError<unknown>))
        )
      )
    })
  ) as Layer.Layer<never, never, WorkflowEngine | Exclude<R, I | Signals>>
}

/**
 * Options of {@link run}.
 *
 * @since 0.2.0
 */
export type RunOptions<V> =
  & {
    /**
     * The run's id: running it again resumes the run if it is unfinished, or returns its stored outcome if it is
     * finished (whatever input is given then). Ids are per pipeline.
     */
    readonly id: string
  }
  & ([V] extends [void] ? { readonly input?: undefined } : { readonly input: V })

/**
 * A run, named by its id: what {@link status}, {@link isFinished}, {@link signal} and {@link cancel} take. Its input,
 * if the pipeline takes one, is stored with it, so that another process can reach the run without knowing it.
 *
 * @since 0.2.0
 */
export interface RunRef {
  readonly id: string
}

/**
 * A run's input cannot be stored with the run: it does not fit the input's schema, or the journal (JSON) cannot
 * carry it (a NaN where the schema says number). Nothing was started.
 *
 * @since 0.2.0
 */
export class InvalidInput extends Data.TaggedError("InvalidInput")<{
  readonly pipeline: string
  readonly id: string
  readonly detail: string
}> {
  override get message(): string {
    return `Cannot start run "${this.id}" of pipeline "${this.pipeline}": its input ${this.detail}`
  }
}

/**
 * The error a run's input can fail with: none for a pipeline whose runs take no input.
 *
 * @since 0.2.0
 */
export type InputError<V> = [V] extends [void] ? never : InvalidInput

export {
  /**
   * A run cannot be started under the id: it is empty, or has control characters (which would reach a terminal raw
   * wherever the id is printed). Nothing was started.
   *
   * @since 0.2.0
   */
  InvalidId,
  /**
   * No run of the pipeline is stored under the id (never started, removed by retention, or mistyped): what
   * {@link signal} and {@link cancel} fail with, having written nothing.
   *
   * @since 0.2.0
   */
  UnknownRun
} from "./internal/ids.js"

/**
 * Runs a durable pipeline under an id, through the workflow engine in the context (see `Store`); the pipeline must
 * be registered with {@link layer}. Succeeds with the run's result; fails with `RunFailed` when the pipeline failed
 * (then and on every later run of the id), `InvalidInput` when the input cannot be stored, `InvalidId` for an
 * empty id or one with control characters, or `StoreUnavailable` (reason `Lost`) when the store's database is lost
 * while the run goes on: the run is left to its journal, and a new process resumes it.
 *
 * Interrupting the caller stops the waiting, not the run: the run goes on in the runner that executes it, and a
 * later `run` of the same id returns its outcome.
 *
 * @since 0.2.0
 */
export const run = <A, E, R, O, D, I, V>(
  self: Durable<A, E, R, O, D, I, V>,
  options: RunOptions<V>
): Effect.Effect<
  Result.Result<A, O, D>,
  RunFailed | InputError<V> | Ids.InvalidId | StoreUnavailable,
  WorkflowEngine
> =>
  Effect.flatMap(payloadOf(self, options), (payload) => {
    const execute = self.workflow.execute(payload) as Effect.Effect<Result.Result<A, O, D>, RunFailed, WorkflowEngine>
    // A store that can be lost tells when it is: the outcome would never come.
    return Effect.flatMap(Effect.serviceOption(Health.Health), (health) =>
      health._tag === "None" ? execute : Effect.raceFirst(execute, health.value.lost))
  })

// The workflow's payload for a run: its id, and its input for a pipeline made with one (the payload's declared type
// names the id alone; the schema the workflow was made with encodes the input too). The input is checked here, where
// it can fail typed: the cluster would refuse what JSON cannot carry with a defect, in the runner.
const payloadOf = <V>(
  self: Any,
  options: RunOptions<V>
): Effect.Effect<{ readonly id: string }, InputError<V> | Ids.InvalidId> => {
  if (!Ids.isValid(options.id)) return Effect.fail(new Ids.InvalidId({ pipeline: self.pipeline.name, id: options.id }))
  const input: Input<unknown, V> | undefined = self.input
  if (input === undefined) return Effect.succeed({ id: options.id })
  return Either.match(Storable.check(input.schema, options.input as V), {
    // A pipeline with an input: `InputError<V>` is `InvalidInput`.
    onLeft: (problem) =>
      Effect.fail(new InvalidInput({ pipeline: self.pipeline.name, id: options.id, detail: problem }) as InputError<V>),
    onRight: (value) => Effect.succeed({ id: options.id, input: value })
  })
}

// The execution id of a run: made from its id alone (see the workflow's idempotency key; the payload's input is
// optional to its schema for this).
const executionIdOf = (self: Any, run: RunRef): Effect.Effect<string> => self.workflow.executionId({ id: run.id })

/**
 * Whether the store holds a finished outcome for the run (then {@link run} of its id returns it and runs nothing). A
 * run that is unknown or still going is not finished.
 *
 * @since 0.2.0
 */
export const isFinished = <A, E, R, O, D, I, V>(
  self: Durable<A, E, R, O, D, I, V>,
  run: RunRef
): Effect.Effect<boolean, never, WorkflowEngine> =>
  Effect.map(status(self, run), (status) => status._tag === "Finished")

/**
 * Where a waiting step ({@link await}) gets its value: a durable run provides it; a plain run (`Pipeline.run`) of
 * the same pipeline needs one provided, such as a test's answers given in advance.
 *
 * @since 0.2.0
 */
export const Signals = Waiting.Signals

/**
 * @since 0.2.0
 */
export type Signals = Waiting.Signals

/**
 * Options of {@link await}.
 *
 * @since 0.2.0
 */
export interface AwaitOptions<A, I, Deps extends Step.Dependencies> {
  /** The value's schema: a signal is checked against it, and the value journaled through it. */
  readonly schema: Schema.Schema<A, I, never>
  /** The steps to wait for before waiting for the signal (their outputs are not used). */
  readonly after?: Deps | undefined
}

/**
 * A step that waits for the outside world: its output is the value {@link signal} delivers under its name. A durable
 * run that reaches it before the value arrives lets the steps running beside it finish, then suspends, surviving
 * restarts, until the value arrives; a value delivered to the run before it reaches the step is kept and used there.
 *
 * @example
 * ```ts
 * const answer = Durable.await("email", { schema: Schema.String, after: { question } })
 * // elsewhere, later, in any process on the same store:
 * yield* Durable.signal(booking, { id: "booking-42", step: "email", value: "ada@example.com" })
 * ```
 *
 * @since 0.2.0
 */
const await_ = <const Name extends string, A, I, const Deps extends Step.Dependencies = {}>(
  name: Name,
  options: AwaitOptions<A, I, Deps>
): Step.Step<Name, A, Cancelled, Signals, Deps> =>
  Waiting.mark(Step.make(name, {
    after: options.after,
    output: options.schema,
    run: () => Effect.flatMap(Waiting.Signals, (signals) => signals.await(name, options.schema))
  }))

export { await_ as await }

/**
 * A signal could not be delivered: the pipeline has no waiting step of that name, or the value does not fit the
 * step's schema.
 *
 * @since 0.2.0
 */
export class InvalidSignal extends Data.TaggedError("InvalidSignal")<{
  readonly pipeline: string
  readonly step: string
  readonly detail: string
}> {
  override get message(): string {
    return `Cannot signal "${this.step}" of pipeline "${this.pipeline}": ${this.detail}`
  }
}

/**
 * Options of {@link signal}: the run, the waiting step (by name), and the value, as its schema's encoded form (JSON)
 * when the step is named, or as the step's output type when the step itself is given.
 *
 * @since 0.2.0
 */
export type SignalOptions<S> = RunRef & (
  | { readonly step: Step.Step<string, S, any, Signals, any>; readonly value: S }
  | { readonly step: string; readonly value: unknown }
)

/**
 * Delivers a value to a run's waiting step ({@link await}), from any process on the run's store. The value is kept
 * until the run reaches the step, if it has not yet; a run suspended there resumes. A second signal to the same step
 * is ignored once the first is stored, and so is a signal to a run that has finished (a cancelled one too): nothing is
 * stored. A run the store does not hold fails with `UnknownRun`, and nothing is written.
 *
 * @since 0.2.0
 */
export const signal = <A, E, R, O, D, I, V, S>(
  self: Durable<A, E, R, O, D, I, V>,
  options: SignalOptions<S>
): Effect.Effect<void, InvalidSignal | Ids.UnknownRun | SqlError, WorkflowEngine | Runs.Runs> =>
  Effect.gen(function*() {
    const name = typeof options.step === "string" ? options.step : options.step.name
    const invalid = (detail: string) => new InvalidSignal({ pipeline: self.pipeline.name, step: name, detail })
    const step = self.pipeline.steps.find((step) => step.name === name)
    if (step === undefined || !Waiting.isWaiting(step)) {
      const waiting = self.pipeline.steps.filter(Waiting.isWaiting).map((step) => `"${step.name}"`)
      return yield* invalid(
        `it has no waiting step of that name (${waiting.length === 0 ? "it has none" : `waiting: ${waiting.join(", ")}`})`
      )
    }
    const schema = step.output as Schema.Schema<unknown, unknown, never>
    const value = typeof options.step === "string"
      ? yield* Effect.mapError(
        Schema.decodeUnknown(schema)(options.value),
        (error) => invalid(`the value does not fit the step's schema: ${error.message}`)
      )
      : options.value
    yield* Either.mapLeft(Storable.check(schema, value), (problem) => invalid(`the value cannot be journaled: ${problem}`))
    const executionId = yield* executionIdOf(self, options)
    yield* Ids.known(self.pipeline.name, options.id, executionId)
    // A finished run never reads the value: stored, it would only be listed as a step the run did.
    const outcome = yield* self.workflow.poll(executionId)
    if (outcome !== undefined && outcome._tag !== "Suspended") return
    const signal = Waiting.deferred(name, schema)
    const token = DurableDeferred.tokenFromExecutionId(signal, { workflow: self.workflow, executionId })
    yield* DurableDeferred.succeed(signal, { token, value })
  })

/**
 * A step's attempt was cut short, or never started, because its run was cancelled ({@link cancel}); a waiting step
 * whose value had not come fails with it too. A cancelled run fails with `RunFailed`, its reason `"Cancelled"`.
 *
 * @since 0.2.0
 */
export const Cancelled = Cancellation.Cancelled

/**
 * @since 0.2.0
 */
export type Cancelled = Cancellation.Cancelled

/**
 * Cancels a run, from any process on its store. The cancellation is stored with the run: a run waiting for a signal
 * resumes and fails at once; a running one is found cancelled within a second by the runner executing it, which
 * interrupts its steps in flight (their finalizers run, and what their calls were billed counts) and starts no
 * other. The run fails with `RunFailed`, its reason `"Cancelled"`, keeping what it finished. A run that finishes
 * first keeps its outcome. A run the store does not hold fails with `UnknownRun`, and nothing is written.
 *
 * @since 0.2.0
 */
export const cancel = <A, E, R, O, D, I, V>(
  self: Durable<A, E, R, O, D, I, V>,
  run: RunRef
): Effect.Effect<void, Ids.UnknownRun | SqlError, WorkflowEngine | Cancellations.Cancellations | Runs.Runs> =>
  Effect.gen(function*() {
    const execution = yield* executionIdOf(self, run)
    yield* Ids.known(self.pipeline.name, run.id, execution)
    yield* Effect.flatMap(Cancellations.Cancellations, (cancellations) => cancellations.cancel(execution))
    yield* self.workflow.resume(execution)
  })

/**
 * Where a durable run stands: `Pending` (not finished and not waiting: going, or never started), `Waiting` (suspended
 * until a waiting step's signal arrives), or `Finished` with its outcome.
 *
 * @since 0.2.0
 */
export type Status<A, O, D> =
  | { readonly _tag: "Pending" }
  | { readonly _tag: "Waiting" }
  | { readonly _tag: "Finished"; readonly exit: Exit.Exit<Result.Result<A, O, D>, RunFailed> }

/**
 * Where a run stands, without waiting for it.
 *
 * @since 0.2.0
 */
export const status = <A, E, R, O, D, I, V>(
  self: Durable<A, E, R, O, D, I, V>,
  run: RunRef
): Effect.Effect<Status<A, O, D>, never, WorkflowEngine> =>
  Effect.map(
    Effect.flatMap(executionIdOf(self, run), self.workflow.poll),
    (outcome): Status<A, O, D> => {
      if (outcome === undefined) return { _tag: "Pending" }
      if (outcome._tag === "Suspended") return { _tag: "Waiting" }
      return { _tag: "Finished", exit: outcome.exit as Exit.Exit<Result.Result<A, O, D>, RunFailed> }
    }
  )

/**
 * Starts a run (or resumes it, as {@link run} would) without waiting for its outcome: see {@link status}. Fails with
 * `InvalidInput` when the input cannot be stored, and `InvalidId` as {@link run} does.
 *
 * @since 0.2.0
 */
export const start = <A, E, R, O, D, I, V>(
  self: Durable<A, E, R, O, D, I, V>,
  options: RunOptions<V>
): Effect.Effect<void, InputError<V> | Ids.InvalidId, WorkflowEngine> =>
  Effect.flatMap(payloadOf(self, options), (payload) => Effect.asVoid(self.workflow.execute(payload, { discard: true })))
