import { describe, expect, it } from "@effect/vitest"
import { Duration, Effect, Layer, Redacted, Schema, Stream } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { Fixtures, LanguageModel, LlmError, OpenAi, Pricing, Provider, ScriptedModel } from "../src/index.js"
import { OpenAi as Server } from "@trellis/test-servers"

/** A fresh directory for the test's files, removed when the scope ends. */
const tempDir = Effect.acquireRelease(
  Effect.sync(() => fs.mkdtempSync(path.join(os.tmpdir(), "trellis-fixtures-"))),
  (dir) => Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true }))
)

const readJson = (file: string) => JSON.parse(fs.readFileSync(file, "utf8"))

const Invoice = Schema.Struct({ vendor: Schema.String, total: Schema.Number })

// Calls in order: plain text, a tool call, an object whose first answer does not decode, a stream, a rate limit.
const script = () =>
  ScriptedModel.make({
    reply: (request, index) => {
      switch (index) {
        case 0:
          return "A short summary."
        case 1:
          return {
            toolCalls: [{ id: "call_1", name: "add", arguments: `{"a":2,"b":3}` }],
            usage: { inputTokens: 40, outputTokens: 9, cachedInputTokens: 8 }
          }
        case 2:
          return `{"vendor":"Acme"}`
        case 3:
          return `{"vendor":"Acme","total":12}`
        case 4:
          return "Streamed in words."
        default:
          return Effect.fail(
            new LlmError.RateLimited({
              provider: "scripted",
              retryAfter: Duration.seconds(3),
              detail: `slow down ${request.messages.length}`
            })
          )
      }
    }
  })

const tools = [{ name: "add", description: "Adds", parameters: { type: "object" } }]

/** Every kind of call, its answers kept: what a replay must give back the same. */
const session = Effect.gen(function*() {
  const text = yield* LanguageModel.generate({ system: "Be brief.", messages: [{ role: "user", content: "Summarize." }] })
  const toolCall = yield* LanguageModel.generate({ messages: [{ role: "user", content: "2+3?" }], tools, temperature: 0 })
  const object = yield* LanguageModel.generateObject(Invoice, "The invoice.")
  const parts = yield* Stream.runCollect(LanguageModel.stream({ messages: [{ role: "user", content: "Stream." }], maxTokens: 50 }))
  const error = yield* Effect.flip(LanguageModel.generate("One more."))
  return { text, toolCall, object, parts: [...parts], error }
})

