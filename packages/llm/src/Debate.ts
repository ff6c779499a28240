/**
 * Debate as a bounded recipe: participants answer a question, then for a given number of rounds each sees the
 * others' last answers and answers again; the debate ends early once they agree, and a judge settles what is still
 * disputed after the last round. Code decides the shape (who speaks, how many rounds, what counts as agreement); the
 * models only read and write text.
 *
 * The question is a step of its own (`panel.question`); the opening answers are a `ForEach`, one item per participant
 * (`panel.opening[optimist]`); the later rounds are a `Loop` (`panel.rounds#1`...), each round's answers asked at
 * once; the judge is the last step (`panel`). At most `participants × rounds` answers and one judgement are paid for.
 *
 * @since 0.3.0
 */
import { ForEach, Loop, Step } from "@trellis/core"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import type * as Agent from "./Agent.js"
import * as Recipe from "./internal/recipes.js"
import type { LanguageModel } from "./LanguageModel.js"

/**
 * A participant's answer, and the judge's: a short answer (what agreement compares) and the reasoning behind it.
 * Participants and the judge are agents with this output (`Agent.make({ instructions, output: Debate.Position })`).
 *
 * @since 0.3.0
 * @category schemas
 */
export const Position = Schema.Struct({ answer: Schema.String, reasoning: Schema.String })

/**
 * @since 0.3.0
 * @category models
 */
export type Position = typeof Position.Type

/**
 * How the answer was reached: every participant gave it, the judge chose it, or (when the budget refused the
 * judge's call under `whenOutOfBudget: "end"`) most participants gave it in the last round.
 *
 * @since 0.3.0
 * @category models
 */
export type Decision = "Agreement" | "Judge" | "Majority"

/**
 * The state carried between rounds: every round's answers, in the participants' order, and whether the last agree.
 *
 * @since 0.3.0
 * @category schemas
 */
export const State = Schema.Struct({ transcript: Schema.Array(Schema.Array(Position)), agreed: Schema.Boolean })

/**
 * @since 0.3.0
 * @category models
 */
export type State = typeof State.Type

/**
 * A debate's output: the answer and its reasoning, how it was decided, every round's answers, and why the rounds
 * ended (`"Condition"`: agreement).
 *
 * @since 0.3.0
 * @category schemas
 */
export const Outcome = Schema.Struct({
  answer: Schema.String,
  reasoning: Schema.String,
  decidedBy: Schema.Literal("Agreement", "Judge", "Majority"),
  rounds: Schema.NonNegativeInt,
  ended: Schema.Literal("Condition", "MaxIterations", "OutOfBudget"),
  transcript: Schema.Array(Schema.Array(Position))
})

/**
 * @since 0.3.0
 * @category models
 */
export type Outcome = typeof Outcome.Type

/**
 * Options of {@link make}.
 *
 * @since 0.3.0
 * @category models
 */
export interface Options<Deps extends Step.Dependencies, EP, RP, EJ, RJ> {
  /** The steps the question is made from; their outputs arrive under the same keys. */
  readonly after?: Deps | undefined
  /** The question, from the dependencies' outputs. */
  readonly question: (inputs: Step.Inputs<Deps>) => string
  /** The participants, at least two, with names unique among them (an answer is shown under its participant's name). */
  readonly participants: ReadonlyArray<Agent.Agent<Position, EP, RP>>
  /** Settles a debate still disputed after the last round. */
  readonly judge: Agent.Agent<Position, EJ, RJ>
  /** The most rounds, the opening one included. */
  readonly rounds: number
  /** Whether a round's answers agree. Default: every `answer` the same, ignoring case, spaces and a final stop. */
  readonly agree?: ((answers: ReadonlyArray<Position>) => boolean) | undefined
  /**
   * `"fail"` (the default): a refused budget fails the step; `"end"`: the rounds end with the last complete one, and
   * if the judge's call is refused too, the answer most participants gave in it is taken.
   */
  readonly whenOutOfBudget?: "fail" | "end" | undefined
  /** Time allowed for one attempt of an opening answer, and of each later round. */
  readonly timeout?: Duration.DurationInput | undefined
  /** How an opening answer and a later round are retried when they fail. */
  readonly retry?: Step.Retry<Agent.AgentError<EP> | Step.StepTimeout> | undefined
}

