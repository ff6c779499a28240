/**
 * A run's id: checked when a run is started under it, and looked up in the store when a run is reached by it alone
 * (a signal, a cancellation), so that a mistyped id is told at once instead of being written down for a run that will
 * never come.
 */
import type { SqlError } from "@effect/sql/SqlError"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Runs from "../Runs.js"

/**
 * Text with its control characters escaped (`\u001b` for ESC), so that an id read from a store or given by a caller
 * cannot move a terminal's cursor, clear its screen or set its title when a message naming it is printed.
 */
export const printable = (text: string): string =>
  text.replaceAll(/\p{Cc}/gu, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`)

/**
 * No run of the pipeline is stored under the id: it was never started, was removed by retention, or the id is
 * mistyped. Nothing was written.
 *
 * @since 0.2.0
 */
export class UnknownRun extends Data.TaggedError("UnknownRun")<{
  readonly pipeline: string
  readonly id: string
}> {
  override get message(): string {
    return `No run "${printable(this.id)}" of pipeline "${this.pipeline}" in the store: it was never started, or ` +
      `was removed as finished long ago`
  }
}

/**
 * A run cannot be started under the id: it is empty, or has control characters, which would reach a terminal raw
 * wherever the id is printed. Nothing was started.
 *
 * @since 0.2.0
 */
export class InvalidId extends Data.TaggedError("InvalidId")<{
  readonly pipeline: string
  readonly id: string
}> {
  override get message(): string {
    return `Invalid run id "${printable(this.id)}" for pipeline "${this.pipeline}": ` +
      (this.id === "" ? "an id cannot be empty" : "an id cannot have control characters")
  }
}

/** Whether an id can name a run. */
export const isValid = (id: string): boolean => id !== "" && !/\p{Cc}/u.test(id)

/** Fails with `UnknownRun` unless the store holds a run of the pipeline under the id (its execution id). */
export const known = (
  pipeline: string,
  id: string,
  execution: string
): Effect.Effect<void, UnknownRun | SqlError, Runs.Runs> =>
  Effect.flatMap(Runs.Runs, (runs) => runs.exists({ pipeline, execution })).pipe(
    Effect.filterOrFail((exists) => exists, () => new UnknownRun({ pipeline, id })),
    Effect.asVoid
  )
