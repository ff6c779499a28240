/**
 * Reserve-then-settle for model calls, written once: the worst case is reserved in the current ledger before
 * anything is sent, and the reservation is settled to what the call used, however it ended. Outside a ledger
 * nothing is reserved and the call just runs.
 *
 * The reservation is made with interruption masked and the settlement always runs, so an interruption that arrives
 * while the money is being reserved still finds it settled; only the call itself is interruptible.
 */
import { type Cost, Ledger, type Usage } from "@trellis/core"
import * as Effect from "effect/Effect"
import type * as Exit from "effect/Exit"
import * as Option from "effect/Option"
import type * as Scope from "effect/Scope"

/** What one call holds in the ledger of its run, if it runs in one. */
type Hold = Option.Option<{ readonly ledger: Ledger.Service; readonly reservation: Ledger.Reservation }>

const reserve = (worstCase: Cost.Cost): Effect.Effect<Hold, Ledger.BudgetExceeded> =>
  Effect.flatMap(Effect.serviceOption(Ledger.Ledger), (ledger) =>
    Option.isNone(ledger)
      ? Effect.succeed(Option.none())
      : Effect.map(ledger.value.reserve(worstCase), (reservation) => Option.some({ ledger: ledger.value, reservation })))

const settle = <A, E>(usage: (exit: Exit.Exit<A, E>) => Usage.Usage) => (hold: Hold, exit: Exit.Exit<A, E>) =>
  Option.isNone(hold) ? Effect.void : hold.value.ledger.settle(hold.value.reservation, usage(exit))

/**
 * Runs a call metered: `worstCase` reserved first (failing with `BudgetExceeded` before `run` starts if that could
 * pass the budget), then `run`, then the reservation settled to `usage` of the call's exit.
 */
export const metered = <A, E, R>(options: {
  readonly worstCase: Cost.Cost
  readonly run: Effect.Effect<A, E, R>
  readonly usage: (exit: Exit.Exit<NoInfer<A>, NoInfer<E>>) => Usage.Usage
}): Effect.Effect<A, E | Ledger.BudgetExceeded, R> =>
  Effect.acquireUseRelease(reserve(options.worstCase), () => options.run, settle(options.usage))

/**
 * The same metering for a call that lasts as long as a scope (a stream): `worstCase` reserved now, settled to
 * `usage` of the scope's exit when it closes.
 */
export const meteredScoped = (options: {
  readonly worstCase: Cost.Cost
  readonly usage: (exit: Exit.Exit<unknown, unknown>) => Usage.Usage
}): Effect.Effect<void, Ledger.BudgetExceeded, Scope.Scope> =>
  Effect.asVoid(Effect.acquireRelease(reserve(options.worstCase), settle(options.usage)))
