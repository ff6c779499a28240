import * as Cause from "effect/Cause"
import * as Chunk from "effect/Chunk"
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Fiber from "effect/Fiber"
import * as FiberId from "effect/FiberId"
import * as FiberRef from "effect/FiberRef"
import * as FiberRefs from "effect/FiberRefs"
import * as Hash from "effect/Hash"
import * as HashMap from "effect/HashMap"
import * as Option from "effect/Option"
import * as Runtime from "effect/Runtime"
import * as Tracer from "effect/Tracer"
import type * as Cost from "../Cost.js"
import type * as Event from "../Event.js"
import { PipelineTimeout, StepFailed } from "../PipelineError.js"
import type * as Result from "../Result.js"
import type * as Usage from "../Usage.js"
import { unsafeSetContext } from "../Span.js"
import * as Step from "../Step.js"
import { RunningStep } from "./attribution.js"
import { ancestors, type Graph } from "./graph.js"
import * as Ledger from "./ledger.js"
import { LazySpan, open, parentOf } from "./span.js"

/** What the runner needs to know of a pipeline; made once per pipeline. */
export interface Plan {
  readonly name: string
  readonly graph: Graph
  readonly concurrency: number
  readonly budget: Cost.Cost | undefined
  readonly timeout: Duration.Duration | undefined
  readonly stepTimeout: Duration.Duration | undefined
  readonly retry: Step.Retry<any> | undefined
  readonly spanName: string
  readonly stepSpanNames: ReadonlyArray<string>
  lastCaller: Services | undefined
}

/** Makes the plan of a pipeline. */
export const makePlan = (options: Omit<Plan, "spanName" | "stepSpanNames" | "lastCaller">): Plan => ({
  ...options,
  spanName: `pipeline ${options.name}`,
  stepSpanNames: options.graph.names.map((name) => `step ${name}`),
  lastCaller: undefined
})

/** The values per `FiberRef` a step's fiber may inherit before {@link stepFiberRefs} keeps only the current one. */
const maxHistory = 8

/**
 * The `FiberRef`s a step's fiber starts with: the forking fiber's, without its context (each new fiber would keep it
 * as the value before its own for as long as it runs: the context of the step that just ended there, with its span
 * and task) and without long histories. Effect keeps, per `FiberRef`, the values each ancestor fiber set, for
 * joining a fiber back into its parent; step fibers are never joined, and along a graph where each step's fiber
 * starts the next one's, that history would grow by a step at every start and be copied each time.
 */
const stepFiberRefs = (refs: FiberRefs.FiberRefs): FiberRefs.FiberRefs => {
  const locals: typeof refs.locals = new Map()
  refs.locals.forEach((stack, ref) => {
    if (ref !== FiberRef.currentContext) locals.set(ref, stack.length > maxHistory ? [stack[0]!] : stack)
  })
  return FiberRefs.unsafeMake(locals)
}

/** A context's services as arrays of keys and values. */
interface Services {
  readonly context: Context.Context<never>
  readonly keys: ReadonlyArray<string>
  readonly values: ReadonlyArray<unknown>
}

/** The services of the context a run is called in; kept by the plan, as runs are mostly called in the same one. */
const servicesOf = (plan: Plan, context: Context.Context<never>): Services => {
  const last = plan.lastCaller
  if (last !== undefined && last.context === context) return last
  return plan.lastCaller = {
    context,
    keys: Array.from(context.unsafeMap.keys()),
    values: Array.from(context.unsafeMap.values())
  }
}

type Outcome =
  | { readonly kind: "failed"; readonly step: number; readonly cause: Cause.Cause<unknown> }
  | { readonly kind: "stopped"; readonly step: number; readonly data: unknown }
  | { readonly kind: "budget"; readonly step: number; readonly error: Ledger.BudgetExceeded }

const RUNNING = 1
const SUCCEEDED = 2
const FAILED = 3
const STOPPED = 4
const INTERRUPTED = 5

const statusName = ["interrupted", "interrupted", "succeeded", "failed", "stopped", "interrupted"] as const

// The helper below builds its callbacks as object methods on purpose: a run makes them per step, and when
// the sources run through tsx (esbuild with `keepNames`), every arrow function given a name, in a property or a
// variable, is wrapped in a `__name(...)` call that redefines its `name` each time it is made; methods are not.

