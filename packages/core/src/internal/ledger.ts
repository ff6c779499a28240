/**
 * The ledger's definitions, apart from its constructors: the runner makes a run's ledger directly and reads its
 * figures without going through effects. `Ledger` re-exports the public ones.
 */
import * as Context from "effect/Context"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as FiberRef from "effect/FiberRef"
import * as Option from "effect/Option"
import * as Cost from "../Cost.js"
import type { PartialResult } from "../Result.js"
import * as Usage from "../Usage.js"
import { attributedStep } from "./attribution.js"

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
  readonly steps: Map<string, Usage.Usage>
  /** The usage by step as a record, made when asked for and dropped on the next change. */
  byStepView: Readonly<Record<string, Usage.Usage>> | undefined
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
 * The ledger. Its state is plain mutable fields rather than a `Ref`: every read and write happens inside one
 * synchronous callback, which JavaScript never interleaves with another fiber's, so it is as atomic as
 * `Ref.modify`. It is a class, as Effect's own `Clock` is, because a ledger is made per run and this keeps
 * making one to a single allocation.
 */
export class LedgerImpl implements Service, State {
  readonly budget: Option.Option<Cost.Cost>
  spent: Cost.Cost = Cost.zero
  reserved: Cost.Cost = Cost.zero
  closed = false
  nextId = 0
  total: Usage.Usage = Usage.empty
  readonly steps = new Map<string, Usage.Usage>()
  byStepView: Readonly<Record<string, Usage.Usage>> | undefined = undefined
  /** The enclosing ledger's reservation behind each of ours, by our reservation's id. */
  readonly outerOf: Map<number, Reservation> | undefined

  constructor(readonly enclosingStep: string, readonly options: Options) {
    this.budget = Option.fromNullable(options.budget)
    this.outerOf = options.parent === undefined ? undefined : new Map()
  }

  reserve(amount: Cost.Cost): Effect.Effect<Reservation, BudgetExceeded> {
    return Effect.withFiberRuntime((fiber) => {
      const step = attributedStep(fiber, currentStep)
      const parent = this.options.parent
      if (parent === undefined) return reserveNow(this, this.options.budget, step, amount)
      return Effect.flatMap(
        Effect.locally(parent.reserve(amount), currentStep, this.enclosingStep),
        (outer) =>
          Effect.matchEffect(Effect.suspend(() => reserveNow(this, this.options.budget, step, amount)), {
            onFailure(error) {
              return Effect.zipRight(parent.settle(outer, Usage.empty), Effect.fail(error))
            },
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
    return Effect.withFiberRuntime((fiber) => {
      const step = attributedStep(fiber, currentStep)
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
    return Effect.sync(() => this.unsafeSnapshot())
  }

  /** Usage by step; the record handed out is never changed afterwards (a change makes a new one). */
  get byStep(): Readonly<Record<string, Usage.Usage>> {
    return this.byStepView ??= Object.fromEntries(this.steps)
  }

  unsafeSnapshot(): Snapshot {
    return { budget: this.budget, total: this.total, byStep: this.byStep, reserved: this.reserved }
  }
}

function add(state: State, step: string, usage: Usage.Usage): void {
  state.spent = Cost.add(state.spent, usage.cost)
  state.total = Usage.add(state.total, usage)
  state.steps.set(step, Usage.add(state.steps.get(step) ?? Usage.empty, usage))
  state.byStepView = undefined
}

/**
 * Holds `amount` if it fits (and the ledger is open). Called from inside an effect: the check and the hold happen
 * in one synchronous block.
 */
function reserveNow(
  state: State,
  budget: Cost.Cost | undefined,
  step: string,
  amount: Cost.Cost
): Effect.Effect<Reservation, BudgetExceeded> {
  if (state.closed || (budget !== undefined && state.spent + state.reserved + amount > budget)) {
    return Effect.fail(
      new BudgetExceeded({ budget: budget ?? Cost.zero, spent: state.spent, reserved: state.reserved, requested: amount, step })
    )
  }
  state.reserved = Cost.add(state.reserved, amount)
  return Effect.succeed({ id: state.nextId++, step, amount })
}

