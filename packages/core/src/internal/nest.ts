/**
 * The run as a step made of steps sees it: what its parts (a `ForEach`'s items, a `Loop`'s iterations, a
 * `SubPipeline`'s steps) run with so that each is a step of the run in everything that can be seen of it and paid
 * for. The runner provides it to each such step while the step runs; only such a step reads it.
 */
import * as Cause from "effect/Cause"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as FiberRef from "effect/FiberRef"
import * as Option from "effect/Option"
import * as Tracer from "effect/Tracer"
import * as Ledger from "../Ledger.js"
import type * as Result from "../Result.js"
import type * as Step from "../Step.js"
import type * as StepExecutor from "../StepExecutor.js"
import type { Ending, Observer } from "./observer.js"
import { StopSignal } from "./stop.js"

/** What a step made of steps runs its parts with. */
export interface Nest {
  /** The step's name in the run (its path, inside a sub-pipeline): its parts' names start with it. */
  readonly path: string
  /** The policy each part runs under: the step's own settings, else the pipeline's defaults. */
  readonly policy: Step.Policy<any>
  readonly observer: Observer
  readonly executor: StepExecutor.Service
  /** The run's ledger; each part's calls are attributed to the part. */
  readonly ledger: Ledger.Service
  /** Gives a part that starts its place in the run's order of starts. */
  readonly partStarted: () => number
  /** Hands the timing of a part that ended to the run's report, with its place in the order of starts. */
  readonly partEnded: (timing: Result.StepTiming, order: number) => void
  /**
   * Told each part that failed, with what it failed with: when the step fails with that very error, the run's error
   * names the part.
   */
  readonly partFailed: (name: string, reason: unknown) => void
}

/** What a failure is told apart by: the error it failed with, or the defect it died with. */
export const reasonOf = (cause: Cause.Cause<unknown>): unknown =>
  Option.getOrElse(Cause.failureOption(cause), () => Option.getOrUndefined(Cause.dieOption(cause)))

/**
 * The parts of a run's steps that failed, by step and by what they failed with (the first part for each): when a
 * step fails with one of those, the run's error names the part. A part whose failure the step tolerated (an item kept
 * as a `Left`, an iteration the budget refused in a loop asked to end then) is not blamed for another failure.
 */
export class FailedParts {
  private readonly byStep = new Map<number, Map<unknown, string>>()

  add(step: number, name: string, reason: unknown): void {
    let parts = this.byStep.get(step)
    if (parts === undefined) this.byStep.set(step, parts = new Map())
    if (!parts.has(reason)) parts.set(reason, name)
  }

  /** The part of step `step` that failed with `reason`, if one did. */
  of(step: number, reason: unknown): string | undefined {
    return this.byStep.get(step)?.get(reason)
  }
}

/** The nest of the step made of steps that is running. */
export class Nesting extends Context.Tag("@trellis/core/internal/Nesting")<Nesting, Nest>() {}

/** How a part ended, as a step's end is told. */
export const endingOf = (exit: Exit.Exit<unknown, unknown>): Ending => {
  if (Exit.isSuccess(exit)) return "succeeded"
  if (Cause.isInterruptedOnly(exit.cause)) return "interrupted"
  const error = Option.getOrUndefined(Cause.failureOption(exit.cause))
  return error instanceof StopSignal ? "stopped" : "failed"
}

/**
 * Runs one part: its span under the step's, its start and end told, its calls attributed to it, its attempts through
 * the run's executor under the step's policy, its timing in the run's report. `part` is named by its path in the run.
 */
export const runPart = <A, E, R>(
  nest: Nest,
  part: Step.Step<string, A, E, R, {}>
): Effect.Effect<A, E | Step.StepTimeout, R> =>
  observed(nest, part.name, (retried) =>
    nest.executor.execute({
      pipeline: nest.observer.pipeline,
      name: part.name,
      step: part,
      inputs: {},
      policy: nest.policy,
      onRetry: (attempt, cause) => {
        retried(attempt)
        return nest.observer.retrying(part.name, attempt, cause, nest.observer.now())
      },
      onReplayed: () => nest.observer.replayed(part.name),
      onSuspended: () => nest.observer.suspended(part.name)
    }))

/**
 * Runs a part made of steps itself (an item that is a sub-pipeline): seen as a part, with no executor of its own;
 * `body` runs its steps with the nest it is given, whose path is the part's.
 */
export const runGroup = <A, E, R>(
  nest: Nest,
  name: string,
  body: (nest: Nest) => Effect.Effect<A, E, R>
): Effect.Effect<A, E, R> => observed(nest, name, () => body({ ...nest, path: name }))

/** A part seen as a step of the run: `work` runs with the part's ledger and span, told `retried` per new attempt. */
const observed = <A, E, R>(
  nest: Nest,
  name: string,
  work: (retried: (attempt: number) => void) => Effect.Effect<A, E, R>
): Effect.Effect<A, E, R> =>
  Effect.uninterruptibleMask((restore) => {
    const observer = nest.observer
    let attempts = 1
    let span: Tracer.Span | undefined
    let startedAt = 0
    let order = 0
    const enter = FiberRef.modify(FiberRef.currentContext, (outer): [Context.Context<never>, Context.Context<never>] => {
      span = observer.openStep(name, Option.getOrElse(Context.getOption(outer, Tracer.ParentSpan), () => observer.span))
      startedAt = observer.now()
      order = nest.partStarted()
      // The part's work sees the nest too (a context without it would be one more copy per part), but never reads
      // it: only a step made of steps does, and the runner gives each its own.
      const inner = Context.add(Context.add(outer, Ledger.Ledger, nest.ledger.forStep(name)), Tracer.ParentSpan, span)
      return [outer, inner]
    })
    const leave = (outer: Context.Context<never>, exit: Exit.Exit<A, E>) => {
      observer.end(span!, exit)
      const ending = endingOf(exit)
      const at = observer.now()
      nest.partEnded({ step: name, status: ending, startedAt, endedAt: at, attempts, parent: nest.path }, order)
      if (ending === "failed" && Exit.isFailure(exit)) nest.partFailed(name, reasonOf(exit.cause))
      return FiberRef.set(FiberRef.currentContext, outer).pipe(
        Effect.zipRight(observer.ended(name, ending, exit, at, at - startedAt)),
        Effect.zipRight(exit)
      )
    }
    return Effect.flatMap(enter, (outer) =>
      Effect.zipRight(
        observer.started(name, startedAt, nest.path),
        Effect.flatMap(Effect.exit(restore(work((attempt) => (attempts = attempt)))), (exit) => leave(outer, exit))
      ))
  })

/**
 * A part: a step named by its path, with no dependencies (what it needs is in its closure), carrying the schemas a
 * durable run journals it through.
 */
export const part = <A, E, R>(
  template: Step.Any,
  name: string,
  run: Effect.Effect<A, E, R>,
  output: Step.Any["output"],
  error: Step.Any["error"] = template.error
): Step.Step<string, A, E, R, {}> =>
  Object.assign(Object.create(Object.getPrototypeOf(template)), {
    name,
    after: {},
    timeout: undefined,
    retry: undefined,
    run: () => run,
    output,
    error,
    shape: undefined
  })
