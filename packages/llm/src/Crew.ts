/**
 * A role crew as a bounded recipe (the shape CrewAI made popular): roles with narrow instructions, and a list of
 * tasks, each done by one role, turned into a static graph. A task is a step; the tasks whose work it builds on are
 * its dependencies, so their outputs reach it typed (decoded by each task's schema) and in full; the crew is a
 * pipeline of exactly the listed tasks. Code decides who does what and in what order; no model picks the next role
 * or invents a task, and each call runs under the crew's one budget.
 *
 * @since 0.3.0
 */
import { type Cost, Pipeline, Step } from "@trellis/core"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type * as Schema from "effect/Schema"
import * as Agent from "./Agent.js"
import * as Recipe from "./internal/recipes.js"
import type { LanguageModel } from "./LanguageModel.js"
import type * as Tool from "./Tool.js"

/**
 * A role: who does a kind of work, with narrow instructions and only its own tools.
 *
 * @since 0.3.0
 * @category models
 */
export interface Role<E = never, R = never> {
  readonly name: string
  /** The role's instructions, as its tasks' system prompt. */
  readonly instructions: string
  readonly agent: Omit<Agent.Options<unknown, ReadonlyArray<Tool.Any>>, "name" | "instructions" | "output">
  /** Phantom: the errors and requirements of the role's tools. */
  readonly _tools?: (_: never) => readonly [E, R]
}

/**
 * Options of {@link role}.
 *
 * @since 0.3.0
 * @category models
 */
export interface RoleOptions<Tools extends ReadonlyArray<Tool.Any>> {
  /** What the role is for, in a sentence. */
  readonly goal: string
  /** How the role works, and what it must not do. */
  readonly instructions?: string | undefined
  readonly model?: string | undefined
  readonly temperature?: number | undefined
  readonly maxTokens?: number | undefined
  /** The role's own tools: no other role can call them. */
  readonly tools?: Tools | undefined
  /** The most model calls that may ask for tools before an answer (default 8). */
  readonly maxTurns?: number | undefined
}

type ErrorOf<T> = T extends Tool.Tool<any, any, infer E, any> ? E : never
type RequirementOf<T> = T extends Tool.Tool<any, any, any, infer R> ? R : never

/**
 * Makes a role. Its instructions say who it is, its goal, and that it does only its own part of the work.
 *
 * @since 0.3.0
 * @category constructors
 */
export const role = <const Tools extends ReadonlyArray<Tool.Any> = []>(
  name: string,
  options: RoleOptions<Tools>
): Role<ErrorOf<Tools[number]>, RequirementOf<Tools[number]>> => {
  Recipe.knownKeys(name, options, ["goal", "instructions", "model", "temperature", "maxTokens", "tools", "maxTurns"])
  if (typeof name !== "string" || name.length === 0) Recipe.invalid(String(name), "a role's name must be a non-empty string")
  if (typeof options.goal !== "string" || options.goal.length === 0) {
    Recipe.invalid(name, `goal must be a non-empty string, got ${typeof options.goal}`)
  }
  const { goal, instructions, ...agent } = options
  return {
    name,
    instructions: `You are the ${name} of a team. Your goal: ${goal}` +
      (instructions === undefined ? "" : `\n${instructions}`) +
      `\nDo only this role's part of the work. Work from what you are given; if it lacks something you need, say ` +
      `what is missing rather than guess.`,
    agent
  }
}

/**
 * Options of {@link task}.
 *
 * @since 0.3.0
 * @category models
 */
export interface TaskOptions<Deps extends Step.Dependencies, A, E, R> {
  /** The role that does the task. */
  readonly role: Role<E, R>
  /** The tasks (or other steps) whose outputs this one builds on: handed to it in full, under these keys. */
  readonly after?: Deps | undefined
  /** What to do, from the hand-offs. */
  readonly description: (inputs: Step.Inputs<Deps>) => string
  /** The schema of the task's output, so that the next role receives a checked value. Default: text. */
  readonly output?: Schema.Schema<A, any, never> | undefined
  readonly timeout?: Duration.DurationInput | undefined
  readonly retry?: Step.Retry<Agent.AgentError<E> | Step.StepTimeout> | undefined
}

const tasks = new WeakSet<Step.Any>()

/** A hand-off in a prompt: text as it is, anything else as JSON. */
const render = (value: unknown): string => (typeof value === "string" ? value : JSON.stringify(value, null, 2))

