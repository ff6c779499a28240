/**
 * A key of any shape a server echoes back is kept out of every error and span, by its value, when the adapter is
 * told the client's secrets: the spans the `@effect/ai` model and its HTTP client make under the call included.
 */
import * as AiLanguageModel from "@effect/ai/LanguageModel"
import { AnthropicClient, AnthropicLanguageModel } from "@effect/ai-anthropic"
import { FetchHttpClient } from "@effect/platform"
import { describe, expect, it } from "@effect/vitest"
import { LanguageModel } from "@trellis/llm"
import { Anthropic, Tracing } from "@trellis/test-servers"
import { Effect, Layer, Redacted, Stream } from "effect"
import { EffectAi } from "../src/index.js"

const modelName = "claude-haiku-4-5"

const keys = Tracing.oddKeys
const recording = Tracing.recordingTracer
const everything = Tracing.errorText

describe.each(keys)("EffectAi, a server echoing the key %s", (key) => {
  const layerOn = (url: string) =>
    EffectAi.layer({
      provider: "anthropic",
      model: modelName,
      configure: (request) => AnthropicLanguageModel.withConfigOverride({ max_tokens: request.maxTokens }),
      secrets: Redacted.make(key)
    }).pipe(
      Layer.provide(AnthropicLanguageModel.layer({ model: modelName })),
      Layer.provide(AnthropicClient.layer({ apiKey: Redacted.make(key), apiUrl: url.replace(/\/v1$/, "") })),
      Layer.provide(FetchHttpClient.layer)
    )

  const echoed = (request: Anthropic.Received) => String(request.headers["x-api-key"])

  it.scoped("on a 401, a 500 and a 429 of another shape: the key is in no error and no span", () =>
    Effect.gen(function*() {
      const server = yield* Anthropic.start((request, res) =>
        request.index === 0
          ? Anthropic.error(res, 401, `invalid x-api-key ${echoed(request)}`)
          : request.index === 1
          ? Anthropic.send(res, 500, `upstream refused ${echoed(request)}`)
          : Anthropic.send(res, 429, { error: { message: `slow down, ${echoed(request)}`, type: "requests" } })
      )
      const { spans, text, tracer } = recording()
      const call = LanguageModel.generate("Hi").pipe(Effect.provide(layerOn(server.url)), Effect.withTracer(tracer))
      const errors = [yield* Effect.flip(call), yield* Effect.flip(call), yield* Effect.flip(call)]
      expect(server.received.map((request) => request.headers["x-api-key"])).toEqual([key, key, key])
      expect(errors).toMatchObject([
        { _tag: "AuthenticationError", status: 401 },
        { _tag: "ServerError", status: 500 },
        { _tag: "RateLimited" }
      ])
      expect(errors.map((error) => error.message)).toEqual([
        expect.stringContaining("invalid x-api-key <redacted>"),
        expect.stringContaining("upstream refused <redacted>"),
        expect.stringContaining("slow down, <redacted>")
      ])
      for (const error of errors) expect(everything(error)).not.toContain(key)
      // The @effect/ai model's own spans, and its HTTP client's, were made and ended with the failure.
      expect(spans.map((span) => span.name)).toEqual(expect.arrayContaining(["LanguageModel.generateText", "http.client POST"]))
      expect(text()).toContain("<redacted>")
      expect(text().toLowerCase()).not.toContain(key.toLowerCase())
    }))

  it.scoped("in an error event mid-stream, and as the model name of an answer: the key is in no error and no span", () =>
    Effect.gen(function*() {
      const server = yield* Anthropic.start((request, res) =>
        request.index === 0
          ? Anthropic.sse(res, [
            ...Anthropic.events({ content: "Hello" }).slice(0, 3),
            { type: "error", error: { type: "api_error", message: `key ${echoed(request)} revoked` } }
          ])
          : Anthropic.answer(request, res, { content: "Hello", model: `${modelName}-${echoed(request)}` })
      )
      const { text, tracer } = recording()
      const cut = yield* Effect.flip(
        Stream.runCollect(LanguageModel.stream("Hi")).pipe(Effect.provide(layerOn(server.url)), Effect.withTracer(tracer))
      )
      expect(cut.message).toContain("key <redacted> revoked")
      expect(everything(cut)).not.toContain(key)
      const answer = yield* LanguageModel.generate("Hi").pipe(Effect.provide(layerOn(server.url)), Effect.withTracer(tracer))
      expect(answer.model).toBe(`${modelName}-<redacted>`)
      expect(text()).toContain(`${modelName}-<redacted>`)
      expect(text()).not.toContain(key)
    }))
})

describe("EffectAi secrets option", () => {
  it.effect("anything but Redacted strings fails the layer, without showing what it was given", () =>
    Effect.gen(function*() {
      const error = yield* Effect.flip(
        Layer.build(EffectAi.layer({ provider: "anthropic", model: modelName, secrets: keys[0] as never })).pipe(
          Effect.scoped,
          // Never reached: the options are checked first.
          Effect.provide(Layer.succeed(AiLanguageModel.LanguageModel, {} as AiLanguageModel.Service))
        )
      )
      expect(error).toMatchObject({ _tag: "InvalidOption", option: "secrets" })
      expect(error.message).not.toContain(keys[0])
    }))
})
