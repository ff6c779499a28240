/**
 * A step over a list known only at run time: one part per item (summarise each chunk, research each company found),
 * each a step of the run in everything that can be seen and paid for. Each item has its own start and end events
 * (`sections[3]`, or the key given), its own span under the step's, its own retries and timeout (the step's policy,
 * per item), its own line in usage by step and in the timeline; its calls are held to the run's budget; a durable
 * run journals each item on its own, so a resumed run runs only the items that had not finished.
 *
 * @since 0.3.0
 */
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Either from "effect/Either"
import * as Schema from "effect/Schema"
import type * as Context from "effect/Context"
import * as Composite from "./internal/composite.js"
import { isDecision } from "./internal/decision.js"
import * as Plans from "./internal/plans.js"
import type * as Pipeline from "./Pipeline.js"
import type * as SubPipeline from "./SubPipeline.js"
import * as OptionKeys from "./OptionKeys.js"
import * as Step from "./Step.js"

/**
 * How a failing item affects the others.
 *
 * - `"failFast"` (the default): the first item that fails after its retries interrupts the others and fails the
 *   step; the run's `StepFailed` names the item in its `path`.
 * - `"settle"`: every item runs; the step's output has each item's success or failure, in order. A stop, a refused
 *   budget and a bad figure given to the ledger still end the step: they are decisions, not an item's failure.
 *
 * @since 0.3.0
 * @category models
 */
export type Mode = "failFast" | "settle"

/**
 * The output of a step over a list: the items' outputs in the order of the list, or, in `"settle"` mode, each item's
 * success or failure.
 *
 * @since 0.3.0
 * @category models
 */
export type Outputs<B, E, M extends Mode> = M extends "settle" ? ReadonlyArray<Either.Either<B, E | Step.StepTimeout>>
  : ReadonlyArray<B>

/**
 * The default bound on a list's length: a model that answers with a million "chunks" must not launch a million calls.
 *
 * @since 0.3.0
 * @category constants
 */
export const defaultMaxItems = 1000

/**
 * Options of {@link make}.
 *
 * @since 0.3.0
 * @category models
 */
export interface Options<Deps extends Step.Dependencies, I, B, E, R, EI, RI, M extends Mode, X extends E> {
  /** The steps this one needs; their outputs arrive under the same keys. */
  readonly after?: Deps | undefined
  /**
   * The list, from the dependencies' outputs. In a durable run it is computed again when the run resumes, so it must
   * depend on nothing else: a list that costs a call to find is a step of its own, before this one.
   */
  readonly items: (inputs: Step.Inputs<Deps>) => ReadonlyArray<I> | Effect.Effect<ReadonlyArray<I>, EI, RI>
  /** One item's work. */
  readonly each: (item: I, index: number, inputs: Step.Inputs<Deps>) => Effect.Effect<B, E, R>
  /**
   * An item's name in the run, after the step's (`sections[intro]`): unique in the list, without `[`, `]`, `/`, `#`
   * or control characters. Default: its index. A
   * durable run journals an item under it, so a key that follows the item keeps a resumed run's journal right even if
   * the list comes back in another order.
   */
  readonly key?: ((item: I, index: number) => string) | undefined
  /** At most this many items run at once. Default: 1, one after another, as `Effect.forEach`. */
  readonly concurrency?: number | "unbounded" | undefined
  /** A longer list fails the step with `InvalidItems` before any item runs. Default: {@link defaultMaxItems}. */
  readonly maxItems?: number | undefined
  /** See {@link Mode}. Default: `"failFast"`. */
  readonly mode?: M | undefined
  /** Time allowed for one attempt of one item. */
  readonly timeout?: Step.Options<Deps, B, E, R>["timeout"]
  /** How an item's failures are retried (each item has its own attempts). */
  readonly retry?: Step.Retry<NoInfer<E> | Step.StepTimeout> | undefined
  /** The schema of an item's output, for runs that store it (a durable run journals each item through it). */
  readonly output?: Schema.Schema<B, any, never> | undefined
  /** The schema of errors `each` fails with that a store should keep as themselves (see `Step.make`). */
  readonly error?: Schema.Schema<X, any, never> | undefined
}