/** What happens when step `i` ends. */
const continuation = (runner: Runner, i: number, driver: boolean) => ({
  onFailure(cause: Cause.Cause<unknown>) {
    return runner.failed(i, cause)
  },
  onSuccess(value: unknown) {
    return runner.succeeded(i, value, driver)
  }
})

/** One started step; also what the step's context says is running, for the ledger's attribution. */
interface Task extends RunningStep {
  /** Unique to the step of this run: the hash of its context. */
  readonly id: number
  state: number
  readonly startedAt: number
  endedAt: number
  attempts: number
  /** Until the step ends: a long run does not keep a span per step it finished. */
  span: Tracer.Span | undefined
  output: unknown
}

const interrupted: Exit.Exit<never> = Exit.interrupt(FiberId.none)

let nextTaskId = 0

/**
 * How many step fibers are starting, one inside another, on the current stack. A fiber started at once runs on its
 * parent's stack, and a step that ends at once may start the next fiber there too: past {@link maxNested}, fibers
 * start through the scheduler instead, so that no graph can overflow the stack.
 */
let nested = 0
const maxNested = 32

const all = () => true

/** The inputs of a step without dependencies. */
const noInputs: Record<string, unknown> = Object.freeze({})

/** A completed run's result; its `steps` and `timeline` are made when first read. */
const completed = (runner: Runner, usage: Result.UsageReport): Result.Completed<unknown, any> => {
  let steps: Record<string, unknown> | undefined
  let timeline: Array<Result.StepTiming> | undefined
  return {
    _tag: "Completed",
    pipeline: runner.plan.name,
    output: runner.tasks[runner.plan.graph.output]!.output,
    get steps() {
      return steps ??= runner.outputsOf(all)
    },
    usage,
    get timeline() {
      return timeline ??= runner.timeline()
    }
  }
}

/**
 * The hash of a step's context. Setting a fiber's context makes Effect compare the old context with the new one,
 * and a context's own hash (its size) is defined as a property on first use, which costs more than the rest of
 * starting a step. A step's context holds its own task, so it equals no other context: a hash unique to the task
 * keeps the contract (equal contexts, equal hashes) and settles the comparison at once.
 */
function stepContextHash(this: Context.Context<never>): number {
  return (this.unsafeMap.get(RunningStep.key) as Task).id
}

/**
 * One run of a pipeline.
 *
 * Scheduling is driven by dependencies: a step is started by whichever fiber finishes its last dependency, the
 * moment it does. The fiber that finished a step carries on with one newly ready step itself and forks only the
 * others, so a chain never forks. The calling fiber (the driver) runs steps inline only while no other step is
 * running: once there is real parallelism it forks every ready step and waits, because a failure elsewhere must
 * be able to interrupt every running step, and a fiber cannot be interrupted from outside without ending the run.
 *
 * The whole run is one synchronous state machine: all bookkeeping (outputs, timings, the ready queue, spans,
 * events) is plain mutable state touched only inside synchronous callbacks, which JavaScript never interleaves,
 * so it needs no locks, `Ref`s or per-step fibers. Effects are built only where Effect must act: running a
 * step, forking, waiting, interrupting. Spans are made on the tracer directly instead of through
 * `Effect.withSpan`, which would add a stack capture and two `FiberRef` scopes per span; a step sees its span
 * as the current one (and the run's ledger) through the fiber's context, set once as the step starts.
 */
export class Runner {
  readonly n: number
  readonly remaining: Array<number>
  readonly tasks: Array<Task | undefined>
  readonly queue: Array<number> = []
  head = 0
  done = 0
  active = 0
  outcome: Outcome | undefined = undefined
  /** Set while the driver waits for the forked steps. */
  resume: ((effect: Effect.Effect<void>) => void) | undefined = undefined
  /** The fibers forked for steps, made at the first fork: many runs never fork. */
  fibers: Array<Fiber.RuntimeFiber<void>> | undefined = undefined
  fibersInterrupted = false
  /** Whether the driver's context was changed by a step run inline, and must be put back. */
  touched = false

  readonly clock: Clock.Clock
  readonly callerContext: Context.Context<never>
  /** The caller's services, which every step's context starts from. */
  readonly caller: Services
  readonly callerStep: string
  readonly tracer: Tracer.Tracer | undefined
  readonly timing: boolean
  readonly links: ReadonlyArray<Tracer.SpanLink>
  readonly annotations: HashMap.HashMap<string, unknown> | undefined
  span: Tracer.Span | undefined = undefined
  parentSpan: Option.Option<Tracer.AnySpan> = Option.none()

