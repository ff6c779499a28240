/**
 * What happens during a run, as it happens: enough to draw a progress display.
 *
 * @since 0.1.0
 */
import type * as Cause from "effect/Cause"
import type * as Usage from "./Usage.js"

/**
 * An event of a run. `at` is the run's clock in milliseconds.
 *
 * @since 0.1.0
 */
export type Event =
  | { readonly _tag: "RunStarted"; readonly pipeline: string; readonly steps: ReadonlyArray<string>; readonly at: number }
  | { readonly _tag: "StepStarted"; readonly pipeline: string; readonly step: string; readonly at: number }
  | {
    readonly _tag: "StepRetrying"
    readonly pipeline: string
    readonly step: string
    /** The attempt about to start, from 2. */
    readonly attempt: number
    /** Why the previous attempt failed. */
    readonly cause: Cause.Cause<unknown>
    readonly at: number
  }
  | {
    readonly _tag: "StepSucceeded"
    readonly pipeline: string
    readonly step: string
    readonly at: number
    readonly durationMs: number
  }
  | {
    readonly _tag: "StepFailed"
    readonly pipeline: string
    readonly step: string
    readonly cause: Cause.Cause<unknown>
    readonly at: number
  }
  | { readonly _tag: "StepStopped"; readonly pipeline: string; readonly step: string; readonly at: number }
  | { readonly _tag: "UsageRecorded"; readonly pipeline: string; readonly step: string; readonly usage: Usage.Usage }
  | {
    readonly _tag: "RunFinished"
    readonly pipeline: string
    readonly status: "completed" | "stopped" | "failed" | "interrupted"
    readonly usage: Usage.Usage
    readonly at: number
  }

/**
 * Receives events synchronously, in the order they happen. Keep it quick: it runs on the step's fiber.
 *
 * @since 0.1.0
 */
export type Listener = (event: Event) => void
