/**
 * What is sent to a language model: messages, tool definitions, an output format, and the settings of one call.
 *
 * @since 0.1.0
 */

/**
 * A tool call the model asked for; `arguments` is the raw JSON text the model wrote.
 *
 * @since 0.1.0
 */
export interface ToolCall {
  readonly id: string
  readonly name: string
  readonly arguments: string
}

/**
 * One message of a conversation.
 *
 * @since 0.1.0
 */
export type Message =
  | { readonly role: "system"; readonly content: string }
  | { readonly role: "user"; readonly content: string }
  | { readonly role: "assistant"; readonly content: string; readonly toolCalls?: ReadonlyArray<ToolCall> | undefined }
  | { readonly role: "tool"; readonly toolCallId: string; readonly content: string }

/**
 * A tool offered to the model: its parameters are a JSON Schema (see `Tool` for tools declared with Schema).
 *
 * @since 0.1.0
 */
export interface ToolDefinition {
  readonly name: string
  readonly description: string
  readonly parameters: object
}

/**
 * Asks for an answer that is a JSON document matching `schema`.
 *
 * @since 0.1.0
 */
export interface JsonFormat {
  readonly name: string
  readonly schema: object
}

/**
 * A request to the model. Unset fields take the language model's defaults.
 *
 * @since 0.1.0
 */
export interface Request {
  readonly messages: ReadonlyArray<Message>
  /** Instructions, sent as a system message before the others. */
  readonly system?: string | undefined
  readonly model?: string | undefined
  readonly temperature?: number | undefined
  /** The most output tokens the answer may have; also what the reservation counts on. */
  readonly maxTokens?: number | undefined
  readonly tools?: ReadonlyArray<ToolDefinition> | undefined
  readonly json?: JsonFormat | undefined
}

/**
 * A request with every default filled in: what a provider receives.
 *
 * @since 0.1.0
 */
export interface ResolvedRequest {
  readonly messages: ReadonlyArray<Message>
  readonly model: string
  readonly temperature: number | undefined
  readonly maxTokens: number
  readonly tools: ReadonlyArray<ToolDefinition>
  readonly json: JsonFormat | undefined
}

/**
 * A prompt: a user message as plain text, or a whole request.
 *
 * @since 0.1.0
 */
export type Prompt = string | Request

/**
 * Why the model stopped.
 *
 * @since 0.1.0
 */
export type FinishReason = "stop" | "length" | "tool_calls" | "content_filter" | "other"
