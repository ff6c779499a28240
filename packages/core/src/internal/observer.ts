/**
 * Turns what happens in a run into what can be seen of it: events for the run's listener, and spans (the run's
 * `pipeline <name>`, a `step <name>` for each step under it).
 */
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import type * as Tracer from "effect/Tracer"
import * as Event from "../Event.js"
import type * as Result from "../Result.js"
import type * as Usage from "../Usage.js"

/** The ways a step can end, as events name them. */
export type Ending = Result.StepTiming["status"]

export class Observer {
  constructor(readonly pipeline: string, private readonly listener: Event.Listener | undefined) {}

  /** Hands an event to the listener (made only if there is one) and runs what it returns. */
  private emit(event: () => Event.Event): Effect.Effect<void> {
    if (this.listener === undefined) return Effect.void
    const returned = this.listener(event())
    return Effect.isEffect(returned) ? returned : Effect.void
  }

  /**
   * The run under its span, between `RunStarted` and `RunFinished`. `usage` is read as the run ends, for the event
   * and the span's cost.
   */
  run<A extends Result.Result<unknown, unknown, unknown>, E, R>(
    steps: ReadonlyArray<string>,
    now: () => number,
    usage: () => Usage.Usage,
    body: Effect.Effect<A, E, R>
  ): Effect.Effect<A, E, R> {
    const pipeline = this.pipeline
    return Effect.useSpan(
      `pipeline ${pipeline}`,
      { attributes: { "trellis.pipeline": pipeline }, captureStackTrace: false },
      (span) =>
        Effect.withParentSpan(
          this.emit(() => Event.RunStarted({ pipeline, steps, at: now() })).pipe(
            Effect.zipRight(body),
            Effect.onExit((exit) => {
              const total = usage()
              span.attribute("trellis.cost_nano_usd", total.cost)
              return this.emit(() => Event.RunFinished({ pipeline, status: statusOf(exit), usage: total, at: now() }))
            })
          ),
          span
        )
    )
  }

  /** A step under its span; `body` receives the span to make it the current one. */
  step<A, E, R>(name: string, body: (span: Tracer.Span) => Effect.Effect<A, E, R>): Effect.Effect<A, E, R> {
    return Effect.useSpan(`step ${name}`, { attributes: { "trellis.step": name }, captureStackTrace: false }, body)
  }

  started(step: string, at: number): Effect.Effect<void> {
    return this.emit(() => Event.StepStarted({ pipeline: this.pipeline, step, at }))
  }

  retrying(step: string, attempt: number, cause: Cause.Cause<unknown>, at: number): Effect.Effect<void> {
    return this.emit(() => Event.StepRetrying({ pipeline: this.pipeline, step, attempt, cause, at }))
  }

  ended(step: string, ending: Ending, exit: Exit.Exit<unknown, unknown>, at: number, durationMs: number): Effect.Effect<void> {
    const pipeline = this.pipeline
    return this.emit(() => {
      switch (ending) {
        case "succeeded":
          return Event.StepSucceeded({ pipeline, step, at, durationMs })
        case "stopped":
          return Event.StepStopped({ pipeline, step, at, durationMs })
        case "interrupted":
          return Event.StepInterrupted({ pipeline, step, at, durationMs })
        case "failed":
          return Event.StepFailed({ pipeline, step, at, durationMs, cause: Exit.isFailure(exit) ? exit.cause : Cause.empty })
      }
    })
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
