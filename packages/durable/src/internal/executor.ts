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
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Exit from "effect/Exit"
import * as Option from "effect/Option"
import * as Schedule from "effect/Schedule"
import { randomUUID } from "node:crypto"
import type * as SpendLog from "../SpendLog.js"
import type * as Cancellations from "../Cancellations.js"
import * as Cancellation from "./cancellation.js"
import * as Journal from "./journal.js"
import * as Storable from "./storable.js"
import * as Waiting from "./waiting.js"

const isEmpty = (usage: Usage.Usage): boolean =>
  usage.cost === 0 && usage.requests === 0 && usage.inputTokens === 0 && usage.outputTokens === 0 &&
  usage.cachedInputTokens === 0 && usage.reasoningTokens === 0 && usage.toolCalls === 0

/**
 * A step's ledger that writes each reservation to the spend log before the call can be sent, and each settlement
 * after. A write that fails is a defect: a call whose hold is not written down must not be sent.
 */
const logged = (
  ledger: Ledger.Service,
  log: SpendLog.Service,
  where: Omit<SpendLog.Hold, "reservation" | "amount">
): Ledger.Service => {
  const hold = (reservation: Ledger.Reservation): SpendLog.Hold => ({
    ...where,
    reservation: reservation.id,
    amount: reservation.amount
  })
  return {
    budget: ledger.budget,
    close: ledger.close,
    remaining: ledger.remaining,
    snapshot: ledger.snapshot,
    record: (usage) => ledger.record(usage),
    forStep: (step) => logged(ledger.forStep(step), log, { ...where, step }),
    reserve: (amount, options) =>
      Effect.tap(ledger.reserve(amount, options), (reservation) =>
        Effect.catchAllCause(
          log.reserved(hold(reservation)),
          (cause) => Effect.zipRight(ledger.settle(reservation, Usage.empty), Effect.die(Cause.squash(cause)))
        )),
    settle: (reservation, usage, options) =>
      Effect.zipRight(Effect.orDie(log.settled(hold(reservation), usage.cost)), ledger.settle(reservation, usage, options))
  }
}

/** The spend log of one execution: the log, and what earlier runner processes spent on its steps (read once). */
interface ExecutionLog {
  readonly log: SpendLog.Service
  readonly execution: string
  readonly spentBefore: Effect.Effect<SpendLog.Spent>
}

