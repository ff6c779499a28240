/**
 * The runner of one run of a pipeline (started by `./run.js`): the scheduler says what may start, steps run through the executor, the launcher forks
 * where there is parallelism, the observer reports, and the report builds the result.
 *
 * Scheduling is driven by dependencies: a step starts the moment its last dependency ends, started by the fiber
 * that ended it. That fiber carries on with one ready step itself and forks only the others, so a chain never
 * forks. The calling fiber (the driver) runs steps itself only while no other step runs; once there is real
 * parallelism it forks the ready steps and waits until the run settles, because a failure must be able to
 * interrupt every running step, and interrupting the driver would end the run.
 *
 * All bookkeeping (scheduler, report, ledger) is plain state changed inside synchronous callbacks, which
 * JavaScript never interleaves, so it needs no locks or `Ref`s; effects are built only where Effect must act.
 */
import * as Cause from "effect/Cause"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as FiberRef from "effect/FiberRef"
import * as Option from "effect/Option"
import * as Tracer from "effect/Tracer"
import { BudgetOverrun, PipelineTimeout, StepFailed } from "../PipelineError.js"
import type * as Result from "../Result.js"
import type * as StepExecutor from "../StepExecutor.js"
import type { Plan } from "./plans.js"
import { detached } from "./detach.js"
import { Launcher } from "./launch.js"
import * as Ledger from "../Ledger.js"
import * as RunLedger from "./ledger.js"
import { FailedParts, type Nest, Nesting, reasonOf } from "./nest.js"
import type { Ending, Observer } from "./observer.js"
import { Report } from "./report.js"
import { type Halt, Scheduler } from "./scheduler.js"
import { StopSignal } from "./stop.js"

/** Why a run halted. */
type Outcome =
  | { readonly _tag: "Failed"; readonly cause: Cause.Cause<unknown> }
  | { readonly _tag: "Stopped"; readonly data: unknown }
  | { readonly _tag: "BudgetExceeded"; readonly error: Ledger.BudgetExceeded }
  | { readonly _tag: "BudgetOverrun"; readonly overrun: RunLedger.Overrun }

/**
 * What a step holds while it runs: its span, and the context to put back when it ends (read from the fiber, not kept
 * by the runner: an error keeps its stack frames' objects, the runner among them, until its stack is formatted).
 */
interface Running {
  readonly span: Tracer.Span
  readonly outer: Context.Context<never>
}

export class Runner {
  readonly scheduler: Scheduler<Outcome>
  readonly report: Report
  private readonly failedParts = new FailedParts()
  readonly launcher = new Launcher()
  /** Set once the run, under a timeout, waited that long for its calls to settle: it does not wait again. */
  private gaveUpWaiting = false
  /** Set while the driver waits for the run to settle: wakes it. */
  private wake: ((done: Effect.Effect<void>) => void) | undefined = undefined

  readonly plan: Plan
  readonly observer: Observer
  readonly ledger: RunLedger.RunLedger
  readonly executor: StepExecutor.Service
  /** The steps' names in the run: their own, or their paths in the enclosing run for a sub-pipeline's. */
  readonly names: ReadonlyArray<string>
  /** For a sub-pipeline's run, the nest of the enclosing run's step made of it. */
  readonly outer: Nest | undefined

  constructor(
    plan: Plan,
    observer: Observer,
    ledger: RunLedger.RunLedger,
    executor: StepExecutor.Service,
    names: ReadonlyArray<string>,
    outer: Nest | undefined
  ) {
    this.plan = plan
    this.observer = observer
    this.ledger = ledger
    this.executor = executor
    this.names = names
    this.outer = outer
    this.scheduler = new Scheduler(plan.graph, plan.concurrency)
    this.report = new Report(plan.name, plan.graph, names, outer)
  }

  /**
   * However the run ended: stops what still runs, waits for its calls, and reports the end (for a sub-pipeline's
   * run, hands its timeline to the enclosing run instead).
   */
  finish(exit: Exit.Exit<Result.Result<unknown, unknown, unknown>, unknown>): Effect.Effect<void> {
    return this.wrapUp(() => {
      const outer = this.outer
      if (outer !== undefined) {
        for (const { order, timing } of this.report.entries(this.observer.now())) outer.partEnded(timing, order)
      }
      return this.observer.runFinished(exit, this.ledger.total())
    })
  }