/**
 * The list could not be run: too long, not a list, or with two items under one key. Nothing ran.
 *
 * @since 0.3.0
 * @category errors
 */
export class InvalidItems extends Data.TaggedError("InvalidItems")<{
  readonly step: string
  readonly reason: "TooMany" | "NotAList" | "DuplicateKey" | "InvalidKey"
  readonly detail: string
}> {
  override get message(): string {
    return `Step "${this.step}" cannot run its items: ${this.detail}`
  }
}

/**
 * Makes a step that runs `each` on every item of the list `items` computes.
 *
 * @example
 * ```ts
 * const summaries = ForEach.make("summaries", {
 *   after: { chunks },
 *   items: ({ chunks }) => chunks,
 *   each: (chunk) => Summarizer.run(chunk),
 *   concurrency: 4,
 *   retry: 2
 * })
 * ```
 *
 * @since 0.3.0
 * @category constructors
 */
export const make = <
  const Name extends string,
  I,
  B,
  E = never,
  R = never,
  EI = never,
  RI = never,
  const Deps extends Step.Dependencies = {},
  M extends Mode = "failFast",
  X extends E = never
>(
  name: Name,
  options: Options<Deps, I, B, E, R, EI, RI, M, X>
): Step.Step<Name, Outputs<B, E, M>, E | EI | InvalidItems, R | RI, Deps> => {
  const settings = checked<I>(name, options, ["each", "timeout", "retry", "output", "error"])
  const { concurrency, maxItems, mode } = settings
  if (typeof options.each !== "function") invalid(name, `each must be a function, got ${typeof options.each}`)
  const item = options.output
  if (item !== undefined && !Schema.isSchema(item)) invalid(name, `output must be a Schema, got ${typeof item}`)
  const output = outputsSchema(item, mode, options.error)
  const { each, items } = options
  const step: Step.Step<Name, Outputs<B, E, M>, E | EI | InvalidItems, R | RI, Deps> = Composite.make(
    Step.makeEither(name, {
      after: options.after,
      timeout: options.timeout,
      retry: options.retry as Step.Retry<unknown>,
      output: output as Schema.Schema<Outputs<B, E, M>, any, never> | undefined,
      error: options.error,
      run: (inputs) =>
        overItems(step, items(inputs), settings, (parts, name, item, index) =>
          parts.run(name, Effect.suspend(() => each(item, index, inputs)), options.output)) as Effect.Effect<any, any, any>
    }),
    { _tag: "ForEach", concurrency, maxItems, item }
  )
  return step
}

const invalid = (step: string, detail: string): never => {
  throw new Step.InvalidStep({ step, detail })
}

/** The options both constructors share, checked. */
const checked = <I>(
  name: string,
  options: {
    readonly items: unknown
    readonly key?: ((item: I, index: number) => string) | undefined
    readonly concurrency?: number | "unbounded" | undefined
    readonly maxItems?: number | undefined
    readonly mode?: Mode | undefined
  },
  own: ReadonlyArray<string>
): Settings<I> => {
  const unknownKey = OptionKeys.unknown(options, ["after", "items", "key", "concurrency", "maxItems", "mode", ...own])
  if (unknownKey !== undefined) invalid(name, unknownKey)
  if (typeof options.items !== "function") invalid(name, `items must be a function, got ${typeof options.items}`)
  const key = options.key
  if (key !== undefined && typeof key !== "function") invalid(name, `key must be a function, got ${typeof key}`)
  const concurrency = options.concurrency === "unbounded" ? Infinity : options.concurrency ?? 1
  if (!Composite.isCount(concurrency, true)) {
    invalid(name, `concurrency must be a whole number of at least 1 or "unbounded", got ${String(options.concurrency)}`)
  }
  const maxItems = options.maxItems ?? defaultMaxItems
  if (!Composite.isCount(maxItems)) invalid(name, `maxItems must be a whole number of at least 1, got ${String(options.maxItems)}`)
  const mode: Mode = options.mode ?? "failFast"
  if (mode !== "failFast" && mode !== "settle") invalid(name, `mode must be "failFast" or "settle", got ${String(mode)}`)
  return { concurrency, maxItems, mode, key }
}

