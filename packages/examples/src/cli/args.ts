/**
 * The demo's flags: their definitions for `@effect/cli`, a first look at the raw arguments (a flag given twice,
 * or without its value, is named as such), and the Schemas that decode the values `@effect/cli` leaves as text.
 */
import { Options } from "@effect/cli"
import { Cost } from "@trellis/core"
import { Data, Effect, Either, Option, ParseResult, Schema } from "effect"
import { fixtureFlags, fixtureValueFlags } from "./fixtures.js"
import { quoted } from "./text.js"

/** Input the demo cannot work with (a bad flag, a bad `--input`): a one-line message, exit code 2. */
export class InputError extends Data.TaggedError("InputError")<{ readonly message: string }> {}

/** The default of `--max-input-bytes`: 1 MiB. */
export const defaultMaxInputBytes = 1_048_576

/** The providers `--provider` names. */
export const providers = ["openai", "anthropic", "offline"] as const

/** A provider `--provider` names. */
export type ProviderName = (typeof providers)[number]

export const flags = {
  input: Options.text("input").pipe(
    Options.withPseudoName("file"),
    Options.withDescription("A text file with the document to process (default: a bundled sample report)"),
    Options.optional
  ),
  maxInputBytes: Options.text("max-input-bytes").pipe(
    Options.withPseudoName("bytes"),
    Options.withDescription(`The largest --input accepted, in bytes (default: ${defaultMaxInputBytes}, 1 MiB)`),
    Options.optional
  ),
  budget: Options.text("budget").pipe(
    Options.withPseudoName("dollars"),
    Options.withDescription("The most the run may spend, in dollars; the run stops before passing it"),
    Options.optional
  ),
  provider: Options.choice("provider", providers).pipe(
    Options.withDescription(
      "The provider: openai (OPENAI_API_KEY, OPENAI_BASE_URL), anthropic (ANTHROPIC_API_KEY, ANTHROPIC_BASE_URL), " +
        "or offline (default: openai when OPENAI_API_KEY is set, else offline)"
    ),
    Options.optional
  ),
  model: Options.text("model").pipe(
    Options.withPseudoName("name"),
    Options.withDescription("The model to ask (offline: the model whose prices are simulated)"),
    Options.optional
  ),
  store: Options.text("store").pipe(
    Options.withPseudoName("file.db|postgres://..."),
    Options.withDescription("Run durably, keeping the run in this SQLite file or PostgreSQL database (needs --run-id)"),
    Options.optional
  ),
  runId: Options.text("run-id").pipe(
    Options.withPseudoName("id"),
    Options.withDescription("The durable run's id: running it again returns the stored result or resumes the run"),
    Options.optional
  ),
  json: Options.boolean("json").pipe(Options.withDescription("Print the result as one JSON object, alone on stdout")),
  mermaid: Options.boolean("mermaid").pipe(
    Options.withDescription("Print the chosen pipeline's graph as a Mermaid flowchart, without running it")
  ),
  gantt: Options.boolean("gantt").pipe(Options.withDescription("Print the run's timeline as a Mermaid Gantt chart")),
  trace: Options.boolean("trace").pipe(Options.withDescription("Print the run's spans through OpenTelemetry")),
  ...fixtureFlags
}

const valueFlags = [
  "--input",
  "--max-input-bytes",
  "--budget",
  "--provider",
  "--model",
  "--store",
  "--run-id",
  ...fixtureValueFlags
]
const switches = ["--json", "--mermaid", "--gantt", "--trace"]

// The flags @effect/cli adds to every command.
const builtIn = ["--help", "--version", "--wizard", "--completions", "--log-level"]

/**
 * Refuses an unknown flag, a flag of the demo given twice, or one that takes a value given none (last, followed by another
 * `--flag`, or `--flag=`). `@effect/cli` would call the first "unknown argument" and take the next flag as the value in the
 * second. Anything else is left to `@effect/cli`. Without a terminal, `--wizard` is refused too.
 */
