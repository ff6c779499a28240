/**
 * A real HTTP server on 127.0.0.1 for the real SDKs to talk to in tests, answering each request with a handler the
 * test gives; what it received is kept, and a test can wait for requests and for clients that hang up. The servers
 * of each provider's API are built on it.
 */
import { Effect } from "effect"
import * as http from "node:http"
import type { AddressInfo } from "node:net"

/** A request the server received, and whether its client hung up before it was answered. */
export interface Received {
  readonly index: number
  readonly path: string
  readonly headers: http.IncomingHttpHeaders
  readonly body: any
  abandoned: boolean
}

/** How a test answers a request; `res` is left open when the handler does not end it. */
export type Handler = (request: Received, res: http.ServerResponse) => void

/** A running server: its base URL (`.../v1`), what it received, and ways to wait on it. */
export interface Server {
  readonly url: string
  readonly received: ReadonlyArray<Received>
  /** Resolves once `n` requests have arrived. */
  readonly waitFor: (n: number) => Promise<void>
  /** Resolves once the client of request `index` has closed its connection before the answer ended. */
  readonly abandoned: (index: number) => Promise<void>
}

/** Starts a server answering with `handler`; it is closed, with every connection, when the scope ends. */
export const start = (handler: Handler) =>
  Effect.map(
    Effect.acquireRelease(
      Effect.async<{ readonly server: http.Server; readonly handle: Server }>((resume) => {
        const received: Array<Received> = []
        const waiters: Array<() => void> = []
        const notify = () => waiters.splice(0).forEach((wake) => wake())
        const server = http.createServer((req, res) => {
          let raw = ""
          req.on("data", (chunk) => (raw += chunk))
          req.on("end", () => {
            let body: unknown = undefined
            try {
              body = raw.length > 0 ? JSON.parse(raw) : undefined
            } catch {
              body = raw
            }
            const request: Received = { index: received.length, path: req.url ?? "", headers: req.headers, body, abandoned: false }
            received.push(request)
            // "close" on the response comes both after it ended and when the client hung up first.
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
            handle: {
              url: `http://127.0.0.1:${port}/v1`,
              received,
              waitFor: (n) => until(() => received.length >= n),
              abandoned: (index) => until(() => received[index]?.abandoned === true)
            }
          }))
        })
      }),
      ({ server }) =>
        Effect.async<void>((resume) => {
          server.closeAllConnections()
          server.close(() => resume(Effect.void))
        })
    ),
    ({ handle }) => handle
  )
