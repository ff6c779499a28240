/**
 * Durable runs: a pipeline run as an `@effect/workflow` workflow whose steps are Activities, so that the run outlives
 * its process.
 *
 * Each finished step's output (through the schema the step declares with `Step.make`'s `output` option) and the
 * usage it recorded are journaled by the workflow engine. A run resumed after a crash replays the finished steps from
 * the journal without running them, counts their usage in its ledger (so the budget holds across restarts), and runs
 * the rest. Running the id of a finished run returns its stored result and runs nothing.
 *
 * @since 0.2.0
 */
import * as Workflow from "@effect/workflow/Workflow"
import { WorkflowEngine, WorkflowInstance } from "@effect/workflow/WorkflowEngine"
import { Pipeline, type PipelineError, type Result, StepExecutor } from "@trellis/core"
import * as Context from "effect/Context"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import { identity } from "effect/Function"
import type * as Layer from "effect/Layer"
import * as Schedule from "effect/Schedule"
import * as Schema from "effect/Schema"
import * as Executor from "./internal/executor.js"
import * as Journal from "./internal/journal.js"
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
  readonly workflow: Workflow.Workflow<string, typeof Payload, Schema.Schema<any, any>, typeof RunFailed>
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
 * A pipeline cannot run durably: the message names the steps that declare no output schema.
 *
 * @since 0.2.0
 */
export class MissingSchema extends Data.TaggedError("MissingSchema")<{
  readonly pipeline: string
  readonly steps: ReadonlyArray<string>
}> {
  override get message(): string {
    const steps = this.steps.map((step) => `"${step}"`).join(", ")
    return `Pipeline "${this.pipeline}" cannot run durably: ${this.steps.length === 1 ? "step" : "steps"} ${steps} ` +
      `declare${this.steps.length === 1 ? "s" : ""} no output schema (Step.make's output option), so ` +
      `${this.steps.length === 1 ? "its output" : "their outputs"} cannot be journaled`
  }
}

/**
 * A durable run failed. It is stored as the run's outcome, so it is what every later run of the same id returns:
 * the pipeline error's kind, the step it names, its message, and the usage up to the failure.
 *
 * @since 0.2.0
 */
export class RunFailed extends Schema.TaggedError<RunFailed>("@trellis/durable/RunFailed")("RunFailed", {
  id: Schema.String,
  pipeline: Schema.String,
  reason: Schema.Literal("StepFailed", "BudgetExceeded", "BudgetOverrun", "PipelineTimeout"),
  step: Schema.optional(Schema.String),
  detail: Schema.String,
  usage: Journal.UsageReport
}) {
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
): Either.Either<Durable<A, E, R, O, D, I, V>, MissingSchema> => {
  const missing = pipeline.steps.filter((step) => step.output === undefined).map((step) => step.name)
  if (missing.length > 0) return Either.left(new MissingSchema({ pipeline: pipeline.name, steps: missing }))
  const stop: Schema.Schema.AnyNoContext | undefined = options?.stop
  const input = options?.input
  const workflow = Workflow.make({
    name: pipeline.name,
    // With an input, the payload has it as well (the type says `id` only: the rest is this module's business).
    payload: (input === undefined ? Payload : Schema.Struct({ id: Schema.String, input: input.schema })) as typeof Payload,
    // The run is its id: running an id again with another input returns the run that id already has.
    idempotencyKey: ({ id }: { readonly id: string }) => id,
    success: Journal.result(pipeline, stop),
    error: RunFailed,
    suspendedRetrySchedule
  })
  return Either.right({ [TypeId]: TypeId, pipeline, workflow, stop, input })
}

/**
 * Makes a pipeline durable. Every step must declare the schema of its output (`Step.make`'s `output` option), and a
 * pipeline that can be stopped the schema of the stop data: a step without one throws `MissingSchema`, naming it.
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
const runFailed = (id: string, error: PipelineError.PipelineError<unknown>): RunFailed =>
  new RunFailed({
    id,
    pipeline: error.partial.pipeline,
    reason: error._tag,
    ...("step" in error ? { step: error.step } : {}),
    detail: error.message,
    usage: error.partial.usage
  })

/**
 * Registers a durable pipeline with the workflow engine, so that its runs can be started and those interrupted by
 * a crash resume when the engine starts. The layer needs what the pipeline's steps need. When the store keeps a
 * `SpendLog` (both stores of `Store` do), each paid call's reservation is written down before the call is sent, so that
 * what a crash cut short counts on resume.
 *
 * @since 0.2.0
 */
export const layer = <A, E, R, O, D, I, V>(
  self: Durable<A, E, R, O, D, I, V>
): Layer.Layer<never, never, WorkflowEngine | Exclude<R, I>> =>
  self.workflow.toLayer((payload) =>
    Effect.gen(function*() {
      const engine = yield* WorkflowEngine
      const instance = yield* WorkflowInstance
      const executor = Executor.make(
        self.stop ?? Schema.Never,
        Context.make(WorkflowEngine, engine).pipe(Context.add(WorkflowInstance, instance)),
        yield* Effect.serviceOption(SpendLog.SpendLog)
      )
      const run = Effect.provideService(Pipeline.run(self.pipeline), StepExecutor.StepExecutor, executor)
      const input: Input<any, any> | undefined = self.input
      const given = (payload as { readonly input?: unknown }).input
      return yield* (input === undefined ? run : Effect.provideService(run, input.tag, given)).pipe(
        Effect.mapError((error) => runFailed(payload.id, error as PipelineError.PipelineError<unknown>))
      )
    })
  ) as Layer.Layer<never, never, WorkflowEngine | Exclude<R, I>>

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
 * Runs a durable pipeline under an id, through the workflow engine in the context (see `Store`); the pipeline must
 * be registered with {@link layer}. Succeeds with the run's result; fails with `RunFailed` when the pipeline failed
 * (then and on every later run of the id).
 *
 * @since 0.2.0
 */
export const run = <A, E, R, O, D, I, V>(
  self: Durable<A, E, R, O, D, I, V>,
  options: RunOptions<V>
): Effect.Effect<Result.Result<A, O, D>, RunFailed, WorkflowEngine> =>
  self.workflow.execute(payloadOf(self, options)) as Effect.Effect<Result.Result<A, O, D>, RunFailed, WorkflowEngine>

// The workflow's payload for a run: its id, and its input for a pipeline made with one (the payload's declared type
// names the id alone; the schema the workflow was made with encodes the input too).
const payloadOf = <V>(self: Any, options: RunOptions<V>): { readonly id: string } =>
  (self.input === undefined ? { id: options.id } : { id: options.id, input: options.input }) as { readonly id: string }

/**
 * Whether the store holds a finished outcome for the run (then {@link run}, given the same options, returns it and
 * runs nothing). A run that is unknown or still going is not finished.
 *
 * @since 0.2.0
 */
export const isFinished = <A, E, R, O, D, I, V>(
  self: Durable<A, E, R, O, D, I, V>,
  options: RunOptions<V>
): Effect.Effect<boolean, never, WorkflowEngine> =>
  Effect.map(
    Effect.flatMap(self.workflow.executionId(payloadOf(self, options)), self.workflow.poll),
    (outcome) => outcome?._tag === "Complete"
  )

