/**
 * `trellis-demo`: the document pipeline from the command line, on the offline model by default, on OpenAI when
 * `OPENAI_API_KEY` is set, or on any compatible server through `OPENAI_BASE_URL`; `--provider` chooses among
 * OpenAI, Anthropic and the offline model.
 *
 * Exit codes: 0 when the run completed (or a step stopped it on purpose), 1 when it failed (a budget stop, a
 * step's error), 2 for bad input, 130 when cancelled with Ctrl-C.
 */
import { Command, ValidationError } from "@effect/cli"
import { readFileSync } from "node:fs"
import { stripVTControlCharacters } from "node:util"
import { Cost, Event, Pipeline, PipelineError, type Result, Router, Usage } from "@trellis/core"
import { Durable } from "@trellis/durable"
import { LanguageModel, OfflineModel } from "@trellis/llm"
import {
  Cause,
  Clock,
  Console,
  type Duration,
  Effect,
  Exit,
  Layer,
  Logger,
  Option
} from "effect"
import { Document, DocumentText, router } from "../document/pipeline.js"
import { quarterlyReport } from "../document/samples.js"
import { tracing } from "../tracing.js"
import {
  Budget,
  budgetCost,
  checkArgs,
  decodeFlag,
  defaultMaxInputBytes,
  flags,
  InputError,
  MaxInputBytes,
  ModelName,
  type ProviderName,
  RunId,
  StoreFlag
} from "./args.js"
import { withFixtures } from "./fixtures.js"
import { baseDirectory, readDocument } from "./input.js"
import { commands } from "./runs.js"
import { printable, quoted } from "./text.js"
import { type OpenError, storeFailed, storeLayer, storeName } from "./store.js"
import { chooseProvider } from "./provider.js"
import { type JsonReport, Progress, SpanWriter, type StepRow, stepsJson, table, usageJson, type Write } from "./report.js"

/** What the demo talks to: its output streams, the environment, and (for tests) the model to use. */
export interface Io {
  readonly stdout: Write
  readonly stderr: Write
  /** Redraw progress in place (a terminal, outside CI) rather than print a line per event. */
  readonly live: boolean
  /** Whether stdin and stdout are a terminal: the help keeps its colours, and `--wizard` can ask its questions. */
  readonly terminal?: boolean | undefined
  readonly env: Readonly<Record<string, string | undefined>>
  /** The directory the command runs in (default: the process's), for a relative `--input` without `INIT_CWD`. */
  readonly cwd?: string | undefined
  /** A language model that replaces the chosen provider. */
  readonly model?: Layer.Layer<LanguageModel.LanguageModel> | undefined
  /** How long each call of the offline model takes, so progress can be watched. */
  readonly offlineLatency?: Duration.DurationInput | undefined
}

export { InputError } from "./args.js"

// The package's own version: the same path from `src/cli` and from the built `dist/cli`.
const version: string = JSON.parse(readFileSync(new URL("../../package.json", import.meta.url), "utf8")).version

type Flags = Command.Command.ParseConfig<typeof flags>

const chooseModel = (
  io: Io,
  provider: Option.Option<ProviderName>,
  model: Option.Option<string>
): Layer.Layer<LanguageModel.LanguageModel, InputError> => {
  if (io.model !== undefined) return io.model
  return chooseProvider(provider, model, io.env, io.offlineLatency)
}

// What went wrong, for the report: the step's own error when a step failed, else the pipeline's.
const describeFailure = (error: unknown): NonNullable<JsonReport["error"]> => {
  if (error instanceof PipelineError.StepFailed) {
    const inner = error.error
    const tag = inner !== undefined && typeof inner === "object" && "_tag" in inner ? String(inner._tag) : "StepFailed"
    return { tag, step: error.step, message: error.message }
  }
  const tagged = error as { _tag?: string; step?: string; message?: string }
  return { tag: tagged._tag ?? "Error", step: tagged.step ?? null, message: tagged.message ?? String(error) }
}

type Timeline = Parameters<typeof Pipeline.toGantt>[0]

// A failed run's partial result, which every run-time failure of a pipeline carries.
const partialOf = (error: unknown): Timeline | undefined => {
  const partial = typeof error === "object" && error !== null && "partial" in error ? error.partial : undefined
  return partial !== undefined && partial !== null && typeof partial === "object" && "timeline" in partial
    ? partial as Timeline
    : undefined
}

