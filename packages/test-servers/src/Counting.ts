/**
 * Usage as a server with a tokenizer of its own counts it, for tests of budgets against honest servers that count
 * otherwise than the local `o200k_base` count: about one token for every three bytes of text (the local count makes
 * about one of four bytes of English, so these count some 30-40% more), over everything the server bills as input:
 * the messages, the schema of structured output, the tools' definitions, and markup of its own.
 */

const encoder = new TextEncoder()

/** Tokens for `text` at one for every three bytes. */
const tokens = (text: string): number => Math.ceil(encoder.encode(text).length / 3)

const textOf = (content: unknown): string => (typeof content === "string" ? content : JSON.stringify(content ?? ""))

/** What an answer's output counts: its text, cut at the request's limit as an honest server cuts it. */
const output = (text: string, limit: unknown): number =>
  Math.min(tokens(text), typeof limit === "number" ? limit : Number.MAX_SAFE_INTEGER)

/**
 * Chat Completions usage for a request's body and the answer's text: the messages with a few tokens of markup
 * each, `response_format`'s schema and `tools` (a server reads both), and the output within `max_tokens` (or
 * `max_completion_tokens`).
 */
export const openAi = (body: any, text: string): { prompt_tokens: number; completion_tokens: number } => {
  const messages: ReadonlyArray<any> = Array.isArray(body?.messages) ? body.messages : []
  let input = 3
  for (const message of messages) input += 4 + tokens(textOf(message.content)) + tokens(textOf(message.tool_calls ?? ""))
  if (body?.response_format !== undefined) input += tokens(JSON.stringify(body.response_format))
  if (body?.tools !== undefined) input += tokens(JSON.stringify(body.tools))
  return { prompt_tokens: input, completion_tokens: output(text, body?.max_completion_tokens ?? body?.max_tokens) }
}

/**
 * The tokens Anthropic adds for its tool-use system prompt when a request offers tools (313 with `tool_choice` of
 * `any` or `tool`, as its documentation gives for its current models).
 */
export const anthropicToolPrompt = 313

/**
 * Messages API usage for a request's body and the answer's text: the system prompt, the messages, the tools'
 * definitions (with the tool-use system prompt when tools are offered) and the schema of structured output, and the
 * output within `max_tokens`.
 */
export const anthropic = (body: any, text: string): { input_tokens: number; output_tokens: number } => {
  const messages: ReadonlyArray<any> = Array.isArray(body?.messages) ? body.messages : []
  let input = tokens(textOf(body?.system ?? ""))
  for (const message of messages) input += 3 + tokens(textOf(message.content))
  if (Array.isArray(body?.tools) && body.tools.length > 0) input += anthropicToolPrompt + tokens(JSON.stringify(body.tools))
  // Structured output: the schema is read as part of the prompt.
  const format = body?.output_config?.format ?? body?.output_format
  if (format !== undefined) input += tokens(JSON.stringify(format))
  return { input_tokens: input, output_tokens: output(text, body?.max_tokens) }
}
