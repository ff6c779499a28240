/**
 * What a run records of each step (when it started and ended, how, in how many attempts, with what output), and
 * the results built from it. Results are plain objects made when the run ends: they hold what they show and
 * nothing of the run.
 */
import type * as Result from "../Result.js"
import { ancestors, type Graph } from "./graph.js"

/** How a step ended, or that it is still running. */
export type Status = "running" | Result.StepTiming["status"]

interface StepRecord {
  /** Where it started among the run's steps and parts: the order of the timeline between equal start times. */
  readonly order: number
  readonly startedAt: number
  endedAt: number
  attempts: number
  status: Status
  output: unknown
}

/**
 * The records of one run's steps, by the step's index in the graph, and the timings of the parts of its steps made of
 * steps, as those parts end.
 */
export class Report {
  private readonly records: Array<StepRecord | undefined>
  private readonly parts: Array<{ readonly order: number; readonly timing: Result.StepTiming }> = []
  private starts = 0
  private readonly pipeline: string
  private readonly graph: Graph
  /** The steps' names in the timeline: their paths, when the run is a sub-pipeline's. */
  private readonly names: ReadonlyArray<string>
  /** For a sub-pipeline's run, the step of the enclosing run its steps belong to. */
  private readonly parent: string | undefined
  /**
   * For a sub-pipeline's run, where the enclosing run's order of starts comes from: its steps take their places in
   * it as they start, so that its timeline, handed over when it ends, is in the order things started.
   */
  private readonly enclosing: { readonly partStarted: () => number } | undefined

  constructor(
    pipeline: string,
    graph: Graph,
    names: ReadonlyArray<string> = graph.names,
    enclosing?: { readonly path: string; readonly partStarted: () => number }
  ) {
    this.pipeline = pipeline
    this.graph = graph
    this.names = names
    this.parent = enclosing?.path
    this.enclosing = enclosing
    this.records = new Array(graph.nodes.length)
  }

  /** A step or a part of one of the run's steps starts: gives its place in the order of starts. */
  partStarted(): number {
    return this.enclosing === undefined ? this.starts++ : this.enclosing.partStarted()
  }

  /** A part of one of the run's steps ended. */
  partEnded(timing: Result.StepTiming, order: number): void {
    this.parts.push({ order, timing })
  }

  started(i: number, at: number): void {
    this.records[i] = { order: this.partStarted(), startedAt: at, endedAt: at, attempts: 1, status: "running", output: undefined }
  }

  retried(i: number): void {
    this.records[i]!.attempts++
  }

  /** Records how step `i` ended and returns how long it ran. */
  ended(i: number, status: Result.StepTiming["status"], at: number, output?: unknown): number {
    const record = this.records[i]!
    record.status = status
    record.endedAt = at
    record.output = output
    return at - record.startedAt
  }

  /** The output of a step that succeeded. */
  output(i: number): unknown {
    return this.records[i]!.output
  }

  /** The outputs of the steps that succeeded, by name; only those in `among` when given. */
  outputs(among?: ReadonlySet<number>): Record<string, unknown> {
    const entries: Array<[string, unknown]> = []
    this.records.forEach((record, i) => {
      if (record?.status === "succeeded" && (among === undefined || among.has(i))) {
        entries.push([this.graph.nodes[i]!.name, record.output])
      }
    })
    // Own properties even for a step named `__proto__`, which an assignment would not make.
    return Object.fromEntries(entries)
  }

  /**
   * When each step that started ran, and each part of a step made of steps, in order of start; a step still running
   * counts until `now`.
   */
  timeline(now: number): Array<Result.StepTiming> {
    return this.entries(now).map(({ timing }) => timing)
  }

  /** The timeline's entries, with their places in the order of starts. */
  entries(now: number): Array<{ readonly order: number; readonly timing: Result.StepTiming }> {
    const timeline: Array<{ readonly order: number; readonly timing: Result.StepTiming }> = []
    const parent = this.parent
    this.records.forEach((record, i) => {
      if (record === undefined) return
      const timing: Result.StepTiming = {
        step: this.names[i]!,
        status: record.status === "running" ? "interrupted" : record.status,
        startedAt: record.startedAt,
        endedAt: record.status === "running" ? now : record.endedAt,
        attempts: record.attempts
      }
      timeline.push({ order: record.order, timing: parent === undefined ? timing : { ...timing, parent } })
    })
    // One by one: a spread of a long list of parts would pass the engine's limit on arguments.
    for (const part of this.parts) timeline.push(part)
    return timeline.sort((a, b) => a.timing.startedAt - b.timing.startedAt || a.order - b.order)
  }

  completed(usage: Result.UsageReport, now: number): Result.Completed<unknown, Record<string, unknown>> {
    return {
      _tag: "Completed",
      pipeline: this.pipeline,
      output: this.output(this.graph.output),
      outputs: this.outputs(),
      usage,
      timeline: this.timeline(now)
    }
  }

  /**
   * The result of a run stopped by step `i`. Its outputs are those of the steps it depends on, which finished
   * before it whatever the scheduling: the set never depends on timing.
   */
  stopped(i: number, data: unknown, usage: Result.UsageReport, now: number): Result.Stopped<Record<string, unknown>, unknown> {
    return {
      _tag: "Stopped",
      pipeline: this.pipeline,
      step: this.graph.nodes[i]!.name,
      data,
      outputs: this.outputs(ancestors(this.graph, i)),
      usage,
      timeline: this.timeline(now)
    }
  }

  partial(usage: Result.UsageReport, now: number): Result.PartialResult {
    return { pipeline: this.pipeline, outputs: this.outputs(), usage, timeline: this.timeline(now) }
  }
}