type Question<Name extends string, Deps extends Step.Dependencies> = Step.Step<`${Name}.question`, string, never, never, Deps>
type Stage<A, E, R, Q extends Step.Any> = Step.Step<string, A, E, R, { readonly question: Q }>

/**
 * A debate step: its output is the debate's {@link Outcome}.
 *
 * @since 0.3.0
 * @category models
 */
export type Debate<Name extends string, EP, RP, EJ, RJ, Deps extends Step.Dependencies> = Step.Step<
  Name,
  Outcome,
  Agent.AgentError<EJ>,
  LanguageModel | RJ,
  {
    readonly question: Question<Name, Deps>
    readonly rounds: Stage<unknown, Agent.AgentError<EP> | ForEach.InvalidItems, LanguageModel | RP, Question<Name, Deps>>
  }
>

const normal = (answer: string): string => answer.trim().toLowerCase().replace(/\s+/g, " ").replace(/[.!]$/, "")

/**
 * The default agreement: every answer the same, ignoring case, spaces and a final stop.
 *
 * @since 0.3.0
 * @category agreement
 */
export const sameAnswer = (answers: ReadonlyArray<Position>): boolean =>
  answers.length > 0 && answers.every((position) => normal(position.answer) === normal(answers[0]!.answer))

/** The answer most participants gave, the earliest participant's among equals. */
const majority = (answers: ReadonlyArray<Position>): Position => {
  const counts = answers.map((a) => answers.filter((b) => normal(b.answer) === normal(a.answer)).length)
  return answers[counts.indexOf(Math.max(...counts))]!
}

const openingPrompt = (question: string): string => `Question:\n${question}\n\nGive your answer and your reasoning.`

const roundPrompt = (question: string, names: ReadonlyArray<string>, last: ReadonlyArray<Position>, me: number) =>
  `Question:\n${question}\n\nYour last answer: ${last[me]!.answer}\nYour reasoning: ${last[me]!.reasoning}\n\n` +
  `The others' last answers:\n` +
  last.flatMap((p, i) => (i === me ? [] : [`- ${names[i]}: ${p.answer} (${p.reasoning})`])).join("\n") +
  `\n\nWeigh their answers against yours, then give your answer now, kept or changed, and why.`

const judgePrompt = (question: string, names: ReadonlyArray<string>, last: ReadonlyArray<Position>) =>
  `Question:\n${question}\n\nThe participants' final answers:\n` +
  last.map((p, i) => `- ${names[i]}: ${p.answer} (${p.reasoning})`).join("\n") +
  `\n\nDecide the answer, and say why.`

/**
 * Makes a debate.
 *
 * @example
 * ```ts
 * const panel = Debate.make("panel", {
 *   question: () => "Should the launch move to March?",
 *   participants: [
 *     Agent.make({ name: "optimist", instructions: "Argue from the upside.", output: Debate.Position }),
 *     Agent.make({ name: "skeptic", instructions: "Argue from the risks.", output: Debate.Position })
 *   ],
 *   judge: Agent.make({ name: "judge", instructions: "Weigh both sides.", output: Debate.Position }),
 *   rounds: 3
 * })
 * ```
 *
 * @since 0.3.0
 * @category constructors
 */
export const make = <
  const Name extends string,
  EP = never,
  RP = never,
  EJ = never,
  RJ = never,
  const Deps extends Step.Dependencies = {}
