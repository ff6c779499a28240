/**
 * The HTTP status decides what a refusal is, whatever its body: a server in front of the API (a gateway, a proxy,
 * another provider's shape) answers errors in bodies `@ai-sdk/anthropic` cannot read.
 */
import { createAnthropic } from "@ai-sdk/anthropic"
import { describe, expect, it } from "@effect/vitest"
import { Ledger } from "@trellis/core"
import { LanguageModel } from "@trellis/llm"
import { Anthropic } from "@trellis/test-servers"
import { Duration, Effect, Stream } from "effect"
import type * as http from "node:http"
import { AiSdk } from "../src/index.js"

const modelName = "claude-haiku-4-5"

const layerOn = (url: string) => AiSdk.layer({ model: createAnthropic({ apiKey: "sk-ant-test-KEY", baseURL: url })(modelName) })

// A refusal's body in three shapes: plain text, OpenAI's JSON, a proxy's HTML page.
const bodies: ReadonlyArray<readonly [string, (res: http.ServerResponse, status: number, headers?: Record<string, string>) => void]> = [
  ["plain text", (res, status, headers) => Anthropic.send(res, status, "Too many requests, slow down", headers)],
  [
    "OpenAI's JSON",
    (res, status, headers) =>
      Anthropic.send(res, status, { error: { message: "Too many requests, slow down", type: "requests", code: "rate_limit_exceeded" } }, headers)
  ],
  [
    "an HTML page",
    (res, status, headers) =>
      Anthropic.send(res, status, "<html><body><h1>Too many requests, slow down</h1></body></html>", { "content-type": "text/html", ...headers })
  ]
]

describe.each(bodies)("AiSdk, a refusal whose body is %s", (_, refuse) => {
  it.scoped("429 is RateLimited with the server's Retry-After, and costs nothing", () =>
    Effect.gen(function*() {
      const server = yield* Anthropic.start((_, res) => refuse(res, 429, { "retry-after": "7" }))
      const ledger = yield* Ledger.make()
      const error = yield* Effect.flip(
        LanguageModel.generate("Hi").pipe(Effect.provide(layerOn(server.url)), Effect.provideService(Ledger.Ledger, ledger))
      )
      expect(error).toMatchObject({ _tag: "RateLimited", retryAfter: Duration.seconds(7), sent: { requests: 1, billable: 0 } })
      expect(error.message).toContain("Too many requests, slow down")
      expect((yield* ledger.snapshot).total).toMatchObject({ requests: 1, inputTokens: 0, cost: 0 })
    }))

  it.scoped("streamed, 429 is RateLimited with the server's Retry-After", () =>
    Effect.gen(function*() {
      const server = yield* Anthropic.start((_, res) => refuse(res, 429, { "retry-after": "3" }))
      const error = yield* Effect.flip(Stream.runCollect(LanguageModel.stream("Hi")).pipe(Effect.provide(layerOn(server.url))))
      expect(error).toMatchObject({ _tag: "RateLimited", retryAfter: Duration.seconds(3), sent: { requests: 1, billable: 0 } })
    }))

  it.scoped("401 is AuthenticationError, 400 BadRequest, 503 ServerError, each with its status, costing nothing", () =>
    Effect.gen(function*() {
      const statuses = [401, 400, 503]
      const server = yield* Anthropic.start((request, res) => refuse(res, statuses[request.index]!))
      const errors = []
      for (const _ of statuses) errors.push(yield* Effect.flip(LanguageModel.generate("Hi").pipe(Effect.provide(layerOn(server.url)))))
      expect(errors).toMatchObject([
        { _tag: "AuthenticationError", status: 401, sent: { requests: 1, billable: 0 } },
        { _tag: "BadRequest", status: 400, sent: { requests: 1, billable: 0 } },
        { _tag: "ServerError", status: 503, sent: { requests: 1, billable: 0 } }
      ])
    }))
})
