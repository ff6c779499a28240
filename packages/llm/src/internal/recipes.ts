/**
 * What the recipes (`Reflexion`, `TreeOfThoughts`, `Debate`, `Crew`) share: how their options are checked, and how a
 * role is asked (an agent given a prompt, or code given the same facts).
 */
import { Ledger, OptionKeys, Step } from "@trellis/core"
import * as Effect from "effect/Effect"
import type * as Agent from "../Agent.js"
import type { LanguageModel } from "../LanguageModel.js"

/** Refuses a recipe's options the way `Step.make` does: an `InvalidStep` that names the step and the option. */
export const invalid = (step: string, detail: string): never => {
  throw new Step.InvalidStep({ step, detail })
}

/** Refuses a key the recipe does not know, naming the likely intended one. */
export const knownKeys = (step: string, options: unknown, known: ReadonlyArray<string>): void => {
  if (typeof options !== "object" || options === null) invalid(step, `options must be an object, got ${typeof options}`)
  const unknownKey = OptionKeys.unknown(options, known)
  if (unknownKey !== undefined) invalid(step, unknownKey)
}

/** A whole number of at least `min`: the bounds of a recipe (rounds, breadth, depth) are never open. */
export const count = (step: string, option: string, value: unknown, min = 1): number => {
  if (typeof value !== "number" || !Number.isSafeInteger(value) || value < min) {
    invalid(step, `${option} must be a whole number of at least ${min}, got ${String(value)}`)
  }
  return value as number
}

/** A function option. */
export const fn = (step: string, option: string, value: unknown): void => {
  if (typeof value !== "function") invalid(step, `${option} must be a function, got ${typeof value}`)
}

/** `"fail"` (the default) or `"end"`, as `Loop.make` takes it. */
export const outOfBudget = (step: string, value: unknown): "fail" | "end" => {
  if (value === undefined) return "fail"
  if (value !== "fail" && value !== "end") invalid(step, `whenOutOfBudget must be "fail" or "end", got ${String(value)}`)
  return value as "fail" | "end"
}

/** Whether a value is an agent (`Agent.make`). */
export const isAgentLike = (u: unknown): boolean => isAgent(u)

const isAgent = (u: unknown): u is Agent.Agent<unknown, unknown, unknown> =>
  typeof u === "object" && u !== null && typeof (u as { run?: unknown }).run === "function"

/**
 * A role in a recipe: an agent, asked with a prompt the recipe writes from what the role is given, or code, given
 * the same facts as a value (a critic that runs tests, a scorer that checks arithmetic).
 */
export type Actor<In, A, E, R> = Agent.Agent<A, E, R> | ((input: In) => Effect.Effect<A, E, R>)

/** Checks an option that is an actor. */
export const actor = (step: string, option: string, value: unknown): void => {
  if (!isAgent(value) && typeof value !== "function") {
    invalid(step, `${option} must be an agent (Agent.make) or a function, got ${typeof value}`)
  }
}

/** The errors of asking an actor made with errors `E`: an agent's, or the code's own. */
export type ActorError<E> = Agent.AgentError<E>

/** Asks an actor: an agent with the prompt written from `input`, code with `input` itself. */
export const ask = <In, A, E, R>(
  who: Actor<In, A, E, R>,
  input: In,
  prompt: (input: In) => string
): Effect.Effect<A, ActorError<E>, R | LanguageModel> =>
  isAgent(who)
    ? Effect.map(who.run(prompt(input)), (result) => result.output)
    : (who as (input: In) => Effect.Effect<A, E, R>)(input)

/**
 * Runs `effect`, or gives `null` when the budget refuses one of its calls: nothing was sent for the refused call,
 * and what was spent before it stays counted in the run's ledger.
 */
export const unlessRefused = <A, E, R>(effect: Effect.Effect<A, E, R>): Effect.Effect<A | null, E, R> =>
  Effect.catchIf(effect, (error) => error instanceof Ledger.BudgetExceeded, () => Effect.succeed(null))

/** A numbered list, one item a line, for a prompt. */
export const numbered = (items: ReadonlyArray<string>): string =>
  items.map((item, index) => `${index + 1}. ${item}`).join("\n")
