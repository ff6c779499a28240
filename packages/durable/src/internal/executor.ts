/**
 * The durable step executor: each attempt of a step runs as one `@effect/workflow` Activity, keyed by the step's name
 * in the run (the path of an item, an iteration or a sub-pipeline's step, which are executed as steps of their own)
 * and the attempt's number (`Activity.CurrentAttempt`), whose outcome (the output or the error, with the usage the
 * attempt recorded) the engine journals. A resumed run gets each ended attempt's outcome back from the journal
 * without running it, records the journaled usage in its own ledger, and runs only the attempts left: a crash does
 * not give a step its retries again.
 */
import * as Activity from "@effect/workflow/Activity"
import { type WorkflowEngine, WorkflowInstance } from "@effect/workflow/WorkflowEngine"
import { Ledger, Step, StepExecutor, Usage } from "@trellis/core"
import * as Cause from "effect/Cause"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as Option from "effect/Option"
import { randomUUID } from "node:crypto"
import type * as SpendLog from "../SpendLog.js"
import type * as Cancellations from "../Cancellations.js"
import * as Cancellation from "./cancellation.js"
import * as Journal from "./journal.js"
import * as Storable from "./storable.js"
import * as Waiting from "./waiting.js"

/**
 * The ledger hooks that write each reservation to the spend log before the call can be sent, and each settlement
 * before the books count it. A write that fails is a defect: a call whose hold is not written down must not be sent.
 */
const spendLogged = (log: SpendLog.Service, where: Omit<SpendLog.Hold, "reservation" | "amount">): Ledger.Hooks => {
  const hold = (reservation: Ledger.Reservation): SpendLog.Hold => ({
    ...where,
    reservation: reservation.id,
    amount: reservation.amount
  })
  return {
    reserved: (reservation) => log.reserved(hold(reservation)),
    settling: (reservation, usage) => log.settled(hold(reservation), usage.cost)
  }
}

/** The spend log of one execution: the log, and what earlier runner processes spent on its steps (read once). */
interface ExecutionLog {
  readonly log: SpendLog.Service
  readonly execution: string
  readonly spentBefore: Effect.Effect<SpendLog.Spent>
}

/**
 * What this process knows of a step's attempts, by number. The engine may execute an attempt's Activity more than
 * once in a process (it retries one that was interrupted), and may execute one that a crash cut short as soon as the
 * run resumes, while the attempts before it are being replayed: what is known is kept by number, not in the order
 * the attempts are reached.
 */
interface Attempts {
  /** The attempts executed here: their outcome, taken from the journal, is already counted. */
  readonly ran: Set<number>
  /** The causes of the attempts that failed here, as this process saw them. */
  readonly causes: Map<number, Cause.Cause<unknown>>
  /** What each attempt spent here, over all its executions, with what earlier processes spent on it. */
  readonly spent: Map<number, Usage.Usage>
}

/**
 * Runs attempt `number` of a step as the local executor runs one (under the step's timeout, with no retry), and
 * shapes how it ended for the journal, with the usage the attempt recorded (in a ledger of its own, whose parent is
 * the step's). With a spend log, what earlier runner processes spent on this attempt (cut short, it reached no
 * journal) is counted first, once.
 */
