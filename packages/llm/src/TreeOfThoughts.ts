/**
 * Tree of Thoughts as a bounded recipe: from a problem, a thinker proposes `breadth` next thoughts for each path kept,
 * a scorer (a model or code) scores each new path, and the best `beam` paths go one level deeper, at most `depth`
 * levels; a path scoring at least `threshold` ends the search early. Code decides the shape; the models only read
 * and write text.
 *
 * The problem is a step of its own (`puzzle.problem`); each level is a `ForEach` (`puzzle.level1`,
 * `puzzle.level2`...), one item per candidate (`puzzle.level2[1.0]`: the first candidate from the second path kept),
 * each proposed and scored in its item; the last step (`puzzle`) picks the best path. A level has at most
 * `beam × breadth` items, so a search makes at most `depth × beam × breadth` proposals and as many scorings.
 *
 * @since 0.3.0
 */
import { ForEach, Step } from "@trellis/core"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import type * as Agent from "./Agent.js"
import * as Recipe from "./internal/recipes.js"
import type { LanguageModel } from "./LanguageModel.js"

/**
 * A path of thoughts from the problem, and its score.
 *
 * @since 0.3.0
 * @category schemas
 */
export const Thought = Schema.Struct({ path: Schema.Array(Schema.String), score: Schema.Number })

/**
 * @since 0.3.0
 * @category models
 */
export type Thought = typeof Thought.Type

/**
 * A model scorer's answer (`Agent.make({ instructions, output: TreeOfThoughts.Score })`).
 *
 * @since 0.3.0
 * @category schemas
 */
export const Score = Schema.Struct({ score: Schema.Number })

/**
 * @since 0.3.0
 * @category models
 */
export type Score = typeof Score.Type

/**
 * What the thinker and the scorer receive: the problem, the path so far, and for the thinker which of the `breadth`
 * candidates it proposes (from 0), so that a prompt or code can ask for a different one each time.
 *
 * @since 0.3.0
 * @category models
 */
export interface Node {
  readonly problem: string
  readonly path: ReadonlyArray<string>
  readonly candidate: number
}

/**
 * Why a search ended: a path reached the threshold, every level ran, or (with `whenOutOfBudget: "end"`) the budget
 * refused a call of the last level that ran.
 *
 * @since 0.3.0
 * @category models
 */
export type Ending = "Threshold" | "Depth" | "OutOfBudget"

/**
 * The search's output: the best path found (none only when the budget refused the first level entirely), the levels
 * that ran, every scored path, and why it ended.
 *
 * @since 0.3.0
 * @category schemas
 */
export const Outcome = Schema.Struct({
  best: Schema.UndefinedOr(Thought),
  levels: Schema.NonNegativeInt,
  explored: Schema.NonNegativeInt,
  ended: Schema.Literal("Threshold", "Depth", "OutOfBudget")
})

/**
 * @since 0.3.0
 * @category models
 */
export type Outcome = typeof Outcome.Type

/** One candidate of a level: scored, or `null` when the budget refused one of its calls. */
const Candidate = Schema.NullOr(Thought)

/**
 * Options of {@link make}.
 *
 * @since 0.3.0
 * @category models
 */
export interface Options<Deps extends Step.Dependencies, ET, RT, ES, RS> {
  /** The steps the problem is made from; their outputs arrive under the same keys. */
  readonly after?: Deps | undefined
  /** The problem, from the dependencies' outputs. */
  readonly problem: (inputs: Step.Inputs<Deps>) => string
  /** Proposes one next thought for a path: an agent (answering in text) or code. */
  readonly thinker: Agent.Agent<string, ET, RT> | ((node: Node) => Effect.Effect<string, ET, RT>)
  /** Scores a path, higher is better: an agent whose output is a {@link Score}, or code. */
  readonly scorer: Agent.Agent<Score, ES, RS> | ((node: Node) => Effect.Effect<number, ES, RS>)
  /** Candidates proposed for each path kept (k). */
  readonly breadth: number
  /** Paths kept at each level (b). */
  readonly beam: number
  /** The most levels (d). */
  readonly depth: number
  /** A path scoring at least this ends the search after its level. Default: none, every level runs. */
  readonly threshold?: number | undefined
  /** Candidates proposed and scored at once. Default: all of a level. */
  readonly concurrency?: number | undefined
  /** `"fail"` (the default): a refused budget fails the step; `"end"`: the search ends with the best path so far. */
  readonly whenOutOfBudget?: "fail" | "end" | undefined
  /** Time allowed for one attempt of one candidate. */
  readonly timeout?: Duration.DurationInput | undefined
  /** How a candidate's failures are retried. */
  readonly retry?: Step.Retry<Agent.AgentError<ET | ES> | Step.StepTimeout> | undefined
}