// The cluster under a durable store warns of this when a process opens a store an earlier process ran on: it finds
// no runner marked healthy there, marks itself healthy and goes on. Nothing for a person to do.
const takeOverWarning = "No healthy runners available"

// Warnings (an unpriced model, a retried call) are for a person: they go to stderr, never into stdout's JSON.
const logToStderr = (write: Write) =>
  Logger.replace(
    Logger.defaultLogger,
    Logger.make(({ logLevel, message }) => {
      const text = Array.isArray(message) ? message.map(String).join(" ") : String(message)
      if (text !== takeOverWarning) write(`trellis-demo: ${logLevel.label.toLowerCase()}: ${text}\n`)
    })
  )

// A durable run reports no events as it goes: its table is drawn from the result (or the failure's usage) instead.
const statusOf: Record<Result.StepTiming["status"], StepRow["status"]> = {
  succeeded: "done",
  failed: "failed",
  stopped: "stopped",
  interrupted: "interrupted"
}

const fillRows = (
  progress: Progress,
  steps: ReadonlyArray<string>,
  usage: Result.UsageReport,
  timeline: ReadonlyArray<Result.StepTiming>,
  failedStep?: string
) => {
  // The parts of steps made of steps (items, iterations) are in the timeline only: their rows come under their step's.
  const parts = timeline.filter((entry) => entry.parent !== undefined)
  const names = [...steps, ...parts.map((part) => part.step)]
  names.forEach((name, i) => {
    if (i >= steps.length) progress.place(name, parts[i - steps.length]!.parent!)
    const timing = timeline.find((entry) => entry.step === name)
    const used = usage.byStep[name]
    progress.rows.set(name, {
      ...progress.rows.get(name),
      name,
      status: timing !== undefined
        ? statusOf[timing.status]
        : name === failedStep
        ? "failed"
        : used !== undefined
        ? "done"
        : "pending",
      startedAt: timing?.startedAt,
      durationMs: timing === undefined ? undefined : timing.endedAt - timing.startedAt,
      attempt: timing?.attempts ?? 0,
      usage: used ?? Usage.empty
    })
  })
}

type DocumentPipeline = Pipeline.Pipeline<unknown, unknown, LanguageModel.LanguageModel | Document, unknown, never>

