/**
 * What the demo shows of a run: live progress from the pipeline's events, then a table of steps, and the JSON
 * report. Everything is drawn from the events, so a run cut short (a failure, a budget stop, Ctrl-C) still
 * shows what it did and spent.
 */
import type { ReadableSpan, SpanExporter } from "@opentelemetry/sdk-trace-base"
import { Cost, Usage, type Event } from "@trellis/core"
import { Cause } from "effect"
import { inspect } from "node:util"

/** Where a step stands. */
export type StepStatus = "pending" | "running" | "retrying" | "done" | "failed" | "stopped" | "interrupted"

/** One step as the demo tracks it. */
export interface StepRow {
  readonly name: string
  /** For an item, an iteration or a sub-pipeline's step, the step it belongs to: its row comes under that one's. */
  readonly parent?: string | undefined
  /** How deep it sits under the run's own steps (0 for them). */
  readonly depth?: number | undefined
  status: StepStatus
  startedAt: number | undefined
  durationMs: number | undefined
  attempt: number
  usage: Usage.Usage
}

/** Somewhere text can be written. */
export type Write = (text: string) => void

const symbols: Record<StepStatus, string> = {
  pending: "·",
  running: "●",
  retrying: "↻",
  done: "✓",
  failed: "✗",
  stopped: "■",
  interrupted: "⊘"
}

/**
 * The steps of a run, updated from its events, and drawn as they change: redrawn in place on a terminal, as
 * one plain line per event otherwise (in CI, or when the output is a file or a pipe).
 */
export class Progress {
  readonly rows = new Map<string, StepRow>()
  private drawn = 0
  private readonly write: Write
  private readonly live: boolean

  constructor(write: Write, live: boolean) {
    this.write = write
    this.live = live
  }

  /** The listener to give `Pipeline.run`. */
  readonly onEvent = (event: Event.Event): void => {
    switch (event._tag) {
      case "RunStarted":
        for (const name of event.steps) this.rows.set(name, this.row(name))
        break
      case "StepStarted":
        if (event.parent !== undefined) this.place(event.step, event.parent)
        this.update(event.step, { status: "running", startedAt: event.at, attempt: 1 })
        break
      case "StepRetrying":
        this.update(event.step, { status: "retrying", attempt: event.attempt }, Cause.pretty(event.cause).split("\n")[0])
        break
      case "StepSucceeded":
        this.update(event.step, { status: "done", durationMs: event.durationMs })
        break
      case "StepFailed":
        this.update(event.step, { status: "failed", durationMs: event.durationMs })
        break
      case "StepInterrupted":
        this.update(event.step, { status: "interrupted", durationMs: event.durationMs })
        break
      case "StepStopped":
        this.update(event.step, { status: "stopped", durationMs: event.durationMs })
        break
      case "UsageRecorded": {
        const row = this.rows.get(event.step) ?? this.row(event.step)
        this.rows.set(event.step, { ...row, usage: Usage.add(row.usage, event.usage) })
        return
      }
      default:
        return
    }
  }

  /** Marks the steps still running as interrupted, for a run cancelled from outside. */
  interrupt(now: number): void {
    for (const row of this.rows.values()) {
      if (row.status === "running" || row.status === "retrying") {
        row.status = "interrupted"
        if (row.startedAt !== undefined) row.durationMs = now - row.startedAt
      }
    }
  }

  /** The usage of every step together. */
  total(): Usage.Usage {
    return Usage.sum([...this.rows.values()].map((row) => row.usage))
  }

  /** Puts the row of a part after the rows of the step it belongs to and of that step's parts, if it has none yet. */
  place(name: string, parent: string): void {
    if (this.rows.has(name)) return
    const rows = [...this.rows.entries()]
    const within = (row: StepRow): boolean =>
      row.name === parent || (row.parent !== undefined && within(this.rows.get(row.parent) ?? { ...row, parent: undefined }))
    let at = rows.length
    for (let i = rows.length - 1; i >= 0; i--) {
      if (within(rows[i]![1])) {
        at = i + 1
        break
      }
    }
    const depth = (this.rows.get(parent)?.depth ?? 0) + 1
    rows.splice(at, 0, [name, { ...this.row(name), parent, depth }])
    this.rows.clear()
    for (const [key, row] of rows) this.rows.set(key, row)
  }

  private row(name: string): StepRow {
    return { name, status: "pending", startedAt: undefined, durationMs: undefined, attempt: 0, usage: Usage.empty }
  }

