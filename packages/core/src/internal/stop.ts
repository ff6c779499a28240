import * as Data from "effect/Data"

/**
 * The signal a step fails with to end the run on purpose (see `Pipeline.stop`). Never retried. It lives apart from
 * `Pipeline` because `Step` must recognise it too.
 */
export class StopSignal<out D> extends Data.TaggedError("StopSignal")<{ readonly data: D }> {
  override get message(): string {
    return "A step stopped the run on purpose"
  }
}
