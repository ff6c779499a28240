/**
 * Turns what happens in a run into what can be seen of it: events for the run's listener, and spans (the run's
 * `pipeline <name>`, a `step <name>` for each step under it).
 */
import * as Cause from "effect/Cause"
import * as Chunk from "effect/Chunk"
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Exit from "effect/Exit"
import type * as Fiber from "effect/Fiber"
import * as FiberRef from "effect/FiberRef"
import * as HashMap from "effect/HashMap"
import * as Option from "effect/Option"
import * as Tracer from "effect/Tracer"
import * as Effect from "effect/Effect"
import * as Event from "../Event.js"
import type * as Result from "../Result.js"
import type * as Cost from "../Cost.js"
import type * as Usage from "../Usage.js"

/** The ways a step can end, as events name them. */
export type Ending = Result.StepTiming["status"]

/**
 * What spans are made with, read once from the fiber that runs the pipeline, where `Effect.makeSpan` would read it
 * for each span: the tracer (none when the application turned tracing off), whether spans carry times, and the
 * links and annotations every span gets.
 */
interface Tracing {
  readonly tracer: Tracer.Tracer | undefined
  readonly timing: boolean
  readonly links: ReadonlyArray<Tracer.SpanLink>
  readonly annotations: HashMap.HashMap<string, unknown>
}

export class Observer {
  readonly clock: Clock.Clock
  private readonly tracing: Tracing
  readonly pipeline: string
  readonly listener: Event.Listener | undefined
  /** The run's span, opened with `Effect.makeSpan`: the parent of the steps' spans. */
  readonly span: Tracer.Span
  /**
   * Set for the run of a sub-pipeline: its steps' events go to the enclosing run's listener under the enclosing run's
   * name, and the run itself tells no start or end (its step of the enclosing run does).
   */
  private readonly nested: boolean
  /** The steps (parts) whose output an executor read from its journal: they end with `StepReplayed`. */
  private readonly replayedSteps = new Set<string>()
  /** The steps whose attempt suspended the run: they end with `StepSuspended`, and the run with `RunSuspended`. */
  private readonly suspendedSteps = new Set<string>()

  constructor(
    pipeline: string,
    listener: Event.Listener | undefined,
    fiber: Fiber.RuntimeFiber<unknown, unknown>,
    span: Tracer.Span,
    nested = false
  ) {
    this.pipeline = pipeline
    this.listener = listener
    this.span = span
    this.nested = nested
    this.clock = Context.get(fiber.currentDefaultServices, Clock.Clock)
    this.tracing = {
      tracer: fiber.getFiberRef(FiberRef.currentTracerEnabled) ? fiber.currentTracer : undefined,
      timing: fiber.getFiberRef(FiberRef.currentTracerTimingEnabled),
      links: Chunk.toReadonlyArray(fiber.getFiberRef(FiberRef.currentTracerSpanLinks)),
      annotations: fiber.getFiberRef(FiberRef.currentTracerSpanAnnotations)
    }
  }

  now(): number {
    return this.clock.unsafeCurrentTimeMillis()
  }

  /** Whether anyone listens to the events: without a listener, none is made or waited for. */
  get listening(): boolean {
    return this.listener !== undefined
  }

  /** Hands an event to the listener (made only if there is one) and runs what it returns. */
  private emit(event: () => Event.Event): Effect.Effect<void> {
    if (this.listener === undefined) return Effect.void
    const returned = this.listener(event())
    return Effect.isEffect(returned) ? returned : Effect.void
  }

  /**
   * Opens a step's span under the run's (or, for a part of a step made of steps, under that step's), as
   * `Effect.makeSpan` would; with tracing turned off, the step shares the run's (which then records nothing).
   */
  openStep(name: string, parent: Tracer.AnySpan = this.span): Tracer.Span {
    const { annotations, links, timing, tracer } = this.tracing
    if (tracer === undefined) return this.span
    const startTime = timing ? this.clock.unsafeCurrentTimeNanos() : BigInt(0)
    const span = tracer.span(`step ${name}`, Option.some(parent), Context.empty(), links, startTime, "internal")
    HashMap.forEach(annotations, (value, key) => span.attribute(key, value))
    span.attribute("trellis.step", name)
    return span
  }