/**
 * Options of {@link pipeline}.
 *
 * @since 0.3.0
 * @category models
 */
export interface PipelineOptions<Deps extends Step.Dependencies, I, P extends Pipeline.Any, EI, RI, C, M extends Mode> {
  readonly after?: Deps | undefined
  /** The list, as for {@link make}. */
  readonly items: (inputs: Step.Inputs<Deps>) => ReadonlyArray<I> | Effect.Effect<ReadonlyArray<I>, EI, RI>
  /** The pipeline run for each item. */
  readonly pipeline: P
  /** Services the pipeline takes as its input, made from the item. */
  readonly input?: ((item: I, index: number, inputs: Step.Inputs<Deps>) => Context.Context<C>) | undefined
  readonly key?: ((item: I, index: number) => string) | undefined
  readonly concurrency?: number | "unbounded" | undefined
  readonly maxItems?: number | undefined
  readonly mode?: M | undefined
}

/**
 * Makes a step that runs a pipeline for each item of a list: a sub-pipeline per item (research each company found).
 * Each item is a part (`research[acme]`) whose own parts are the pipeline's steps (`research[acme]/extract`), seen,
 * metered, capped and journaled as any step of the run; see `SubPipeline` for what its errors and stops mean.
 *
 * @since 0.3.0
 * @category constructors
 */
export const pipeline = <
  const Name extends string,
  I,
  A,
  E,
  R,
  O,
  D,
  C = never,
  EI = never,
  RI = never,
  const Deps extends Step.Dependencies = {},
  M extends Mode = "failFast"
>(
  name: Name,
  options: PipelineOptions<Deps, I, Pipeline.Pipeline<A, E, R, O, D>, EI, RI, C, M>
): Step.Step<
  Name,
  Outputs<A, SubPipeline.Errors<Pipeline.Pipeline<A, E, R, O, D>>, M>,
  SubPipeline.Errors<Pipeline.Pipeline<A, E, R, O, D>> | EI | InvalidItems,
  Exclude<R, C> | RI,
  Deps
> => {
  const settings = checked<I>(name, options, ["pipeline", "input"])
  const { input, items, pipeline } = options
  const plan = Plans.planOf(pipeline) as Plans.Plan | undefined
  if (plan === undefined) invalid(name, "pipeline must be made by Pipeline.make")
  if (input !== undefined && typeof input !== "function") invalid(name, `input must be a function, got ${typeof input}`)
  const item = pipeline.output.output
  const step: Step.Any = Composite.make(
    Step.makeEither(name, {
      after: options.after,
      output: outputsSchema(item, settings.mode, undefined),
      run: (inputs): Effect.Effect<any, any, any> =>
        overItems(step, items(inputs), settings, (parts, name, item, index) =>
          parts.pipeline(name, plan!, input?.(item, index, inputs) as Context.Context<never> | undefined)) as Effect.Effect<any, any, any>
    }),
    { _tag: "ForEach", concurrency: settings.concurrency, maxItems: settings.maxItems, item, pipeline }
  )
  return step as any
}

/**
 * The schema of the step's output, for runs that store it: the items' outputs, or in `"settle"` mode each item's
 * `Either`, whose failures are kept through the declared error schema when it describes them, else as they come
 * (a store may keep an undeclared error only as its tag and message).
 */
const outputsSchema = (
  item: Schema.Schema.AnyNoContext | undefined,
  mode: Mode,
  error: Schema.Schema.AnyNoContext | undefined
): Schema.Schema.AnyNoContext | undefined => {
  if (item === undefined) return undefined
  if (mode === "failFast") return Schema.Array(item)
  return Schema.Array(Schema.Either({ right: item, left: error === undefined ? Schema.Unknown : Schema.Union(error, Schema.Unknown) }))
}