  /** A part of step `i` (or, in a sub-pipeline's run, step `i` itself) failed with `reason`. */
  partFailed(i: number, name: string, reason: unknown): void {
    this.failedParts.add(i, name, reason)
    this.outer?.partFailed(name, reason)
  }

  /** Interrupts the forked fibers if a step still runs, and waits for them. */
  stopAll(): Effect.Effect<void> {
    return this.scheduler.running > 0 ? this.launcher.interruptAll : Effect.void
  }

  /**
   * Once no step runs: refuses every new reservation, then waits until every call the run reserved for is settled (a
   * step can end before a call it forked), so that the run's end counts every call sent. Under a timeout the wait is
   * bounded by it too: a call that never settles cannot hold the run for ever.
   */
  callsSettled(): Effect.Effect<void> {
    return Effect.suspend(() => {
      this.ledger.close()
      if (!this.ledger.busy()) return Effect.void
      const timeout = this.plan.timeout
      if (timeout === undefined) return this.ledger.idle()
      if (this.gaveUpWaiting) return Effect.void
      return Effect.catchAll(Effect.timeout(Effect.interruptible(this.ledger.idle()), timeout), () =>
        Effect.sync(() => {
          this.gaveUpWaiting = true
        }))
    })
  }

  /** Stops what still runs, waits for its calls, then gives the run's end. */
  private wrapUp<A, E>(end: () => Effect.Effect<A, E>): Effect.Effect<A, E> {
    return this.stopAll().pipe(Effect.zipRight(this.callsSettled()), Effect.zipRight(Effect.suspend(end)))
  }

  /** The whole run, under the pipeline's timeout if it has one. */
  get whole(): Effect.Effect<Result.Result<unknown, unknown, unknown>, unknown> {
    const body = Effect.zipRight(this.drive(), Effect.suspend(() => this.conclude()))
    const timeout = this.plan.timeout
    if (timeout === undefined) return body
    return Effect.flatten(Effect.timeoutTo(body, {
      duration: timeout,
      onSuccess: Effect.succeed,
      // The steps still running are stopped first, so that what they were billed is in the partial result.
      onTimeout: () =>
        this.wrapUp(() =>
          Effect.fail(detached(new PipelineTimeout({ pipeline: this.plan.name, timeout, partial: this.partial() })))
        )
    }))
  }

  /** The driver: runs steps one at a time while they come alone, forks once several are ready, then waits. */
  drive(): Effect.Effect<void> {
    return Effect.suspend(() => {
      const scheduler = this.scheduler
      if (scheduler.settled) return Effect.void
      if (scheduler.startable === 1 && scheduler.running === 0) {
        return Effect.zipRight(this.step(scheduler.take()), this.drive())
      }
      return Effect.zipRight(this.forkReady(scheduler.startable), this.settled())
    })
  }

  /** Waits until the run has settled, woken by the fiber whose step settles it. */
  settled(): Effect.Effect<void> {
    return Effect.async<void>((resume) => {
      if (this.scheduler.settled) resume(Effect.void)
      else this.wake = resume
    })
  }

  wakeIfSettled(): void {
    const wake = this.wake
    if (wake !== undefined && this.scheduler.settled) {
      this.wake = undefined
      wake(Effect.void)
    }
  }

  /**
   * A forked fiber: runs its step, then carries on with what the step's end made ready. A fiber starts some time
   * after it is forked; if the run halted meanwhile, its step never starts.
   */
  chain(i: number): Effect.Effect<void> {
    return Effect.suspend(() => {
      if (this.scheduler.halt === undefined) return Effect.zipRight(this.step(i), Effect.suspend(() => this.carryOn()))
      this.scheduler.withdraw()
      this.wakeIfSettled()
      return Effect.void
    })
  }

  /** After a step ended on a forked fiber: takes one ready step on this fiber, forks the others. */
  carryOn(): Effect.Effect<void> {
    const ready = this.scheduler.startable
    if (ready === 0) return Effect.void
    const next = this.scheduler.take()
    return ready === 1 ? this.chain(next) : Effect.zipRight(this.forkReady(ready - 1), this.chain(next))
  }

  /** Forks a fiber for each of the next `k` ready steps (taken now, as the fibers start later). */
  forkReady(k: number): Effect.Effect<void> {
    const chains: Array<Effect.Effect<void>> = []
    for (let n = 0; n < k; n++) chains.push(this.chain(this.scheduler.take()))
    return this.launcher.fork(chains)
  }

