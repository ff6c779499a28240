/**
 * What a durable run writes to the journal, as schemas: a step's outcome (its output or its error, with the usage it
 * recorded) and the run's result. Each step's output goes through the schema the step declared.
 */
import { Ledger, Pipeline, type Result, type Step, type Usage as UsageModule } from "@trellis/core"
import * as Schema from "effect/Schema"
import { Cancelled } from "./cancellation.js"

/** An exact amount of nano-dollars, as the core's `Cost`. */
export const Cost = Schema.NonNegativeInt.pipe(Schema.brand("@trellis/core/Cost"))

const Count = Schema.NonNegativeInt

/** A usage, as the core's `Usage.Usage`. */
export const Usage: Schema.Schema<UsageModule.Usage, {
  readonly inputTokens: number
  readonly outputTokens: number
  readonly cachedInputTokens: number
  readonly reasoningTokens: number
  readonly requests: number
  readonly toolCalls: number
  readonly cost: number
  readonly estimated: boolean
}> = Schema.Struct({
  inputTokens: Count,
  outputTokens: Count,
  cachedInputTokens: Count,
  reasoningTokens: Count,
  requests: Count,
  toolCalls: Count,
  cost: Cost,
  estimated: Schema.Boolean
})

/** Usage in total and by step, as the core's `Result.UsageReport`. */
export const UsageReport: Schema.Schema<Result.UsageReport, {
  readonly total: typeof Usage.Encoded
  readonly byStep: { readonly [step: string]: typeof Usage.Encoded }
}> = Schema.Struct({
  total: Usage,
  byStep: Schema.Record({ key: Schema.String, value: Usage })
})

const StepTiming = Schema.Struct({
  step: Schema.String,
  status: Schema.Literal("succeeded", "failed", "stopped", "interrupted"),
  startedAt: Schema.Number,
  endedAt: Schema.Number,
  attempts: Schema.Number,
  // A part of a step made of steps (an item, an iteration, a sub-pipeline's step) names that step.
  parent: Schema.optional(Schema.String)
})

/**
 * A step failed with an error the journal cannot store as itself (its type has no schema): kept as its tag and
 * message, which is what a resumed run needs to fail the same way.
 */
export class StepError extends Schema.TaggedError<StepError>("@trellis/durable/StepError")("StepError", {
  step: Schema.String,
  tag: Schema.optional(Schema.String),
  detail: Schema.String
}) {
  override get message(): string {
    return this.detail
  }
}

/**
 * The error a step's outcome can journal: a stop (with its data), a refused budget, a cancellation, an error the
 * step declared the schema of (as itself), or any other failure (as its tag and message).
 */
const StepFailure = (stop: Schema.Schema.All, declared: Schema.Schema.AnyNoContext | undefined) =>
  Schema.Union(
    Schema.transform(
      Schema.Struct({ _tag: Schema.Literal("StopSignal"), data: stop }),
      Schema.instanceOf(Pipeline.StopSignal),
      {
        strict: false,
        decode: ({ data }) => new Pipeline.StopSignal({ data }),
        encode: (signal) => ({ _tag: "StopSignal" as const, data: signal.data })
      }
    ),
    Schema.transform(
      Schema.Struct({
        _tag: Schema.Literal("BudgetExceeded"),
        budget: Cost,
        spent: Cost,
        reserved: Cost,
        requested: Cost,
        step: Schema.String
      }),
      Schema.instanceOf(Ledger.BudgetExceeded),
      {
        strict: false,
        decode: (fields) => new Ledger.BudgetExceeded(fields),
        encode: (e) => ({
          _tag: "BudgetExceeded" as const,
          budget: e.budget,
          spent: e.spent,
          reserved: e.reserved,
          requested: e.requested,
          step: e.step
        })
      }
    ),
    Cancelled,
    ...(declared === undefined ? [] : [declared]),
    StepError
  )

/** What an attempt's Activity succeeds with: the step's output and the usage the attempt recorded. */
export const stepSuccess = (step: Step.Any) =>
  Schema.Struct({ output: step.output as Schema.Schema<unknown, unknown>, usage: Usage })

/** The schemas an attempt's outcome is journaled through: how it succeeds, how it fails. */
export interface StepOutcome {
  readonly success: ReturnType<typeof stepSuccess>
  readonly failure: ReturnType<typeof stepFailure>
}

/** Finds the schemas of any step's outcome: a step of the pipeline, of a sub-pipeline, or a part of a step. */
export type StepOutcomes = (step: Step.Any) => StepOutcome

/**
 * The schemas of the outcomes of a pipeline's steps and of their parts, made once per pair of output and error
 * schemas: a schema made again for each run, or for each of a map's items, would have its parsers compiled again each
 * time. The items of one map (the iterations of one loop) share their step's schemas, so they share one outcome.
 */
export const stepOutcomes = (stop: Schema.Schema.All): StepOutcomes => {
  const byOutput = new WeakMap<object, Map<Schema.Schema.AnyNoContext | undefined, StepOutcome>>()
  return (step) => {
    // `Durable.make` refuses a step without an output schema: reaching one here is a defect of the library.
    if (step.output === undefined) throw new Error(`Step "${step.name}" has no output schema to journal it through`)
    let byError = byOutput.get(step.output)
    if (byError === undefined) {
      byError = new Map()
      byOutput.set(step.output, byError)
    }
    let outcome = byError.get(step.error)
    if (outcome === undefined) {
      outcome = { success: stepSuccess(step), failure: stepFailure(stop, step) }
      byError.set(step.error, outcome)
    }
    return outcome
  }
}

