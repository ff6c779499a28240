/**
 * Reflexion as a bounded recipe: a writer drafts, a critic judges the draft, and while the critic does not approve
 * the writer revises with every reflection so far, at most a given number of rounds. Code decides the shape (how many
 * rounds, when to stop, what each role sees); the models only read and write text.
 *
 * The first draft is a step of its own (`essay.draft`); the rounds are a `Loop` (`essay`, iterations `essay#1`,
 * `essay#2`...). A round critiques the current draft, after revising it when the previous round's critic rejected it,
 * so every draft the loop ends with has been critiqued. The loop ends when the critic approves (`"Condition"`), after
 * `maxRounds` critiques (`"MaxIterations"`), or, with `whenOutOfBudget: "end"`, when the budget cannot pay for
 * another round (`"OutOfBudget"`, with the last critiqued draft).
 *
 * @since 0.3.0
 */
import { Loop, Step } from "@trellis/core"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"
import type * as Agent from "./Agent.js"
import * as Recipe from "./internal/recipes.js"
import type { LanguageModel } from "./LanguageModel.js"

/**
 * The critic's answer: whether the draft is done, and if not, what to change. The critique of a rejected draft is
 * the reflection carried into the next revision. An agent used as the critic decodes its answer with this schema
 * (`Agent.make({ instructions, output: Reflexion.Verdict })`).
 *
 * @since 0.3.0
 * @category schemas
 */
export const Verdict = Schema.Struct({
  approved: Schema.Boolean,
  critique: Schema.String
})

/**
 * @since 0.3.0
 * @category models
 */
export type Verdict = typeof Verdict.Type

/**
 * The loop's state: the current draft, whether the critic approved it, and the reflections on the drafts it
 * rejected, oldest first.
 *
 * @since 0.3.0
 * @category schemas
 */
export const State = Schema.Struct({
  draft: Schema.String,
  approved: Schema.Boolean,
  reflections: Schema.Array(Schema.String)
})

/**
 * @since 0.3.0
 * @category models
 */
export type State = typeof State.Type

/**
 * What a critic written as code receives: the task, the draft, and the round (from 1).
 *
 * @since 0.3.0
 * @category models
 */
export interface Review {
  readonly task: string
  readonly draft: string
  readonly round: number
}

/**
 * Options of {@link make}.
 *
 * @since 0.3.0
 * @category models
 */
export interface Options<Deps extends Step.Dependencies, EW, RW, EC, RC> {
  /** The steps the task is made from; their outputs arrive under the same keys. */
  readonly after?: Deps | undefined
  /** The task, from the dependencies' outputs. */
  readonly task: (inputs: Step.Inputs<Deps>) => string
  /** Writes the first draft and each revision. */
  readonly writer: Agent.Agent<string, EW, RW>
  /** Judges a draft: an agent whose output is a {@link Verdict}, or code (a test suite, a checker). */
  readonly critic: Agent.Agent<Verdict, EC, RC> | ((review: Review) => Effect.Effect<Verdict, EC, RC>)
  /** The most critiques (so at most `maxRounds - 1` revisions). Required. */
  readonly maxRounds: number
  /** `"fail"` (the default): a refused budget fails the step; `"end"`: the rounds end with the last critiqued draft. */
  readonly whenOutOfBudget?: "fail" | "end" | undefined
  /** Time allowed for one attempt of the first draft, and of each round. */
  readonly timeout?: Duration.DurationInput | undefined
  /** How the first draft and each round are retried when they fail. */
  readonly retry?: Step.Retry<Agent.AgentError<EW | EC> | Step.StepTimeout> | undefined
}

/**
 * A Reflexion step: its output is the loop's outcome, whose `state.draft` is the answer.
 *
 * @since 0.3.0
 * @category models
 */
export type Reflexion<Name extends string, EW, RW, EC, RC, Deps extends Step.Dependencies> = Step.Step<
  Name,
  Loop.Outcome<State>,
  Agent.AgentError<EW | EC>,
  LanguageModel | RW | RC,
  { readonly draft: Step.Step<`${Name}.draft`, FirstDraft, Agent.AgentError<EW>, LanguageModel | RW, Deps> }
