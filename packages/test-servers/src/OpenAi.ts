/**
 * A server on 127.0.0.1 that speaks OpenAI's Chat Completions API, for the real `openai` SDK to talk to in tests:
 * completions and their streamed chunks, error statuses, and requests left open to see a client hang up.
 */
import { Effect } from "effect"
import * as http from "node:http"
import type { AddressInfo } from "node:net"

/** A request the test server received, and whether its client hung up before it was answered. */
export interface Received {
  readonly index: number
  readonly path: string
  readonly headers: http.IncomingHttpHeaders
  readonly body: any
  abandoned: boolean
}

/** How the test answers a request; `res` is left open when the handler does not end it. */
export type Handler = (request: Received, res: http.ServerResponse) => void

/** A real HTTP server on 127.0.0.1, for the `openai` SDK to talk to; closed when the scope ends. */
export const start = (handler: Handler) =>
  Effect.acquireRelease(
    Effect.async<{ server: http.Server; url: string; received: Array<Received>; waitFor: (n: number) => Promise<void>; abandoned: (index: number) => Promise<void> }>((resume) => {
      const received: Array<Received> = []
      const waiters: Array<() => void> = []
      const notify = () => waiters.splice(0).forEach((wake) => wake())
      const server = http.createServer((req, res) => {
        let raw = ""
        req.on("data", (chunk) => (raw += chunk))
        req.on("end", () => {
          const request: Received = {
            index: received.length,
            path: req.url ?? "",
            headers: req.headers,
            body: raw.length > 0 ? JSON.parse(raw) : undefined,
            abandoned: false
          }
          received.push(request)
          res.on("close", () => {
            if (!res.writableEnded) request.abandoned = true
            notify()
          })
          notify()
          handler(request, res)
        })
      })
      const until = (done: () => boolean) =>
        new Promise<void>((resolve) => {
          const check = () => (done() ? resolve() : waiters.push(check))
          check()
        })
      server.listen(0, "127.0.0.1", () => {
        const { port } = server.address() as AddressInfo
        resume(Effect.succeed({
          server,
          url: `http://127.0.0.1:${port}/v1`,
          received,
          waitFor: (n) => until(() => received.length >= n),
          abandoned: (index) => until(() => received[index]?.abandoned === true)
        }))
      })
    }),
    ({ server }) =>
      Effect.async<void>((resume) => {
        server.closeAllConnections()
        server.close(() => resume(Effect.void))
      })
  )

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
