/**
 * A resolved Trellis request as the options of an `@effect/ai` call: its prompt, and its tools as a toolkit.
 */
import type * as AiPrompt from "@effect/ai/Prompt"
import * as AiTool from "@effect/ai/Tool"
import * as Toolkit from "@effect/ai/Toolkit"
import type { LlmError, Prompt } from "@trellis/llm"
import * as Effect from "effect/Effect"
import * as Schema from "effect/Schema"

/** A value as an option's message shows it: short, strings quoted. */
export const show = (value: unknown): string => {
  try {
    return (typeof value === "string" ? JSON.stringify(value) : String(value)).slice(0, 100)
  } catch {
    return typeof value
  }
}

// `$schema` names a draft; providers' schema subsets do not list it.
const withoutDialect = (schema: object): Record<string, unknown> => {
  const { $schema: _, ...rest } = schema as Record<string, unknown>
  return rest
}

// A tool call's arguments as the model wrote them: `@effect/ai` wants the parsed parameters back.
const parsedArguments = (text: string): unknown => {
  try {
    return JSON.parse(text)
  } catch {
    return text
  }
}

/** The request's messages as `@effect/ai`'s prompt; a tool message that answers no call is refused. */
export const toPrompt = (
  request: Prompt.ResolvedRequest,
  invalid: (detail: string) => LlmError.InvalidRequest
): Effect.Effect<Array<AiPrompt.MessageEncoded>, LlmError.InvalidRequest> =>
  Effect.suspend(() => {
    // A tool result names its tool in `@effect/ai`; Trellis's names only the call it answers.
    const toolNames = new Map<string, string>()
    const messages: Array<AiPrompt.MessageEncoded> = []
    for (const message of request.messages) {
      switch (message.role) {
        case "system":
        case "user":
          messages.push({ role: message.role, content: message.content })
          break
        case "assistant": {
          const calls = message.toolCalls ?? []
          for (const call of calls) toolNames.set(call.id, call.name)
          messages.push({
            role: "assistant",
            content: [
              ...(message.content.length === 0 ? [] : [{ type: "text" as const, text: message.content }]),
              ...calls.map((call) => ({
                type: "tool-call" as const,
                id: call.id,
                name: call.name,
                params: parsedArguments(call.arguments),
                providerExecuted: false
              }))
            ]
          })
          break
        }
        case "tool": {
          const name = toolNames.get(message.toolCallId)
          if (name === undefined) {
            return Effect.fail(invalid(`a tool message answers the call ${show(message.toolCallId)}, which no assistant message made`))
          }
          messages.push({
            role: "tool",
            content: [{ type: "tool-result", id: message.toolCallId, name, isFailure: false, result: message.content, providerExecuted: false }]
          })
          break
        }
      }
    }
    return Effect.succeed(messages)
  })

// Parameters taken as they come (any JSON object), shown to the model as the tool's own JSON Schema.
const parametersOf = (schema: object) =>
  Schema.Record({ key: Schema.String, value: Schema.Unknown }).annotations({ jsonSchema: withoutDialect(schema) })

/**
 * The request's tools as an `@effect/ai` toolkit. Their calls are never resolved by `@effect/ai`
 * (`disableToolCallResolution`): the handler is never called, and dies if it ever were.
 */
const toolkitOf = (tools: ReadonlyArray<Prompt.ToolDefinition>): Toolkit.WithHandler<Record<string, AiTool.Any>> => {
  const toolkit = Toolkit.make(
    ...tools.map((tool) =>
      AiTool.make(tool.name, { description: tool.description }).setParameters(
        parametersOf(tool.parameters) as unknown as AiTool.AnyParametersSchema
      )
    )
  )
  return {
    tools: toolkit.tools,
    handle: (name: string) => Effect.dieMessage(`the tool ${name} is run by Trellis, not by @effect/ai`)
  } as unknown as Toolkit.WithHandler<Record<string, AiTool.Any>>
}

/** The options of a call: the prompt, and the request's tools as a toolkit `@effect/ai` never runs. */
export const callOptions = (request: Prompt.ResolvedRequest, prompt: Array<AiPrompt.MessageEncoded>) =>
  request.tools.length === 0
    ? { prompt }
    : { prompt, toolkit: toolkitOf(request.tools), disableToolCallResolution: true as const }