/** An attempt that failed: its error as journaled, the policy's verdict on it, and its cause as this process saw it. */
interface Failed {
  readonly error: unknown
  readonly retryable: boolean
  readonly cause: Cause.Cause<unknown>
  /** Whether the attempt failed in an earlier execution, its outcome read from the journal. */
  readonly replayed: boolean
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
  execution: StepExecutor.Execution<A, E, R>,
  number: number,
  books: Option.Option<ExecutionLog>,
  attempts: Attempts,
  journal: Journal.StepOutcome,
  cancellation: Cancellations.Watch
) => {
  const step = execution.name
  const retry = Step.retryOptions(execution.policy.retry)
  const cancelled = Effect.failSync(() => new Cancellation.Cancelled({ step }))
  // Not started once the run is cancelled, and cut when it is (the cut step's finalizers run, and its calls settle).
  const timed = Effect.flatMap(cancellation.isCancelled, (isCancelled) =>
    isCancelled ? cancelled : Effect.raceFirst(
      Step.withPolicy(Effect.suspend(() => execution.step.run(execution.inputs)), {
        step,
        timeout: execution.policy.timeout
      }),
      Effect.zipRight(cancellation.whenCancelled, cancelled)
    ))
  const spent = () => attempts.spent.get(number) ?? Usage.empty
  const add = (usage: Usage.Usage) => Effect.sync(() => attempts.spent.set(number, Usage.add(spent(), usage)))
  return Effect.gen(function*() {
    attempts.ran.add(number)
    const outer = yield* Effect.serviceOption(Ledger.Ledger)
    if (Option.isNone(outer)) return { exit: yield* Effect.exit(timed), usage: Usage.empty }
    let parent = outer.value
    const first = !attempts.spent.has(number)
    yield* add(Usage.empty)
    if (Option.isSome(books)) {
      const { log, spentBefore } = books.value
      const lost = first ? (yield* spentBefore).get(step)?.get(number) : undefined
      if (lost !== undefined) yield* Effect.zipRight(Effect.orDie(parent.record(lost)), add(lost))
      const execution = books.value.execution
      parent = logged(parent, log, { execution, step, attempt: randomUUID(), attemptNumber: number })
    }
    // Attributed to the step, so that a bad figure is reported as the step's.
    const own = (yield* Ledger.make({ parent })).forStep(step)
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
      const retryable = retry !== undefined && !(failure.value instanceof Cancellation.Cancelled) &&
        retry.while(failure.value as E | Step.StepTimeout)
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
 * Makes the executor for one execution of a durable run's workflow. `outcomes` finds the schemas of a step's
 * outcomes (`Journal.stepOutcomes`, made once for the pipeline); `services` the workflow engine and the execution's instance, which an Activity
 * needs and the executor's signature cannot carry; `log` the spend log, if the store keeps one; `cancellation` what
 * the execution knows of its run's cancellation; `replayed` gets the name in the run of each step (item, iteration)
 * whose output is read from the journal. A waiting step runs as it would locally, with the execution's signals.
 */
export const make = (
  outcomes: Journal.StepOutcomes,
  services: Context.Context<WorkflowEngine | WorkflowInstance>,
  log: Option.Option<SpendLog.Service>,
  cancellation: Cancellations.Watch,
  replayed: Set<string>
): Effect.Effect<StepExecutor.Service> =>
  Effect.gen(function*() {
    const execution = Context.get(services, WorkflowInstance).executionId
    // One read for the whole execution, when its first step runs: no other runner writes for it meanwhile.
    const books: Option.Option<ExecutionLog> = Option.isNone(log) ? Option.none() : Option.some({
      log: log.value,
      execution,
      spentBefore: yield* Effect.cached(Effect.orDie(log.value.spentBefore(execution)))
    })
    return executor(outcomes, services, books, cancellation, replayed)
  })

const executor = (
  outcomes: Journal.StepOutcomes,
  services: Context.Context<WorkflowEngine | WorkflowInstance>,
  books: Option.Option<ExecutionLog>,
  cancellation: Cancellations.Watch,
  replayedSteps: Set<string>
): StepExecutor.Service => {
  const signals = Waiting.signals(services, cancellation)
  return StepExecutor.make((execution) =>
    Effect.suspend(() => {
      const step = execution.step
      if (Waiting.isWaiting(step)) {
        return Effect.provideService(StepExecutor.local.execute(execution), Waiting.Signals, signals)
      }
      // One Activity for all the attempts, each executed under its number (`Activity.CurrentAttempt`), as
      // `Activity.retry` does: the engine runs whichever Activity of the step's name it has registered, under the
      // number it was asked for.
      const name = execution.name
      const attempts: Attempts = { ran: new Set(), causes: new Map(), spent: new Map() }
      const journal = outcomes(step)
      const activity = Activity.make({
        name,
        success: journal.success,
        error: journal.failure,
        execute: Effect.flatMap(
          Activity.CurrentAttempt,
          (number) => attempt(execution, number, books, attempts, journal, cancellation)
        )
      })
      /** Attempt `number`: run, or replayed from the journal if it ended before. */
      const one = (number: number): Effect.Effect<unknown, Failed> => {
        // A replayed attempt's usage was counted in the ledger of the process that ran it; this run's ledger counts
        // it again, so that the budget holds across restarts.
        const replayed = (usage: Usage.Usage) =>
          Effect.suspend(() => attempts.ran.has(number) || isEmpty(usage) ? Effect.void : Ledger.record(usage))
        return Effect.provide(activity, services).pipe(
          // The attempt's number is part of the Activity's key in the journal.
          Effect.provideService(Activity.CurrentAttempt, number),
          Effect.matchEffect({
            onSuccess: ({ output, usage }) =>
              Effect.zipRight(
                replayed(usage),
                Effect.sync(() => {
                  if (!attempts.ran.has(number)) replayedSteps.add(name)
                  return output
                })
              ),
            onFailure: ({ error, retryable, usage }) =>
              Effect.zipRight(
                replayed(usage),
                Effect.suspend(() => {
                  const cause = attempts.causes.get(number) ?? Cause.fail(error)
                  return Effect.fail({ error, retryable, cause, replayed: !attempts.ran.has(number) } satisfies Failed)
                })
              )
          })
        ) as Effect.Effect<unknown, Failed>
      }
      return Effect.mapError(retrying(one, execution), (failed) => failed.error) as Effect.Effect<any, any, any>
    })
  )
}

/**
 * Runs a step's attempts (`one(number)`, from 1) as its retry policy says. Attempts are counted and `onRetry` called
 * as the local executor does, replayed ones included, so that the step's report counts them all; a replayed
 * attempt's cause is its error as journaled. Whether an error is retried is the verdict journaled with it.
 */
const retrying = <A, E, R>(
  one: (number: number) => Effect.Effect<unknown, Failed>,
  execution: StepExecutor.Execution<A, E, R>
): Effect.Effect<unknown, Failed> => {
  const retry = Step.retryOptions(execution.policy.retry)
  if (retry === undefined) return one(1)
  let count = 0
  let last: Failed | undefined
  const next = Effect.suspend(() => {
    const number = ++count
    return last === undefined
      ? one(number)
      : Effect.zipRight(execution.onRetry(number, last.cause as Cause.Cause<any>), one(number))
  }).pipe(Effect.tapError((failed) => Effect.sync(() => (last = failed))))
  // The policy's schedule sees the error itself when the attempt ran here, and as journaled when it is replayed.
  // Its waits are ordinary sleeps, not timers of the engine. After an attempt replayed from the journal there is no
  // wait: it was waited, or cut short by the crash, in the execution that ran the attempt, and a resumed run goes
  // through its failed attempts at once.
  const policy = Schedule.mapInput(
    retry.schedule ?? Schedule.forever,
    (failed: Failed) => Option.getOrElse(Cause.failureOption(failed.cause), () => failed.error) as never
  )
  const schedule = Schedule.modifyDelay(
    Schedule.passthrough(policy),
    (failed, delay) => failed.replayed ? Duration.zero : delay
  )
  return retry.times === undefined
    ? Effect.retry(next, { schedule, while: (failed) => failed.retryable })
    : Effect.retry(next, { schedule, times: retry.times, while: (failed) => failed.retryable })
}