  /**
   * Runs step `i` through the executor, under its span, with the run's ledger attributing to it, and records and
   * reports how it ended, however it ended. It is `acquireUseRelease` written out, with fewer effects: started with
   * interruption masked, only the executor's work interruptible, the end handled on every exit. What its end means
   * for the run is the scheduler's to say: the effect itself always succeeds (or is interrupted).
   */
  step(i: number): Effect.Effect<void> {
    return Effect.uninterruptibleMask((restore) =>
      Effect.flatMap(this.begin(i), (running) =>
        Effect.matchCauseEffect(restore(this.execute(i)), {
          onFailure: (cause) => this.ended(i, running, Exit.failCause(cause)),
          onSuccess: (value) => this.ended(i, running, Exit.succeed(value))
        }))
    )
  }

  /** Starts step `i`: its record, its span, and its context (the step's ledger, its span as the current one). */
  begin(i: number): Effect.Effect<Running> {
    return Effect.suspend(() => {
      const name = this.names[i]!
      const span = this.observer.openStep(name)
      const startedAt = this.observer.now()
      this.report.started(i, startedAt)
      const composite = this.plan.graph.nodes[i]!.step.shape !== undefined
      const enter = FiberRef.modify(
        FiberRef.currentContext,
        (outer): [Running, Context.Context<never>] => {
          const inner = Context.add(Context.add(outer, Ledger.Ledger, this.ledger.ledger.forStep(name)), Tracer.ParentSpan, span)
          return [{ span, outer }, composite ? Context.add(inner, Nesting, this.nest(i)) : inner]
        }
      )
      return this.observer.listening ? Effect.zipLeft(enter, this.observer.started(name, startedAt, this.outer?.path)) : enter
    })
  }

  /** What step `i`, made of steps, runs its parts with. */
  nest(i: number): Nest {
    return {
      path: this.names[i]!,
      policy: this.plan.policies[i]!,
      observer: this.observer,
      executor: this.executor,
      ledger: this.ledger.ledger,
      partStarted: () => this.report.partStarted(),
      partEnded: (timing, order) => this.report.partEnded(timing, order),
      partFailed: (name, reason) => this.partFailed(i, name, reason)
    }
  }

  /** Step `i`'s attempts, through the executor; a step made of steps runs its parts through it instead. */
  execute(i: number): Effect.Effect<unknown, unknown> {
    const node = this.plan.graph.nodes[i]!
    const step = node.step
    if (step.shape !== undefined) return Effect.suspend(() => step.run(this.inputsOf(i))) as Effect.Effect<unknown, unknown>
    // The pipeline's type carries the steps' errors and requirements; inside the run they are opaque.
    return this.executor.execute({
      pipeline: this.plan.name,
      name: this.names[i]!,
      step,
      inputs: this.inputsOf(i),
      policy: this.plan.policies[i]!,
      onRetry: (attempt, cause) => {
        this.report.retried(i)
        return this.observer.retrying(this.names[i]!, attempt, cause, this.observer.now())
      },
      onReplayed: () => this.observer.replayed(this.names[i]!),
      onSuspended: () => this.observer.suspended(this.names[i]!)
    }) as Effect.Effect<unknown, unknown>
  }

  /** The outputs of step `i`'s dependencies under its keys (own properties, even a key named `__proto__`). */
  inputsOf(i: number): Record<string, unknown> {
    const node = this.plan.graph.nodes[i]!
    return Object.fromEntries(node.keys.map((key, k) => [key, this.report.output(node.deps[k]!)]))
  }

  /**
   * Step `i` ended: ends its span, records the end, tells the scheduler, puts the outer context back, reports the
   * end, and wakes the driver if the run is over.
   */
  ended(i: number, running: Running, exit: Exit.Exit<unknown, unknown>): Effect.Effect<void> {
    this.observer.end(running.span, exit)
    const ending = this.classify(i, exit)
    const at = this.observer.now()
    const durationMs = this.report.ended(i, ending, at, Exit.isSuccess(exit) ? exit.value : undefined)
    if (ending === "failed" && this.outer !== undefined && Exit.isFailure(exit)) {
      this.partFailed(i, this.names[i]!, reasonOf(exit.cause))
    }
    const leave = FiberRef.set(FiberRef.currentContext, running.outer)
    if (!this.observer.listening) {
      this.wakeIfSettled()
      return leave
    }
    // The driver is woken once the end is reported, so that the run's last event comes after every step's.
    return leave.pipe(
      Effect.zipRight(this.observer.ended(this.names[i]!, ending, exit, at, durationMs)),
      Effect.zipRight(Effect.sync(() => this.wakeIfSettled()))
    )
  }