const demo = (flags: Flags, io: Io) =>
  Effect.gen(function*() {
    const budget = budgetCost(yield* decodeFlag("budget", Budget, flags.budget))
    const modelName = yield* decodeFlag("model", ModelName, flags.model)
    const maxBytes = Option.getOrElse(
      yield* decodeFlag("max-input-bytes", MaxInputBytes, flags.maxInputBytes),
      () => defaultMaxInputBytes
    )
    const store = yield* decodeFlag("store", StoreFlag, flags.store)
    const runId = yield* decodeFlag("run-id", RunId, flags.runId)
    if (Option.isSome(runId) && Option.isNone(store)) {
      return yield* new InputError({ message: "--run-id names a durable run, so it needs --store (a SQLite file or a postgres:// URL)" })
    }
    if (Option.isSome(store) && Option.isNone(runId)) {
      return yield* new InputError({ message: "--store keeps a durable run, so it needs --run-id (the run's id)" })
    }
    if (flags.mermaid && flags.gantt) {
      return yield* new InputError({ message: "--mermaid shows the graph without running it, so --gantt cannot go with it" })
    }
    const text = Option.isNone(flags.input) ? quarterlyReport : yield* readDocument(flags.input.value, {
      base: baseDirectory(io.env, io.cwd ?? process.cwd()),
      maxBytes
    })
    // With --json, stdout carries the JSON alone; whatever is meant for a person goes to stderr.
    const say = flags.json ? io.stderr : io.stdout
    const documents = router({ budget })

    // --store: the chosen pipeline runs durably under --run-id, its document stored with the run.
    const durably = Option.isNone(store) || Option.isNone(runId) ? undefined : yield* Effect.gen(function*() {
      const route = yield* Effect.provideService(documents.route, Document, { text })
      const pipeline: DocumentPipeline = documents.routes[route]
      const durable = Durable.make(pipeline, { input: { tag: Document, schema: DocumentText } })
      return { durable, id: runId.value, location: store.value }
    })

    // --mermaid: the chosen pipeline's graph, without running it (routing is code, and costs nothing).
    const graph = Effect.gen(function*() {
      const route = yield* documents.route
      const pipeline = documents.routes[route]
      const mermaid = Pipeline.toMermaid(pipeline)
      io.stdout(flags.json ? JSON.stringify({ route, pipeline: pipeline.name, mermaid }) + "\n" : mermaid + "\n")
      return 0
    })

    // Runs the chosen pipeline through `execute` (in memory through the router, or durably), then reports it.
    const runWith = <E, R>(
      execute: (progress: Progress, pipeline: DocumentPipeline) => Effect.Effect<Result.Completed<unknown, unknown>, E, R>
    ) => Effect.gen(function*() {
      const model = yield* LanguageModel.LanguageModel
      const label = model.provider === "offline" ? ` (${OfflineModel.label})` : ""
      say(`Provider: ${model.provider}${label}, model ${model.model}\n`)
      const route = yield* documents.route
      const pipeline = documents.routes[route]
      say(`Route: ${route} (pipeline "${pipeline.name}")${budget === undefined ? "" : `, budget ${Cost.format(budget, 6)}`}\n`)

      const progress = new Progress(say, io.live && !flags.json)
      const finish = (
        status: JsonReport["status"],
        output: unknown,
        error: JsonReport["error"] | undefined,
        timeline: Timeline | undefined
      ) => {
        const rows = [...progress.rows.values()]
        const total = progress.total()
        const gantt = flags.gantt && timeline !== undefined ? Pipeline.toGantt(timeline) : undefined
        say("\n" + table(rows, total))
        if (error !== undefined) say(`\n${error.tag}${error.step ? ` in step "${error.step}"` : ""}: ${error.message}\n`)
        else if (!flags.json) say(`\n${JSON.stringify(output, null, 2)}\n`)
        if (gantt !== undefined && !flags.json) say(`\n${gantt}\n`)
        if (flags.json) {
          const report: JsonReport = {
            status,
            provider: model.provider,
            model: model.model,
            route,
            output,
            steps: stepsJson(rows),
            usage: usageJson(total),
            ...(error === undefined ? {} : { error }),
            ...(gantt === undefined ? {} : { gantt })
          }
          io.stdout(JSON.stringify(report) + "\n")
        }
      }

      const exit = yield* execute(progress, pipeline).pipe(
        Effect.onInterrupt(() =>
          Effect.flatMap(Clock.currentTimeMillis, (now) =>
            Effect.sync(() => {
              progress.interrupt(now)
              finish("failed", null, { tag: "Interrupted", step: null, message: "cancelled: in-flight calls were aborted" }, undefined)
            }))
        ),
        Effect.exit
      )
      if (Exit.isSuccess(exit)) {
        const result = exit.value
        finish("completed", result.output, undefined, result)
        return 0
      }
      const failure = Cause.failureOption(exit.cause)
      if (Option.isSome(failure) && failure.value instanceof Durable.RunFailed) {
        const error = failure.value
        fillRows(progress, pipeline.steps.map((step) => step.name), error.usage, error.timeline, error.step)
        finish("failed", null, { tag: error.reason, step: error.step ?? null, message: error.detail }, undefined)
      } else if (Option.isSome(failure)) {
        finish("failed", null, describeFailure(failure.value), partialOf(failure.value))
      } else {
        const message = Cause.pretty(exit.cause).split("\n")[0] ?? "unexpected failure"
        finish("failed", null, { tag: "Defect", step: null, message }, undefined)
      }
      return 1
    })

    if (flags.mermaid) return yield* Effect.provideService(graph, Document, { text })
    // Durably, the store is opened before anything is printed: a store in use is the one line of output.
    const stored = durably === undefined
      ? runWith((progress) => Effect.map(Router.run(documents, { onEvent: progress.onEvent }), ({ result }) => result))
      : runWith((progress, pipeline) =>
        Effect.gen(function*() {
          const { durable, id, location } = durably
          // A run the store has finished is returned as it was stored; the line on stderr says which it was.
          const finished = yield* Durable.isFinished(durable, { id })
          const note = Effect.sync(() =>
            io.stderr(`trellis-demo: run ${quoted(id)} ${finished ? "returned from" : "stored in"} ${storeName(location)}\n`)
          )
          // This process is the run's runner: the layer's listener hears its steps as they run (a resumed run's
          // finished steps as they are replayed).
          const listening = Durable.layer(durable, {
            onEvent: (event) => {
              switch (event._tag) {
                case "StepReplayed": {
                  const { at, durationMs, pipeline, step } = event
                  return progress.onEvent(Event.StepSucceeded({ pipeline, step, at, durationMs }))
                }
                case "StepSuspended":
                case "RunSuspended":
                  return
                default:
                  return progress.onEvent(event)
              }
            }
          })
          const result = yield* Durable.run(durable, { id, input: { text } }).pipe(
            Effect.tapBoth({ onFailure: () => note, onSuccess: () => note }),
            Effect.provide(listening)
          )
          fillRows(progress, pipeline.steps.map((step) => step.name), result.usage, result.timeline)
          return result
        })
      ).pipe(
        Effect.provide(storeLayer(durably.location)),
        // What is left to fail is opening the store: the run's own failures are reported by `runWith`.
        Effect.catchAll((error: OpenError) => Effect.sync(() => storeFailed(io, durably.location, flags.json, error)))
      )
    const provided = stored.pipe(
      Effect.provideService(Document, { text }),
      // A recording that cannot be read or written is bad input, named in one line.
      Effect.provide(Layer.mapError(withFixtures(chooseModel(io, flags.provider, modelName), flags), (error) =>
        error._tag === "FixtureError" ? new InputError({ message: error.message }) : error))
    )
    return yield* flags.trace
      ? Effect.provide(provided, tracing(new SpanWriter(say), "trellis-demo"))
      : provided
  }).pipe(
    Effect.catchTag("InputError", (error) =>
      Effect.sync(() => {
        io.stderr(`trellis-demo: ${printable(error.message)}\n`)
        return 2
      }))
  )

