/**
 * The ledger's books: what was spent and reserved, in total and by step, under an optional budget. `Ledger` defines
 * the service and its errors; the runner makes a run's ledger here, with a parent and listeners.
 */
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Cost from "../Cost.js"
import {
  BudgetExceeded,
  InvalidUsage,
  type Options,
  type Reservation,
  type ReserveOptions,
  type Service,
  type SettleOptions,
  type Snapshot
} from "../Ledger.js"
import * as Usage from "../Usage.js"

const usageFields = ["inputTokens", "outputTokens", "cachedInputTokens", "reasoningTokens", "requests", "toolCalls", "cost"] as const

const isCount = (n: unknown): n is number => typeof n === "number" && Number.isSafeInteger(n) && n >= 0

// A bad figure as the message shows it: a string in quotes, so "12" is not mistaken for the number 12.
const show = (value: unknown): string => (typeof value === "string" ? JSON.stringify(value) : String(value))

/** What is wrong with a usage's figures, if anything. */
const problemOf = (usage: Usage.Usage): string | undefined => {
  for (const field of usageFields) {
    const value: unknown = usage[field]
    if (!isCount(value)) return `a usage whose ${field} is ${show(value)}, not a whole number >= 0`
  }
  return undefined
}

/** A usage with its bad figures replaced: tokens and counts by 0, the cost by `ceiling`; marked estimated. */
const repaired = (usage: Usage.Usage, ceiling: Cost.Cost): Usage.Usage => {
  const count = (n: unknown) => (isCount(n) ? n : 0)
  return {
    inputTokens: count(usage.inputTokens),
    outputTokens: count(usage.outputTokens),
    cachedInputTokens: count(usage.cachedInputTokens),
    reasoningTokens: count(usage.reasoningTokens),
    requests: count(usage.requests),
    toolCalls: count(usage.toolCalls),
    cost: isCount(usage.cost) ? usage.cost : ceiling,
    estimated: true
  }
}

/** The step usage is attributed to when it is recorded outside any step. */
export const outsideAnyStep = "(outside any step)"

/** What a run's ledger needs besides its options. */
export interface RunOptions extends Options {
  /** Runs each time usage is recorded, with the step it belongs to. */
  readonly onRecord?: ((step: string, usage: Usage.Usage) => Effect.Effect<void>) | undefined
  /** Runs, before `onRecord`, when a call is settled above its reservation but within its ceiling. */
  readonly onExceeded?: ((step: string, reserved: Cost.Cost, cost: Cost.Cost) => Effect.Effect<void>) | undefined
  /**
   * Usage spent for this run before it started (a router's choice of it), by step: in its books and held to its
   * budget, already recorded in the parent.
   */
  readonly prior?: Readonly<Record<string, Usage.Usage>> | undefined
  /** The pipeline whose budget this is: a refusal names it, so that a handler can tell whose budget ran out. */
  readonly pipeline?: string | undefined
  /**
   * For a sub-pipeline's run, whose steps are steps of the enclosing run: the parent attributes each call to the same
   * step (their names are their paths in the enclosing run) rather than to the step the run was made in.
   */
  readonly sameSteps?: boolean | undefined
}

/**
 * Under a budget, a spend recorded past the budget (calls that cost more than they reserved, or usage recorded
 * without a reservation), or figures that cannot be right (a call reported past its ceiling, or that its caller
 * found implausible). The first one is kept: it is what a run reports when it fails with `BudgetOverrun`.
 */
export interface Overrun {
  readonly reason: "OverBudget" | "Implausible"
  /** For an implausible call, what is wrong with its figures. */
  readonly detail?: string | undefined
  readonly step: string
  /** What the call had reserved (0 for usage recorded without a reservation). */
  readonly reserved: Cost.Cost
  /** What it was reported to cost. */
  readonly reported: Cost.Cost
  /** The spend once it was recorded. */
  readonly spent: Cost.Cost
  readonly budget: Cost.Cost
}

/** A reservation, with the parent ledger's reservation that backs it. */
interface Held extends Reservation {
  readonly outer: Reservation | undefined
}

/** What a settled call had reserved, as the books judge its figures. */
interface Settling {
  readonly amount: Cost.Cost
  readonly ceiling: Cost.Cost
  readonly implausible: string | undefined
}

/**
 * The books. Their state is plain fields rather than a `Ref`: every read and write happens inside one synchronous
 * callback, which JavaScript never interleaves with another fiber's, so each change is as atomic as `Ref.modify`.
 */
class Books {
  spent: Cost.Cost = Cost.zero
  reserved: Cost.Cost = Cost.zero
  closed = false
  nextId = 0
  total: Usage.Usage = Usage.empty
  readonly byStep = new Map<string, Usage.Usage>()
  overrun: Overrun | undefined = undefined
  /** Reservations held and not yet settled (their settlement's reports included). */
  open = 0
  /** The reservations held: a settlement of anything else (settled already, or never made here) is ignored. */
  readonly holds = new Set<Reservation>()
  /** Woken when the last open reservation is settled. */
  private idleWaiters: Array<() => void> = []
  readonly budget: Option.Option<Cost.Cost>
  readonly options: RunOptions