type Problem<Name extends string, Deps extends Step.Dependencies> = Step.Step<`${Name}.problem`, string, never, never, Deps>
type Level<E, R, P extends Step.Any> = Step.Step<string, ReadonlyArray<Thought | null>, E, R, { readonly problem: P }>

/**
 * A Tree of Thoughts step: its output is the search's {@link Outcome}.
 *
 * @since 0.3.0
 * @category models
 */
export type TreeOfThoughts<Name extends string, ET, RT, ES, RS, Deps extends Step.Dependencies> = Step.Step<
  Name,
  Outcome,
  never,
  never,
  {
    readonly [level: string]: Level<
      Agent.AgentError<ET | ES> | ForEach.InvalidItems,
      LanguageModel | RT | RS,
      Problem<Name, Deps>
    >
  }
>

const thinkPrompt = (node: Node): string =>
  `Problem:\n${node.problem}\n\n` +
  (node.path.length === 0 ? "No steps taken yet.\n\n" : `Steps so far:\n${Recipe.numbered(node.path)}\n\n`) +
  `Propose the next step only (candidate ${node.candidate + 1}: make it differ from the other candidates).`

const scorePrompt = (node: Node): string =>
  `Problem:\n${node.problem}\n\nSteps so far:\n${Recipe.numbered(node.path)}\n\n` +
  `Score how likely these steps lead to a correct solution.`

/** The paths a level keeps: its best `beam`, the earlier candidate first among equals. */
const keep = (level: ReadonlyArray<Thought | null>, beam: number): ReadonlyArray<Thought> =>
  level
    .flatMap((thought, index) => (thought === null ? [] : [{ thought, index }]))
    .sort((a, b) => b.thought.score - a.thought.score || a.index - b.index)
    .slice(0, beam)
    .map(({ thought }) => thought)

const best = (level: ReadonlyArray<Thought | null>): Thought | undefined => keep(level, 1)[0]

/**
 * Makes a Tree of Thoughts search.
 *
 * @example
 * ```ts
 * const solve = TreeOfThoughts.make("puzzle", {
 *   problem: () => "Use 4 9 10 13 and + - * / to make 24.",
 *   thinker: Agent.make({ name: "thinker", instructions: "Propose one arithmetic step.", temperature: 0.7 }),
 *   scorer: (node) => Effect.succeed(checkArithmetic(node.path)),
 *   breadth: 3, beam: 2, depth: 3, threshold: 1
 * })
 * ```
 *
 * @since 0.3.0
 * @category constructors
 */
export const make = <
  const Name extends string,
  ET = never,
  RT = never,
  ES = never,
  RS = never,
  const Deps extends Step.Dependencies = {}
