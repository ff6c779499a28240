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
import type * as Exit from "effect/Exit"
import * as FiberRef from "effect/FiberRef"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"
import * as Ref from "effect/Ref"
import * as Cost from "./Cost.js"
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
 * The step the current fiber works for; usage recorded from this fiber is attributed to it.
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
  readonly spent: Cost.Cost
  readonly reserved: Cost.Cost
  readonly closed: boolean
  readonly nextId: number
  readonly total: Usage.Usage
  readonly byStep: Readonly<Record<string, Usage.Usage>>
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
 * one `Ref.modify`, so no number of parallel calls can overshoot the budget.
 *
 * @since 0.1.0
 */
export const make = (options: Options = {}): Effect.Effect<Service> =>
  Effect.map(
    Effect.all([
      Ref.make<State>({
        spent: Cost.zero,
        reserved: Cost.zero,
        closed: false,
        nextId: 0,
        total: Usage.empty,
        byStep: {}
      }),
      FiberRef.get(currentStep)
    ]),
    ([ref, enclosingStep]) => unsafeMake(ref, enclosingStep, options)
  )

const unsafeMake = (ref: Ref.Ref<State>, enclosingStep: string, options: Options): Service => {
  const budget = Option.fromNullable(options.budget)
  const parent = options.parent
  const parentReservations = new Map<number, Reservation>()

  const add = (state: State, step: string, usage: Usage.Usage): State => ({
    ...state,
    spent: Cost.add(state.spent, usage.cost),
    total: Usage.add(state.total, usage),
    byStep: { ...state.byStep, [step]: Usage.add(state.byStep[step] ?? Usage.empty, usage) }
  })

  const reserveHere = (step: string, amount: Cost.Cost) =>
    Ref.modify(ref, (state): [Reservation | BudgetExceeded, State] => {
      if (
        state.closed ||
        (options.budget !== undefined && state.spent + state.reserved + amount > options.budget)
      ) {
        const error = new BudgetExceeded({
          budget: options.budget ?? Cost.zero,
          spent: state.spent,
          reserved: state.reserved,
          requested: amount,
          step
        })
        return [error, state]
      }
      return [
        { id: state.nextId, step, amount },
        { ...state, reserved: Cost.add(state.reserved, amount), nextId: state.nextId + 1 }
      ]
    }).pipe(Effect.flatMap((r) => (r instanceof BudgetExceeded ? Effect.fail(r) : Effect.succeed(r))))

  const reserve = (amount: Cost.Cost) =>
    Effect.flatMap(FiberRef.get(currentStep), (step) => {
      if (parent === undefined) return reserveHere(step, amount)
      return Effect.flatMap(
        Effect.locally(parent.reserve(amount), currentStep, enclosingStep),
        (outer) =>
          reserveHere(step, amount).pipe(
            Effect.tap((inner) => Effect.sync(() => parentReservations.set(inner.id, outer))),
            Effect.tapError(() => parent.settle(outer, Usage.empty))
          )
      )
    })

  const settle = (reservation: Reservation, usage: Usage.Usage) =>
    Ref.update(ref, (state) =>
      add({ ...state, reserved: Cost.subtract(state.reserved, reservation.amount) }, reservation.step, usage)
    ).pipe(
      Effect.zipRight(Effect.suspend(() => {
        options.onRecord?.(reservation.step, usage)
        const outer = parentReservations.get(reservation.id)
        if (parent === undefined || outer === undefined) return Effect.void
        parentReservations.delete(reservation.id)
        return parent.settle(outer, usage)
      }))
    )

  const record = (usage: Usage.Usage) =>
    Effect.flatMap(FiberRef.get(currentStep), (step) =>
      Ref.update(ref, (state) => add(state, step, usage)).pipe(
        Effect.zipRight(Effect.suspend(() => {
          options.onRecord?.(step, usage)
          return parent === undefined ? Effect.void : Effect.locally(parent.record(usage), currentStep, enclosingStep)
        }))
      ))

  return {
    budget,
    reserve,
    settle,
    record,
    close: Ref.update(ref, (state) => ({ ...state, closed: true })),
    remaining: Effect.map(Ref.get(ref), (state) =>
      Option.map(budget, (b) => Cost.subtract(b, Cost.add(state.spent, state.reserved)))),
    snapshot: Effect.map(Ref.get(ref), (state) => ({
      budget,
      total: state.total,
      byStep: state.byStep,
      reserved: state.reserved
    }))
  }
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
    Option.isNone(ledger)
      ? options.run
      : Effect.acquireUseRelease(
        ledger.value.reserve(options.worstCase),
        () => options.run,
        (reservation, exit) => ledger.value.settle(reservation, options.usage(exit))
      ))

/**
 * Records usage that needed no reservation in the current ledger, if any.
 *
 * @since 0.1.0
 */
export const record = (usage: Usage.Usage): Effect.Effect<void> =>
  Effect.flatMap(Effect.serviceOption(Ledger), (ledger) =>
    Option.isNone(ledger) ? Effect.void : ledger.value.record(usage))