/** How a step runs its items. */
interface Settings<I> {
  readonly concurrency: number
  readonly maxItems: number
  readonly mode: Mode
  readonly key: ((item: I, index: number) => string) | undefined
}

/** Runs `one` on each item of the list, once it is checked, as the step's settings say. */
const overItems = <I>(
  step: Step.Any,
  given: ReadonlyArray<I> | Effect.Effect<ReadonlyArray<I>, unknown, unknown>,
  { concurrency, key, maxItems, mode }: Settings<I>,
  one: (parts: Composite.Parts, name: string, item: I, index: number) => Effect.Effect<unknown, unknown, unknown>
): Effect.Effect<ReadonlyArray<unknown>, unknown, unknown> =>
  Effect.gen(function*() {
    const list = Effect.isEffect(given) ? yield* given : given
    const parts = yield* Composite.parts(step)
    const names = yield* namesOf(parts.path, list, maxItems, key)
    const each = (item: I, index: number) => one(parts, names[index]!, item, index)
    const run = mode === "failFast" ? each : (item: I, index: number) =>
      Effect.catchIf(
        Effect.map(each(item, index), Either.right),
        (error) => !isDecision(error),
        (error) => Effect.succeed(Either.left(error))
      )
    return yield* bounded(list, run, concurrency)
  })

/**
 * `Effect.forEach` under a concurrency bound that, when an item fails, waits for the items it interrupts before it
 * fails: each item's end is told, and its finalizers have run, before the step's. (`Effect.forEach` with a bound
 * returns at once when items are still queued; without one it waits.)
 */
const bounded = <I, A, E, R>(
  list: ReadonlyArray<I>,
  run: (item: I, index: number) => Effect.Effect<A, E, R>,
  concurrency: number
): Effect.Effect<Array<A>, E, R> => {
  if (concurrency >= list.length) return Effect.forEach(list, run, { concurrency: "unbounded" })
  return Effect.suspend(() => {
    let running = 0
    let wake: (() => void) | undefined
    const counted = (item: I, index: number) =>
      Effect.uninterruptibleMask((restore) => {
        running++
        return Effect.ensuring(restore(run(item, index)), Effect.sync(() => --running === 0 && wake?.()))
      })
    const settled = Effect.async<void>((resume) => {
      if (running === 0) resume(Effect.void)
      else wake = () => resume(Effect.void)
    })
    return Effect.onError(Effect.forEach(list, counted, { concurrency }), () => settled)
  })
}

/** The items' names in the run, once the list is checked. */
const namesOf = <I>(
  path: string,
  list: unknown,
  maxItems: number,
  key: ((item: I, index: number) => string) | undefined
): Effect.Effect<ReadonlyArray<string>, InvalidItems> =>
  Effect.suspend(() => {
    const fail = (reason: InvalidItems["reason"], detail: string) =>
      Effect.fail(new InvalidItems({ step: path, reason, detail }))
    if (!Array.isArray(list)) return fail("NotAList", `items gave ${describe(list)}, not a list`)
    if (list.length > maxItems) {
      return fail("TooMany", `${list.length} items is more than maxItems (${maxItems}); nothing was run`)
    }
    const names: Array<string> = []
    const seen = new Set<string>()
    for (let index = 0; index < list.length; index++) {
      const k = key === undefined ? String(index) : key(list[index], index)
      if (typeof k !== "string" || k.length === 0) {
        return fail("InvalidKey", `the key of item ${index} is ${describe(k)}, not a non-empty string`)
      }
      // A key with these would make a name that reads as another part's (`m[a]/b`), or break a display's line.
      if (/[[\]/#\p{Cc}]/u.test(k)) {
        return fail("InvalidKey", `the key of item ${index} is ${describe(k)}: a key cannot hold [, ], /, # or control characters`)
      }
      if (seen.has(k)) return fail("DuplicateKey", `two items have the key "${k}"`)
      seen.add(k)
      names.push(`${path}[${k}]`)
    }
    return Effect.succeed(names)
  })

const describe = (u: unknown): string =>
  u === null ? "null" : Array.isArray(u) ? "a list" : typeof u === "string" ? JSON.stringify(u) : typeof u