  constructor(options: RunOptions) {
    this.options = options
    this.budget = Option.fromNullable(options.budget)
    for (const [step, usage] of Object.entries(options.prior ?? {})) this.add(step, usage, undefined)
  }

  /**
   * Records usage as it is, whatever it cost (the books are honest), and, under a budget, notes an overrun if the
   * figures cannot be right or the spend is now past the budget: from then on, nothing more is reserved. `held` is
   * what the call had reserved (`undefined` for usage that needed no reservation).
   */
  add(step: string, usage: Usage.Usage, held: Settling | undefined): void {
    this.spent = Cost.add(this.spent, usage.cost)
    this.total = Usage.add(this.total, usage)
    this.byStep.set(step, Usage.add(this.byStep.get(step) ?? Usage.empty, usage))
    const budget = this.options.budget
    if (budget === undefined || this.overrun !== undefined) return
    const implausible = held === undefined ? undefined : held.implausible ??
      (usage.cost > held.ceiling
        ? `its cost is past the ${Cost.format(held.ceiling)} an honest answer could cost`
        : undefined)
    if (implausible === undefined && this.spent <= budget) return
    this.overrun = {
      reason: implausible === undefined ? "OverBudget" : "Implausible",
      detail: implausible,
      step,
      reserved: held?.amount ?? Cost.zero,
      reported: usage.cost,
      spent: this.spent,
      budget
    }
    this.closed = true
  }

  /** A reservation settled, with all it reports: wakes those waiting for the books to be idle. */
  released(): void {
    this.open--
    if (this.open === 0 && this.idleWaiters.length > 0) {
      const waiters = this.idleWaiters
      this.idleWaiters = []
      for (const wake of waiters) wake()
    }
  }

  /** Waits until no reservation is open. */
  idle(): Effect.Effect<void> {
    return Effect.async<void>((resume) => {
      if (this.open === 0) resume(Effect.void)
      else this.idleWaiters.push(() => resume(Effect.void))
    })
  }

  snapshot(): Snapshot {
    return {
      budget: this.budget,
      total: this.total,
      byStep: Object.fromEntries(this.byStep),
      reserved: this.reserved
    }
  }
}

/** A ledger: the books, and the step it attributes to. */
class LedgerImpl implements Service {
  readonly budget: Option.Option<Cost.Cost>
  readonly books: Books
  readonly step: string

  constructor(books: Books, step: string) {
    this.books = books
    this.step = step
    this.budget = books.budget
  }

  forStep(step: string): Service {
    return new LedgerImpl(this.books, step)
  }

  /** The enclosing ledger, attributing to the step this one's calls belong to there. */
  private get parent(): Service | undefined {
    const { parent, sameSteps } = this.books.options
    return parent === undefined || !sameSteps ? parent : parent.forStep(this.step)
  }

  reserve(amount: Cost.Cost, options?: ReserveOptions): Effect.Effect<Reservation, BudgetExceeded | InvalidUsage> {
    const reserved = this.books.options.hooks?.reserved
    if (reserved === undefined) return this.reserveHeld(amount, options)
    return Effect.tap(this.reserveHeld(amount, options), (reservation) =>
      Effect.catchAllCause(
        reserved(reservation),
        (cause) => Effect.zipRight(this.settleHeld(reservation, Usage.empty), Effect.die(Cause.squash(cause)))
      ))
  }

  private reserveHeld(amount: Cost.Cost, options?: ReserveOptions): Effect.Effect<Reservation, BudgetExceeded | InvalidUsage> {
    if (!isCount(amount)) {
      return Effect.fail(new InvalidUsage({ step: this.step, detail: `a worst case of ${show(amount)} nano-dollars` }))
    }
    const ceiling = options?.ceiling ?? amount
    if (!isCount(ceiling)) {
      return Effect.fail(new InvalidUsage({ step: this.step, detail: `a ceiling of ${show(ceiling)} nano-dollars` }))
    }
    const parent = this.parent
    if (parent === undefined) return Effect.suspend(() => this.hold(amount, ceiling, undefined))
    // The enclosing run's budget is checked first; if ours refuses, its hold is given back.
    return Effect.flatMap(parent.reserve(amount, options), (outer) =>
      Effect.catchAll(
        Effect.suspend(() => this.hold(amount, ceiling, outer)),
        (refused) => Effect.zipRight(parent.settle(outer, Usage.empty), Effect.fail(refused))
      ))
  }

