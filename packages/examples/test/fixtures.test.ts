/**
 * Recorded fixtures: the document pipeline recorded against an OpenAI-compatible server on 127.0.0.1, then replayed
 * with the server gone; and the demo's `--record` and `--replay`.
 */
import { describe, expect, it } from "@effect/vitest"
import { Cost, Router } from "@trellis/core"
import { Fixtures, OpenAi } from "@trellis/llm"
import { Effect, Layer, Redacted } from "effect"
import { mkdtempSync, readFileSync, rmSync } from "node:fs"
import { createServer, type Server } from "node:http"
import type { AddressInfo } from "node:net"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { Document, router } from "../src/document/pipeline.js"
import { quarterlyReport } from "../src/document/samples.js"
import { demo } from "./support.js"

const tempDir = Effect.acquireRelease(
  Effect.sync(() => mkdtempSync(join(tmpdir(), "trellis-fixtures-"))),
  (dir) => Effect.sync(() => rmSync(dir, { recursive: true, force: true }))
)

/**
 * A server that speaks Chat Completions on 127.0.0.1, closed (every connection with it) when the scope ends: it
 * answers the extraction and the classification by their schema, else the brief, with usage that differs by call.
 */
const chatServer = Effect.gen(function*() {
  let requests = 0
  const server: Server = createServer((req, res) => {
    let raw = ""
    req.on("data", (chunk) => (raw += chunk))
    req.on("end", () => {
      const body = JSON.parse(raw)
      const n = ++requests
      const fields = Object.keys(body.response_format?.json_schema?.schema?.properties ?? {})
      const content = fields.includes("category")
        ? `{"category":"earnings"}`
        : fields.includes("company")
        ? `{"title":"Q3 report","company":"Northwind Traders","summary":"Revenue grew.","topics":["revenue"]}`
        : "Call the account owner this week."
      res.writeHead(200, { "content-type": "application/json" })
      res.end(JSON.stringify({
        id: `c${n}`,
        object: "chat.completion",
        created: 0,
        model: body.model,
        choices: [{ index: 0, message: { role: "assistant", content, refusal: null }, finish_reason: "stop", logprobs: null }],
        usage: { prompt_tokens: 100 * n, completion_tokens: 10 * n, total_tokens: 110 * n }
      }))
    })
  })
  yield* Effect.acquireRelease(
    Effect.async<void>((resume) => void server.listen(0, "127.0.0.1", () => resume(Effect.void))),
    () =>
      Effect.async<void>((resume) => {
        server.closeAllConnections()
        server.close(() => resume(Effect.void))
      })
  )
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`, requests: () => requests }
})

describe("recorded fixtures", () => {
  it.scoped("records the document pipeline against a local server, then replays it with the server gone", () =>
    Effect.gen(function*() {
      const file = join(yield* tempDir, "document.json")
      const key = "sk-fixture-KEY-must-not-be-written"
      const budget = Cost.dollars(0.01)
      const run = Router.run(router({ budget })).pipe(Effect.provideService(Document, { text: quarterlyReport }))

      const recorded = yield* Effect.scoped(Effect.gen(function*() {
        const server = yield* chatServer
        const model = OpenAi.layer({ apiKey: Redacted.make(key), baseURL: server.url, model: "gpt-4.1-mini" })
        const { result } = yield* Effect.provide(run, model.pipe(Layer.provide(Fixtures.record(file))))
        expect(server.requests()).toBe(6)
        return { result, url: server.url }
      }))
      const text = readFileSync(file, "utf8")
      expect(text).not.toContain(key)
      // Extraction, classification, the brief, and a key point for each of the document's three sections.
      expect(JSON.parse(text).calls).toHaveLength(6)

      // The server is closed: a call that reached for it would fail.
      const failed = yield* Effect.flip(Effect.provide(run, OpenAi.layer({
        apiKey: Redacted.make(key),
        baseURL: recorded.url,
        model: "gpt-4.1-mini",
        retry: { times: 0 }
      })))
      expect(failed).toMatchObject({ _tag: "StepFailed", error: { _tag: "ServerError", status: undefined } })

      const { result } = yield* Effect.provide(run, Fixtures.replay(file))
      expect(result.output).toEqual(recorded.result.output)
      expect(result.output).toMatchObject({ category: "earnings", company: "Northwind Traders" })
      expect(result.usage).toEqual(recorded.result.usage)
      // gpt-4.1-mini: $0.40 per million input tokens, $1.60 output; calls of 100n in and 10n out, n = 1 to 6.
      expect(result.usage.total).toMatchObject({ inputTokens: 2100, outputTokens: 210, requests: 6, estimated: false })
      expect(result.usage.total.cost).toBe(2100 * 400 + 210 * 1600)
    }))

  it.effect("runs the demo with --record, then with --replay to the same report", () =>
    Effect.gen(function*() {
      const file = join(mkdtempSync(join(tmpdir(), "trellis-")), "demo.json")
      const first = yield* demo(["--json", "--record", file])
      expect(first.code).toBe(0)
      expect(JSON.parse(readFileSync(file, "utf8"))).toMatchObject({ provider: "offline", model: "gpt-4o-mini" })
      const second = yield* demo(["--json", "--replay", file])
      expect(second.code).toBe(0)
      const [recorded, replayed] = [first.json(), second.json()]
      expect(replayed.output).toEqual(recorded.output)
      expect(replayed.usage).toEqual(recorded.usage)
      expect(replayed.steps.map((step: any) => step.usage)).toEqual(recorded.steps.map((step: any) => step.usage))

      // Another document asks other questions, which the recording cannot answer.
      const other = yield* demo(["--json", "--replay", file, "--budget", "1", "--input", file])
      expect(other.code).toBe(1)
      expect(other.json().error).toMatchObject({ tag: "NoRecording" })
      expect(other.json().error.message).toMatch(/has no recorded answer for request [0-9a-f]{12} .*; the nearest one is/)
    }))

  it.effect("refuses --record with --replay, and a --replay file that is not there, in one line", () =>
    Effect.gen(function*() {
      const both = yield* demo(["--record", "a.json", "--replay", "b.json"])
      expect(both.code).toBe(2)
      expect(both.stderr).toBe("trellis-demo: --record and --replay cannot be given together\n")
      const missing = yield* demo(["--replay", join(tmpdir(), "trellis-no-such-recording.json")])
      expect(missing.code).toBe(2)
      expect(missing.stderr).toMatch(/^trellis-demo: Fixture file .*trellis-no-such-recording\.json: cannot be read: .*ENOENT.*\n$/)
    }))
})
