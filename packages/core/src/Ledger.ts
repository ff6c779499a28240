/**
 * The ledger of a run: usage by step and in total, and reservations that keep a budget from being overshot.
 *
 * The ledger knows nothing of language models: any paid call (a completion, a search API, an embedding) is
 * metered the same way with {@link metered}. The step a call belongs to is read from the fiber
 * ({@link currentStep}), so attribution is right inside parallel steps too.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as FiberRef from "effect/FiberRef"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Cost from "./Cost.js"
import { attributedStep } from "./internal/attribution.js"
import type { PartialResult } from "./Result.js"
import * as Usage from "./Usage.js"

/**
 * A metered call was refused before it started: its worst-case cost could pass the budget.
 *
 * `spent` and `reserved` are the ledger's figures at the moment of refusal, which explain it. Inside a run the
 * pipeline fails with this error and fills in `partial` with what was finished and the run's whole usage
 * (including calls that were in flight at the refusal and finished after it).
 *
 * @since 0.1.0
 */
export class BudgetExceeded extends Data.TaggedError("BudgetExceeded")<{
  readonly budget: Cost.Cost
  readonly spent: Cost.Cost
  readonly reserved: Cost.Cost
  readonly requested: Cost.Cost
  readonly step: string
  readonly partial?: PartialResult | undefined
}> {
  override get message(): string {
    return `Budget of ${Cost.format(this.budget)} would be exceeded in step "${this.step}": ` +
      `spent ${Cost.format(this.spent)}, reserved ${Cost.format(this.reserved)}, ` +
      `the refused call could cost up to ${Cost.format(this.requested)}`
  }
}

/**
 * A hold on money for one call in flight, released when the call is settled.
 *
 * @since 0.1.0
 */
export interface Reservation {
  readonly id: number
  readonly step: string
  readonly amount: Cost.Cost
}

/**
 * What the ledger holds at one moment.
 *
 * @since 0.1.0
 */
export interface Snapshot {
  readonly budget: Option.Option<Cost.Cost>
  readonly total: Usage.Usage
  readonly byStep: Readonly<Record<string, Usage.Usage>>
  readonly reserved: Cost.Cost
}

/**
 * The step usage recorded from the current fiber is attributed to, when set explicitly. Inside a pipeline step,
 * usage goes to the step that is running; setting this there (for example with `Effect.locally`) attributes it
 * to the value set instead.
 *
 * @since 0.1.0
 */
export const currentStep: FiberRef.FiberRef<string> = FiberRef.unsafeMake("(outside any step)")

/**
 * The ledger service.
 *
 * @since 0.1.0
 */
export interface Service {
  readonly budget: Option.Option<Cost.Cost>
  /** Holds `amount` for a call of the current step, or refuses with `BudgetExceeded`. */
  readonly reserve: (amount: Cost.Cost) => Effect.Effect<Reservation, BudgetExceeded>
  /** Releases a reservation and records what the call really used. */
  readonly settle: (reservation: Reservation, usage: Usage.Usage) => Effect.Effect<void>
  /** Records usage of the current step that needed no reservation. */
  readonly record: (usage: Usage.Usage) => Effect.Effect<void>
  /** Refuses every reservation from now on; calls already reserved still settle. */
  readonly close: Effect.Effect<void>
  /** Money left: budget minus spent minus reserved. `None` without a budget. */
  readonly remaining: Effect.Effect<Option.Option<Cost.Cost>>
  readonly snapshot: Effect.Effect<Snapshot>
}

/**
 * The ledger of the current run. Metered code reads it with `Effect.serviceOption`, so it is never a requirement:
 * outside a run, calls simply go unmetered.
 *
 * @since 0.1.0
 */
export class Ledger extends Context.Tag("@trellis/core/Ledger")<Ledger, Service>() {}

interface State {
  spent: Cost.Cost
  reserved: Cost.Cost
  closed: boolean
  nextId: number
  total: Usage.Usage
  /** Replaced, never mutated, so that a snapshot can hand it out as it is. */
  byStep: Readonly<Record<string, Usage.Usage>>
}

/**
 * Options for a new ledger.
 *
 * @since 0.1.0
 */
export interface Options {
  readonly budget?: Cost.Cost | undefined
  /** Called synchronously each time usage is recorded, with the step it belongs to. */
  readonly onRecord?: ((step: string, usage: Usage.Usage) => void) | undefined
  /**
   * An enclosing ledger (a pipeline run inside a step of another): reservations must fit its budget too, and
   * usage is recorded there as well, under the step that started the inner run.
   */
  readonly parent?: Service | undefined
}

/**
 * Makes a ledger. Reservation is atomic: the check `spent + reserved + amount <= budget` and the hold happen in
 * one synchronous block, which no other fiber can interleave with, so no number of parallel calls can overshoot
 * the budget.
 *
 * @since 0.1.0
 */