const attempt = <A, E, R>(
  execution: StepExecutor.Attempt<A, E, R>,
  number: number,
  books: Option.Option<ExecutionLog>,
  attempts: Attempts,
  journal: Journal.StepOutcome,
  cancellation: Cancellations.Watch
) => {
  const step = execution.name
  const cancelled = Effect.failSync(() => new Cancellation.Cancelled({ step }))
  // Not started once the run is cancelled, and cut when it is (the cut step's finalizers run, and its calls settle).
  const timed = Effect.flatMap(cancellation.isCancelled, (isCancelled) =>
    isCancelled ? cancelled : Effect.raceFirst(
      Step.withPolicy(Effect.suspend(() => execution.step.run(execution.inputs)), {
        step,
        timeout: execution.timeout
      }),
      Effect.zipRight(cancellation.whenCancelled, cancelled)
    ))
  const spent = () => attempts.spent.get(number) ?? Usage.empty
  const add = (usage: Usage.Usage) => Effect.sync(() => attempts.spent.set(number, Usage.add(spent(), usage)))
  return Effect.gen(function*() {
    attempts.ran.add(number)
    const outer = yield* Effect.serviceOption(Ledger.Ledger)
    if (Option.isNone(outer)) return { exit: yield* Effect.exit(timed), usage: Usage.empty }
    const parent = outer.value
    let hooks: Ledger.Hooks | undefined
    const first = !attempts.spent.has(number)
    yield* add(Usage.empty)
    if (Option.isSome(books)) {
      const { log, spentBefore } = books.value
      const lost = first ? (yield* spentBefore).get(step)?.get(number) : undefined
      if (lost !== undefined) yield* Effect.zipRight(Effect.orDie(parent.record(lost)), add(lost))
      const execution = books.value.execution
      hooks = spendLogged(log, { execution, step, attempt: randomUUID(), attemptNumber: number })
    }
    // Attributed to the step, so that a bad figure is reported as the step's.
    const own = (yield* Ledger.make(hooks === undefined ? { parent } : { parent, hooks })).forStep(step)
    const exit = yield* Effect.exit(
      Effect.ensuring(
        Effect.provideService(timed, Ledger.Ledger, own),
        Effect.flatMap(own.snapshot, (snapshot) => add(snapshot.total))
      )
    )
    return { exit, usage: spent() }
  }).pipe(Effect.flatMap(({ exit, usage }) => {
    // What the attempt ended with is checked against the journal now, rather than found unreadable when a resumed
    // run replays it: such an attempt dies, and the run fails naming the step.
    const unjournalable = (detail: string) => Effect.die(new Storable.Unjournalable({ step, detail }))
    if (Exit.isSuccess(exit)) {
      return Either.match(Storable.check(journal.success, { output: exit.value as unknown, usage }), {
        onLeft: unjournalable,
        onRight: Effect.succeed
      })
    }
    const failure = Cause.failureOption(exit.cause)
    if (Option.isSome(failure)) {
      attempts.causes.set(number, exit.cause)
      const retryable = !(failure.value instanceof Cancellation.Cancelled) &&
        execution.retryable(failure.value as E | Step.StepTimeout)
      return Either.match(
        Storable.check(journal.failure, { error: Journal.journaled(execution.step, step, failure.value), usage, retryable }),
        { onLeft: unjournalable, onRight: Effect.fail }
      )
    }
    // Defects and interruptions go to the engine as they are: it journals a defect, and retries an interruption.
    return Effect.failCause(exit.cause as Cause.Cause<never>)
  }))
}

/**
 * Makes the executor for one execution of a durable run's workflow: it runs one attempt at a time (core's retry loop
 * drives them) and says whether the attempt ran, was replayed from the journal, or suspended the run. `outcomes`
 * finds the schemas of a step's outcomes (`Journal.stepOutcomes`, made once for the pipeline); `services` the
 * workflow engine and the execution's instance, which an Activity needs and the executor's signature cannot carry;
 * `log` the spend log, if the store keeps one; `cancellation` what the execution knows of its run's cancellation. A
 * waiting step runs as it would locally, with the execution's signals.
 */
export const make = (
  outcomes: Journal.StepOutcomes,
  services: Context.Context<WorkflowEngine | WorkflowInstance>,
  log: Option.Option<SpendLog.Service>,
  cancellation: Cancellations.Watch
): Effect.Effect<StepExecutor.Service> =>
  Effect.gen(function*() {
    const execution = Context.get(services, WorkflowInstance).executionId
    // One read for the whole execution, when its first step runs: no other runner writes for it meanwhile.
    const books: Option.Option<ExecutionLog> = Option.isNone(log) ? Option.none() : Option.some({
      log: log.value,
      execution,
      spentBefore: yield* Effect.cached(Effect.orDie(log.value.spentBefore(execution)))
    })
    return executor(outcomes, services, books, cancellation)
  })

/** A step's Activity, as the executor runs it: its outcome as journaled. */
type Journaled = Effect.Effect<
  { readonly output: unknown; readonly usage: Usage.Usage },
  { readonly error: unknown; readonly retryable: boolean; readonly usage: Usage.Usage },
  WorkflowEngine | WorkflowInstance
>