  constructor(
    readonly plan: Plan,
    /** The calling fiber: the driver, whose context is given back when the run ends. */
    readonly fiber: Fiber.RuntimeFiber<unknown, unknown>,
    readonly ledger: Ledger.LedgerImpl,
    readonly listener: Event.Listener | undefined
  ) {
    const graph = plan.graph
    this.n = graph.nodes.length
    this.remaining = graph.waiting.slice()
    this.tasks = new Array(this.n)
    this.clock = Context.get(fiber.currentDefaultServices, Clock.Clock)
    this.callerContext = fiber.currentContext
    this.callerStep = fiber.getFiberRef(Ledger.currentStep)
    this.caller = servicesOf(plan, this.callerContext)
    if (fiber.getFiberRef(FiberRef.currentTracerEnabled)) {
      this.tracer = fiber.currentTracer
      this.timing = fiber.getFiberRef(FiberRef.currentTracerTimingEnabled)
      this.links = Chunk.toReadonlyArray(fiber.getFiberRef(FiberRef.currentTracerSpanLinks))
      const annotations = fiber.getFiberRef(FiberRef.currentTracerSpanAnnotations)
      this.annotations = HashMap.size(annotations) === 0 ? undefined : annotations
    } else {
      // Tracing turned off by the application: no spans at all.
      this.tracer = undefined
      this.timing = false
      this.links = []
      this.annotations = undefined
    }
  }

  /** Opens the run's span and reports its start: the first thing a run does, inside its `onExit`. */
  open(): void {
    if (this.tracer !== undefined) {
      this.span = this.openSpan(this.plan.spanName, parentOf(this.fiber.currentSpan), {
        "trellis.pipeline": this.plan.name
      })
      this.parentSpan = Option.some(this.span)
    }
    this.listener?.({ _tag: "RunStarted", pipeline: this.plan.name, steps: this.plan.graph.names, at: this.now() })
  }

  now(): number {
    return this.clock.unsafeCurrentTimeMillis()
  }

  nanos(): bigint {
    return this.timing ? this.clock.unsafeCurrentTimeNanos() : BigInt(0)
  }

  /**
   * Opens a span under the run's tracer, with the caller's links and annotations. The attributes are an object
   * literal at each call, with its keys written out: a computed key would make a slower kind of object.
   */
  openSpan(
    name: string,
    parent: Option.Option<Tracer.AnySpan>,
    attributes: Record<string, unknown>,
    startTime: bigint = this.nanos()
  ): Tracer.Span {
    return open(this.tracer!, name, parent, "internal", attributes, this.links, this.annotations, startTime)
  }

  /**
   * Runs every step; ends with the result once all are done, or once the run failed or stopped. Called when the
   * run starts (inside its `onExit`), as it starts the root steps at once.
   */
  drive(): Effect.Effect<Result.Result<unknown, unknown, any>, unknown> {
    for (const root of this.plan.graph.roots) this.queue.push(root)
    return Effect.flatMap(
      this.next(true),
      () => this.settled() ? this.conclude() : Effect.flatMap(this.release(this.await()), () => this.conclude())
    )
  }

  /**
   * Gives the driver back the caller's context before `next` if a step ran inline on it: a driver about to wait
   * would otherwise keep that step's context, span and task for as long as the run lasts.
   */
  release(next: Effect.Effect<void>): Effect.Effect<void> {
    if (!this.touched) return next
    this.touched = false
    return unsafeSetContext(this.fiber, this.callerContext, next)
  }

  /** Once settled: stops the steps still running if the run failed or stopped, then gives the result. */
  conclude(): Effect.Effect<Result.Result<unknown, unknown, any>, unknown> {
    if (this.outcome !== undefined && this.outcome.kind !== "budget" && this.fibers !== undefined) {
      return Effect.zipRight(this.interruptAll(), Effect.suspend(() => this.result()))
    }
    return this.result()
  }

  /** The ledger's figures now. */
  usage(): Result.UsageReport {
    return { total: this.ledger.total, byStep: this.ledger.byStep }
  }

