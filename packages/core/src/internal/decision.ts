/**
 * Which failures are decisions rather than accidents: a stop, a refused budget, a bad figure given to the ledger.
 * Retrying one would be wrong (the figure would be given again), and a step that tolerates its parts' failures
 * (a map in `settle` mode) still ends on one.
 */
import { BudgetExceeded, InvalidUsage } from "../Ledger.js"
import { StopSignal } from "./stop.js"

/**
 * The mark of a decision made elsewhere (a durable run's cancellation): an error with this key set is one too. A
 * registered symbol, so that a package that cannot be imported here can mark its errors.
 */
export const decisionKey: unique symbol = Symbol.for("@trellis/core/Decision")

export const isDecision = (error: unknown): boolean =>
  error instanceof StopSignal || error instanceof BudgetExceeded || error instanceof InvalidUsage ||
  (typeof error === "object" && error !== null && decisionKey in error)
