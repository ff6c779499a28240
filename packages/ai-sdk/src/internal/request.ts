/**
 * A resolved Trellis request as the call options of the AI SDK's language model specification.
 */
import type { LanguageModelV4CallOptions, LanguageModelV4Message } from "@ai-sdk/provider"
import type { LlmError, Prompt } from "@trellis/llm"
import * as Effect from "effect/Effect"

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

// A tool call's arguments as the model wrote them: the specification wants the parsed input back.
const parsedArguments = (text: string): unknown => {
  try {
    return JSON.parse(text)
  } catch {
    return text
  }
}

/** The request's messages as the specification's prompt; a tool message that answers no call is refused. */
export const toPrompt = (
  request: Prompt.ResolvedRequest,
  invalid: (detail: string) => LlmError.InvalidRequest
): Effect.Effect<Array<LanguageModelV4Message>, LlmError.InvalidRequest> =>
  Effect.suspend(() => {
    // A tool result names its tool in the specification; Trellis's names only the call it answers.
    const toolNames = new Map<string, string>()
    const messages: Array<LanguageModelV4Message> = []
    for (const message of request.messages) {
      switch (message.role) {
        case "system":
          messages.push({ role: "system", content: message.content })
          break
        case "user":
          messages.push({ role: "user", content: [{ type: "text", text: message.content }] })
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
                toolCallId: call.id,
                toolName: call.name,
                input: parsedArguments(call.arguments)
              }))
            ]
          })
          break
        }
        case "tool": {
          const toolName = toolNames.get(message.toolCallId)
          if (toolName === undefined) {
            return Effect.fail(invalid(`a tool message answers the call ${show(message.toolCallId)}, which no assistant message made`))
          }
          messages.push({
            role: "tool",
            content: [{
              type: "tool-result",
              toolCallId: message.toolCallId,
              toolName,
              output: { type: "text", value: message.content }
            }]
          })
          break
        }
      }
    }
    return Effect.succeed(messages)
  })

/** The call options of a request: its prompt, output limit, temperature, tools and JSON schema. */
export const toCallOptions = (
  request: Prompt.ResolvedRequest,
  prompt: Array<LanguageModelV4Message>
): LanguageModelV4CallOptions => ({
  prompt,
  maxOutputTokens: request.maxTokens,
  ...(request.temperature === undefined ? {} : { temperature: request.temperature }),
  ...(request.tools.length === 0 ? {} : {
    tools: request.tools.map((tool) => ({
      type: "function" as const,
      name: tool.name,
      description: tool.description,
      inputSchema: withoutDialect(tool.parameters)
    }))
  }),
  ...(request.json === undefined ? {} : {
    responseFormat: { type: "json" as const, name: request.json.name, schema: withoutDialect(request.json.schema) }
  })
})