const executor = (
  outcomes: Journal.StepOutcomes,
  services: Context.Context<WorkflowEngine | WorkflowInstance>,
  books: Option.Option<ExecutionLog>,
  cancellation: Cancellations.Watch
): StepExecutor.Service => {
  const signals = Waiting.signals(services, cancellation)
  const instance = Context.get(services, WorkflowInstance)
  // One Activity per step (item, iteration) for all its attempts, each executed under its number
  // (`Activity.CurrentAttempt`), as `Activity.retry` does: the engine runs whichever Activity of the step's name it
  // has registered, under the number it was asked for. It is made at the step's first attempt, with what this
  // process knows of the step's attempts.
  const steps = new Map<string, { readonly activity: Journaled; readonly attempts: Attempts }>()
  const entryOf = <A, E, R>(execution: StepExecutor.Attempt<A, E, R>) => {
    const known = steps.get(execution.name)
    if (known !== undefined) return known
    const attempts: Attempts = { ran: new Set(), causes: new Map(), spent: new Map() }
    const journal = outcomes(execution.step)
    const activity = Activity.make({
      name: execution.name,
      success: journal.success,
      error: journal.failure,
      execute: Effect.flatMap(
        Activity.CurrentAttempt,
        (number) => attempt(execution, number, books, attempts, journal, cancellation)
      )
    }) as Journaled
    const entry = { activity, attempts }
    steps.set(execution.name, entry)
    return entry
  }
  return StepExecutor.fromAttempt(<A, E, R>(execution: StepExecutor.Attempt<A, E, R>) =>
    Effect.suspend((): Effect.Effect<StepExecutor.Attempted<A, E>, never, R> => {
      if (Waiting.isWaiting(execution.step)) return waiting(execution, signals, instance)
      const { activity, attempts } = entryOf(execution)
      const number = execution.number
      const replayed = () => !attempts.ran.has(number)
      // A replayed attempt's usage was counted in the ledger of the process that ran it; this run's ledger counts
      // it again, so that the budget holds across restarts.
      const count = (usage: Usage.Usage) =>
        Effect.suspend(() => !replayed() || Usage.isEmpty(usage) ? Effect.void : Effect.orDie(Ledger.record(usage)))
      return Effect.provide(activity, services).pipe(
        // The attempt's number is part of the Activity's key in the journal.
        Effect.provideService(Activity.CurrentAttempt, number),
        Effect.matchEffect({
          onSuccess: ({ output, usage }) =>
            Effect.as(count(usage), { _tag: "Succeeded" as const, value: output as A, replayed: replayed() }),
          onFailure: ({ error, retryable, usage }) =>
            Effect.as(count(usage), {
              _tag: "Failed" as const,
              // What the step fails with is the error as journaled, here as on replay; the retry events and the
              // policy's schedule see the cause as this process saw it, when it ran here.
              error: error as E,
              cause: (attempts.causes.get(number) ?? Cause.fail(error)) as Cause.Cause<E | Step.StepTimeout>,
              retryable,
              replayed: replayed()
            })
        })
      ) as Effect.Effect<StepExecutor.Attempted<A, E>, never, R>
    })
  )
}

/**
 * A waiting step's attempt, run as it would be locally with the execution's signals. A value not yet delivered
 * suspends the workflow by interrupting the fiber that waits: that fiber is the attempt's own, so that the attempt
 * can say it suspended rather than end interrupted.
 */
const waiting = <A, E, R>(
  execution: StepExecutor.Attempt<A, E, R>,
  signals: Context.Tag.Service<Waiting.Signals>,
  instance: WorkflowInstance["Type"]
): Effect.Effect<StepExecutor.Attempted<A, E>, never, R> =>
  Effect.flatMap(
    Effect.fork(Effect.provideService(StepExecutor.local.attempt!(execution), Waiting.Signals, signals)),
    (fiber) =>
      Effect.flatMap(
        Effect.onInterrupt(Fiber.await(fiber), () => Fiber.interrupt(fiber)),
        (exit): Effect.Effect<StepExecutor.Attempted<A, E>> =>
          Exit.isFailure(exit) && Cause.isInterruptedOnly(exit.cause) && instance.suspended
            ? Effect.succeed({ _tag: "Suspended" })
            : exit
      )
  )
