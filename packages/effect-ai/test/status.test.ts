/**
 * The HTTP status decides what a refusal is, whatever its body: a server in front of the API (a gateway, a proxy,
 * another provider's shape) answers errors in bodies `@effect/ai-anthropic` cannot read.
 */
import { AnthropicClient, AnthropicLanguageModel } from "@effect/ai-anthropic"
import { FetchHttpClient } from "@effect/platform"
import { describe, expect, it } from "@effect/vitest"
import { Ledger } from "@trellis/core"
import { LanguageModel } from "@trellis/llm"
import { Anthropic } from "@trellis/test-servers"
import { Duration, Effect, Layer, Redacted, Stream } from "effect"
import type * as http from "node:http"
import { EffectAi } from "../src/index.js"

const modelName = "claude-haiku-4-5"

const layerOn = (url: string) =>
  EffectAi.layer({
    provider: "anthropic",
    model: modelName,
    configure: (request) => AnthropicLanguageModel.withConfigOverride({ max_tokens: request.maxTokens })
  }).pipe(
    Layer.provide(AnthropicLanguageModel.layer({ model: modelName })),
    Layer.provide(AnthropicClient.layer({ apiKey: Redacted.make("sk-ant-test-KEY"), apiUrl: url.replace(/\/v1$/, "") })),
    Layer.provide(FetchHttpClient.layer)
  )

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

describe.each(bodies)("EffectAi, a refusal whose body is %s", (_, refuse) => {
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

describe("EffectAi, with tracing turned off", () => {
  it.scoped("a 429 in plain text is still RateLimited: its status came with the error", () =>
    Effect.gen(function*() {
      const server = yield* Anthropic.start((_, res) => Anthropic.send(res, 429, "Too many requests", { "retry-after": "2" }))
      const error = yield* Effect.flip(
        LanguageModel.generate("Hi").pipe(Effect.provide(layerOn(server.url)), Effect.withTracerEnabled(false))
      )
      expect(error).toMatchObject({ _tag: "RateLimited", retryAfter: Duration.seconds(2), sent: { requests: 1, billable: 0 } })
    }))
})
