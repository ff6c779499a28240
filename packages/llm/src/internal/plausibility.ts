/**
 * Where an honest difference ends and a lie begins, for the figures a server reports of one call.
 *
 * - Output: a server never bills more output tokens than the call's `maxTokens` (the limit is sent with every
 *   request; a server that ignores it is treated as one that lies, since the budget rests on it).
 * - Input: every tokenizer in use (byte-pair encodings, SentencePiece with byte fallback) makes a token of at least
 *   one byte of text, so no honest count passes the UTF-8 bytes of what was sent, plus a few tokens of markup per
 *   message and a fixed allowance for text a server adds of its own (a tool-use system prompt, say).
 *
 * Anything within those bounds is an honest difference, recorded as reported; past them, the figures are a lie.
 */
import type { Message, ResolvedRequest } from "../Prompt.js"

/** Markup a server may put around each message, in tokens: far more than any chat format uses. */
const perMessage = 32
/** Text a server may add of its own (instructions for tools or structured output), in tokens. */
const serverAllowance = 4096

const encoder = new TextEncoder()
const bytes = (text: string): number => (text.length === 0 ? 0 : encoder.encode(text).length)

const messageBytes = (message: Message): number => {
  let total = bytes(message.content)
  if (message.role === "assistant" && message.toolCalls !== undefined) {
    for (const call of message.toolCalls) total += bytes(call.name) + bytes(call.arguments)
  }
  return total
}

/**
 * The most input tokens any honest server could count for `request`, whose texts beside its messages (tool
 * definitions, the schema of structured output) are `extra`.
 */
export const inputCeiling = (request: ResolvedRequest, extra: ReadonlyArray<string>): number => {
  let total = serverAllowance
  for (const message of request.messages) total += perMessage + messageBytes(message)
  for (const text of extra) total += bytes(text)
  return total
}

/** Why the token counts reported for a call of `request` cannot be right, or `undefined` when they can. */
export const implausibility = (
  request: ResolvedRequest,
  reported: { readonly inputTokens: number; readonly outputTokens: number },
  ceiling: number
): string | undefined => {
  if (reported.outputTokens > request.maxTokens) {
    return `${reported.outputTokens} output tokens were reported, past the call's maxTokens of ${request.maxTokens} ` +
      `(a server that ignores the limit, or misreports)`
  }
  if (reported.inputTokens > ceiling) {
    return `${reported.inputTokens} input tokens were reported, past the ${ceiling} that any tokenizer could count ` +
      `for what was sent`
  }
  return undefined
}
