/**
 * The ledger of a run: usage by step and in total, and reservations that keep a budget from being overshot.
 *
 * The ledger knows nothing of language models: any paid call (a completion, a search API, an embedding) is
 * metered the same way with {@link metered}. Inside a pipeline step the `Ledger` service in the context attributes
 * to that step, so attribution is right inside parallel steps too.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import type * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Cost from "./Cost.js"
import * as internal from "./internal/ledger.js"
import type { PartialResult } from "./Result.js"
import type * as Usage from "./Usage.js"

/**
 * A metered call was refused before it started: its worst-case cost could pass the budget.
 *
 * `spent` and `reserved` are the ledger's figures at the moment of refusal, which explain it. When a run fails with
 * it, `partial` holds what was finished and the run's whole usage (including calls that were in flight at the
 * refusal and finished after it).
 *
 * @since 0.1.0
 * @category errors
 */
export class BudgetExceeded extends Data.TaggedError("BudgetExceeded")<{
  readonly budget: Cost.Cost
  readonly spent: Cost.Cost
  readonly reserved: Cost.Cost
  readonly requested: Cost.Cost
  readonly step: string
  /**
   * The pipeline whose budget refused the call, when a run's ledger refused it: the run's own, or that of a
   * sub-pipeline with a budget of its own (its steps are then named by their paths, `research/extract`).
   */
  readonly pipeline?: string | undefined
  readonly partial?: PartialResult | undefined
}> {
  override get message(): string {
    const left = Cost.subtract(this.budget, Cost.add(this.spent, this.reserved))
    const whose = this.pipeline === undefined ? "the budget" : `the budget of pipeline "${this.pipeline}"`
    return `A call in step "${this.step}" could pass ${whose} of ${Cost.format(this.budget)}, so it was not sent: ` +
      `it could cost up to ${Cost.format(this.requested)}, and ${Cost.format(left)} was left ` +
      `(spent ${Cost.format(this.spent)}, reserved ${Cost.format(this.reserved)})`
  }
}

/**
 * A figure given to the ledger was not a whole, non-negative, safe number: a worst case of `NaN`, a usage of `-1e9`
 * tokens... Counting it would disable the budget, so the ledger never does: a bad worst case (`reserve`, `metered`)
 * or recorded usage (`record`) fails with this before anything is held, run or counted. A settlement cannot be
 * refused (the call it settles has run, and may have been paid for), so a bad figure there is replaced by the most
 * the call could cost, its reservation, marked estimated.
 *
 * @since 0.1.0
 * @category errors
 */
export class InvalidUsage extends Data.TaggedError("InvalidUsage")<{
  readonly step: string
  readonly detail: string
}> {
  override get message(): string {
    return `Step "${this.step}" gave the ledger ${this.detail}`
  }
}

/**
 * A hold on money for one call in flight, released when the call is settled.
 *
 * @since 0.1.0
 * @category models
 */
export interface Reservation {
  readonly id: number
  readonly step: string
  readonly amount: Cost.Cost
  /**
   * The most the call may be reported to cost and still be believed: past it the figures are taken as a lie. Between
   * `amount` and `ceiling` they are an honest difference (a server counting tokens otherwise than the reservation
   * did), recorded as reported.
   */
  readonly ceiling: Cost.Cost
}

/**
 * Options of a reservation.
 *
 * @since 0.3.0
 * @category models
 */
export interface ReserveOptions {
  /**
   * The most an honest answer could be reported to cost (see `Reservation.ceiling`); default: the amount reserved,
   * so that any excess is taken as a lie. Never less than the amount.
   */
  readonly ceiling?: Cost.Cost | undefined
}

/**
 * Options of a settlement.
 *
 * @since 0.3.0
 * @category models
 */
export interface SettleOptions {
  /**
   * Why the figures reported for the call cannot be right, when the caller knows (output tokens past the call's
   * limit, say): under a budget they then fail the run as a lie would, whatever they cost.
   */
  readonly implausible?: string | undefined
}

/**
 * What the ledger holds at one moment.
 *
 * @since 0.1.0
 * @category models
 */
export interface Snapshot {
  readonly budget: Option.Option<Cost.Cost>
  readonly total: Usage.Usage
  readonly byStep: Readonly<Record<string, Usage.Usage>>
  readonly reserved: Cost.Cost
}

