/**
 * Span names and attributes of the OpenTelemetry GenAI semantic conventions, for model calls, tool executions and
 * agents; Trellis's own figures under `trellis.`. The names come from `@opentelemetry/semantic-conventions` (its
 * incubating entry point, pinned to an exact version since incubating names may change in a minor release).
 */
import {
  ATTR_ERROR_TYPE,
  ATTR_GEN_AI_AGENT_NAME,
  ATTR_GEN_AI_OPERATION_NAME,
  ATTR_GEN_AI_OUTPUT_TYPE,
  ATTR_GEN_AI_PROVIDER_NAME,
  ATTR_GEN_AI_REQUEST_MAX_TOKENS,
  ATTR_GEN_AI_REQUEST_MODEL,
  ATTR_GEN_AI_REQUEST_STREAM,
  ATTR_GEN_AI_REQUEST_TEMPERATURE,
  ATTR_GEN_AI_RESPONSE_FINISH_REASONS,
  ATTR_GEN_AI_RESPONSE_MODEL,
  ATTR_GEN_AI_TOOL_CALL_ID,
  ATTR_GEN_AI_TOOL_DESCRIPTION,
  ATTR_GEN_AI_TOOL_NAME,
  ATTR_GEN_AI_TOOL_TYPE,
  ATTR_GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS,
  ATTR_GEN_AI_USAGE_INPUT_TOKENS,
  ATTR_GEN_AI_USAGE_OUTPUT_TOKENS,
  ATTR_GEN_AI_USAGE_REASONING_OUTPUT_TOKENS,
  GEN_AI_OPERATION_NAME_VALUE_CHAT,
  GEN_AI_OPERATION_NAME_VALUE_EXECUTE_TOOL,
  GEN_AI_OPERATION_NAME_VALUE_INVOKE_AGENT,
  GEN_AI_OUTPUT_TYPE_VALUE_JSON,
  GEN_AI_OUTPUT_TYPE_VALUE_TEXT
} from "@opentelemetry/semantic-conventions/incubating"
import type { Usage } from "@trellis/core"
import * as Cause from "effect/Cause"
import * as Exit from "effect/Exit"
import * as Option from "effect/Option"
import * as Predicate from "effect/Predicate"
import type { FinishReason, ResolvedRequest } from "../Prompt.js"

/** The cost of a call, in nano-dollars: Trellis's own, so under its own prefix. */
export const ATTR_TRELLIS_COST = "trellis.cost_nano_usd"
/** Whether the usage was counted here rather than reported by the server. */
export const ATTR_TRELLIS_USAGE_ESTIMATED = "trellis.usage_estimated"

/** A chat call's span name, `{operation} {model}` as the convention names it. */
export const chatSpanName = (model: string): string => `${GEN_AI_OPERATION_NAME_VALUE_CHAT} ${model}`

/** The attributes of a chat call known before it is sent. */
export const chatAttributes = (provider: string, request: ResolvedRequest, stream: boolean): Record<string, unknown> => {
  const attributes: Record<string, unknown> = {
    [ATTR_GEN_AI_OPERATION_NAME]: GEN_AI_OPERATION_NAME_VALUE_CHAT,
    [ATTR_GEN_AI_PROVIDER_NAME]: provider,
    [ATTR_GEN_AI_REQUEST_MODEL]: request.model,
    [ATTR_GEN_AI_REQUEST_MAX_TOKENS]: request.maxTokens,
    [ATTR_GEN_AI_OUTPUT_TYPE]: request.json === undefined ? GEN_AI_OUTPUT_TYPE_VALUE_TEXT : GEN_AI_OUTPUT_TYPE_VALUE_JSON
  }
  if (request.temperature !== undefined) attributes[ATTR_GEN_AI_REQUEST_TEMPERATURE] = request.temperature
  if (stream) attributes[ATTR_GEN_AI_REQUEST_STREAM] = true
  return attributes
}

/** The attributes of a chat call's answer: the model, why it stopped (an array, one per choice), usage and cost. */
export const responseAttributes = (response: {
  readonly model: string
  readonly finishReason: FinishReason
  readonly usage: Usage.Usage
}): Record<string, unknown> => {
  const { usage } = response
  const attributes: Record<string, unknown> = {
    [ATTR_GEN_AI_RESPONSE_MODEL]: response.model,
    [ATTR_GEN_AI_RESPONSE_FINISH_REASONS]: [response.finishReason],
    [ATTR_GEN_AI_USAGE_INPUT_TOKENS]: usage.inputTokens,
    [ATTR_GEN_AI_USAGE_OUTPUT_TOKENS]: usage.outputTokens,
    [ATTR_TRELLIS_COST]: usage.cost,
    [ATTR_TRELLIS_USAGE_ESTIMATED]: usage.estimated
  }
  // Only when there are some: most calls have neither, and each attribute is work for every exporter.
  if (usage.cachedInputTokens > 0) attributes[ATTR_GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS] = usage.cachedInputTokens
  if (usage.reasoningTokens > 0) attributes[ATTR_GEN_AI_USAGE_REASONING_OUTPUT_TOKENS] = usage.reasoningTokens
  return attributes
}

/**
 * The `error.type` of a call that failed: the tag of its typed error (`RateLimited`, `BudgetExceeded`...), or
 * `_OTHER` as the convention asks for anything else; undefined when it did not fail or was interrupted.
 */
export const errorAttributes = (exit: Exit.Exit<unknown, unknown>): Record<string, unknown> | undefined => {
  if (Exit.isSuccess(exit) || Cause.isInterruptedOnly(exit.cause)) return undefined
  const error = Option.getOrUndefined(Cause.failureOption(exit.cause))
  return { [ATTR_ERROR_TYPE]: Predicate.hasProperty(error, "_tag") && typeof error._tag === "string" ? error._tag : "_OTHER" }
}

/** The attribute naming what ended an operation that failed: the tag of its error. */
export const ATTR_ERROR = ATTR_ERROR_TYPE

/** A tool execution's span name, `execute_tool {tool name}`. */
export const toolSpanName = (tool: string): string => `${GEN_AI_OPERATION_NAME_VALUE_EXECUTE_TOOL} ${tool}`

/** The attributes of a tool execution. */
export const toolAttributes = (tool: { readonly name: string; readonly description: string }, callId: string) => ({
  [ATTR_GEN_AI_OPERATION_NAME]: GEN_AI_OPERATION_NAME_VALUE_EXECUTE_TOOL,
  [ATTR_GEN_AI_TOOL_NAME]: tool.name,
  [ATTR_GEN_AI_TOOL_DESCRIPTION]: tool.description,
  [ATTR_GEN_AI_TOOL_CALL_ID]: callId,
  [ATTR_GEN_AI_TOOL_TYPE]: "function"
})

/** An agent's span name, `invoke_agent {agent name}`, and its attributes. */
export const agentSpanName = (agent: string): string => `${GEN_AI_OPERATION_NAME_VALUE_INVOKE_AGENT} ${agent}`

/** The attributes of an agent's run. */
export const agentAttributes = (agent: string) => ({
  [ATTR_GEN_AI_OPERATION_NAME]: GEN_AI_OPERATION_NAME_VALUE_INVOKE_AGENT,
  [ATTR_GEN_AI_AGENT_NAME]: agent
})
