/**
 * One run of a pipeline: the scheduler says what may start, steps run through the executor, the launcher forks
 * where there is parallelism, the observer reports, and the report builds the result.
 *
 * Scheduling is driven by dependencies: a step starts the moment its last dependency ends, started by the fiber
 * that ended it. That fiber carries on with one ready step itself and forks only the others, so a chain never
 * forks. The calling fiber (the driver) runs steps itself only while no other step runs; once there is real
 * parallelism it forks the ready steps and waits until the run settles, because a failure must be able to
 * interrupt every running step, and interrupting the driver would end the run.
 */
import * as Cause from "effect/Cause"
import type * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Deferred from "effect/Deferred"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Option from "effect/Option"
import * as Tracer from "effect/Tracer"
import type * as Cost from "../Cost.js"
import type * as Event from "../Event.js"
import { PipelineTimeout, StepFailed } from "../PipelineError.js"
import type * as Result from "../Result.js"
import type * as Step from "../Step.js"
import * as StepExecutor from "../StepExecutor.js"
import type { Graph } from "./graph.js"
import { Launcher } from "./launch.js"
import * as Ledger from "./ledger.js"
import { type Ending, Observer } from "./observer.js"
import { Report } from "./report.js"
import { Scheduler } from "./scheduler.js"
import { StopSignal } from "./stop.js"

/** What a run needs to know of a pipeline; made once per pipeline. */
export interface Plan {
  readonly name: string
  readonly graph: Graph
  readonly concurrency: number
  readonly budget: Cost.Cost | undefined
  readonly timeout: Duration.Duration | undefined
  /** The pipeline's defaults for steps with no setting of their own (typed by the pipeline's errors there). */
  readonly defaults: Step.Policy<any>
}

/** Why a run halted. */
type Outcome =
  | { readonly _tag: "Failed"; readonly cause: Cause.Cause<unknown> }
  | { readonly _tag: "Stopped"; readonly data: unknown }
  | { readonly _tag: "BudgetExceeded"; readonly error: Ledger.BudgetExceeded }

/** Runs a pipeline's plan; fails with a `PipelineError`. */
export const run = (
  plan: Plan,
  listener: Event.Listener | undefined
): Effect.Effect<Result.Result<unknown, unknown, unknown>, unknown, unknown> =>
  Effect.gen(function*() {
    const parent = yield* Effect.serviceOption(Ledger.Ledger)
    const executor = yield* Effect.serviceOption(StepExecutor.StepExecutor)
    const clock = yield* Effect.clock
    const settled = yield* Deferred.make<void>()
    const observer = new Observer(plan.name, listener)
    const ledger = Ledger.make({
      budget: plan.budget,
      parent: Option.getOrUndefined(parent),
      onRecord: (step, usage) => observer.usage(step, usage)
    })
    const runner = new Runner(plan, observer, ledger, Option.getOrElse(executor, () => StepExecutor.local), clock, settled)
    return yield* observer.run(plan.graph.names, runner.now, () => ledger.snapshot().total, runner.whole)
  })

class Runner {
  readonly scheduler: Scheduler<Outcome>
  readonly report: Report
  readonly launcher = new Launcher()

  constructor(
    readonly plan: Plan,
    readonly observer: Observer,
    readonly ledger: Ledger.RunLedger,
    readonly executor: StepExecutor.Service,
    readonly clock: Clock.Clock,
    /** Completed once the scheduler says the run is over, to wake the driver. */
    readonly settled: Deferred.Deferred<void>
  ) {
    this.scheduler = new Scheduler(plan.graph, plan.concurrency)
    this.report = new Report(plan.name, plan.graph)
  }

  readonly now = (): number => this.clock.unsafeCurrentTimeMillis()