export const checkArgs = (args: ReadonlyArray<string>, terminal: boolean): Effect.Effect<void, InputError> =>
  Effect.suspend(() => {
    // Without a terminal, the wizard would wait for answers nobody can give.
    if (!terminal && args.includes("--wizard")) {
      return Effect.fail(new InputError({ message: "--wizard asks its questions in a terminal; give the flags instead" }))
    }
    const seen = new Set<string>()
    for (let i = 0; i < args.length; i++) {
      const arg = args[i]!
      const name = arg.split("=", 1)[0]!
      const takesValue = valueFlags.includes(name)
      // With commands beside the flags, @effect/cli would call an unknown flag an invalid command.
      if (name.startsWith("--") && !takesValue && !switches.includes(name) && !builtIn.includes(name)) {
        return Effect.fail(new InputError({ message: `Received unknown argument: '${name}'` }))
      }
      if (!takesValue && !switches.includes(name)) continue
      if (seen.has(name)) return Effect.fail(new InputError({ message: `${name} is given more than once` }))
      seen.add(name)
      if (!takesValue) continue
      const inline = arg.length > name.length
      const value = inline ? arg.slice(name.length + 1) : args[++i]
      if (value === undefined || (inline ? value === "" : value.startsWith("--"))) {
        return Effect.fail(new InputError({ message: `${name} needs a value` }))
      }
    }
    if (seen.has("--record") && seen.has("--replay")) {
      return Effect.fail(new InputError({ message: "--record and --replay cannot be given together" }))
    }
    return Effect.void
  })

// Digits with an optional fraction and exponent: no sign, hex, spaces, NaN or Infinity.
const decimal = /^(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?$/

/** The most a budget can be: `Cost` counts nano-dollars in a safe integer, about nine million dollars. */
export const maxBudgetDollars = Math.floor(Number.MAX_SAFE_INTEGER / 1e9)

/** `--budget`: a non-negative number of dollars that a `Cost` can hold. */
export const Budget = Schema.String.pipe(
  Schema.pattern(decimal, { message: () => "must be a non-negative number of dollars" }),
  Schema.compose(Schema.NumberFromString),
  Schema.filter((dollars) => Number.isSafeInteger(Math.round(dollars * 1e9)), {
    message: () => `must be at most ${maxBudgetDollars} dollars (the most a Cost can hold)`
  })
)

/** `--max-input-bytes`: a whole number of bytes, at least 1. */
export const MaxInputBytes = Schema.String.pipe(
  Schema.pattern(/^\d+$/, { message: () => "must be a whole number of bytes" }),
  Schema.compose(Schema.NumberFromString),
  Schema.filter((bytes) => Number.isSafeInteger(bytes) && bytes >= 1, {
    message: () => "must be a whole number of bytes, at least 1"
  })
)

/** `--model`: a name, not empty and without spaces around it. */
export const ModelName = Schema.String.pipe(
  Schema.filter((name) => name.length > 0 && name.trim() === name, {
    message: () => "must name a model (not empty, no spaces around it)"
  })
)

/** `--run-id`: an id, not empty, without spaces around it or control characters (a run cannot have them). */
export const RunId = Schema.String.pipe(
  Schema.filter((id) => id.length > 0 && id.trim() === id, {
    message: () => "must name a run (not empty, no spaces around it)"
  }),
  Schema.filter((id) => !/\p{Cc}/u.test(id), { message: () => "cannot have control characters" })
)

/** Where durable runs are kept: a PostgreSQL database given by URL, or else a SQLite file. */
export type StoreLocation =
  | { readonly _tag: "Postgres"; readonly url: string }
  | { readonly _tag: "Sqlite"; readonly filename: string }

/** `--store`: a `postgres://` (or `postgresql://`) URL, or the path of a SQLite file. */
export const StoreFlag = Schema.String.pipe(
  Schema.filter((store) => store.length > 0, { message: () => "must be a SQLite file or a postgres:// URL" }),
  Schema.transform(
    Schema.Union(
      Schema.TaggedStruct("Postgres", { url: Schema.String }),
      Schema.TaggedStruct("Sqlite", { filename: Schema.String })
    ),
    {
      strict: true,
      decode: (store): StoreLocation =>
        /^postgres(?:ql)?:\/\//.test(store) ? { _tag: "Postgres", url: store } : { _tag: "Sqlite", filename: store },
      encode: (location) => location._tag === "Postgres" ? location.url : location.filename
    }
  )
)

/** Decodes an optional flag's text with `schema`; a refusal says which flag, why, and what was given. */
export const decodeFlag = <A>(flag: string, schema: Schema.Schema<A, string>, text: Option.Option<string>) =>
  Option.match(text, {
    onNone: () => Effect.succeed(Option.none<A>()),
    onSome: (value) =>
      Either.match(Schema.decodeEither(schema)(value), {
        onRight: (decoded) => Effect.succeed(Option.some(decoded)),
        onLeft: (error) => {
          const why = ParseResult.ArrayFormatter.formatErrorSync(error)[0]?.message ?? "is not valid"
          return Effect.fail(new InputError({ message: `--${flag} ${why}, got ${quoted(value)}` }))
        }
      })
  })

/** The budget as a `Cost`, once decoded. */
export const budgetCost = (dollars: Option.Option<number>): Cost.Cost | undefined =>
  Option.getOrUndefined(Option.map(dollars, Cost.dollars))
