/**
 * The demo's commands for durable runs kept in a store: `runs` lists them; `book` starts (or resumes) the durable
 * booking conversation and shows the question it waits on; `signal` delivers an answer to a waiting run and shows
 * what it asks next; `cancel` ends it. Each process holds a SQLite store only while it works, so the conversation can go on one
 * command at a time.
 */
import { Args, Command, Options } from "@effect/cli"
import { Cost } from "@trellis/core"
import { Durable, Runs, type Store } from "@trellis/durable"
import type { LanguageModel } from "@trellis/llm"
import { Effect, Layer, Option } from "effect"
import { booking, fields, nextQuestion, questions, settled } from "../booking.js"
import {
  decodeFlag,
  flags,
  InputError,
  ModelName,
  type ProviderName,
  RunId,
  type StoreLocation,
  StoreFlag
} from "./args.js"
import { printable } from "./text.js"
import { existingLayer, type Opened, readerLayer, storeFailed, storeLayer, storeName } from "./store.js"

/** What the commands write to, and the model the conversation reads answers with, from `--provider` and `--model`. */
export interface Io {
  readonly stdout: (text: string) => void
  readonly stderr: (text: string) => void
  readonly model: (
    provider: Option.Option<ProviderName>,
    model: Option.Option<string>
  ) => Layer.Layer<LanguageModel.LanguageModel, InputError>
}

/** The options these commands share with the demo's own. */
interface Shared {
  readonly store: Option.Option<string>
  readonly provider: Option.Option<ProviderName>
  readonly model: Option.Option<string>
}

/** The demo's options as given before the command's name (`trellis-demo --store runs.db runs`). */
export type Before = Effect.Effect<Shared, never, Command.Command.Context<"trellis-demo">>

/** A command's shared options: its own, else those given before its name. */
const shared = (before: Before, own: Shared): Effect.Effect<Shared, never, Command.Command.Context<"trellis-demo">> =>
  Effect.map(before, (given) => ({
    store: Option.orElse(own.store, () => given.store),
    provider: Option.orElse(own.provider, () => given.provider),
    model: Option.orElse(own.model, () => given.model)
  }))

/** The model the conversation reads answers with, as `--provider` and `--model` choose it. */
const chosenModel = (io: Io, options: Shared) =>
  Effect.map(decodeFlag("model", ModelName, options.model), (model) => io.model(options.provider, model))

const store = flags.store.pipe(Options.withDescription("The SQLite file or postgres:// URL the runs are kept in"))

/** `--store`, required by these commands. */
const requiredStore = (text: Option.Option<string>) =>
  Effect.flatMap(decodeFlag("store", StoreFlag, text), (location) =>
    Option.isNone(location)
      ? Effect.fail(new InputError({ message: "this command reads a store: give --store (a SQLite file or a postgres:// URL)" }))
      : Effect.succeed(location.value))

/**
 * Runs `effect` with the store open (as its runner, unless `opened` says otherwise) and the conversation registered,
 * giving its exit code; a store that cannot be opened, or a model that cannot be configured, is one line on stderr
 * and code 1.
 */
const withStore = <R>(
  io: Io,
  location: StoreLocation,
  model: Layer.Layer<LanguageModel.LanguageModel, InputError>,
  effect: Effect.Effect<number, InputError | Effect.Effect.Error<ReturnType<typeof Runs.list>>, R>,
  opened: (location: StoreLocation) => Opened = storeLayer,
  json = false
): Effect.Effect<number, InputError, Exclude<R, Durable.Signals | Store.Services | LanguageModel.LanguageModel>> =>
  effect.pipe(
    Effect.provide(Durable.layer(booking).pipe(Layer.provideMerge(opened(location)), Layer.provide(model))),
    Effect.catchIf(
      (error): error is Exclude<typeof error, InputError> => !(error instanceof InputError),
      (error) => Effect.sync(() => storeFailed(io, location, json, error))
    )
  ) as Effect.Effect<number, InputError, Exclude<R, Durable.Signals | Store.Services | LanguageModel.LanguageModel>>

/** Waits until the conversation waits or ends, and says which: the question to answer next, or how it ended. */
const report = (io: Io, id: string, location: StoreLocation) =>
  Effect.gen(function*() {
    const status = yield* settled(id)
    if (status._tag === "Finished") {
      return yield* status.exit.pipe(
        Effect.match({
          onSuccess: (result) => {
            io.stdout(`${result.output}\n`)
            return 0
          },
          onFailure: (error) => {
            io.stdout(`${error.message}\n`)
            return 1
          }
        })
      )
    }
    const [run] = (yield* Runs.list({ pipeline: booking.pipeline.name })).filter((run) => run.id === id)
    const field = run === undefined ? undefined : nextQuestion(run)
    if (field === undefined) return 0
    io.stdout(`${questions[field]}\n`)
    const where = location._tag === "Postgres" ? "postgres://..." : location.filename
    io.stderr(`trellis-demo: answer with: trellis-demo signal ${id} ${field} '"..."' --store ${where}\n`)
    return 0
  })

const book = (io: Io, setCode: (code: number) => void, before: Before) =>
  Command.make(
    "book",
    { store, runId: flags.runId, provider: flags.provider, model: flags.model },
    (parsed) =>
      Effect.gen(function*() {
        const options = yield* shared(before, parsed)
        const location = yield* requiredStore(options.store)
        const id = yield* decodeFlag("run-id", RunId, parsed.runId)
        if (Option.isNone(id)) return yield* new InputError({ message: "book needs --run-id (the conversation's id)" })
        return yield* withStore(
          io,
          location,
          yield* chosenModel(io, options),
          Effect.zipRight(Durable.start(booking, { id: id.value }), report(io, id.value, location)).pipe(
            Effect.catchTag("InvalidId", (error) => Effect.fail(new InputError({ message: error.message })))
          )
        )
      }).pipe(Effect.map(setCode))
  ).pipe(Command.withDescription("Start (or resume) the durable booking conversation, and show what it asks"))