  /** Ends a span as `Effect.useSpan` would. */
  end(span: Tracer.Span, exit: Exit.Exit<unknown, unknown>): void {
    if (span.status._tag === "Ended") return
    span.end(this.tracing.timing ? this.clock.unsafeCurrentTimeNanos() : BigInt(0), exit)
  }

  runStarted(steps: ReadonlyArray<string>): Effect.Effect<void> {
    if (this.nested) return Effect.void
    return this.emit(() => Event.RunStarted({ pipeline: this.pipeline, steps, at: this.now() }))
  }

  /** The run ended: its span ends with its cost, and `RunFinished` reports it. */
  runFinished(exit: Exit.Exit<Result.Result<unknown, unknown, unknown>, unknown>, usage: Usage.Usage): Effect.Effect<void> {
    this.span.attribute("trellis.cost_nano_usd", usage.cost)
    this.end(this.span, exit)
    if (this.nested) return Effect.void
    const pipeline = this.pipeline
    return this.emit(() =>
      this.suspendedSteps.size > 0 && Exit.isFailure(exit)
        ? Event.RunSuspended({ pipeline, usage, at: this.now() })
        : Event.RunFinished({ pipeline, status: statusOf(exit), usage, at: this.now() })
    )
  }

  /** The executor read step `step`'s output from its journal rather than run it. */
  replayed(step: string): void {
    this.replayedSteps.add(step)
  }

  /** Step `step`'s attempt suspended the run. */
  suspended(step: string): void {
    this.suspendedSteps.add(step)
  }

  started(step: string, at: number, parent?: string): Effect.Effect<void> {
    return this.emit(() =>
      Event.StepStarted(
        parent === undefined ? { pipeline: this.pipeline, step, at } : { pipeline: this.pipeline, step, at, parent }
      )
    )
  }

  retrying(step: string, attempt: number, cause: Cause.Cause<unknown>, at: number): Effect.Effect<void> {
    return this.emit(() => Event.StepRetrying({ pipeline: this.pipeline, step, attempt, cause, at }))
  }

  ended(step: string, ending: Ending, exit: Exit.Exit<unknown, unknown>, at: number, durationMs: number): Effect.Effect<void> {
    const pipeline = this.pipeline
    return this.emit(() => {
      switch (ending) {
        case "succeeded":
          return this.replayedSteps.has(step)
            ? Event.StepReplayed({ pipeline, step, at, durationMs })
            : Event.StepSucceeded({ pipeline, step, at, durationMs })
        case "stopped":
          return Event.StepStopped({ pipeline, step, at, durationMs })
        case "interrupted":
          return this.suspendedSteps.has(step)
            ? Event.StepSuspended({ pipeline, step, at, durationMs })
            : Event.StepInterrupted({ pipeline, step, at, durationMs })
        case "failed":
          return Event.StepFailed({ pipeline, step, at, durationMs, cause: Exit.isFailure(exit) ? exit.cause : Cause.empty })
      }
    })
  }

  exceeded(step: string, reserved: Cost.Cost, cost: Cost.Cost): Effect.Effect<void> {
    return this.emit(() => Event.ReservationExceeded({ pipeline: this.pipeline, step, reserved, cost }))
  }

  usage(step: string, usage: Usage.Usage): Effect.Effect<void> {
    return this.emit(() => Event.UsageRecorded({ pipeline: this.pipeline, step, usage }))
  }
}

const statusOf = (
  exit: Exit.Exit<Result.Result<unknown, unknown, unknown>, unknown>
): "completed" | "stopped" | "failed" | "interrupted" => {
  if (Exit.isSuccess(exit)) return exit.value._tag === "Completed" ? "completed" : "stopped"
  return Exit.isInterrupted(exit) ? "interrupted" : "failed"
}