  /** How step `i` ended, and what that means for the run. */
  classify(i: number, exit: Exit.Exit<unknown, unknown>): Ending {
    const ending = this.ending(i, exit)
    // Spend past the budget, recorded while this step ran: finish what runs, start nothing new, then fail.
    const overrun = this.ledger.overrun()
    if (overrun !== undefined) this.scheduler.stop(i, "drain", { _tag: "BudgetOverrun", overrun })
    return ending
  }

  ending(i: number, exit: Exit.Exit<unknown, unknown>): Ending {
    const scheduler = this.scheduler
    if (Exit.isSuccess(exit)) {
      scheduler.succeed(i)
      return "succeeded"
    }
    const cause = exit.cause
    if (Cause.isInterruptedOnly(cause)) {
      scheduler.fail(i, "abort", { _tag: "Failed", cause })
      return "interrupted"
    }
    const error = Option.getOrUndefined(Cause.failureOption(cause))
    if (error instanceof StopSignal) {
      scheduler.fail(i, "abort", { _tag: "Stopped", data: error.data })
      return "stopped"
    }
    if (error instanceof Ledger.BudgetExceeded) {
      // Out of budget: start nothing new, but let the steps already running finish what they paid for.
      scheduler.fail(i, "drain", { _tag: "BudgetExceeded", error })
      this.ledger.close()
    } else {
      scheduler.fail(i, "abort", { _tag: "Failed", cause })
    }
    return "failed"
  }

  usage(): Result.UsageReport {
    const snapshot = this.ledger.snapshot()
    return { total: snapshot.total, byStep: snapshot.byStep }
  }

  partial(): Result.PartialResult {
    return this.report.partial(this.usage(), this.observer.now())
  }

  overrun(overrun: RunLedger.Overrun): BudgetOverrun {
    return detached(new BudgetOverrun({ pipeline: this.plan.name, ...overrun, partial: this.partial() }))
  }

  /** Once settled: stops the steps still running if the run halted, then gives the result or the error. */
  conclude(): Effect.Effect<Result.Result<unknown, unknown, unknown>, unknown> {
    if (this.scheduler.halt === undefined && this.ledger.overrun() === undefined && !this.ledger.busy()) {
      this.ledger.close()
      return Effect.succeed(this.report.completed(this.usage(), this.observer.now()))
    }
    // Calls still settling may yet take the spend past the budget: the halt and overrun are read after them.
    return this.wrapUp(() => {
      const halt = this.scheduler.halt
      return halt === undefined && this.ledger.overrun() === undefined
        ? Effect.succeed(this.report.completed(this.usage(), this.observer.now()))
        : this.failure(halt)
    })
  }

  /** The error of a run that halted or overspent, or the result of one a step stopped. */
  failure(halt: Halt<Outcome> | undefined): Effect.Effect<Result.Result<unknown, unknown, unknown>, unknown> {
    // Spend past the budget fails the run, however else it ended (a refusal follows from it: the ledger closed),
    // unless a step had failed first. It may have been recorded after the last step ended, by a nested run's parent.
    const overrun = this.ledger.overrun()
    if (overrun !== undefined && halt?.reason._tag !== "Failed") return Effect.fail(this.overrun(overrun))
    const outcome = halt!.reason
    switch (outcome._tag) {
      case "Stopped":
        return Effect.succeed(this.report.stopped(halt!.step, outcome.data, this.usage(), this.observer.now()))
      case "BudgetExceeded":
        return Effect.fail(detached(new Ledger.BudgetExceeded({ ...outcome.error, partial: this.partial() })))
      case "BudgetOverrun":
        return Effect.fail(this.overrun(outcome.overrun))
      case "Failed":
        return Effect.fail(detached(
          new StepFailed({
            pipeline: this.plan.name,
            step: this.plan.graph.nodes[halt!.step]!.name,
            path: this.failedParts.of(halt!.step, reasonOf(outcome.cause)) ?? this.names[halt!.step]!,
            cause: outcome.cause,
            partial: this.partial()
          })
        ))
    }
  }
}
