/**
 * Lets go of what an error's stack trace holds. V8 keeps the frames of an error's stack (each frame's function and
 * receiver: closures, fibers and through them the services a run was given) until the stack is first formatted, so
 * an error kept by a caller would keep a whole run alive. Formatting the stacks of a run's error, of the failures
 * and defects in its cause, and of the errors they were caused by, turns them into text and frees the frames.
 */
import * as Cause from "effect/Cause"
import * as Predicate from "effect/Predicate"

// Deep enough for any chain of wrapped errors seen in practice; a bound, so that a strange object cannot hang a run.
const maxDepth = 8

const format = (u: unknown, depth: number): void => {
  if (depth > maxDepth || !Predicate.isObject(u)) return
  if (Cause.isCause(u)) {
    for (const failure of Cause.failures(u)) format(failure, depth + 1)
    for (const defect of Cause.defects(u)) format(defect, depth + 1)
    return
  }
  if ("stack" in u) void u.stack
  if ("cause" in u) format(u.cause, depth + 1)
}

/** `error`, with its stack formatted, and those of every failure, defect and cause it holds. */
export const detached = <E>(error: E): E => {
  format(error, 0)
  return error
}