  /** Waits until the run has settled, woken by the fiber that settles it. */
  await(): Effect.Effect<void> {
    return Effect.async<void>((resume) => {
      if (this.settled()) resume(Effect.void)
      else this.resume = resume
    })
  }

  wake(): void {
    const resume = this.resume
    if (resume !== undefined) {
      this.resume = undefined
      resume(Effect.void)
    }
  }

  interruptAll(): Effect.Effect<void> {
    this.fibersInterrupted = true
    return this.fibers === undefined ? Effect.void : Fiber.interruptAll(this.fibers)
  }

  settled(): boolean {
    return this.done === this.n ||
      (this.outcome !== undefined && (this.outcome.kind !== "budget" || this.active === 0))
  }

  take(): number {
    const j = this.queue[this.head++]!
    this.active++
    return j
  }

  /**
   * Starts as many ready steps as the concurrency bound allows. `at` and `atNanos`, when given, are the clock's
   * reading at the end of the step that made them ready: a step carried on with at once starts at that instant.
   */
  next(driver: boolean, at?: number, atNanos?: bigint): Effect.Effect<void> {
    const ready = this.queue.length - this.head
    const free = this.plan.concurrency - this.active
    const k = ready < free ? ready : free
    if (k <= 0) return Effect.void
    if (driver) {
      return k === 1 && this.active === 0 ? this.work(this.take(), true, at, atNanos) : this.fork(k)
    }
    const j = this.take()
    return k === 1
      ? this.work(j, false, at, atNanos)
      : Effect.zipRight(this.fork(k - 1), this.work(j, false))
  }

  /**
   * Forks a fiber for each of the next `k` ready steps. A step's fiber is made with its context already set and is
   * started at once, on this call's stack, until it first waits (up to a depth, see {@link nested}). `Effect.fork`
   * would copy the fiber's `FiberRef`s twice (once to fork, once more to set the context) and start the fiber later
   * through the scheduler. The new fibers are daemons: they are the run's to interrupt, not the calling fiber's.
   */
  fork(k: number): Effect.Effect<void> {
    // Taken now, not when the effect runs: the fiber may yield before it does, and a step started by then (or by
    // one of these, which may end at once) takes from the queue too.
    const starting: Array<number> = []
    for (let t = 0; t < k; t++) starting.push(this.take())
    return Effect.withFiberRuntime((fiber, status) => {
      const fiberRefs = stepFiberRefs(fiber.getFiberRefs())
      const fibers = this.fibers ??= []
      for (let t = 0; t < k; t++) {
        const i = starting[t]!
        if (this.outcome !== undefined) {
          // A step started here ended the run: the rest never start.
          this.active--
          continue
        }
        const task = this.begin(i)
        const runtime = Runtime.make({ context: this.stepContext(task), runtimeFlags: status.runtimeFlags, fiberRefs })
        nested++
        try {
          fibers.push(Runtime.runFork(runtime, this.body(i, task, false), { immediate: nested <= maxNested }))
        } finally {
          nested--
        }
      }
      if (this.settled()) this.wake()
      return Effect.void
    })
  }

  /** Runs step `i` on the current fiber, then carries on with what its end made ready. */
  work(i: number, driver: boolean, at?: number, atNanos?: bigint): Effect.Effect<void> {
    return Effect.withFiberRuntime((fiber) => {
      const task = this.begin(i, at, atNanos)
      if (driver) this.touched = true
      return unsafeSetContext(fiber, this.stepContext(task), this.body(i, task, driver))
    })
  }

  /** Starts step `i`: its task, with its span open, and the report of its start. */
  begin(i: number, at?: number, atNanos?: bigint): Task {
    const node = this.plan.graph.nodes[i]!
    const startedAt = at ?? this.now()
    const task: Task = {
      id: nextTaskId = (nextTaskId + 1) | 0,
      step: node.name,
      outer: this.callerStep,
      state: RUNNING,
      startedAt,
      endedAt: 0,
      attempts: 0,
      span: this.tracer === undefined
        ? undefined
        : this.openSpan(this.plan.stepSpanNames[i]!, this.parentSpan, { "trellis.step": node.name }, atNanos),
      output: undefined
    }
    this.tasks[i] = task
    this.listener?.({ _tag: "StepStarted", pipeline: this.plan.name, step: node.name, at: startedAt })
    return task
  }