/**
 * The help as `@effect/cli` prints it, for this output: its ANSI colours only for a terminal, and without the
 * generic line it gives every text flag ("A user-defined piece of text."), since each flag's value is named
 * (`--budget dollars`) and described in its own words.
 */
const helpText = (text: string, io: Io): string => {
  const plain = text.replaceAll(/\n[^\n]*A user-defined piece of text\.[^\n]*\n\s*\n/g, "\n")
  return io.terminal ? plain : stripVTControlCharacters(plain)
}

/**
 * Runs the demo with command-line arguments (without `node` and the script) and gives its exit code.
 * Bad flags give a one-line message and 2, as bad input does.
 */
export const run = (args: ReadonlyArray<string>, io: Io) =>
  Effect.suspend(() => {
    let code = 0
    const setCode = (c: number) => void (code = c)
    const main = Command.make("trellis-demo", flags, (parsed) => Effect.map(demo(parsed, io), setCode))
    const model = (provider: Option.Option<ProviderName>, name: Option.Option<string>) => chooseModel(io, provider, name)
    const cli = Command.run(
      main.pipe(Command.withSubcommands(commands({ ...io, model }, setCode, main))),
      { name: "trellis-demo", version }
    )
    // @effect/cli explains a bad flag with a help text on the console's error stream: keep its first line.
    const explained: Array<string> = []
    const log = (...args: ReadonlyArray<unknown>) => Effect.sync(() => io.stdout(`${helpText(args.join(" "), io)}\n`))
    return Effect.flatMap(Effect.console, (console) =>
      checkArgs(args, io.terminal === true).pipe(
        Effect.zipRight(cli(["node", "trellis-demo", ...args])),
        Effect.withConsole({
          ...console,
          log,
          error: (...args: ReadonlyArray<unknown>) => Effect.sync(() => void explained.push(args.join(" ")))
        } as Console.Console),
        Effect.map(() => code),
        Effect.provide(logToStderr(io.stderr)),
        Effect.catchTag("InputError", (error) =>
          Effect.sync(() => {
            io.stderr(`trellis-demo: ${printable(error.message)}\n`)
            return 2
          })),
        Effect.catchIf(ValidationError.isValidationError, () =>
          Effect.sync(() => {
            const line = explained.join("\n").split("\n").map((l) => l.trim()).find((l) => l.length > 0)
            io.stderr(`trellis-demo: ${printable(line ?? "invalid arguments")}\n`)
            return 2
          }))
      ))
  })
