/**
 * Reading the budget from inside a step, so that code can route to a cheaper model as money runs low.
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import type * as Cost from "./Cost.js"
import { Ledger } from "./Ledger.js"

/**
 * Money left in the current run: budget minus spent minus reserved. `None` when there is no budget (or no run).
 *
 * @since 0.1.0
 */
export const remaining: Effect.Effect<Option.Option<Cost.Cost>> = Effect.flatMap(
  Effect.serviceOption(Ledger),
  (ledger) => (Option.isNone(ledger) ? Effect.succeedNone : ledger.value.remaining)
)