>(
  name: Name,
  options: Options<Deps, EP, RP, EJ, RJ>
): Debate<Name, EP, RP, EJ, RJ, Deps> => {
  Recipe.knownKeys(name, options, [
    "after", "question", "participants", "judge", "rounds", "agree", "whenOutOfBudget", "timeout", "retry"
  ])
  Recipe.fn(name, "question", options.question)
  const { judge, participants } = options
  if (!Array.isArray(participants) || participants.length < 2) {
    Recipe.invalid(name, `participants must be a list of at least two agents, got ${Array.isArray(participants) ? participants.length : typeof participants}`)
  }
  participants.forEach((participant, i) => {
    if (!Recipe.isAgentLike(participant)) Recipe.invalid(name, `participants[${i}] must be an agent (Agent.make)`)
  })
  const names = participants.map((participant) => participant.name)
  const twin = names.find((n, i) => names.indexOf(n) !== i)
  if (twin !== undefined) Recipe.invalid(name, `participants must have unique names; "${twin}" is given twice`)
  if (!Recipe.isAgentLike(judge)) Recipe.invalid(name, "judge must be an agent (Agent.make)")
  const rounds = Recipe.count(name, "rounds", options.rounds)
  if (options.agree !== undefined) Recipe.fn(name, "agree", options.agree)
  const agree = options.agree ?? sameAnswer
  const whenOutOfBudget = Recipe.outOfBudget(name, options.whenOutOfBudget)
  const policy = {
    ...(options.timeout === undefined ? {} : { timeout: options.timeout }),
    ...(options.retry === undefined ? {} : { retry: options.retry as Step.Retry<unknown> })
  }

  const question = Step.make(`${name}.question`, {
    ...(options.after === undefined ? {} : { after: options.after }),
    output: Schema.String,
    run: (inputs: Step.Inputs<Deps>) => Effect.sync(() => options.question(inputs))
  })

  const opening = ForEach.make(`${name}.opening`, {
    after: { question },
    ...policy,
    items: () => participants,
    key: (participant) => participant.name,
    concurrency: participants.length,
    maxItems: participants.length,
    output: Position,
    each: (participant, _i, inputs) =>
      Effect.map(participant.run(openingPrompt(inputs.question)), (result) => result.output)
  })

  const initial = (positions: ReadonlyArray<Position>): State => ({ transcript: [positions], agreed: agree(positions) })
  const later = rounds === 1 ? undefined : Loop.make(`${name}.rounds`, {
    after: { question, opening },
    ...policy,
    state: State,
    maxIterations: rounds - 1,
    whenOutOfBudget,
    initial: ({ opening }) => initial(opening),
    // The loop checks agreement after a round: an opening that already agrees makes the first round a no-op.
    body: (state, _round, inputs) =>
      state.agreed ? Effect.succeed(state) : Effect.gen(function*() {
        const last = state.transcript.at(-1)!
        const next = yield* Effect.forEach(participants, (participant, me) =>
          Effect.map(participant.run(roundPrompt(inputs.question, names, last, me)), (result) => result.output), {
          concurrency: "unbounded"
        })
        return { transcript: [...state.transcript, next], agreed: agree(next) }
      }),
    until: (state) => state.agreed
  })

  const settle = (text: string, state: State, ended: Loop.Ending) =>
    Effect.gen(function*() {
      const last = state.transcript.at(-1)!
      const base = { rounds: state.transcript.length, ended, transcript: state.transcript }
      if (state.agreed) return { ...base, ...last[0]!, decidedBy: "Agreement" as const }
      const asked = Effect.map(judge.run(judgePrompt(text, names, last)), (result) => result.output)
      const ruling = whenOutOfBudget === "end" ? yield* Recipe.unlessRefused(asked) : yield* asked
      if (ruling === null) return { ...base, ...majority(last), decidedBy: "Majority" as const }
      return { ...base, answer: ruling.answer, reasoning: ruling.reasoning, decidedBy: "Judge" as const }
    })

  const step = later === undefined
    ? Step.make(name, {
      after: { question, rounds: opening },
      output: Outcome,
      run: ({ question, rounds }) => {
        const state = initial(rounds)
        return settle(question, state, state.agreed ? "Condition" : "MaxIterations")
      }
    })
    : Step.make(name, {
      after: { question, rounds: later },
      output: Outcome,
      run: ({ question, rounds }) => settle(question, rounds.state, rounds.ended)
    })
  return step as unknown as Debate<Name, EP, RP, EJ, RJ, Deps>
}
