/**
 * The ledger of a run: usage by step and in total, and reservations that keep a budget from being overshot.
 *
 * The ledger knows nothing of language models: any paid call (a completion, a search API, an embedding) is
 * metered the same way with {@link metered}. Inside a pipeline step the `Ledger` service in the context attributes
 * to that step, so attribution is right inside parallel steps too.
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import type * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import type * as Cost from "./Cost.js"
import * as internal from "./internal/ledger.js"
import type * as Usage from "./Usage.js"

export {
  /**
   * A metered call was refused before it started: its worst-case cost could pass the budget.
   *
   * @since 0.1.0
   */
  BudgetExceeded,
  /**
   * A figure given to the ledger was not a whole, non-negative, safe number: a bad worst case or recorded usage fails
   * with it, and nothing is held or counted.
   *
   * @since 0.1.0
   */
  InvalidUsage,
  /**
   * The ledger of the current run.
   *
   * @since 0.1.0
   */
  Ledger,
  /**
   * Options for a new ledger.
   *
   * @since 0.1.0
   */
  type Options,
  /**
   * A hold on money for one call in flight.
   *
   * @since 0.1.0
   */
  type Reservation,
  /**
   * Options of a reservation: the most an honest answer could be reported to cost.
   *
   * @since 0.3.0
   */
  type ReserveOptions,
  /**
   * The ledger service.
   *
   * @since 0.1.0
   */
  type Service,
  /**
   * Options of a settlement: why the figures reported cannot be right, when the caller knows.
   *
   * @since 0.3.0
   */
  type SettleOptions,
  /**
   * What the ledger holds at one moment.
   *
   * @since 0.1.0
   */
  type Snapshot
} from "./internal/ledger.js"

/**
 * Makes a ledger. Reservation is atomic: the check `spent + reserved + amount <= budget` and the hold happen in
 * one synchronous block, which no other fiber can interleave with, so no number of parallel calls can overshoot
 * the budget.
 *
 * @since 0.1.0
 */
export const make = (options: internal.Options = {}): Effect.Effect<internal.Service> =>
  Effect.sync(() => internal.make(options).ledger)

/**
 * A layer holding one ledger for everything that runs under it, for example an application-wide budget.
 *
 * @since 0.1.0
 */
export const layer = (options: internal.Options = {}): Layer.Layer<internal.Ledger> =>
  Layer.effect(internal.Ledger, make(options))

/**
 * Options of {@link metered}.
 *
 * @since 0.1.0
 */
export interface MeteredOptions<A, E, R> {
  /** The most this call can cost: what is reserved. */
  readonly worstCase: Cost.Cost
  /**
   * The most an honest answer could be reported to cost (default: `worstCase`). A call settled between `worstCase`
   * and `ceiling` is an honest difference: recorded as reported, told as `ReservationExceeded`, and the run goes on
   * while its spend is within the budget. Past `ceiling` the figures are taken as a lie, and under a budget the run
   * fails with `BudgetOverrun`.
   */
  readonly ceiling?: Cost.Cost | undefined
  readonly run: Effect.Effect<A, E, R>
  /** What the call used, from how it ended (an interrupted call may still have been billed). */
  readonly usage: (exit: Exit.Exit<A, E>) => Usage.Usage
}

/**
 * Runs a paid call through the current ledger: reserves its worst-case cost first (refusing with
 * `BudgetExceeded` before the call starts if that could pass the budget, or with `InvalidUsage` if the worst case
 * is not a whole number of nano-dollars from 0), then settles the reservation to what the call really used, whether
 * it succeeded, failed or was interrupted (a bad figure in that usage is counted as the reservation, marked
 * estimated). Outside a ledger the call just runs, and nothing is checked.
 *
 * @since 0.1.0
 */
export const metered = <A, E, R>(
  options: MeteredOptions<A, E, R>
): Effect.Effect<A, E | internal.BudgetExceeded | internal.InvalidUsage, R> =>
  Effect.flatMap(Effect.serviceOption(internal.Ledger), (ledger) =>
    Option.isNone(ledger)
      ? options.run
      : Effect.acquireUseRelease(
        ledger.value.reserve(options.worstCase, { ceiling: options.ceiling }),
        () => options.run,
        (reservation, exit) => ledger.value.settle(reservation, options.usage(exit))
      ))

/**
 * Records usage that needed no reservation in the current ledger, if any; fails with `InvalidUsage`, counting
 * nothing, when one of its figures is not a whole, non-negative, safe number.
 *
 * @since 0.1.0
 */
export const record = (usage: Usage.Usage): Effect.Effect<void, internal.InvalidUsage> =>
  Effect.flatMap(Effect.serviceOption(internal.Ledger), (ledger) =>
    Option.isNone(ledger) ? Effect.void : ledger.value.record(usage))