>(
  name: Name,
  options: Options<Deps, ET, RT, ES, RS>
): TreeOfThoughts<Name, ET, RT, ES, RS, Deps> => {
  Recipe.knownKeys(name, options, [
    "after", "problem", "thinker", "scorer", "breadth", "beam", "depth", "threshold", "concurrency",
    "whenOutOfBudget", "timeout", "retry"
  ])
  Recipe.fn(name, "problem", options.problem)
  Recipe.actor(name, "thinker", options.thinker)
  Recipe.actor(name, "scorer", options.scorer)
  const breadth = Recipe.count(name, "breadth", options.breadth)
  const beam = Recipe.count(name, "beam", options.beam)
  const depth = Recipe.count(name, "depth", options.depth)
  const { threshold } = options
  if (threshold !== undefined && (typeof threshold !== "number" || Number.isNaN(threshold))) {
    Recipe.invalid(name, `threshold must be a number, got ${String(threshold)}`)
  }
  const width = beam * breadth
  const concurrency = options.concurrency === undefined ? width : Recipe.count(name, "concurrency", options.concurrency)
  const whenOutOfBudget = Recipe.outOfBudget(name, options.whenOutOfBudget)
  const { scorer, thinker } = options
  const reached = (level: ReadonlyArray<Thought | null>) =>
    threshold !== undefined && level.some((thought) => thought !== null && thought.score >= threshold)

  const problem = Step.make(`${name}.problem`, {
    ...(options.after === undefined ? {} : { after: options.after }),
    output: Schema.String,
    run: (inputs: Step.Inputs<Deps>) => Effect.sync(() => options.problem(inputs))
  })

  // One candidate: a next thought for its path, then the new path's score.
  const candidate = (text: string, parent: ReadonlyArray<string>, index: number) =>
    Effect.gen(function*() {
      const thought = yield* Recipe.ask(thinker, { problem: text, path: parent, candidate: index }, thinkPrompt)
      const path = [...parent, thought.trim()]
      const node: Node = { problem: text, path, candidate: index }
      const score = Recipe.isAgentLike(scorer)
        ? (yield* Recipe.ask(scorer as Agent.Agent<Score, ES, RS>, node, scorePrompt)).score
        : yield* (scorer as (node: Node) => Effect.Effect<number, ES, RS>)(node)
      return { path, score }
    })
  const each = (text: string, parent: ReadonlyArray<string>, index: number) =>
    whenOutOfBudget === "end" ? Recipe.unlessRefused(candidate(text, parent, index)) : candidate(text, parent, index)

  const levels: Array<Step.Any> = []
  for (let n = 1; n <= depth; n++) {
    const previous = levels[n - 2]
    const level = ForEach.make(`${name}.level${n}`, {
      after: previous === undefined ? { problem } : { problem, previous },
      concurrency,
      maxItems: width,
      output: Candidate,
      ...(options.timeout === undefined ? {} : { timeout: options.timeout }),
      ...(options.retry === undefined ? {} : { retry: options.retry as Step.Retry<unknown> }),
      // Code decides the next level from the last: nothing past the threshold or a refused call, else the best
      // `beam` paths, each expanded `breadth` times.
      items: (inputs: { readonly problem: string; readonly previous?: ReadonlyArray<Thought | null> }) => {
        const last = inputs.previous
        if (last === undefined) return Array.from({ length: breadth }, (_, c) => ({ parent: [] as ReadonlyArray<string>, p: 0, c }))
        if (reached(last) || last.length === 0 || last.includes(null)) return []
        return keep(last, beam).flatMap((thought, p) =>
          Array.from({ length: breadth }, (_, c) => ({ parent: thought.path, p, c }))
        )
      },
      key: (item) => `${item.p}.${item.c}`,
      each: (item, _index, inputs) => each(inputs.problem, item.parent, item.c)
    })
    levels.push(level)
  }

  const after: Record<string, Step.Any> = {}
  levels.forEach((level, index) => (after[`level${index + 1}`] = level))
  return Step.make(name, {
    after,
    output: Outcome,
    run: (inputs: Record<string, ReadonlyArray<Thought | null>>) =>
      Effect.sync((): Outcome => {
        const ran = levels.map((_, index) => inputs[`level${index + 1}`]!).filter((level) => level.length > 0)
        const all = ran.flat()
        // The best of all levels, the deeper first among equals: a search may end before its last level.
        const found = ran.reduceRight<Thought | undefined>((acc, level) => {
          const top = best(level)
          return top !== undefined && (acc === undefined || top.score > acc.score) ? top : acc
        }, undefined)
        const last = ran.at(-1)
        const ended: Ending = last === undefined || last.includes(null)
          ? "OutOfBudget"
          : reached(last)
          ? "Threshold"
          : "Depth"
        return { best: found, levels: ran.length, explored: all.filter((t) => t !== null).length, ended }
      })
  }) as unknown as TreeOfThoughts<Name, ET, RT, ES, RS, Deps>
}