/**
 * What an attempt's Activity fails with: the step's error, the usage the attempt recorded before failing, and
 * whether the step's retry policy retries the error. The verdict is taken on the error itself, which the journal may
 * keep only as its tag and message; an outcome journaled without one ended all of its step's attempts.
 */
export const stepFailure = (stop: Schema.Schema.All, step: Step.Any) =>
  Schema.Struct({
    error: StepFailure(stop, step.error),
    usage: Usage,
    retryable: Schema.optionalWith(Schema.Boolean, { default: () => false })
  })

/** An error's `_tag`, if it has one. */
export const tagOf = (error: unknown): string | undefined =>
  typeof error === "object" && error !== null && "_tag" in error && typeof error._tag === "string"
    ? error._tag
    : undefined

/** Whether a step's error is one it declared the schema of (`Step.make`'s `error`): journaled as itself. */
export const isDeclared = (step: Step.Any, error: unknown): boolean =>
  step.error !== undefined && Schema.is(step.error)(error)

/** A step's error as the journal can store it; `name` is the step's name in the run (its path, for a part). */
export const journaled = (step: Step.Any, name: string, error: unknown): unknown => {
  if (
    error instanceof Pipeline.StopSignal || error instanceof Ledger.BudgetExceeded || error instanceof Cancelled ||
    isDeclared(step, error)
  ) {
    return error
  }
  const tag = tagOf(error)
  const detail = error instanceof Error || (typeof error === "object" && error !== null && "message" in error)
    ? String((error as { message: unknown }).message)
    : String(error)
  return new StepError({ step: name, detail, ...(tag === undefined ? {} : { tag }) })
}

/** Every step's output, by step name, through the step's schema. */
const outputsOf = (pipeline: Pipeline.Any) =>
  Schema.Struct(
    Object.fromEntries(pipeline.steps.map((step) => [step.name, step.output as Schema.Schema<unknown, unknown>]))
  )

/** Why a run failed: the pipeline error's kind, or its cancellation. */
const Reason = Schema.Literal("StepFailed", "BudgetExceeded", "BudgetOverrun", "PipelineTimeout", "Cancelled")

/** The fields a failed run is stored with (see `Durable.RunFailed`). */
export interface FailureFields {
  readonly id: string
  readonly pipeline: string
  readonly reason: typeof Reason.Type
  /** The step the pipeline error names. */
  readonly step?: string | undefined
  /** The `_tag` of the error the step failed with, when it had one. */
  readonly errorTag?: string | undefined
  /** The error the step failed with, as itself, when the step declared its schema (`Step.make`'s `error`). */
  readonly error?: unknown
  /** The pipeline error's message. */
  readonly detail: string
  readonly usage: Result.UsageReport
  /** The outputs of the steps that finished, by step name. */
  readonly outputs: Readonly<Record<string, unknown>>
  readonly timeline: ReadonlyArray<Result.StepTiming>
}

/**
 * The schema of a pipeline's failed outcome, as the error class given: the finished steps' outputs go
 * through their schemas. Outcomes stored before the outputs and the timeline were kept read back with none.
 */
export const failure = <E extends FailureFields>(
  pipeline: Pipeline.Any,
  Error: new(fields: FailureFields) => E
) => {
  const declared = pipeline.steps.flatMap((step) => step.error === undefined ? [] : [step.error])
  const Fields = Schema.Struct({
    _tag: Schema.Literal("RunFailed"),
    id: Schema.String,
    pipeline: Schema.String,
    reason: Reason,
    step: Schema.optional(Schema.String),
    errorTag: Schema.optional(Schema.String),
    error: Schema.optional(declared.length === 0 ? Schema.Never : Schema.Union(...declared)),
    detail: Schema.String,
    usage: UsageReport,
    outputs: Schema.optionalWith(Schema.partial(outputsOf(pipeline)), { default: () => ({}) }),
    timeline: Schema.optionalWith(Schema.Array(StepTiming), { default: () => [] })
  })
  return Schema.transform(Fields, Schema.instanceOf(Error), {
    strict: false,
    decode: ({ _tag, ...fields }) => new Error(fields),
    encode: (error: E) => ({
      _tag: "RunFailed" as const,
      id: error.id,
      pipeline: error.pipeline,
      reason: error.reason,
      ...(error.step === undefined ? {} : { step: error.step }),
      ...(error.errorTag === undefined ? {} : { errorTag: error.errorTag }),
      ...(error.error === undefined ? {} : { error: error.error }),
      detail: error.detail,
      usage: error.usage,
      outputs: error.outputs,
      timeline: error.timeline
    })
  })
}

/** The schema of a pipeline's result: the output and every step's output through their schemas. */
export const result = (pipeline: Pipeline.Any, stop: Schema.Schema.AnyNoContext | undefined) => {
  const outputs = outputsOf(pipeline)
  const Completed = Schema.Struct({
    _tag: Schema.Literal("Completed"),
    pipeline: Schema.String,
    output: pipeline.output.output as Schema.Schema<unknown, unknown>,
    outputs,
    usage: UsageReport,
    timeline: Schema.Array(StepTiming)
  })
  if (stop === undefined) return Completed as Schema.Schema<Result.Result<unknown, unknown, unknown>, unknown>
  const Stopped = Schema.Struct({
    _tag: Schema.Literal("Stopped"),
    pipeline: Schema.String,
    step: Schema.String,
    data: stop,
    outputs: Schema.partial(outputs),
    usage: UsageReport,
    timeline: Schema.Array(StepTiming)
  })
  return Schema.Union(Completed, Stopped) as Schema.Schema<Result.Result<unknown, unknown, unknown>, unknown>
}
