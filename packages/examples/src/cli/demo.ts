/**
 * `trellis-demo`: the document pipeline from the command line, on the offline model by default, on OpenAI when
 * `OPENAI_API_KEY` is set, or on any compatible server through `OPENAI_BASE_URL`.
 *
 * Exit codes: 0 when the run completed (or a step stopped it on purpose), 1 when it failed (a budget stop, a
 * step's error), 2 for bad input, 130 when cancelled with Ctrl-C.
 */
import { Command, Options, ValidationError } from "@effect/cli"
import { FileSystem } from "@effect/platform"
import { ConsoleSpanExporter } from "@opentelemetry/sdk-trace-base"
import { Cost, Pipeline, PipelineError, Router } from "@trellis/core"
import { LanguageModel, OfflineModel, OpenAi } from "@trellis/llm"
import { Cause, Clock, type ConfigError, Console, Data, type Duration, Effect, Exit, type Layer, Option } from "effect"
import { Document, router } from "../document/pipeline.js"
import { quarterlyReport } from "../document/samples.js"
import { tracing } from "../tracing.js"
import { type JsonReport, Progress, stepsJson, table, usageJson, type Write } from "./report.js"

/** What the demo talks to: its output streams, the environment, and (for tests) the model to use. */
export interface Io {
  readonly stdout: Write
  readonly stderr: Write
  /** Redraw progress in place (a terminal, outside CI) rather than print a line per event. */
  readonly live: boolean
  readonly env: Readonly<Record<string, string | undefined>>
  /** A language model that replaces the chosen provider. */
  readonly model?: Layer.Layer<LanguageModel.LanguageModel> | undefined
  /** How long each call of the offline model takes, so progress can be watched. */
  readonly offlineLatency?: Duration.DurationInput | undefined
}

/** Input the demo cannot work with: a one-line message, exit code 2. */
export class InputError extends Data.TaggedError("InputError")<{ readonly message: string }> {}

const flags = {
  input: Options.text("input").pipe(
    Options.withDescription("A text file with the document to process (default: a bundled sample report)"),
    Options.optional
  ),
  budget: Options.text("budget").pipe(
    Options.withDescription("The most the run may spend, in dollars; the run stops before passing it"),
    Options.optional
  ),
  model: Options.text("model").pipe(
    Options.withDescription("The model to ask (offline: the model whose prices are simulated)"),
    Options.optional
  ),
  json: Options.boolean("json").pipe(Options.withDescription("Print the result as one JSON object, last on stdout")),
  mermaid: Options.boolean("mermaid").pipe(Options.withDescription("Print the pipeline's graph as a Mermaid flowchart")),
  trace: Options.boolean("trace").pipe(Options.withDescription("Print the run's spans through OpenTelemetry"))
}

type Flags = Command.Command.ParseConfig<typeof flags>

const parseBudget = (text: Option.Option<string>): Effect.Effect<Cost.Cost | undefined, InputError> => {
  if (Option.isNone(text)) return Effect.succeed(undefined)
  const dollars = Number(text.value)
  if (text.value.trim() === "" || !Number.isFinite(dollars) || dollars < 0) {
    return Effect.fail(new InputError({ message: `--budget must be a non-negative number of dollars, got "${text.value}"` }))
  }
  return Effect.succeed(Cost.dollars(dollars))
}

const readInput = (path: Option.Option<string>) =>
  Option.match(path, {
    onNone: () => Effect.succeed(quarterlyReport),
    onSome: (path) =>
      Effect.flatMap(FileSystem.FileSystem, (fs) => fs.readFileString(path)).pipe(
        Effect.mapError((error) =>
          new InputError({ message: `cannot read --input ${path}: ${error.message.split("\n")[0]}` })
        ),
        Effect.filterOrFail(
          (text) => text.trim().length > 0,
          () => new InputError({ message: `--input ${path} is empty` })
        )
      )
  })

