/**
 * Which failures are decisions rather than accidents: a stop, a refused budget, a bad figure given to the ledger.
 * Retrying one would be wrong (the figure would be given again), and a step that tolerates its parts' failures
 * (a map in `settle` mode) still ends on one.
 */
import { BudgetExceeded, InvalidUsage } from "../Ledger.js"
import { StopSignal } from "./stop.js"

export const isDecision = (error: unknown): boolean =>
  error instanceof StopSignal || error instanceof BudgetExceeded || error instanceof InvalidUsage