  /** The step's work, given its dependencies' outputs, and what happens when it ends. */
  body(i: number, task: Task, driver: boolean): Effect.Effect<void> {
    const node = this.plan.graph.nodes[i]!
    const inputs: Record<string, unknown> = node.keys.length === 0 ? noInputs : {}
    for (let k = 0; k < node.keys.length; k++) inputs[node.keys[k]!] = this.tasks[node.deps[k]!]!.output
    return Effect.matchCauseEffect(this.attempts(i, task, inputs), continuation(this, i, driver))
  }

  /**
   * The context a step runs in: the caller's, with the run's ledger, the step's span as the current span and
   * the step itself for the ledger's attribution. The caller's services are copied from arrays (see
   * {@link servicesOf}): copying a `Map` through its iterator makes an entry pair per service.
   */
  stepContext(task: Task): Context.Context<never> {
    const services = new Map<string, unknown>()
    const { keys, values } = this.caller
    for (let k = 0; k < keys.length; k++) services.set(keys[k]!, values[k])
    services.set(Ledger.Ledger.key, this.ledger)
    if (task.span !== undefined) services.set(Tracer.ParentSpan.key, task.span)
    services.set(RunningStep.key, task)
    const context: Context.Context<never> & { [Hash.symbol]?: () => number } = Context.unsafeMake(services)
    context[Hash.symbol] = stepContextHash
    return context
  }

  /** The step's work with its timeout and retries, if it has any. */
  attempts(i: number, task: Task, inputs: Record<string, unknown>): Effect.Effect<unknown, unknown> {
    const node = this.plan.graph.nodes[i]!
    const step = node.step
    const timeout = step.timeout ?? this.plan.stepTimeout
    const retry = step.retry ?? this.plan.retry
    if (timeout === undefined && (retry === undefined || retry === 0)) {
      task.attempts = 1
      // Called now rather than in `Effect.suspend`, which would cost an effect per step; a throw is a defect, as
      // `suspend` would make it.
      try {
        return step.run(inputs) as Effect.Effect<unknown, unknown>
      } catch (defect) {
        return Effect.die(defect)
      }
    }
    const listener = this.listener
    const pipeline = this.plan.name
    let lastCause: Cause.Cause<unknown> = Cause.empty
    let attempt: Effect.Effect<unknown, unknown> = Effect.suspend(() => {
      const n = ++task.attempts
      if (n > 1 && listener !== undefined) {
        listener({ _tag: "StepRetrying", pipeline, step: node.name, attempt: n, cause: lastCause, at: this.now() })
      }
      return step.run(inputs) as Effect.Effect<unknown, unknown>
    })
    if (listener !== undefined) {
      attempt = Effect.tapErrorCause(attempt, (cause) => Effect.sync(() => (lastCause = cause)))
    }
    return Step.withPolicy(attempt, { step: node.name, timeout, retry })
  }

  end(i: number, state: number, exit: Exit.Exit<unknown, unknown>): Task {
    const task = this.tasks[i]!
    task.state = state
    task.endedAt = this.now()
    task.span?.end(this.nanos(), exit)
    task.span = undefined
    return task
  }

  succeeded(i: number, value: unknown, driver: boolean): Effect.Effect<void> {
    const task = this.tasks[i]!
    task.output = value
    task.state = SUCCEEDED
    const endedAt = task.endedAt = this.now()
    const endNanos = this.nanos()
    const span = task.span
    task.span = undefined
    if (span instanceof LazySpan) span.succeed(endNanos, value)
    else span?.end(endNanos, Exit.succeed(value))
    this.done++
    this.active--
    const node = this.plan.graph.nodes[i]!
    this.listener?.({
      _tag: "StepSucceeded",
      pipeline: this.plan.name,
      step: node.name,
      at: task.endedAt,
      durationMs: task.endedAt - task.startedAt
    })
    if (this.done === this.n) {
      this.wake()
      return Effect.void
    }
    for (const d of node.dependents) {
      if (--this.remaining[d]! === 0) this.queue.push(d)
    }
    if (this.outcome !== undefined) {
      // Out of budget: start nothing new, but let the steps already running finish what they paid for.
      if (this.active === 0) this.wake()
      return Effect.void
    }
    return this.next(driver, endedAt, endNanos)
  }

