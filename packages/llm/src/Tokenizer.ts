/**
 * Token counts for reservations and for servers that do not report usage.
 *
 * One encoding is imported (`o200k_base`, the one of OpenAI's current models), so counts are the real
 * tokenizer's for those models and a close estimate for others; the whole vocabulary is not loaded twice.
 *
 * @since 0.1.0
 */
import { countTokens } from "gpt-tokenizer/encoding/o200k_base"
import type { Message, ToolCall } from "./LanguageModel.js"

/**
 * The tokens of a text.
 *
 * @since 0.1.0
 */
export const count = (text: string): number => (text.length === 0 ? 0 : countTokens(text))

// Chat formats wrap every message in a few tokens of markup, and prime the answer with a few more.
const perMessage = 3
const primer = 3

/**
 * The input tokens of a conversation as a chat completion counts them: each message's content and tool calls,
 * the markup around each message, and the tool definitions offered.
 *
 * @since 0.1.0
 */
export const countMessages = (
  messages: ReadonlyArray<Message>,
  extra: ReadonlyArray<string> = []
): number => {
  let total = primer
  for (const message of messages) {
    total += perMessage + count(message.content)
    if (message.role === "assistant" && message.toolCalls !== undefined) total += countOutput("", message.toolCalls)
  }
  for (const text of extra) total += count(text)
  return total
}

/**
 * The output tokens of an answer: its text and the tool calls it asked for.
 *
 * @since 0.1.0
 */
export const countOutput = (text: string, toolCalls: ReadonlyArray<ToolCall> = []): number => {
  let total = count(text)
  for (const call of toolCalls) total += count(call.name) + count(call.arguments)
  return total
}