/**
 * Makes a task: a step done by `role`, whose prompt is its description followed by every hand-off it depends on.
 *
 * @example
 * ```ts
 * const research = Crew.task("research", {
 *   role: researcher,
 *   description: () => "List the three strongest claims of the launch brief.",
 *   output: Schema.Struct({ claims: Schema.Array(Schema.String) })
 * })
 * const write = Crew.task("write", {
 *   role: writer,
 *   after: { research },
 *   description: ({ research }) => `Write the announcement around these ${research.claims.length} claims.`
 * })
 * ```
 *
 * @since 0.3.0
 * @category constructors
 */
export const task = <const Name extends string, A = string, E = never, R = never, const Deps extends Step.Dependencies = {}>(
  name: Name,
  options: TaskOptions<Deps, A, E, R>
): Step.Step<Name, A, Agent.AgentError<E>, LanguageModel | R, Deps> => {
  Recipe.knownKeys(name, options, ["role", "after", "description", "output", "timeout", "retry"])
  const role = options.role
  if (typeof role !== "object" || role === null || typeof role.instructions !== "string") {
    Recipe.invalid(name, "role must be a role (Crew.role)")
  }
  Recipe.fn(name, "description", options.description)
  const base = { ...role.agent, name: role.name, instructions: role.instructions } as Agent.Options<string, []>
  const agent = (options.output === undefined
    ? Agent.make(base as Agent.Options<string, []> & { readonly output?: undefined })
    : Agent.make({ ...base, output: options.output as Schema.Schema<unknown, any> })) as unknown as Agent.Agent<A, E, R>
  const step = Step.make(name, {
    ...(options.after === undefined ? {} : { after: options.after }),
    ...(options.timeout === undefined ? {} : { timeout: options.timeout }),
    ...(options.retry === undefined ? {} : { retry: options.retry }),
    ...(options.output === undefined ? {} : { output: options.output }),
    run: (inputs: Step.Inputs<Deps>) => {
      const handoffs = Object.entries(inputs).map(([key, value]) => `## ${key}\n${render(value)}`)
      const prompt = handoffs.length === 0
        ? options.description(inputs)
        : `${options.description(inputs)}\n\n# What you were handed\n\n${handoffs.join("\n\n")}`
      return Effect.map(agent.run(prompt), (result) => result.output)
    }
  })
  tasks.add(step)
  return step
}

/**
 * Options of {@link make}.
 *
 * @since 0.3.0
 * @category models
 */
export interface Options<S extends Step.Any, X extends Step.Any> {
  /** Every task of the crew, each made with {@link task}. */
  readonly tasks: ReadonlyArray<X>
  /** The task whose output is the crew's. */
  readonly output: S
  readonly budget?: Cost.Cost | undefined
  /** At most this many tasks run at once. Default: every task whose hand-offs are ready. */
  readonly concurrency?: number | undefined
  readonly timeout?: Duration.DurationInput | undefined
}

/**
 * Makes a crew: a pipeline of exactly the listed tasks. Each task must have been made with {@link task} and depend
 * only on tasks of the list, so the graph a reader sees in the list is the graph that runs.
 *
 * @since 0.3.0
 * @category constructors
 */
export const make = <S extends Step.Any, X extends Step.Any>(name: string, options: Options<S, X>) => {
  Recipe.knownKeys(name, options, ["tasks", "output", "budget", "concurrency", "timeout"])
  const list: ReadonlyArray<Step.Any> = options.tasks
  if (!Array.isArray(list) || list.length === 0) Recipe.invalid(name, "tasks must be a non-empty list of tasks")
  for (const [i, step] of list.entries()) {
    if (!tasks.has(step)) Recipe.invalid(name, `tasks[${i}] must be made with Crew.task`)
    for (const [key, dep] of Object.entries(step.after as Step.Dependencies)) {
      if (!list.includes(dep)) {
        Recipe.invalid(name, `task "${step.name}" builds on "${key}" (step "${dep.name}"), which is not in tasks`)
      }
    }
  }
  if (!list.includes(options.output)) Recipe.invalid(name, "output must be one of tasks")
  return Pipeline.make(name, {
    output: options.output,
    include: options.tasks,
    ...(options.budget === undefined ? {} : { budget: options.budget }),
    ...(options.concurrency === undefined ? {} : { concurrency: options.concurrency }),
    ...(options.timeout === undefined ? {} : { timeout: options.timeout })
  })
}
