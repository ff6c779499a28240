/**
 * The scheduling state of one run, as a plain state machine: which steps are ready, how many run, which are done,
 * and whether the run has halted. It knows nothing of Effect, fibers or time, so it is tested on its own; the
 * runner asks it what to start and tells it how each step ended.
 */
import type { Graph } from "./graph.js"

/**
 * Why the run stopped starting steps, and how: `abort` settles the run at once (the steps still running are to be
 * interrupted: a failure, or a step that stopped the run on purpose); `drain` lets the running steps finish and
 * settles when none is left (a refused budget: what is in flight was paid for).
 */
export interface Halt<Reason> {
  readonly step: number
  readonly mode: "abort" | "drain"
  readonly reason: Reason
}

/** The scheduler of one run of a graph; `Reason` is what a halt carries. */
export class Scheduler<Reason> {
  /** How many dependencies each step still waits for. */
  private readonly waiting: Array<number>
  /** Steps whose dependencies have all succeeded, in the order they became ready; `next` is the first not taken. */
  private readonly ready: Array<number> = []
  private next = 0
  private succeeded = 0
  /** Steps started and not yet ended. */
  running = 0
  halt: Halt<Reason> | undefined = undefined
  private readonly graph: Graph
  private readonly concurrency: number

  constructor(graph: Graph, concurrency: number) {
    this.graph = graph
    this.concurrency = concurrency
    this.waiting = graph.nodes.map((node) => node.deps.length)
    for (const root of graph.roots) this.ready.push(root)
  }

  /** How many steps may start now: the ready ones, within the concurrency bound; none once halted. */
  get startable(): number {
    if (this.halt !== undefined) return 0
    return Math.min(this.ready.length - this.next, this.concurrency - this.running)
  }

  /** Takes the next ready step to start it. Call only while `startable > 0`. */
  take(): number {
    this.running++
    return this.ready[this.next++]!
  }

  /** A step was taken but will not start after all: the run halted before its fiber got to it. */
  withdraw(): void {
    this.running--
  }

  /** Step `i` succeeded: its dependents whose last dependency it was become ready. */
  succeed(i: number): void {
    this.running--
    this.succeeded++
    for (const d of this.graph.nodes[i]!.dependents) {
      if (--this.waiting[d]! === 0) this.ready.push(d)
    }
  }

  /**
   * Step `i` ended without success. The first halt decides the run's outcome; a step ending after it (interrupted,
   * or failing while the run drains) changes nothing but the running count.
   */
  fail(i: number, mode: Halt<Reason>["mode"], reason: Reason): void {
    this.running--
    this.stop(i, mode, reason)
  }

  /** Halts the run because of step `i` without ending it (what it did, not how it ended, stops the run). */
  stop(i: number, mode: Halt<Reason>["mode"], reason: Reason): void {
    if (this.halt === undefined) this.halt = { step: i, mode, reason }
  }

  /** Whether the run is over: every step succeeded, or it halted and (when draining) nothing runs any more. */
  get settled(): boolean {
    if (this.halt === undefined) return this.succeeded === this.graph.nodes.length
    return this.halt.mode === "abort" || this.running === 0
  }
}