  /** The whole run, under the pipeline's timeout if it has one. Whatever ends it, no forked fiber is left. */
  get whole(): Effect.Effect<Result.Result<unknown, unknown, unknown>, unknown> {
    const body = Effect.ensuring(Effect.zipRight(this.drive(), Effect.suspend(() => this.conclude())), this.launcher.interruptAll)
    const timeout = this.plan.timeout
    if (timeout === undefined) return body
    return Effect.flatten(Effect.timeoutTo(body, {
      duration: timeout,
      onSuccess: Effect.succeed,
      onTimeout: () =>
        Effect.suspend(() =>
          Effect.fail(new PipelineTimeout({ pipeline: this.plan.name, timeout, partial: this.partial() }))
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
      return Effect.zipRight(this.forkReady(scheduler.startable), Deferred.await(this.settled))
    })
  }

  /**
   * A forked fiber: runs its step, then carries on with what the step's end made ready. A fiber starts some time
   * after it is forked; if the run halted meanwhile, its step never starts.
   */
  chain(i: number): Effect.Effect<void> {
    return Effect.suspend(() => {
      if (this.scheduler.halt === undefined) return Effect.zipRight(this.step(i), Effect.suspend(() => this.carryOn()))
      this.scheduler.withdraw(i)
      return this.wakeIfSettled()
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
   * Runs step `i` through the executor, under its span, with the run's ledger attributing to it; records and
   * reports how it ended, however it ended (interruption included).
   */
  step(i: number): Effect.Effect<void> {
    return Effect.suspend(() => {
      const node = this.plan.graph.nodes[i]!
      const step = node.step
      const startedAt = this.now()
      this.report.started(i, startedAt)
      // The pipeline's type carries the steps' errors and requirements; inside the run they are opaque.
      const execution: Effect.Effect<unknown, unknown> = this.executor.execute({
        pipeline: this.plan.name,
        step,
        inputs: this.inputsOf(i),
        policy: {
          timeout: step.timeout ?? this.plan.defaults.timeout,
          retry: step.retry ?? this.plan.defaults.retry
        },
        onRetry: (attempt, cause) => {
          this.report.retried(i)
          return this.observer.retrying(node.name, attempt, cause, this.now())
        }
      }) as Effect.Effect<unknown, unknown>
      const context = (span: Tracer.Span) =>
        Context.make(Ledger.Ledger, this.ledger.ledger.forStep(node.name)).pipe(Context.add(Tracer.ParentSpan, span))
      return Effect.zipRight(
        this.observer.started(node.name, startedAt),
        this.observer.step(node.name, (span) =>
          Effect.onExit(Effect.provide(execution, context(span)), (exit) => this.ended(i, exit)))
      ).pipe(
        // Its end is recorded above; what it means for the run is the scheduler's to say.
        Effect.catchAllCause(() => Effect.void)
      )
    })
  }

  inputsOf(i: number): Record<string, unknown> {
    const node = this.plan.graph.nodes[i]!
    const inputs: Record<string, unknown> = {}
    node.keys.forEach((key, k) => {
      inputs[key] = this.report.output(node.deps[k]!)
    })
    return inputs
  }

  /** Step `i` ended: records it, tells the scheduler, reports it, and wakes the driver if the run is over. */
  ended(i: number, exit: Exit.Exit<unknown, unknown>): Effect.Effect<void> {
    const name = this.plan.graph.nodes[i]!.name
    const ending = this.classify(i, exit)
    const at = this.now()
    const durationMs = this.report.ended(i, ending, at, Exit.isSuccess(exit) ? exit.value : undefined)
    const closeLedger = this.scheduler.halt?.reason._tag === "BudgetExceeded" ? this.ledger.ledger.close : Effect.void
    return Effect.zipRight(
      Effect.zipRight(closeLedger, this.observer.ended(name, ending, exit, at, durationMs)),
      this.wakeIfSettled()
    )
  }

  wakeIfSettled(): Effect.Effect<void> {
    return this.scheduler.settled ? Deferred.succeed(this.settled, undefined) : Effect.void
  }

  /** How step `i` ended, and what that means for the run. */
  classify(i: number, exit: Exit.Exit<unknown, unknown>): Ending {
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
    // Out of budget: start nothing new, but let the steps already running finish what they paid for.
    if (error instanceof Ledger.BudgetExceeded) scheduler.fail(i, "drain", { _tag: "BudgetExceeded", error })
    else scheduler.fail(i, "abort", { _tag: "Failed", cause })
    return "failed"
  }

  usage(): Result.UsageReport {
    const snapshot = this.ledger.snapshot()
    return { total: snapshot.total, byStep: snapshot.byStep }
  }

  partial(): Result.PartialResult {
    return this.report.partial(this.usage(), this.now())
  }

  /** Once settled: stops the steps still running if the run halted, then gives the result or the error. */
  conclude(): Effect.Effect<Result.Result<unknown, unknown, unknown>, unknown> {
    const halt = this.scheduler.halt
    if (halt === undefined) return Effect.sync(() => this.report.completed(this.usage(), this.now()))
    return Effect.zipRight(
      this.launcher.interruptAll,
      Effect.suspend((): Effect.Effect<Result.Result<unknown, unknown, unknown>, unknown> => {
        const outcome = halt.reason
        switch (outcome._tag) {
          case "Stopped":
            return Effect.succeed(this.report.stopped(halt.step, outcome.data, this.usage(), this.now()))
          case "BudgetExceeded":
            return Effect.fail(new Ledger.BudgetExceeded({ ...outcome.error, partial: this.partial() }))
          case "Failed":
            return Effect.fail(
              new StepFailed({
                pipeline: this.plan.name,
                step: this.plan.graph.nodes[halt.step]!.name,
                cause: outcome.cause,
                partial: this.partial()
              })
            )
        }
      })
    )
  }
}