  private update(step: string, change: Partial<StepRow>, detail?: string): void {
    const row = { ...(this.rows.get(step) ?? this.row(step)), ...change }
    this.rows.set(step, row)
    if (this.live) return this.redraw()
    const duration = row.durationMs === undefined ? "" : ` in ${seconds(row.durationMs)}`
    const attempt = row.status === "retrying" ? ` (attempt ${row.attempt}${detail ? `, after: ${detail}` : ""})` : ""
    this.write(`  ${symbols[row.status]} ${row.name} ${row.status}${attempt}${duration}\n`)
  }

  private redraw(): void {
    // Move up over the block drawn last time and draw it again, one line per step.
    if (this.drawn > 0) this.write(`\x1b[${this.drawn}A`)
    const lines = [...this.rows.values()].map((row) => {
      const extra = row.status === "retrying" ? ` (attempt ${row.attempt})` : row.durationMs === undefined ? "" : ` ${seconds(row.durationMs)}`
      return `\x1b[2K  ${symbols[row.status]} ${indented(row).padEnd(16)} ${row.status}${extra}\n`
    })
    this.write(lines.join(""))
    this.drawn = lines.length
  }
}

const seconds = (ms: number) => `${(ms / 1000).toFixed(2)}s`

/** A row's name, indented under the step it belongs to. */
const indented = (row: StepRow) => "  ".repeat(row.depth ?? 0) + row.name

/** The table of steps and the total: step, status, duration, tokens, cost. */
export const table = (rows: ReadonlyArray<StepRow>, total: Usage.Usage): string => {
  const body = rows.map((row) => [
    indented(row),
    row.status,
    row.durationMs === undefined ? "-" : seconds(row.durationMs),
    tokens(row.usage),
    Cost.format(row.usage.cost, 6)
  ])
  const footer = ["total", "", "", tokens(total), Cost.format(total.cost, 6) + (total.estimated ? " (estimated)" : "")]
  const header = ["step", "status", "duration", "tokens in/out", "cost"]
  const all = [header, ...body, footer]
  const widths = header.map((_, column) => Math.max(...all.map((line) => line[column]!.length)))
  const format = (line: ReadonlyArray<string>) =>
    line.map((cell, column) => (column >= 2 ? cell.padStart(widths[column]!) : cell.padEnd(widths[column]!))).join("  ")
  const rule = widths.map((width) => "─".repeat(width)).join("  ")
  return [format(header), rule, ...body.map(format), rule, format(footer)].join("\n") + "\n"
}

const tokens = (usage: Usage.Usage) =>
  usage.requests === 0 ? "-" : `${usage.inputTokens}/${usage.outputTokens}`

/** The usage as the JSON report gives it. */
export const usageJson = (usage: Usage.Usage) => ({
  inputTokens: usage.inputTokens,
  outputTokens: usage.outputTokens,
  requests: usage.requests,
  costNanoUsd: usage.cost,
  costUsd: Cost.toDollars(usage.cost),
  estimated: usage.estimated
})

/** The JSON report of a run. */
export interface JsonReport {
  readonly status: "completed" | "stopped" | "failed"
  readonly provider: string
  readonly model: string
  readonly route?: string | undefined
  readonly output: unknown
  readonly steps: ReadonlyArray<{
    readonly name: string
    readonly parent?: string
    readonly status: StepStatus
    readonly durationMs: number | null
    readonly usage: ReturnType<typeof usageJson>
  }>
  readonly usage: ReturnType<typeof usageJson>
  readonly error?: { readonly tag: string; readonly step: string | null; readonly message: string } | undefined
  /** With `--gantt`: the run's timeline as a Mermaid Gantt chart. */
  readonly gantt?: string | undefined
}

/** The steps of a run for the JSON report. */
export const stepsJson = (rows: ReadonlyArray<StepRow>): JsonReport["steps"] =>
  rows.map((row) => ({
    name: row.name,
    ...(row.parent === undefined ? {} : { parent: row.parent }),
    status: row.status,
    durationMs: row.durationMs ?? null,
    usage: usageJson(row.usage)
  }))

/**
 * Writes each span as it ends, as OpenTelemetry's `ConsoleSpanExporter` prints them, but to a given stream: with
 * `--json` the spans must not reach stdout.
 */
export class SpanWriter implements SpanExporter {
  private readonly write: Write

  constructor(write: Write) {
    this.write = write
  }

  export(spans: Array<ReadableSpan>, done: Parameters<SpanExporter["export"]>[1]): void {
    for (const span of spans) {
      const info = {
        name: span.name,
        traceId: span.spanContext().traceId,
        id: span.spanContext().spanId,
        parentId: span.parentSpanContext?.spanId,
        timestamp: span.startTime,
        duration: span.duration,
        attributes: span.attributes,
        status: span.status,
        events: span.events
      }
      this.write(inspect(info, { depth: 3, colors: false }) + "\n")
    }
    done({ code: 0 })
  }

  shutdown(): Promise<void> {
    return Promise.resolve()
  }
}
