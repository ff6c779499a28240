/**
 * How a run can fail. Every run-time failure carries the partial result: outputs finished and usage so far.
 *
 * @since 0.1.0
 */
import * as Cause from "effect/Cause"
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import * as Cost from "./Cost.js"
import type { BudgetExceeded } from "./Ledger.js"
import type { PartialResult } from "./Result.js"
import type { StepTimeout } from "./Step.js"

/**
 * A pipeline definition was rejected when it was made: duplicate step names, a cycle, a dependency that is not
 * a step, or a bad option. The message names the steps (or option) involved.
 *
 * @since 0.1.0
 */
export class InvalidPipeline extends Data.TaggedError("InvalidPipeline")<{
  readonly pipeline: string
  readonly reason: "DuplicateName" | "Cycle" | "UnknownStep" | "InvalidOption"
  readonly steps: ReadonlyArray<string>
  readonly detail: string
}> {
  override get message(): string {
    return `Invalid pipeline "${this.pipeline}": ${this.detail}`
  }
}

/**
 * A step failed after its retries (or died with a defect). Running siblings were interrupted and nothing new
 * was started. `cause` keeps the step's full failure; `error` is its typed error, if it had one, and `defect` what
 * it died with, if it died.
 *
 * @since 0.1.0
 */
export class StepFailed<out E> extends Data.TaggedError("StepFailed")<{
  readonly pipeline: string
  readonly step: string
  /**
   * Where in the step it failed: for a step made of steps, the first of its parts that failed (`sections[3]`,
   * `refine#2`, `research/extract`); otherwise the step's own name. Absent from errors made before parts existed.
   */
  readonly path?: string | undefined
  readonly cause: Cause.Cause<E | StepTimeout>
  readonly partial: PartialResult
}> {
  /** The very error the step failed with (not a wrapper of it), or `undefined` when it died of a defect. */
  get error(): E | StepTimeout | undefined {
    const failure = Cause.failureOption(this.cause)
    return failure._tag === "Some" ? Cause.originalError(failure.value) : undefined
  }
  /** The very object the step died with when it died of a defect (not a wrapper of it), or `undefined`. */
  get defect(): unknown {
    const defect = Cause.dieOption(this.cause)
    return defect._tag === "Some" ? Cause.originalError(defect.value) : undefined
  }
  override get message(): string {
    const where = this.path === undefined || this.path === this.step ? "" : ` (in "${this.path}")`
    return `Step "${this.step}"${where} of pipeline "${this.pipeline}" failed: ${describe(this.cause)}`
  }
}

/**
 * The whole run took longer than the pipeline's `timeout`. Every running step was interrupted.
 *
 * @since 0.1.0
 */
export class PipelineTimeout extends Data.TaggedError("PipelineTimeout")<{
  readonly pipeline: string
  readonly timeout: Duration.Duration
  readonly partial: PartialResult
}> {
  override get message(): string {
    return `Pipeline "${this.pipeline}" timed out after ${Duration.format(this.timeout)}`
  }
}

/**
 * Under a budget, the run's spend went past the budget, or a call's reported figures could not be right. The ledger
 * recorded the figures as reported, nothing new was started, and the run fails with this rather than end as
 * `Completed`.
 *
 * - `"OverBudget"`: calls cost more than they reserved (a server counting tokens otherwise than the reservation did)
 *   and together took the spend past the budget, or usage recorded without a reservation did. The excess is bounded
 *   by what the calls in flight could honestly cost beyond their reservations.
 * - `"Implausible"`: a call was reported past what any honest answer could cost or use (`detail` says how: output
 *   tokens past the call's `maxTokens`, input far beyond any tokenizer's count, a cost past its ceiling). The
 *   budget's guarantee rests on reservations, so it no longer holds: nothing more is sent.
 *
 * @since 0.1.0
 */
export class BudgetOverrun extends Data.TaggedError("BudgetOverrun")<{
  readonly pipeline: string
  readonly reason: "OverBudget" | "Implausible"
  /** For an implausible call, what is wrong with its figures. */
  readonly detail?: string | undefined
  /** The step whose call was implausible, or whose usage took the spend past the budget. */
  readonly step: string
  readonly budget: Cost.Cost
  /** The run's spend once that usage was recorded. */
  readonly spent: Cost.Cost
  /** What that call had reserved (0 for usage recorded without a reservation). */
  readonly reserved: Cost.Cost
  /** What it was reported to cost. */
  readonly reported: Cost.Cost
  readonly partial: PartialResult
}> {
  override get message(): string {
    const costs = `reported to cost ${Cost.format(this.reported)} where ${Cost.format(this.reserved)} was reserved`
    if (this.reason === "Implausible") {
      return `Pipeline "${this.pipeline}" stopped with ${Cost.format(this.spent)} spent of its budget of ` +
        `${Cost.format(this.budget)}: the figures of a call in step "${this.step}" cannot be right: ` +
        `${this.detail ?? "unknown"} (${costs})`
    }
    return `Pipeline "${this.pipeline}" spent ${Cost.format(this.spent)}, past its budget of ` +
      `${Cost.format(this.budget)}: a call in step "${this.step}" was ${costs}. Calls cost more than they reserve ` +
      `when a server counts tokens otherwise than the local count: a larger budget, or a larger inputMargin, leaves ` +
      `room for it`
  }
}

/**
 * Any way a run can fail, given the union `E` of its steps' errors. A refused budget is not a step's failure: the
 * run fails with `Ledger.BudgetExceeded`, which then always carries the partial result.
 *
 * @since 0.1.0
 */
export type PipelineError<E> =
  | StepFailed<Exclude<E, BudgetExceeded>>
  | (BudgetExceeded & { readonly partial: PartialResult })
  | BudgetOverrun
  | PipelineTimeout

const describe = (cause: Cause.Cause<unknown>): string => {
  const failure = Cause.failureOption(cause)
  const reason = failure._tag === "Some" ? failure.value : Cause.squash(cause)
  if (reason instanceof Error) {
    const tag = "_tag" in reason && typeof reason._tag === "string" ? reason._tag : reason.name
    return reason.message === "" ? tag : `${tag}: ${reason.message}`
  }
  if (typeof reason === "object" && reason !== null && "_tag" in reason) return String(reason._tag)
  return String(reason)
}
