/**
 * The ledger of a run: usage by step and in total, and reservations that keep a budget from being overshot.
 *
 * The ledger knows nothing of language models: any paid call (a completion, a search API, an embedding) is
 * metered the same way with {@link metered}. The step a call belongs to is read from the fiber
 * ({@link currentStep}), so attribution is right inside parallel steps too.
 *
 * @since 0.1.0
 */
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import type * as Cost from "./Cost.js"
import { attributedStep } from "./internal/attribution.js"
import {
  type BudgetExceeded,
  currentStep,
  Ledger,
  LedgerImpl,
  type Options,
  type Service
} from "./internal/ledger.js"
import type * as Usage from "./Usage.js"

export {
  /**
   * A metered call was refused before it started: its worst-case cost could pass the budget.
   *
   * @since 0.1.0
   */
  BudgetExceeded,
  /**
   * The step usage recorded from the current fiber is attributed to, when set explicitly.
   *
   * @since 0.1.0
   */
  currentStep,
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
   * The ledger service.
   *
   * @since 0.1.0
   */
  type Service,
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
export const make = (options: Options = {}): Effect.Effect<Service> =>
  Effect.withFiberRuntime((fiber) => Effect.succeed<Service>(new LedgerImpl(attributedStep(fiber, currentStep), options)))

/**
 * A layer holding one ledger for everything that runs under it, for example an application-wide budget.
 *
 * @since 0.1.0
 */
export const layer = (options: Options = {}): Layer.Layer<Ledger> => Layer.effect(Ledger, make(options))

/**
 * Runs a paid call through the current ledger: reserves its worst-case cost first (refusing with
 * `BudgetExceeded` before the call starts if that could pass the budget), then settles the reservation to
 * what the call really used, whether it succeeded, failed or was interrupted. Outside a ledger the call just runs.
 *
 * @since 0.1.0
 */
export const metered = <A, E, R>(options: {
  /** The most this call can cost. */
  readonly worstCase: Cost.Cost
  readonly run: Effect.Effect<A, E, R>
  /** What the call used, from how it ended (an interrupted call may still have been billed). */
  readonly usage: (exit: Exit.Exit<A, E>) => Usage.Usage
}): Effect.Effect<A, E | BudgetExceeded, R> =>
  Effect.flatMap(Effect.serviceOption(Ledger), (ledger) =>
    Option.isNone(ledger) ? options.run : meteredIn(ledger.value, options))

/**
 * `acquireUseRelease` reduced to what metering needs: the reservation is made and the settlement runs with
 * interruption masked, the call itself runs interruptible, and the settlement sees the call's exit however it
 * ended. A call in flight holds three continuations instead of the dozen of the general form, which matters
 * with thousands of calls in flight.
 */
const meteredIn = <A, E, R>(
  ledger: Service,
  options: {
    readonly worstCase: Cost.Cost
    readonly run: Effect.Effect<A, E, R>
    readonly usage: (exit: Exit.Exit<A, E>) => Usage.Usage
  }
): Effect.Effect<A, E | BudgetExceeded, R> =>
  Effect.uninterruptibleMask((restore) =>
    Effect.flatMap(ledger.reserve(options.worstCase), (reservation) =>
      Effect.matchCauseEffect(restore(options.run), {
        onFailure(cause) {
          return Effect.zipRight(
            ledger.settle(reservation, options.usage(Exit.failCause(cause))),
            Effect.failCause(cause)
          )
        },
        onSuccess(value) {
          return Effect.as(ledger.settle(reservation, options.usage(Exit.succeed(value))), value)
        }
      }))
  )

/**
 * Records usage that needed no reservation in the current ledger, if any.
 *
 * @since 0.1.0
 */
export const record = (usage: Usage.Usage): Effect.Effect<void> =>
  Effect.flatMap(Effect.serviceOption(Ledger), (ledger) =>
    Option.isNone(ledger) ? Effect.void : ledger.value.record(usage))
