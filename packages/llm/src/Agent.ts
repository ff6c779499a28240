/**
 * An agent: instructions, a model, tools and an optional output schema, run as a bounded loop in which the model
 * may call tools before it answers. Code still decides the workflow: an agent is one step of it.
 *
 * @since 0.1.0
 */
import { Ledger, Step, Usage } from "@trellis/core"
import * as Data from "effect/Data"
import type * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import type * as Schema from "effect/Schema"
import { agentAttributes, agentSpanName } from "./internal/genai.js"
import * as LanguageModel from "./LanguageModel.js"
import type { LlmError } from "./LlmError.js"
import type { Message, Request } from "./Prompt.js"
import * as Tool from "./Tool.js"

/**
 * The model kept calling tools past the agent's bound.
 *
 * @since 0.1.0
 */
export class TurnLimitReached extends Data.TaggedError("TurnLimitReached")<{
  readonly agent: string
  readonly turns: number
}> {
  override get message(): string {
    return `Agent "${this.agent}" was still calling tools after ${this.turns} turns`
  }
}

/**
 * What an agent run gives back: its output, the usage of all its calls, the turns it took, and the conversation.
 *
 * @since 0.1.0
 */
export interface RunResult<A> {
  readonly output: A
  readonly usage: Usage.Usage
  readonly turns: number
  readonly messages: ReadonlyArray<Message>
}

/**
 * The failures of an agent run.
 *
 * @since 0.1.0
 */
export type AgentError<E> = LlmError | Ledger.BudgetExceeded | Ledger.InvalidUsage | Tool.ToolFailed | TurnLimitReached | E

/**
 * An agent whose output is `A`, whose tools may fail with `E` and need `R`.
 *
 * @since 0.1.0
 */
export interface Agent<A, E = never, R = never> {
  readonly name: string
  readonly run: (
    prompt: string | ReadonlyArray<Message>
  ) => Effect.Effect<RunResult<A>, AgentError<E>, LanguageModel.LanguageModel | R>
}

/**
 * Options of an agent.
 *
 * @since 0.1.0
 */
export interface Options<A, Tools extends ReadonlyArray<Tool.Any>> {
  /** A name for errors and spans (default "agent"). */
  readonly name?: string | undefined
  readonly instructions: string
  /** The model to ask; the language model's default when unset. */
  readonly model?: string | undefined
  readonly temperature?: number | undefined
  readonly maxTokens?: number | undefined
  readonly tools?: Tools | undefined
  /** A schema the final answer is decoded with; plain text when unset. */
  readonly output?: Schema.Schema<A, any> | undefined
  /** The most model calls that may ask for tools before the answer (default 8). */
  readonly maxTurns?: number | undefined
}

// Distributive over the union of tools, so an agent without tools adds no error and no requirement.
type ErrorOf<T> = T extends Tool.Tool<any, any, infer E, any> ? E : never
type RequirementOf<T> = T extends Tool.Tool<any, any, any, infer R> ? R : never
type ToolErrors<Tools extends ReadonlyArray<Tool.Any>> = ErrorOf<Tools[number]>
type ToolRequirements<Tools extends ReadonlyArray<Tool.Any>> = RequirementOf<Tools[number]>

/**
 * Makes an agent. With tools and an output schema, the tool loop runs in text and one more call turns the
 * conversation into the output, so tool calls and structured answers never compete for the same turn.
 *
 * @since 0.1.0
 */
export function make<const Tools extends ReadonlyArray<Tool.Any> = []>(
  options: Options<string, Tools> & { readonly output?: undefined }
): Agent<string, ToolErrors<Tools>, ToolRequirements<Tools>>
export function make<A, const Tools extends ReadonlyArray<Tool.Any> = []>(
  options: Options<A, Tools> & { readonly output: Schema.Schema<A, any> }
): Agent<A, ToolErrors<Tools>, ToolRequirements<Tools>>
export function make<A, const Tools extends ReadonlyArray<Tool.Any>>(
  options: Options<A, Tools>
): Agent<A | string, ToolErrors<Tools>, ToolRequirements<Tools>> {
  const name = options.name ?? "agent"
  const tools: ReadonlyArray<Tool.Any> = options.tools ?? []
  const byName = new Map(tools.map((tool) => [tool.name, tool]))
  const definitions = tools.map(Tool.definition)
  const maxTurns = options.maxTurns ?? 8
  const request = (messages: ReadonlyArray<Message>): Request => ({
    system: options.instructions,
    messages,
    model: options.model,
    temperature: options.temperature,
    maxTokens: options.maxTokens,
    tools: definitions.length === 0 ? undefined : definitions
  })

  const run = (prompt: string | ReadonlyArray<Message>) =>
    Effect.gen(function*() {
      const model = yield* LanguageModel.LanguageModel
      let messages: ReadonlyArray<Message> = typeof prompt === "string"
        ? [{ role: "user", content: prompt }]
        : prompt
      let usage = Usage.empty
      let turns = 0

      if (options.output !== undefined && tools.length === 0) {
        const answer = yield* model.generateObject(options.output, request(messages))
        return { output: answer.value, usage: answer.usage, turns: 1, messages }
      }

      while (true) {
        if (turns >= maxTurns) return yield* new TurnLimitReached({ agent: name, turns })
        const response = yield* model.generate(request(messages))
        turns++
        usage = Usage.add(usage, response.usage)
        messages = [...messages, { role: "assistant", content: response.text, toolCalls: response.toolCalls }]
        if (response.toolCalls.length === 0) {
          if (options.output === undefined) return { output: response.text, usage, turns, messages }
          const answer = yield* model.generateObject(options.output, { ...request(messages), tools: undefined })
          return { output: answer.value, usage: Usage.add(usage, answer.usage), turns: turns + 1, messages }
        }
        // The calls of one turn are independent by the protocol, so they run together.
        const results = yield* Effect.forEach(response.toolCalls, (call) => {
          const tool = byName.get(call.name)
          return Effect.map(
            tool === undefined
              ? Effect.succeed(`Error: there is no tool named ${call.name}`)
              : Tool.call(tool, call),
            (content): Message => ({ role: "tool", toolCallId: call.id, content })
          )
        }, { concurrency: "unbounded" })
        messages = [...messages, ...results]
      }
    }).pipe(Effect.withSpan(agentSpanName(name), { attributes: agentAttributes(name), captureStackTrace: false }))

  return { name, run } as Agent<A | string, ToolErrors<Tools>, ToolRequirements<Tools>>
}

/**
 * An agent as a pipeline step: the prompt is built from the outputs of the steps it depends on, and the step's
 * output is the agent's.
 *
 * @since 0.1.0
 */
export const step = <const Name extends string, A, E, R, const Deps extends Step.Dependencies = {}>(
  name: Name,
  agent: Agent<A, E, R>,
  options: {
    readonly after?: Deps
    readonly prompt: (inputs: Step.Inputs<Deps>) => string
    readonly timeout?: Duration.DurationInput
    /** How failures are retried; like any step's, it also sees the `StepTimeout` of an attempt that timed out. */
    readonly retry?: Step.Retry<AgentError<E> | Step.StepTimeout>
  }
): Step.Step<Name, A, AgentError<E>, LanguageModel.LanguageModel | R, Deps> =>
  Step.make(name, {
    ...(options.after === undefined ? {} : { after: options.after }),
    ...(options.timeout === undefined ? {} : { timeout: options.timeout }),
    ...(options.retry === undefined ? {} : { retry: options.retry }),
    run: (inputs) => Effect.map(agent.run(options.prompt(inputs)), (result) => result.output)
  })