  failed(i: number, cause: Cause.Cause<unknown>): Effect.Effect<void> {
    this.active--
    const name = this.plan.graph.nodes[i]!.name
    if (this.outcome !== undefined) {
      this.end(i, Cause.isInterruptedOnly(cause) ? INTERRUPTED : FAILED, Exit.failCause(cause))
      if (this.active === 0) this.wake()
      return Effect.void
    }
    const failure = Cause.failureOption(cause)
    const error = failure._tag === "Some" ? failure.value : undefined
    if (error instanceof Step.StopSignal) {
      const task = this.end(i, STOPPED, Exit.failCause(cause))
      this.outcome = { kind: "stopped", step: i, data: error.data }
      this.listener?.({ _tag: "StepStopped", pipeline: this.plan.name, step: name, at: task.endedAt })
      this.wake()
      return Effect.void
    }
    const task = this.end(i, FAILED, Exit.failCause(cause))
    this.listener?.({ _tag: "StepFailed", pipeline: this.plan.name, step: name, cause, at: task.endedAt })
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

  /**
   * Runs when the run ends, however it ends: stops forked steps still running (the driver was interrupted),
   * gives the driver back its `FiberRef`s, ends the spans and reports the end.
   */
  finish(exit: Exit.Exit<Result.Result<unknown, unknown, any>, unknown>): Effect.Effect<void> {
    this.resume = undefined
    const end = Effect.suspend(() => {
      this.close(exit, this.ledger.total)
      return this.release(Effect.void)
    })
    return Exit.isFailure(exit) && this.fibers !== undefined && !this.fibersInterrupted
      ? Effect.zipRight(this.interruptAll(), end)
      : end
  }

  /** Ends the spans still open and the run's span, and reports the end. */
  close(exit: Exit.Exit<Result.Result<unknown, unknown, any>, unknown>, usage: Usage.Usage): void {
    for (const task of this.tasks) {
      if (task?.state === RUNNING) task.span?.end(this.nanos(), interrupted)
    }
    if (this.span !== undefined) {
      this.span.attribute("trellis.cost_nano_usd", usage.cost)
      this.span.end(this.nanos(), exit)
    }
    this.listener?.({
      _tag: "RunFinished",
      pipeline: this.plan.name,
      status: Exit.isSuccess(exit)
        ? exit.value._tag === "Completed" ? "completed" : "stopped"
        : exit.cause._tag === "Interrupt"
        ? "interrupted"
        : "failed",
      usage,
      at: this.now()
    })
  }

  timeline(): Array<Result.StepTiming> {
    const now = this.now()
    const timeline: Array<Result.StepTiming> = []
    for (let i = 0; i < this.n; i++) {
      const task = this.tasks[i]
      if (task === undefined) continue
      timeline.push({
        step: this.plan.graph.nodes[i]!.name,
        status: statusName[task.state]!,
        startedAt: task.startedAt,
        endedAt: task.state === RUNNING ? now : task.endedAt,
        attempts: task.attempts
      })
    }
    return timeline.sort((a, b) => a.startedAt - b.startedAt)
  }

  outputsOf(filter: (i: number) => boolean): Record<string, unknown> {
    const outputs: Record<string, unknown> = {}
    for (let i = 0; i < this.n; i++) {
      const task = this.tasks[i]
      if (task?.state === SUCCEEDED && filter(i)) outputs[this.plan.graph.nodes[i]!.name] = task.output
    }
    return outputs
  }

  partial(): Result.PartialResult {
    return { pipeline: this.plan.name, outputs: this.outputsOf(all), usage: this.usage(), timeline: this.timeline() }
  }

  /** The run's result, or its error, once it has settled. */
  result(): Effect.Effect<Result.Result<unknown, unknown, any>, unknown> {
    const outcome = this.outcome
    const pipeline = this.plan.name
    const usage = this.usage()
    if (outcome === undefined) {
      // `steps` and `timeline` are made when first read: most callers read only the output, and for a long
      // pipeline they are most of the cost of ending a run.
      return Effect.succeed(completed(this, usage))
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
          new Ledger.BudgetExceeded({ ...outcome.error, partial: this.partial() })
        )
      case "failed":
        return Effect.fail(new StepFailed({ pipeline, step, cause: outcome.cause, partial: this.partial() }))
    }
  }

  timedOut(timeout: Duration.Duration): PipelineTimeout {
    return new PipelineTimeout({ pipeline: this.plan.name, timeout, partial: this.partial() })
  }
}