const chooseModel = (
  io: Io,
  model: Option.Option<string>
): Layer.Layer<LanguageModel.LanguageModel, ConfigError.ConfigError> => {
  if (io.model !== undefined) return io.model
  const name = Option.getOrUndefined(model)
  return io.env["OPENAI_API_KEY"] ? OpenAi.layerConfig({ model: name }) : OfflineModel.layer({ model: name, latency: io.offlineLatency })
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

const demo = (flags: Flags, io: Io) =>
  Effect.gen(function*() {
    const budget = yield* parseBudget(flags.budget)
    const text = yield* readInput(flags.input)
    // With --json, stdout carries the JSON alone; whatever is meant for a person goes to stderr.
    const say = flags.json ? io.stderr : io.stdout
    const documents = router({ budget })

    const run = Effect.gen(function*() {
      const model = yield* LanguageModel.LanguageModel
      const label = model.provider === "offline" ? ` (${OfflineModel.label})` : ""
      say(`Provider: ${model.provider}${label}, model ${model.model}\n`)
      const route = yield* documents.route
      const pipeline = documents.routes[route]
      say(`Route: ${route} (pipeline "${pipeline.name}")${budget === undefined ? "" : `, budget ${Cost.format(budget, 6)}`}\n`)
      if (flags.mermaid) say(Pipeline.toMermaid(pipeline) + "\n")

      const progress = new Progress(say, io.live && !flags.json)
      const finish = (status: JsonReport["status"], output: unknown, error?: JsonReport["error"]) => {
        const rows = [...progress.rows.values()]
        const total = progress.total()
        say("\n" + table(rows, total))
        if (error !== undefined) say(`\n${error.tag}${error.step ? ` in step "${error.step}"` : ""}: ${error.message}\n`)
        else if (!flags.json) say(`\n${JSON.stringify(output, null, 2)}\n`)
        if (flags.json) {
          const report: JsonReport = {
            status,
            provider: model.provider,
            model: model.model,
            route,
            output,
            steps: stepsJson(rows),
            usage: usageJson(total),
            ...(error === undefined ? {} : { error })
          }
          io.stdout(JSON.stringify(report) + "\n")
        }
      }

      const exit = yield* Router.run(documents, { onEvent: progress.onEvent }).pipe(
        Effect.onInterrupt(() =>
          Effect.flatMap(Clock.currentTimeMillis, (now) =>
            Effect.sync(() => {
              progress.interrupt(now)
              finish("failed", null, { tag: "Interrupted", step: null, message: "cancelled: in-flight calls were aborted" })
            }))
        ),
        Effect.exit
      )
      if (Exit.isSuccess(exit)) {
        const { result } = exit.value
        finish("completed", result.output)
        return 0
      }
      const failure = Cause.failureOption(exit.cause)
      finish("failed", null, Option.isSome(failure) ? describeFailure(failure.value) : {
        tag: "Defect",
        step: null,
        message: Cause.pretty(exit.cause).split("\n")[0] ?? "unexpected failure"
      })
      return 1
    })

    const provided = run.pipe(Effect.provideService(Document, { text }), Effect.provide(chooseModel(io, flags.model)))
    return yield* flags.trace
      ? Effect.provide(provided, tracing(new ConsoleSpanExporter(), "trellis-demo"))
      : provided
  }).pipe(
    Effect.catchTag("InputError", (error) => Effect.sync(() => {
      io.stderr(`trellis-demo: ${error.message}\n`)
      return 2
    }))
  )

/**
 * Runs the demo with command-line arguments (without `node` and the script) and gives its exit code.
 * Bad flags give a one-line message and 2, as bad input does.
 */
export const run = (args: ReadonlyArray<string>, io: Io) =>
  Effect.suspend(() => {
    let code = 0
    const cli = Command.run(
      Command.make("trellis-demo", flags, (parsed) => Effect.map(demo(parsed, io), (c) => void (code = c))),
      { name: "trellis-demo", version: "0.1.0" }
    )
    // @effect/cli explains a bad flag with a help text on the console's error stream: keep its first line.
    const explained: Array<string> = []
    return Effect.flatMap(Effect.console, (console) =>
      cli(["node", "trellis-demo", ...args]).pipe(
        Effect.withConsole({
          ...console,
          error: (...args: ReadonlyArray<unknown>) => Effect.sync(() => void explained.push(args.join(" ")))
        } as Console.Console),
        Effect.map(() => code),
        Effect.catchIf(ValidationError.isValidationError, () =>
          Effect.sync(() => {
            const line = explained.join("\n").split("\n").map((l) => l.trim()).find((l) => l.length > 0)
            io.stderr(`trellis-demo: ${line ?? "invalid arguments"}\n`)
            return 2
          }))
      ))
  })
