import * as Cause from "effect/Cause"
import type * as Clock from "effect/Clock"
import * as Deferred from "effect/Deferred"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as FiberId from "effect/FiberId"
import * as FiberRef from "effect/FiberRef"
import type * as Cost from "../Cost.js"
import type * as Event from "../Event.js"
import * as Ledger from "../Ledger.js"
import { PipelineTimeout, StepFailed } from "../PipelineError.js"
import type * as Result from "../Result.js"
import * as Step from "../Step.js"
import { ancestors, type Graph } from "./graph.js"

/** What the runner needs to know of a pipeline. */
export interface Plan {
  readonly name: string
  readonly graph: Graph
  readonly concurrency: number
  readonly budget: Cost.Cost | undefined
  readonly timeout: Duration.Duration | undefined
  readonly stepTimeout: Duration.Duration | undefined
  readonly retry: Step.Retry<any> | undefined
}

type Outcome =
  | { readonly kind: "failed"; readonly step: number; readonly cause: Cause.Cause<unknown> }
  | { readonly kind: "stopped"; readonly step: number; readonly data: unknown }
  | { readonly kind: "budget"; readonly step: number; readonly error: Ledger.BudgetExceeded }

const PENDING = 0
const RUNNING = 1
const SUCCEEDED = 2
const FAILED = 3
const STOPPED = 4
const INTERRUPTED = 5

const statusName = ["interrupted", "interrupted", "succeeded", "failed", "stopped", "interrupted"] as const

/**
 * One run of a pipeline.
 *
 * Scheduling is driven by dependencies: a step is started by whichever fiber finishes its last dependency, the
 * moment it does. The fiber that finished a step carries on with one newly ready step itself and forks only the
 * others, so a chain never forks. The calling fiber (the driver) runs steps inline only while no other step is
 * running: once there is real parallelism it forks every ready step and waits, because a failure elsewhere must
 * be able to interrupt every running step, and a fiber cannot be interrupted from outside without ending the run.
 *
 * All bookkeeping is plain mutable state touched only inside synchronous callbacks, which JavaScript never
 * interleaves, so it needs no locks.
 */
export class Runner {
  readonly n: number
  readonly remaining: Int32Array
  readonly outputs: Array<unknown>
  readonly state: Uint8Array
  readonly startedAt: Float64Array
  readonly endedAt: Float64Array
  readonly attempts: Int32Array
  readonly queue: Array<number> = []
  head = 0
  done = 0
  active = 0
  outcome: Outcome | undefined = undefined
  signal: Deferred.Deferred<void> | undefined = undefined
  readonly fibers: Array<Fiber.RuntimeFiber<void>> = []

  constructor(
    readonly plan: Plan,
    readonly ledger: Ledger.Service,
    readonly clock: Clock.Clock,
    readonly listener: Event.Listener | undefined
  ) {
    const nodes = plan.graph.nodes
    this.n = nodes.length
    this.remaining = new Int32Array(this.n)
    for (let i = 0; i < this.n; i++) this.remaining[i] = nodes[i]!.deps.length
    this.outputs = new Array(this.n)
    this.state = new Uint8Array(this.n)
    this.startedAt = new Float64Array(this.n)
    this.endedAt = new Float64Array(this.n)
    this.attempts = new Int32Array(this.n)
  }

  now(): number {
    return this.clock.unsafeCurrentTimeMillis()
  }

  /** Runs every step; ends when all are done, or when the run failed or stopped (running steps interrupted). */
  drive(): Effect.Effect<void> {
    return Effect.suspend(() => {
      for (const root of this.plan.graph.roots) this.queue.push(root)
      return this.next(true)
    }).pipe(
      Effect.zipRight(Effect.suspend(() => this.settled() ? Effect.void : Deferred.await(this.signal!))),
      Effect.onInterrupt(() => this.interruptAll()),
      Effect.zipRight(Effect.suspend(() =>
        this.outcome !== undefined && this.outcome.kind !== "budget" ? this.interruptAll() : Effect.void
      ))
    )
  }

  interruptAll(): Effect.Effect<void> {
    return this.fibers.length === 0 ? Effect.void : Fiber.interruptAll(this.fibers)
  }