>

/**
 * The first draft step's output: the task it was written for, and the draft. The rounds read the task from it, so
 * they depend on that step alone.
 *
 * @since 0.3.0
 * @category schemas
 */
export const FirstDraft = Schema.Struct({ task: Schema.String, draft: Schema.String })

/**
 * @since 0.3.0
 * @category models
 */
export type FirstDraft = typeof FirstDraft.Type

/** The writer's prompt for the first draft. */
const draftPrompt = (task: string): string => `Task:\n${task}`

/** The writer's prompt for a revision: the task, the last draft, and every reflection so far. */
const revisePrompt = (task: string, state: State): string =>
  `Task:\n${task}\n\nYour last draft:\n${state.draft}\n\n` +
  `Reflections on your drafts so far (address every one):\n${Recipe.numbered(state.reflections)}\n\n` +
  `Write the revised answer in full.`

/** The critic's prompt. */
const reviewPrompt = (review: Review): string => `Task:\n${review.task}\n\nDraft to review:\n${review.draft}`

/**
 * Makes a Reflexion step: draft, critique, revise, until the critic approves or `maxRounds` critiques.
 *
 * @example
 * ```ts
 * const essay = Reflexion.make("essay", {
 *   after: { brief },
 *   task: ({ brief }) => `Write a product announcement from this brief: ${brief}`,
 *   writer: Agent.make({ name: "writer", instructions: "You write clear, short announcements." }),
 *   critic: Agent.make({ name: "critic", instructions: "Approve only if every claim is in the brief.", output: Reflexion.Verdict }),
 *   maxRounds: 3
 * })
 * ```
 *
 * @since 0.3.0
 * @category constructors
 */
export const make = <
  const Name extends string,
  EW = never,
  RW = never,
  EC = never,
  RC = never,
  const Deps extends Step.Dependencies = {}
>(
  name: Name,
  options: Options<Deps, EW, RW, EC, RC>
): Reflexion<Name, EW, RW, EC, RC, Deps> => {
  Recipe.knownKeys(name, options, [
    "after", "task", "writer", "critic", "maxRounds", "whenOutOfBudget", "timeout", "retry"
  ])
  Recipe.fn(name, "task", options.task)
  Recipe.actor(name, "writer", options.writer)
  Recipe.actor(name, "critic", options.critic)
  if (typeof options.writer === "function") Recipe.invalid(name, "writer must be an agent (Agent.make)")
  const maxRounds = Recipe.count(name, "maxRounds", options.maxRounds)
  const whenOutOfBudget = Recipe.outOfBudget(name, options.whenOutOfBudget)
  const { critic, task, writer } = options
  const policy = {
    ...(options.timeout === undefined ? {} : { timeout: options.timeout }),
    ...(options.retry === undefined ? {} : { retry: options.retry })
  }

  const draft = Step.make(`${name}.draft`, {
    ...(options.after === undefined ? {} : { after: options.after }),
    ...policy,
    output: FirstDraft,
    run: (inputs: Step.Inputs<Deps>) => {
      const text = task(inputs)
      return Effect.map(writer.run(draftPrompt(text)), (result) => ({ task: text, draft: result.output }))
    }
  })

  return Loop.make(name, {
    after: { draft },
    ...policy,
    state: State,
    maxIterations: maxRounds,
    whenOutOfBudget,
    initial: ({ draft }): State => ({ draft: draft.draft, approved: false, reflections: [] }),
    body: (state, round, { draft: { task: text } }) =>
      Effect.gen(function*() {
        // A round after a rejection first revises, so the loop always ends on a critiqued draft.
        const current = round === 1
          ? state.draft
          : (yield* writer.run(revisePrompt(text, state))).output
        const verdict = yield* Recipe.ask(critic, { task: text, draft: current, round }, reviewPrompt)
        return {
          draft: current,
          approved: verdict.approved,
          reflections: verdict.approved ? state.reflections : [...state.reflections, verdict.critique]
        }
      }),
    until: (state) => state.approved
  }) as unknown as Reflexion<Name, EW, RW, EC, RC, Deps>
}