  /** Holds `amount` if it fits: the check and the hold happen in one synchronous block. */
  private hold(
    amount: Cost.Cost,
    ceiling: Cost.Cost,
    outer: Reservation | undefined
  ): Effect.Effect<Reservation, BudgetExceeded> {
    const books = this.books
    const budget = books.options.budget
    if (books.closed || (budget !== undefined && books.spent + books.reserved + amount > budget)) {
      return Effect.fail(
        new BudgetExceeded({
          budget: budget ?? Cost.zero,
          spent: books.spent,
          reserved: books.reserved,
          requested: amount,
          step: this.step,
          ...(books.options.pipeline === undefined ? {} : { pipeline: books.options.pipeline })
        })
      )
    }
    books.reserved = Cost.add(books.reserved, amount)
    books.open++
    const held: Held = { id: books.nextId++, step: this.step, amount, ceiling: ceiling > amount ? ceiling : amount, outer }
    books.holds.add(held)
    return Effect.succeed(held)
  }

  settle(reservation: Reservation, reported: Usage.Usage, options?: SettleOptions): Effect.Effect<void> {
    const settling = this.books.options.hooks?.settling
    if (settling === undefined) return this.settleHeld(reservation, reported, options)
    return Effect.suspend(() =>
      this.books.holds.has(reservation)
        ? Effect.zipRight(Effect.orDie(settling(reservation, reported)), this.settleHeld(reservation, reported, options))
        : Effect.void
    )
  }

  private settleHeld(reservation: Reservation, reported: Usage.Usage, options?: SettleOptions): Effect.Effect<void> {
    return Effect.suspend(() => {
      const books = this.books
      // Settling twice, or what this ledger never held, would release money another call holds.
      if (!books.holds.delete(reservation)) return Effect.void
      const usage = problemOf(reported) === undefined ? reported : repaired(reported, reservation.amount)
      const { amount, ceiling, step } = reservation
      books.reserved = Cost.subtract(books.reserved, amount)
      // A hold given back with nothing used (a call refused further in, never sent) leaves no line and tells nothing.
      const used = !Usage.isEmpty(usage) || usage.estimated
      if (used) books.add(step, usage, { amount, ceiling, implausible: options?.implausible })
      const outer = (reservation as Held).outer
      const parent = this.parent
      const { onExceeded, onRecord } = books.options
      const exceeded = onExceeded !== undefined && usage.cost > amount && usage.cost <= ceiling
      const reports = used
        ? Effect.zipRight(exceeded ? onExceeded(step, amount, usage.cost) : Effect.void, onRecord?.(step, usage) ?? Effect.void)
        : Effect.void
      // The reservation stays open until everything it reports is done, so a run waiting for its calls to settle
      // has every usage event before its end.
      return Effect.ensuring(
        parent === undefined || outer === undefined ? reports : Effect.zipRight(reports, parent.settle(outer, usage, options)),
        Effect.sync(() => books.released())
      )
    })
  }

  record(usage: Usage.Usage): Effect.Effect<void, InvalidUsage> {
    return Effect.suspend(() => {
      const problem = problemOf(usage)
      if (problem !== undefined) return Effect.fail(new InvalidUsage({ step: this.step, detail: problem }))
      const books = this.books
      books.add(this.step, usage, undefined)
      const parent = this.parent
      const onRecord = books.options.onRecord?.(this.step, usage) ?? Effect.void
      return parent === undefined ? onRecord : Effect.zipRight(onRecord, parent.record(usage))
    })
  }

  get close(): Effect.Effect<void> {
    return Effect.sync(() => {
      this.books.closed = true
    })
  }

  get remaining(): Effect.Effect<Option.Option<Cost.Cost>> {
    return Effect.sync(() => Option.map(this.budget, (b) => Cost.subtract(b, Cost.add(this.books.spent, this.books.reserved))))
  }

  get snapshot(): Effect.Effect<Snapshot> {
    return Effect.sync(() => this.books.snapshot())
  }
}

/** A run's ledger, with what the runner reads and does without going through effects. */
export interface RunLedger {
  readonly ledger: Service
  readonly snapshot: () => Snapshot
  readonly total: () => Usage.Usage
  /** The first spend recorded past the budget, if any. */
  readonly overrun: () => Overrun | undefined
  /** Refuses every reservation from now on. */
  readonly close: () => void
  /** Waits until every reservation made in this ledger has been settled and reported. */
  readonly idle: () => Effect.Effect<void>
  /** Whether a reservation is open. */
  readonly busy: () => boolean
}

/** Makes a ledger attributing to no step. */
export const make = (options: RunOptions): RunLedger => {
  const books = new Books(options)
  return {
    ledger: new LedgerImpl(books, outsideAnyStep),
    snapshot: () => books.snapshot(),
    total: () => books.total,
    overrun: () => books.overrun,
    close: () => {
      books.closed = true
    },
    idle: () => books.idle(),
    busy: () => books.open > 0
  }
}