export const make = (options: Options = {}): Effect.Effect<Service> =>
  Effect.withFiberRuntime((fiber) => Effect.succeed(new LedgerImpl(attributedStep(fiber, currentStep), options)))

/** The step the current fiber's usage belongs to. */
const stepNow: Effect.Effect<string> = Effect.withFiberRuntime((fiber) =>
  Effect.succeed(attributedStep(fiber, currentStep))
)

/**
 * The ledger. Its state is plain mutable fields rather than a `Ref`: every read and write happens inside one
 * synchronous callback, which JavaScript never interleaves with another fiber's, so it is as atomic as
 * `Ref.modify`. It is a class, as Effect's own `Clock` is, because a ledger is made per run and this keeps
 * making one to a single allocation.
 */
class LedgerImpl implements Service, State {
  readonly budget: Option.Option<Cost.Cost>
  spent: Cost.Cost = Cost.zero
  reserved: Cost.Cost = Cost.zero
  closed = false
  nextId = 0
  total: Usage.Usage = Usage.empty
  byStep: Readonly<Record<string, Usage.Usage>> = {}
  /** The enclosing ledger's reservation behind each of ours, by our reservation's id. */
  readonly outerOf: Map<number, Reservation> | undefined

  constructor(readonly enclosingStep: string, readonly options: Options) {
    this.budget = Option.fromNullable(options.budget)
    this.outerOf = options.parent === undefined ? undefined : new Map()
  }

  reserve(amount: Cost.Cost): Effect.Effect<Reservation, BudgetExceeded> {
    return Effect.flatMap(stepNow, (step) => {
      const parent = this.options.parent
      if (parent === undefined) return reserveIn(this, this.options.budget, step, amount)
      return Effect.flatMap(
        Effect.locally(parent.reserve(amount), currentStep, this.enclosingStep),
        (outer) =>
          Effect.matchEffect(reserveIn(this, this.options.budget, step, amount), {
            onFailure: (error) => Effect.zipRight(parent.settle(outer, Usage.empty), Effect.fail(error)),
            onSuccess: (inner) => {
              this.outerOf!.set(inner.id, outer)
              return Effect.succeed(inner)
            }
          })
      )
    })
  }

  settle(reservation: Reservation, usage: Usage.Usage): Effect.Effect<void> {
    return Effect.suspend(() => {
      this.reserved = Cost.subtract(this.reserved, reservation.amount)
      add(this, reservation.step, usage)
      this.options.onRecord?.(reservation.step, usage)
      const parent = this.options.parent
      const outer = this.outerOf?.get(reservation.id)
      if (parent === undefined || outer === undefined) return Effect.void
      this.outerOf!.delete(reservation.id)
      return parent.settle(outer, usage)
    })
  }

  record(usage: Usage.Usage): Effect.Effect<void> {
    return Effect.flatMap(stepNow, (step) => {
      add(this, step, usage)
      this.options.onRecord?.(step, usage)
      const parent = this.options.parent
      return parent === undefined ? Effect.void : Effect.locally(parent.record(usage), currentStep, this.enclosingStep)
    })
  }

  get close(): Effect.Effect<void> {
    return Effect.sync(() => {
      this.closed = true
    })
  }

  get remaining(): Effect.Effect<Option.Option<Cost.Cost>> {
    return Effect.sync(() => Option.map(this.budget, (b) => Cost.subtract(b, Cost.add(this.spent, this.reserved))))
  }

  get snapshot(): Effect.Effect<Snapshot> {
    return Effect.sync(() => ({ budget: this.budget, total: this.total, byStep: this.byStep, reserved: this.reserved }))
  }
}

function add(state: State, step: string, usage: Usage.Usage): void {
  state.spent = Cost.add(state.spent, usage.cost)
  state.total = Usage.add(state.total, usage)
  state.byStep = { ...state.byStep, [step]: Usage.add(state.byStep[step] ?? Usage.empty, usage) }
}

/** Holds `amount` if it fits (and the ledger is open), in one synchronous block. */
function reserveIn(
  state: State,
  budget: Cost.Cost | undefined,
  step: string,
  amount: Cost.Cost
): Effect.Effect<Reservation, BudgetExceeded> {
  return Effect.suspend(() => {
    if (state.closed || (budget !== undefined && state.spent + state.reserved + amount > budget)) {
      return Effect.fail(
        new BudgetExceeded({ budget: budget ?? Cost.zero, spent: state.spent, reserved: state.reserved, requested: amount, step })
      )
    }
    state.reserved = Cost.add(state.reserved, amount)
    return Effect.succeed({ id: state.nextId++, step, amount })
  })
}

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
