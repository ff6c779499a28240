/**
 * A server on 127.0.0.1 that speaks OpenAI's Chat Completions API, for the real `openai` SDK to talk to in tests:
 * completions and their streamed chunks, error statuses, and requests left open to see a client hang up.
 */
import type * as http from "node:http"

export { type Handler, type Received, type Server, start } from "./Http.js"

/** A chat completion body as OpenAI sends it. */
export const completion = (text: string, options: { usage?: { prompt_tokens: number; completion_tokens: number } | null; model?: string; finish_reason?: string; tool_calls?: Array<unknown> } = {}) => ({
  id: "chatcmpl-1",
  object: "chat.completion",
  created: 1,
  model: options.model ?? "test-model",
  choices: [{
    index: 0,
    message: { role: "assistant", content: text, refusal: null, ...(options.tool_calls ? { tool_calls: options.tool_calls } : {}) },
    finish_reason: options.finish_reason ?? "stop",
    logprobs: null
  }],
  ...(options.usage === null ? {} : {
    usage: options.usage === undefined
      ? { prompt_tokens: 11, completion_tokens: 7, total_tokens: 18 }
      : { ...options.usage, total_tokens: options.usage.prompt_tokens + options.usage.completion_tokens }
  })
})

export const json = (res: http.ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}) => {
  res.writeHead(status, { "content-type": "application/json", ...headers })
  res.end(typeof body === "string" ? body : JSON.stringify(body))
}

/** Answers as a server-sent event stream: one event per chunk, then `[DONE]`. */
export const sse = (res: http.ServerResponse, chunks: ReadonlyArray<unknown>) => {
  res.writeHead(200, { "content-type": "text/event-stream" })
  for (const chunk of chunks) res.write(`data: ${JSON.stringify(chunk)}\n\n`)
  res.end("data: [DONE]\n\n")
}

export const chunk = (delta: Record<string, unknown>, extra: Record<string, unknown> = {}) => ({
  id: "chatcmpl-1",
  object: "chat.completion.chunk",
  created: 1,
  model: "test-model",
  choices: [{ index: 0, delta, finish_reason: null, logprobs: null }],
  ...extra
})
