/**
 * A key of any shape a server echoes back is kept out of every error and span, by its value, when the adapter is
 * told the model's secrets.
 */
import { createAnthropic } from "@ai-sdk/anthropic"
import { describe, expect, it } from "@effect/vitest"
import { LanguageModel } from "@trellis/llm"
import { Anthropic, Tracing } from "@trellis/test-servers"
import { Effect, Layer, Redacted, Stream } from "effect"
import { AiSdk } from "../src/index.js"

const modelName = "claude-haiku-4-5"

const keys = Tracing.oddKeys
const recording = Tracing.recordingTracer
const everything = Tracing.errorText

describe.each(keys)("AiSdk, a server echoing the key %s", (key) => {
  const layerOn = (url: string) =>
    AiSdk.layer({ model: createAnthropic({ apiKey: key, baseURL: url })(modelName), secrets: [Redacted.make(key)] })

  const echoed = (request: Anthropic.Received) => String(request.headers["x-api-key"])

  it.scoped("on a 401 and a 500, in the detail, raw or JSON-escaped: the key is in no error and no span", () =>
    Effect.gen(function*() {
      const server = yield* Anthropic.start((request, res) =>
        request.index === 0
          ? Anthropic.error(res, 401, `invalid x-api-key ${echoed(request)}`)
          : Anthropic.send(res, 500, `{"type":"error","error":{"type":"api_error","message":"upstream refused ${
            JSON.stringify(echoed(request)).slice(1, -1).replace(/_/g, "\\u005f").replace(/-/g, "\\u002d")
          }"}}`, { "content-type": "application/json" })
      )
      const { text, tracer } = recording()
      const call = LanguageModel.generate("Hi").pipe(Effect.provide(layerOn(server.url)), Effect.withTracer(tracer))
      const refused = yield* Effect.flip(call)
      const failed = yield* Effect.flip(call)
      expect(server.received.map((request) => request.headers["x-api-key"])).toEqual([key, key])
      expect(refused).toMatchObject({ _tag: "AuthenticationError", status: 401 })
      expect(failed).toMatchObject({ _tag: "ServerError", status: 500 })
      expect(refused.message).toContain("invalid x-api-key <redacted>")
      expect(failed.message).toContain("upstream refused <redacted>")
      for (const error of [refused, failed]) expect(everything(error)).not.toContain(key)
      expect(text()).toContain("AuthenticationError")
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

describe("AiSdk secrets option", () => {
  it.effect("anything but Redacted strings fails the layer, without showing what it was given", () =>
    Effect.gen(function*() {
      const model = createAnthropic({ apiKey: keys[0], baseURL: "http://127.0.0.1:9/v1" })(modelName)
      const error = yield* Effect.flip(
        Layer.build(AiSdk.layer({ model, secrets: [keys[0]] as never })).pipe(Effect.scoped)
      )
      expect(error).toMatchObject({ _tag: "InvalidOption", option: "secrets" })
      expect(error.message).not.toContain(keys[0])
    }))
})