describe("Fixtures", () => {
  it.scoped("records every call and its answer, then replays them to the same responses, usage and errors", () =>
    Effect.gen(function*() {
      const file = path.join(yield* tempDir, "calls.json")
      const model = script()
      const recorded = yield* session.pipe(Effect.provide(model.layer.pipe(Layer.provide(Fixtures.record(file)))))
      expect(model.calls).toHaveLength(6)

      const written = readJson(file)
      expect(written).toMatchObject({ version: 1, provider: "scripted", model: "gpt-4o-mini" })
      expect(written.calls).toHaveLength(6)
      expect(written.calls[0].request.messages[0]).toEqual({ role: "system", content: "Be brief." })
      expect(written.calls[1].answer.completion.toolCalls).toEqual([{ id: "call_1", name: "add", arguments: `{"a":2,"b":3}` }])
      expect(written.calls[4].answer.deltas).toEqual(["Streamed ", "in ", "words."])
      expect(written.calls[5].answer).toMatchObject({ _tag: "Failure", error: { _tag: "RateLimited", retryAfter: 3000 } })

      const replayed = yield* session.pipe(Effect.provide(Fixtures.replay(file)))
      expect(model.calls).toHaveLength(6)
      expect(replayed.text).toEqual(recorded.text)
      expect(replayed.toolCall).toEqual(recorded.toolCall)
      expect(replayed.toolCall.usage.cachedInputTokens).toBe(8)
      expect(replayed.object).toEqual(recorded.object)
      expect(replayed.object.attempts).toBe(2)
      expect(replayed.parts).toEqual(recorded.parts)
      expect(replayed.error).toBeInstanceOf(LlmError.RateLimited)
      expect({ ...replayed.error }).toEqual({ ...recorded.error })
      expect(replayed.error.message).toBe("scripted rate limited the call, retry after 3s: slow down 1")
    }))

  it.scoped("answers a request recorded several times in the order it was recorded, and fails past the last", () =>
    Effect.gen(function*() {
      const file = path.join(yield* tempDir, "calls.json")
      const model = ScriptedModel.make({ reply: (_, index) => `answer ${index}` })
      const ask = LanguageModel.generate("Same question.")
      yield* Effect.all([ask, ask]).pipe(Effect.provide(model.layer.pipe(Layer.provide(Fixtures.record(file)))))

      const replayed = yield* Effect.gen(function*() {
        const first = yield* ask
        const second = yield* ask
        const third = yield* Effect.flip(ask)
        return { first: first.text, second: second.text, third }
      }).pipe(Effect.provide(Fixtures.replay(file)))
      expect([replayed.first, replayed.second]).toEqual(["answer 0", "answer 1"])
      expect(replayed.third).toBeInstanceOf(LlmError.NoRecording)
      expect(replayed.third.message).toMatch(
        /has no recorded answer for request [0-9a-f]{12} \(model gpt-4o-mini, 1 messages, last user message "Same question\."\), asked 3 times and recorded 2 time\(s\)/
      )
    }))

  it.scoped("fails a request with no recording with NoRecording, naming it and the nearest recorded one", () =>
    Effect.gen(function*() {
      const file = path.join(yield* tempDir, "calls.json")
      const model = ScriptedModel.make({ reply: () => "fine" })
      yield* Effect.all([
        LanguageModel.generate({ messages: [{ role: "user", content: "The first question." }], maxTokens: 100 }),
        LanguageModel.generate({ messages: [{ role: "user", content: "Something else entirely." }], maxTokens: 300 })
      ]).pipe(Effect.provide(model.layer.pipe(Layer.provide(Fixtures.record(file)))))

      const error = yield* Effect.flip(
        LanguageModel.generate({ messages: [{ role: "user", content: "The first question." }], maxTokens: 200 })
      ).pipe(Effect.provide(Fixtures.replay(file)))
      if (error._tag !== "NoRecording") return expect.fail(`expected NoRecording, got ${error._tag}`)
      expect(error.file).toBe(file)
      expect(error.request).toMatch(/^[0-9a-f]{12} \(model gpt-4o-mini, 1 messages, last user message "The first question\."\)$/)
      expect(error.nearest).toMatch(/which differs at maxTokens: 100 recorded, 200 asked$/)
      expect(error.nearest).toContain(`"The first question."`)
      // Nothing was sent: the failed call costs nothing.
      expect(error.sent).toEqual({ requests: 0, billable: 0 })
    }))

  it.scoped("keeps the file whole after each call, and refuses a file that is not a recording", () =>
    Effect.gen(function*() {
      const dir = yield* tempDir
      const file = path.join(dir, "calls.json")
      const seen: Array<number> = []
      const model = ScriptedModel.make({
        // Each call reads the file as the previous calls left it.
        reply: (_, index) => {
          seen.push(readJson(file).calls.length)
          return `answer ${index}`
        }
      })
      yield* Effect.forEach([1, 2, 3], (n) => LanguageModel.generate(`Question ${n}`)).pipe(
        Effect.provide(model.layer.pipe(Layer.provide(Fixtures.record(file))))
      )
      expect(seen).toEqual([0, 1, 2])
      expect(readJson(file).calls).toHaveLength(3)
      expect(fs.readdirSync(dir)).toEqual(["calls.json"])

      const broken = path.join(dir, "broken.json")
      fs.writeFileSync(broken, JSON.stringify({ version: 1, provider: "x", model: "m", calls: [{ request: {} }] }))
      const refused = yield* Effect.flip(Layer.build(Fixtures.replay(broken)))
      expect(refused).toBeInstanceOf(Fixtures.FixtureError)
      expect(refused.message).toMatch(/^Fixture file .*broken\.json: is not a recording: /)
      expect(refused.message).toContain(`calls[0].request.model is missing`)

      // Figures from the file are checked before they are used.
      const recorded = readJson(file)
      recorded.calls[1].answer.completion.usage = { inputTokens: -5, outputTokens: 1 }
      fs.writeFileSync(broken, JSON.stringify(recorded))
      const negative = yield* Effect.flip(Layer.build(Fixtures.replay(broken)))
      expect(negative.message).toMatch(/is not a recording: calls\[1\]\.answer\.completion\.usage\.inputTokens Expected a non-negative number, actual -5$/)

      const missing = yield* Effect.flip(Layer.build(Fixtures.replay(path.join(dir, "none.json"))))
      expect(missing.message).toMatch(/none\.json: cannot be read: .*ENOENT/)
      const unwritable = yield* Effect.flip(Layer.build(Fixtures.record(path.join(dir, "no", "such", "dir.json"))))
      expect(unwritable.message).toMatch(/dir\.json: cannot be written: .*ENOENT/)
    }))

  it.scoped("records the OpenAI layer against a local server without its key, and replays with the server gone", () =>
    Effect.gen(function*() {
      const file = path.join(yield* tempDir, "openai.json")
      const secret = "sk-test-SECRET-fixtures-42"
      const prices = Pricing.layer({ overrides: { "test-model": { inputPerMillion: 1, outputPerMillion: 2 } } })
      const ask = LanguageModel.generate({ system: "Be brief.", messages: [{ role: "user", content: "Capital of France?" }] })
      const recorded = yield* Effect.scoped(Effect.gen(function*() {
        const server = yield* Server.start((_, res) =>
          Server.json(res, 200, Server.completion("Paris.", { usage: { prompt_tokens: 21, completion_tokens: 2 } }))
        )
        const layer = OpenAi.layer({
          apiKey: Redacted.make(secret),
          baseURL: server.url,
          model: "test-model"
        }).pipe(Layer.provide(Fixtures.record(file)), Layer.provide(prices))
        const response = yield* Effect.provide(ask, layer)
        // The key did reach the server: it is the file that must not hold it.
        expect(server.received[0]!.headers["authorization"]).toBe(`Bearer ${secret}`)
        return response
      }))
      const text = fs.readFileSync(file, "utf8")
      expect(text).not.toContain(secret)
      expect(text).not.toContain("Bearer")
      expect(readJson(file)).toMatchObject({ provider: "openai", model: "test-model" })

      const replayed = yield* Effect.provide(ask, Fixtures.replay(file).pipe(Layer.provide(prices)))
      expect(replayed).toEqual(recorded)
      expect(replayed.usage).toMatchObject({ inputTokens: 21, outputTokens: 2, cost: 21 * 1000 + 2 * 2000 })
    }))

  it.scoped("replays a stream cut by an error to the same deltas and error, and streams a generated answer by words", () =>
    Effect.gen(function*() {
      const file = path.join(yield* tempDir, "calls.json")
      const cut: Provider.Provider = {
        name: "cut",
        model: "gpt-4o-mini",
        generate: () => Effect.succeed({ text: "Whole answer here.", toolCalls: [], finishReason: "stop", model: "gpt-4o-mini" }),
        stream: () =>
          Stream.concat(
            Stream.make<Array<Provider.Chunk>>({ _tag: "Delta", text: "Half " }, { _tag: "Delta", text: "an" }),
            Stream.fail(new LlmError.ServerError({ provider: "cut", status: undefined, detail: "connection lost" }))
          )
      }
      const session = Effect.gen(function*() {
        const deltas: Array<string> = []
        const error = yield* Effect.flip(
          Stream.runForEach(LanguageModel.stream("Cut me."), (part) =>
            Effect.sync(() => part._tag === "TextDelta" && deltas.push(part.text)))
        )
        const words = yield* Stream.runCollect(LanguageModel.stream("Whole."))
        return { deltas, error, words: [...words].flatMap((part) => (part._tag === "TextDelta" ? [part.text] : [])) }
      })
      // "Whole." is recorded from generate, then asked as a stream.
      yield* Effect.gen(function*() {
        yield* Effect.flip(Stream.runDrain(LanguageModel.stream("Cut me.")))
        yield* LanguageModel.generate("Whole.")
      }).pipe(Effect.provide(Layer.provide(Layer.effect(LanguageModel.LanguageModel, LanguageModel.make(cut)), Fixtures.record(file))))

      const replayed = yield* Effect.provide(session, Fixtures.replay(file))
      expect(replayed.deltas).toEqual(["Half ", "an"])
      expect(replayed.error).toMatchObject({ _tag: "ServerError", status: undefined, detail: "connection lost" })
      expect(replayed.words).toEqual(["Whole ", "answer ", "here."])
    }))
})
