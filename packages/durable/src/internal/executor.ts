/**
 * The durable step executor: each step's attempts run as one `@effect/workflow` Activity, whose outcome (the output
 * or the error, with the usage the step recorded) the engine journals. A resumed run gets a finished step's outcome
 * back from the journal without running the step, and records the journaled usage in its own ledger.
 */
import * as Activity from "@effect/workflow/Activity"
import { type WorkflowEngine, WorkflowInstance } from "@effect/workflow/WorkflowEngine"
import { Ledger, StepExecutor, Usage } from "@trellis/core"
import * as Cause from "effect/Cause"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Option from "effect/Option"
import type * as Schema from "effect/Schema"
import { randomUUID } from "node:crypto"
import type * as SpendLog from "../SpendLog.js"
import * as Journal from "./journal.js"
import * as Waiting from "./waiting.js"

const isEmpty = (usage: Usage.Usage): boolean =>
  usage.cost === 0 && usage.requests === 0 && usage.inputTokens === 0 && usage.outputTokens === 0 &&
  usage.cachedInputTokens === 0 && usage.reasoningTokens === 0 && usage.toolCalls === 0

/**
 * What the step recorded in the run's ledger. A step runs once per run (its retries are inside this one execution),
 * so everything the ledger holds under its name is its own.
 */
const usageOf = (step: string): Effect.Effect<Usage.Usage> =>
  Effect.flatMap(Effect.serviceOption(Ledger.Ledger), (ledger) =>
    Option.isNone(ledger)
      ? Effect.succeed(Usage.empty)
      : Effect.map(ledger.value.snapshot, (snapshot) => snapshot.byStep[step] ?? Usage.empty))

/**
 * A step's ledger that writes each reservation to the spend log before the call can be sent, and each settlement
 * after. A write that fails is a defect: a call whose hold is not written down must not be sent.
 */
const logged = (
  ledger: Ledger.Service,
  log: SpendLog.Service,
  where: { readonly execution: string; readonly step: string; readonly attempt: string }
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
    reserve: (amount) =>
      Effect.tap(ledger.reserve(amount), (reservation) =>
        Effect.catchAllCause(
          log.reserved(hold(reservation)),
          (cause) => Effect.zipRight(ledger.settle(reservation, Usage.empty), Effect.die(Cause.squash(cause)))
        )),
    settle: (reservation, usage) =>
      Effect.zipRight(Effect.orDie(log.settled(hold(reservation), usage.cost)), ledger.settle(reservation, usage))
  }
}

/** The spend log of one execution: the log, and what earlier runner processes spent on its steps (read once). */
interface ExecutionLog {
  readonly log: SpendLog.Service
  readonly execution: string
  readonly spentBefore: Effect.Effect<ReadonlyMap<string, Usage.Usage>>
}

/**
 * Runs the step's attempts as the local executor would, and shapes how they ended for the journal. With a spend log,
 * what earlier runner processes spent on the step (attempts that never reached the journal) is counted first.
 */
const attempts = <A, E, R>(execution: StepExecutor.Execution<A, E, R>, books: Option.Option<ExecutionLog>) => {
  const step = execution.step.name
  const run = Effect.gen(function*() {
    const ledger = yield* Effect.serviceOption(Ledger.Ledger)
    if (Option.isNone(books) || Option.isNone(ledger)) return yield* StepExecutor.local.execute(execution)
    const { log, spentBefore } = books.value
    const before = (yield* spentBefore).get(step)
    if (before !== undefined) yield* ledger.value.record(before)
    const logging = logged(ledger.value, log, { execution: books.value.execution, step, attempt: randomUUID() })
    return yield* Effect.provideService(StepExecutor.local.execute(execution), Ledger.Ledger, logging)
  })
  return Effect.flatMap(Effect.exit(run), (exit) =>
    Effect.flatMap(usageOf(step), (usage) => {
      if (Exit.isSuccess(exit)) return Effect.succeed({ output: exit.value as unknown, usage })
      const failure = Cause.failureOption(exit.cause)
      if (Option.isSome(failure)) return Effect.fail({ error: Journal.journaled(step, failure.value), usage })
      // Defects and interruptions go to the engine as they are: it journals a defect, and retries an interruption.
      return Effect.failCause(exit.cause as Cause.Cause<never>)
    }))
}

/**
 * Makes the executor for one execution of a durable run's workflow. `services` are the workflow engine and the
 * execution's instance, which an Activity needs and the executor's signature cannot carry; `log` the spend log, if
 * the store keeps one. A waiting step runs as it would locally, with the execution's signals.
 */
export const make = (
  stop: Schema.Schema.All,
  services: Context.Context<WorkflowEngine | WorkflowInstance>,
  log: Option.Option<SpendLog.Service>
): Effect.Effect<StepExecutor.Service> =>
  Effect.gen(function*() {
    const execution = Context.get(services, WorkflowInstance).executionId
    // One read for the whole execution, when its first step runs: no other runner writes for it meanwhile.
    const books: Option.Option<ExecutionLog> = Option.isNone(log) ? Option.none() : Option.some({
      log: log.value,
      execution,
      spentBefore: yield* Effect.cached(Effect.orDie(log.value.spentBefore(execution)))
    })
    return executor(stop, services, books)
  })

const executor = (
  stop: Schema.Schema.All,
  services: Context.Context<WorkflowEngine | WorkflowInstance>,
  books: Option.Option<ExecutionLog>
): StepExecutor.Service => {
  const signals = Waiting.signals(services)
  return StepExecutor.make((execution) =>
    Effect.suspend(() => {
      const step = execution.step
      if (Waiting.isWaiting(step)) {
        return Effect.provideService(StepExecutor.local.execute(execution), Waiting.Signals, signals)
      }
      // Set when the Activity's effect runs: if it never did, its outcome came from the journal.
      let ran = false
      const activity = Activity.make({
        name: step.name,
        success: Journal.stepSuccess(step),
        error: Journal.stepFailure(stop),
        execute: Effect.suspend(() => {
          ran = true
          return attempts(execution, books)
        })
      })
      // A replayed step's usage was counted in the ledger of the process that ran it; this run's ledger counts it
      // again, so that the budget holds across restarts.
      const replayed = (usage: Usage.Usage) => (ran || isEmpty(usage) ? Effect.void : Ledger.record(usage))
      return Effect.provide(activity, services).pipe(
        Effect.matchEffect({
          onSuccess: ({ output, usage }) => Effect.as(replayed(usage), output),
          onFailure: ({ error, usage }) => Effect.zipRight(replayed(usage), Effect.fail(error))
        })
      ) as Effect.Effect<any, any, any>
    })
  )
}