  settled(): boolean {
    return this.done === this.n ||
      (this.outcome !== undefined && (this.outcome.kind !== "budget" || this.active === 0))
  }

  wake(): void {
    if (this.signal !== undefined) Deferred.unsafeDone(this.signal, Exit.void)
  }

  take(): number {
    const j = this.queue[this.head++]!
    this.active++
    return j
  }

  /** Starts as many ready steps as the concurrency bound allows. */
  next(driver: boolean): Effect.Effect<void> {
    const ready = this.queue.length - this.head
    const free = this.plan.concurrency - this.active
    const k = ready < free ? ready : free
    if (k <= 0) return Effect.void
    if (driver) {
      return k === 1 && this.active === 0 ? this.work(this.take(), true) : this.fork(k)
    }
    const j = this.take()
    return k === 1 ? this.work(j, false) : Effect.zipRight(this.fork(k - 1), this.work(j, false))
  }

  fork(k: number): Effect.Effect<void> {
    if (this.signal === undefined) this.signal = Deferred.unsafeMake<void>(FiberId.none)
    const starting: Array<number> = []
    for (let t = 0; t < k; t++) starting.push(this.take())
    const forkFrom = (t: number): Effect.Effect<void> =>
      t === starting.length ? Effect.void : Effect.flatMap(
        Effect.forkDaemon(this.work(starting[t]!, false)),
        (fiber) => {
          this.fibers.push(fiber)
          return forkFrom(t + 1)
        }
      )
    return forkFrom(0)
  }

  work(i: number, driver: boolean): Effect.Effect<void> {
    return Effect.matchCauseEffect(Effect.suspend(() => this.exec(i)), {
      onFailure: (cause) => this.failed(i, cause),
      onSuccess: (value) => this.succeeded(i, value, driver)
    })
  }

  exec(i: number): Effect.Effect<unknown, unknown> {
    const node = this.plan.graph.nodes[i]!
    const step = node.step
    const inputs: Record<string, unknown> = {}
    for (let k = 0; k < node.keys.length; k++) inputs[node.keys[k]!] = this.outputs[node.deps[k]!]
    this.state[i] = RUNNING
    this.startedAt[i] = this.now()
    const listener = this.listener
    const pipeline = this.plan.name
    listener?.({ _tag: "StepStarted", pipeline, step: node.name, at: this.startedAt[i]! })
    let lastCause: Cause.Cause<unknown> = Cause.empty
    let attempt: Effect.Effect<unknown, unknown> = Effect.suspend(() => {
      const n = ++this.attempts[i]!
      if (n > 1 && listener !== undefined) {
        listener({ _tag: "StepRetrying", pipeline, step: node.name, attempt: n, cause: lastCause, at: this.now() })
      }
      return step.run(inputs) as Effect.Effect<unknown, unknown>
    })
    if (listener !== undefined) {
      attempt = Effect.tapErrorCause(attempt, (cause) => Effect.sync(() => (lastCause = cause)))
    }
    const policy = Step.withPolicy(attempt, {
      step: node.name,
      timeout: step.timeout ?? this.plan.stepTimeout,
      retry: step.retry ?? this.plan.retry
    })
    // Attribution of metered calls: the ledger reads the step from the fiber running it.
    return Effect.withSpan(
      Effect.zipRight(FiberRef.set(Ledger.currentStep, node.name), policy),
      `step ${node.name}`,
      { attributes: { "trellis.step": node.name } }
    )
  }

  succeeded(i: number, value: unknown, driver: boolean): Effect.Effect<void> {
    this.outputs[i] = value
    this.state[i] = SUCCEEDED
    this.endedAt[i] = this.now()
    this.done++
    this.active--
    this.listener?.({
      _tag: "StepSucceeded",
      pipeline: this.plan.name,
      step: this.plan.graph.nodes[i]!.name,
      at: this.endedAt[i]!,
      durationMs: this.endedAt[i]! - this.startedAt[i]!
    })
    if (this.done === this.n) {
      this.wake()
      return Effect.void
    }
    for (const d of this.plan.graph.nodes[i]!.dependents) {
      if (--this.remaining[d]! === 0) this.queue.push(d)
    }
    if (this.outcome !== undefined) {
      // Out of budget: start nothing new, but let the steps already running finish what they paid for.
      if (this.active === 0) this.wake()
      return Effect.void
    }
    return this.next(driver)
  }