const signal = (io: Io, setCode: (code: number) => void, before: Before) =>
  Command.make(
    "signal",
    {
      store,
      provider: flags.provider,
      model: flags.model,
      id: Args.text({ name: "id" }).pipe(Args.withDescription("The run's id")),
      step: Args.text({ name: "step" }).pipe(Args.withDescription(`The waiting step: ${fields.join(", ")}`)),
      value: Args.text({ name: "json" }).pipe(Args.withDescription(`The value, as JSON (a string in quotes: '"Ada"')`))
    },
    (parsed) =>
      Effect.gen(function*() {
        const options = yield* shared(before, parsed)
        const location = yield* requiredStore(options.store)
        const id = Option.getOrThrow(yield* decodeFlag("run-id", RunId, Option.some(parsed.id)))
        const value = yield* Effect.try({
          try: (): unknown => JSON.parse(parsed.value),
          catch: () =>
            new InputError({ message: `the value must be JSON (a string in quotes: '"Ada"'), got ${JSON.stringify(parsed.value)}` })
        })
        return yield* withStore(
          io,
          location,
          yield* chosenModel(io, options),
          Durable.signal(booking, { id, step: parsed.step, value }).pipe(
            Effect.zipRight(report(io, id, location)),
            Effect.catchTags({
              InvalidSignal: (error) => Effect.fail(new InputError({ message: error.message })),
              UnknownRun: (error) => Effect.fail(new InputError({ message: error.message }))
            })
          ),
          existingLayer
        )
      }).pipe(Effect.map(setCode))
  ).pipe(Command.withDescription("Deliver a value to a durable run's waiting step, and show what the run asks next"))

const cancel = (io: Io, setCode: (code: number) => void, before: Before) =>
  Command.make(
    "cancel",
    {
      store,
      provider: flags.provider,
      model: flags.model,
      id: Args.text({ name: "id" }).pipe(Args.withDescription("The run's id"))
    },
    (parsed) =>
      Effect.gen(function*() {
        const options = yield* shared(before, parsed)
        const location = yield* requiredStore(options.store)
        const id = Option.getOrThrow(yield* decodeFlag("run-id", RunId, Option.some(parsed.id)))
        return yield* withStore(
          io,
          location,
          yield* chosenModel(io, options),
          Effect.zipRight(Durable.cancel(booking, { id }), report(io, id, location)).pipe(
            Effect.catchTag("UnknownRun", (error) => Effect.fail(new InputError({ message: error.message })))
          ),
          existingLayer
        )
      }).pipe(Effect.map(setCode))
  ).pipe(Command.withDescription("Cancel a durable booking conversation, and show how it ended"))

const runs = (io: Io, setCode: (code: number) => void, before: Before) =>
  Command.make(
    "runs",
    { store, json: flags.json },
    (parsed) =>
      Effect.gen(function*() {
        const given = yield* before
        const location = yield* requiredStore(Option.orElse(parsed.store, () => given.store))
        const listed = Effect.map(Runs.list(), (runs) => print(io, location, runs, parsed.json))
        // Listing asks no model: the conversation is registered with the default one.
        return yield* withStore(io, location, io.model(Option.none(), Option.none()), listed, readerLayer, parsed.json)
      }).pipe(Effect.map(setCode))
  ).pipe(Command.withDescription("List the durable runs kept in a store, with their status, steps done and cost"))

/** Prints the runs as a table, or as JSON (costs in dollars). */
const print = (io: Io, location: StoreLocation, runs: ReadonlyArray<Runs.Run>, json: boolean): number => {
        if (json) {
          io.stdout(JSON.stringify(runs.map((run) => ({ ...run, cost: Cost.toDollars(run.cost) }))) + "\n")
          return 0
        }
        if (runs.length === 0) {
          io.stdout(`No runs in ${storeName(location)}.\n`)
          return 0
        }
        const rows = runs.map((run) => [
          run.pipeline,
          run.id,
          run.status,
          `${run.steps.length}${run.steps.length === 0 ? "" : ` (${run.steps.join(", ")})`}`,
          Cost.format(run.cost, 6)
        ])
        const header = ["pipeline", "id", "status", "steps done", "cost"]
        const widths = header.map((title, i) => Math.max(title.length, ...rows.map((row) => row[i]!.length)))
        const line = (cells: ReadonlyArray<string>) => cells.map((cell, i) => cell.padEnd(widths[i]!)).join("  ").trimEnd()
        io.stdout([line(header), ...rows.map(line)].join("\n") + "\n")
        return 0
}

/**
 * The commands, each setting the process's exit code through `setCode`; `before` reads the demo's options given
 * before a command's name, which stand in for the command's own.
 */
export const commands = (given: Io, setCode: (code: number) => void, before: Before) => {
  // Ids, steps and answers come from the command line and the store: they reach the terminal escaped.
  const io: Io = {
    ...given,
    stdout: (text) => given.stdout(printable(text)),
    stderr: (text) => given.stderr(printable(text))
  }
  return [runs(io, setCode, before), book(io, setCode, before), signal(io, setCode, before), cancel(io, setCode, before)] as const
}
