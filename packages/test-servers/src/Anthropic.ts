/**
 * A server on 127.0.0.1 that speaks Anthropic's Messages API (`POST /v1/messages`), for the real SDKs to talk to
 * in tests: plain and streamed (server-sent events) answers, usage with cache tokens, tool calls, error statuses
 * with Anthropic's error bodies, and requests left open to see a client hang up.
 */
import type * as http from "node:http"
import type { Received } from "./Http.js"

export { type Handler, type Received, type Server, start } from "./Http.js"

/** Usage as Anthropic reports it: `input_tokens` leaves out the tokens read from or written to the cache. */
export interface Usage {
  readonly input_tokens: number
  readonly output_tokens: number
  readonly cache_read_input_tokens?: number | undefined
  readonly cache_creation_input_tokens?: number | undefined
}

/** A content block of an answer: text, or a tool call with its input. */
export type Block =
  | { readonly type: "text"; readonly text: string }
  | { readonly type: "tool_use"; readonly id: string; readonly name: string; readonly input: unknown }

/** What an answer holds; text alone when given a string. */
export interface Answer {
  readonly content: string | ReadonlyArray<Block>
  readonly usage?: Usage | undefined
  readonly model?: string | undefined
  /** "end_turn" (default; "tool_use" when the content has a tool call), "max_tokens", "refusal"... */
  readonly stop_reason?: string | undefined
}

const blocks = (answer: Answer): ReadonlyArray<Block> =>
  typeof answer.content === "string" ? [{ type: "text", text: answer.content }] : answer.content

const stopReason = (answer: Answer) =>
  answer.stop_reason ?? (blocks(answer).some((block) => block.type === "tool_use") ? "tool_use" : "end_turn")

const usageOf = (answer: Answer): Usage => answer.usage ?? { input_tokens: 11, output_tokens: 7 }

/** The body of a message as the API answers it. */
export const message = (answer: Answer, model = "claude-haiku-4-5") => ({
  id: "msg_1",
  type: "message",
  role: "assistant",
  model: answer.model ?? model,
  content: blocks(answer),
  stop_reason: stopReason(answer),
  stop_sequence: null,
  usage: { cache_creation_input_tokens: 0, cache_read_input_tokens: 0, ...usageOf(answer) }
})

/** The events of a streamed answer, in the order the API sends them; text is sent in pieces of `piece` characters. */
export const events = (answer: Answer, model = "claude-haiku-4-5", piece = 4): Array<Record<string, unknown>> => {
  const usage = usageOf(answer)
  const out: Array<Record<string, unknown>> = [{
    type: "message_start",
    message: {
      ...message({ ...answer, content: [] }, model),
      stop_reason: null,
      usage: { cache_creation_input_tokens: 0, cache_read_input_tokens: 0, ...usage, output_tokens: 1 }
    }
  }]
  blocks(answer).forEach((block, index) => {
    if (block.type === "text") {
      out.push({ type: "content_block_start", index, content_block: { type: "text", text: "" } })
      for (let at = 0; at < block.text.length; at += piece) {
        out.push({ type: "content_block_delta", index, delta: { type: "text_delta", text: block.text.slice(at, at + piece) } })
      }
    } else {
      out.push({ type: "content_block_start", index, content_block: { type: "tool_use", id: block.id, name: block.name, input: {} } })
      out.push({ type: "content_block_delta", index, delta: { type: "input_json_delta", partial_json: JSON.stringify(block.input) } })
    }
    out.push({ type: "content_block_stop", index })
  })
  out.push({ type: "message_delta", delta: { stop_reason: stopReason(answer), stop_sequence: null }, usage: { output_tokens: usage.output_tokens } })
  out.push({ type: "message_stop" })
  return out
}

/** Writes events as server-sent events; the response is ended unless `open`. */
export const sse = (res: http.ServerResponse, list: ReadonlyArray<Record<string, unknown>>, open = false) => {
  if (!res.headersSent) res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache" })
  for (const event of list) res.write(`event: ${String(event["type"])}\ndata: ${JSON.stringify(event)}\n\n`)
  if (!open) res.end()
}

/** Answers a request with `answer`, streamed when the request asked for a stream. */
export const answer = (request: Received, res: http.ServerResponse, reply: Answer) => {
  const model = typeof request.body?.model === "string" ? request.body.model : undefined
  if (request.body?.stream === true) return sse(res, events(reply, model))
  res.writeHead(200, { "content-type": "application/json", "request-id": "req_1" })
  res.end(JSON.stringify(message(reply, model)))
}

/** The error type Anthropic names for a status. */
const errorType = (status: number): string =>
  status === 400 ? "invalid_request_error"
  : status === 401 ? "authentication_error"
  : status === 403 ? "permission_error"
  : status === 404 ? "not_found_error"
  : status === 429 ? "rate_limit_error"
  : status === 529 ? "overloaded_error"
  : "api_error"

/** Answers with an error status and Anthropic's error body (`retry-after` and others as `headers`). */
export const error = (
  res: http.ServerResponse,
  status: number,
  detail: string,
  headers: Record<string, string> = {}
) => {
  res.writeHead(status, { "content-type": "application/json", ...headers })
  res.end(JSON.stringify({ type: "error", error: { type: errorType(status), message: detail } }))
}

/**
 * Answers with any status and any body, as a server that does not quite speak the API would: plain text, an HTML
 * page from a proxy, JSON of another provider's shape. An object is sent as JSON, a string as it is.
 */
export const send = (
  res: http.ServerResponse,
  status: number,
  body: string | object,
  headers: Record<string, string> = {}
) => {
  const json = typeof body !== "string"
  res.writeHead(status, { "content-type": json ? "application/json" : "text/plain; charset=utf-8", ...headers })
  res.end(json ? JSON.stringify(body) : body)
}

/** The text of a request as the API received it: its system prompt and every message, to answer by what was asked. */
export const textOf = (request: Received): string => {
  const body = request.body ?? {}
  const part = (content: unknown): string =>
    typeof content === "string"
      ? content
      : Array.isArray(content)
      ? content.map((block) => (typeof block?.text === "string" ? block.text : JSON.stringify(block))).join("\n")
      : ""
  return [part(body.system), ...(Array.isArray(body.messages) ? body.messages.map((m: any) => part(m.content)) : [])]
    .join("\n")
}