  failed(i: number, cause: Cause.Cause<unknown>): Effect.Effect<void> {
    this.active--
    this.endedAt[i] = this.now()
    const name = this.plan.graph.nodes[i]!.name
    if (this.outcome !== undefined) {
      this.state[i] = Cause.isInterruptedOnly(cause) ? INTERRUPTED : FAILED
      if (this.active === 0) this.wake()
      return Effect.void
    }
    const failure = Cause.failureOption(cause)
    const error = failure._tag === "Some" ? failure.value : undefined
    if (error instanceof Step.StopSignal) {
      this.state[i] = STOPPED
      this.outcome = { kind: "stopped", step: i, data: error.data }
      this.listener?.({ _tag: "StepStopped", pipeline: this.plan.name, step: name, at: this.endedAt[i]! })
      this.wake()
      return Effect.void
    }
    this.state[i] = FAILED
    this.listener?.({ _tag: "StepFailed", pipeline: this.plan.name, step: name, cause, at: this.endedAt[i]! })
    if (error instanceof Ledger.BudgetExceeded) {
      this.outcome = { kind: "budget", step: i, error }
      return Effect.zipRight(
        this.ledger.close,
        Effect.sync(() => {
          if (this.active === 0) this.wake()
        })
      )
    }
    this.outcome = { kind: "failed", step: i, cause }
    this.wake()
    return Effect.void
  }

  timeline(): Array<Result.StepTiming> {
    const now = this.now()
    const timeline: Array<Result.StepTiming> = []
    for (let i = 0; i < this.n; i++) {
      const state = this.state[i]!
      if (state === PENDING) continue
      timeline.push({
        step: this.plan.graph.nodes[i]!.name,
        status: statusName[state]!,
        startedAt: this.startedAt[i]!,
        endedAt: state === RUNNING ? now : this.endedAt[i]!,
        attempts: this.attempts[i]!
      })
    }
    return timeline.sort((a, b) => a.startedAt - b.startedAt)
  }

  outputsOf(filter: (i: number) => boolean): Record<string, unknown> {
    const outputs: Record<string, unknown> = {}
    for (let i = 0; i < this.n; i++) {
      if (this.state[i] === SUCCEEDED && filter(i)) outputs[this.plan.graph.nodes[i]!.name] = this.outputs[i]
    }
    return outputs
  }

  partial(usage: Result.UsageReport): Result.PartialResult {
    return { pipeline: this.plan.name, outputs: this.outputsOf(() => true), usage, timeline: this.timeline() }
  }

  /** The run's result, or its error, once it has settled. */
  result(usage: Result.UsageReport): Effect.Effect<Result.Result<unknown, unknown, any>, unknown> {
    const outcome = this.outcome
    const pipeline = this.plan.name
    if (outcome === undefined) {
      return Effect.succeed({
        _tag: "Completed",
        pipeline,
        output: this.outputs[this.plan.graph.output],
        steps: this.outputsOf(() => true),
        usage,
        timeline: this.timeline()
      })
    }
    const step = this.plan.graph.nodes[outcome.step]!.name
    switch (outcome.kind) {
      case "stopped": {
        const before = ancestors(this.plan.graph, outcome.step)
        return Effect.succeed({
          _tag: "Stopped",
          pipeline,
          step,
          data: outcome.data,
          steps: this.outputsOf((i) => before.has(i)),
          usage,
          timeline: this.timeline()
        })
      }
      case "budget":
        return Effect.fail(
          new Ledger.BudgetExceeded({ ...outcome.error, partial: this.partial(usage) })
        )
      case "failed":
        return Effect.fail(new StepFailed({ pipeline, step, cause: outcome.cause, partial: this.partial(usage) }))
    }
  }

  timedOut(timeout: Duration.Duration, usage: Result.UsageReport): PipelineTimeout {
    return new PipelineTimeout({ pipeline: this.plan.name, timeout, partial: this.partial(usage) })
  }
}