/**
 * The ledger service.
 *
 * @since 0.1.0
 * @category models
 */
export interface Service {
  readonly budget: Option.Option<Cost.Cost>
  /**
   * Holds `amount` for a call, or refuses with `BudgetExceeded` if it could pass the budget, or with `InvalidUsage`
   * if it is not a whole number of nano-dollars from 0.
   */
  readonly reserve: (
    amount: Cost.Cost,
    options?: ReserveOptions
  ) => Effect.Effect<Reservation, BudgetExceeded | InvalidUsage>
  /**
   * Releases a reservation and records what the call really used. Never fails: a usage with a bad figure is counted
   * as the reservation, marked estimated; a reservation settled already, or not made by this ledger, is ignored.
   */
  readonly settle: (reservation: Reservation, usage: Usage.Usage, options?: SettleOptions) => Effect.Effect<void>
  /** Records usage that needed no reservation; fails with `InvalidUsage`, counting nothing, if a figure is bad. */
  readonly record: (usage: Usage.Usage) => Effect.Effect<void, InvalidUsage>
  /** Refuses every reservation from now on; calls already reserved still settle. */
  readonly close: Effect.Effect<void>
  /** Money left: budget minus spent minus reserved. `None` without a budget. */
  readonly remaining: Effect.Effect<Option.Option<Cost.Cost>>
  readonly snapshot: Effect.Effect<Snapshot>
  /** The same books, with what is reserved and recorded through the result attributed to `step`. */
  readonly forStep: (step: string) => Service
}

/**
 * The ledger of the current run. Inside a step it attributes to that step. Metered code reads it with
 * `Effect.serviceOption`, so it is never a requirement: outside a run, calls simply go unmetered.
 *
 * @since 0.1.0
 * @category tags
 */
export class Ledger extends Context.Tag("@trellis/core/Ledger")<Ledger, Service>() {}

/**
 * Options for a new ledger.
 *
 * @since 0.1.0
 * @category models
 */
export interface Options {
  /** A cap on what may be spent and reserved together. */
  readonly budget?: Cost.Cost | undefined
  /**
   * An enclosing ledger (for a run, the ledger of the step it runs in): reservations must fit its budget too, and
   * usage is recorded there as well, under the step it attributes to.
   */
  readonly parent?: Service | undefined
  /** What must happen beside the books as money is held and spent (see {@link Hooks}). */
  readonly hooks?: Hooks | undefined
}

/**
 * What a ledger runs beside its books, for what keeps its own record of spend (a durable run writes each hold to a
 * spend log before its call can be sent, so that a call a crash cut short still counts when the run resumes).
 *
 * @since 0.3.0
 * @category models
 */
export interface Hooks {
  /**
   * Runs once a reservation is held, before it is given to the caller. If it fails, the hold is given back and the
   * reservation dies with the failure: a call whose hold could not be written down must not be sent.
   */
  readonly reserved?: ((reservation: Reservation) => Effect.Effect<void, unknown>) | undefined
  /** Runs when a held reservation is settled, before the books count it; a failure is a defect. */
  readonly settling?: ((reservation: Reservation, usage: Usage.Usage) => Effect.Effect<void, unknown>) | undefined
}

/**
 * Makes a ledger. Reservation is atomic: the check `spent + reserved + amount <= budget` and the hold happen in
 * one synchronous block, which no other fiber can interleave with, so no number of parallel calls can overshoot
 * the budget.
 *
 * @since 0.1.0
 */
export const make = (options: Options = {}): Effect.Effect<Service> =>
  Effect.sync(() => internal.make(options).ledger)

/**
 * A layer holding one ledger for everything that runs under it, for example an application-wide budget.
 *
 * @since 0.1.0
 */
export const layer = (options: Options = {}): Layer.Layer<Ledger> =>
  Layer.effect(Ledger, make(options))

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
): Effect.Effect<A, E | BudgetExceeded | InvalidUsage, R> =>
  Effect.flatMap(Effect.serviceOption(Ledger), (ledger) =>
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
export const record = (usage: Usage.Usage): Effect.Effect<void, InvalidUsage> =>
  Effect.flatMap(Effect.serviceOption(Ledger), (ledger) =>
    Option.isNone(ledger) ? Effect.void : ledger.value.record(usage))
