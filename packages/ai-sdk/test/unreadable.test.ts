/**
 * Answers with a success status that the AI SDK cannot read: the server did the work, so each one is paid for, and
 * is counted as such (its input, estimated) under a budget, through a step's retries.
 */
import { createAnthropic } from "@ai-sdk/anthropic"
import { describe, expect, it } from "@effect/vitest"
import { Cost, Ledger, Pipeline, Step } from "@trellis/core"
import { LanguageModel } from "@trellis/llm"
import { Anthropic } from "@trellis/test-servers"
import { Effect, Stream } from "effect"
import type * as http from "node:http"
import { AiSdk } from "../src/index.js"

const modelName = "claude-haiku-4-5"

const layerOn = (url: string) =>
  AiSdk.layer({ model: createAnthropic({ apiKey: "sk-ant-test-KEY", baseURL: url })(modelName) })

const { usage: _, ...withoutUsage } = Anthropic.message({ content: "Hello" })

// Three ways a 200 cannot be read: the usage's numbers as text, no usage at all, a proxy's HTML page.
const unreadable: ReadonlyArray<readonly [string, (res: http.ServerResponse) => void]> = [
  [
    "usage numbers sent as text",
    (res) => Anthropic.send(res, 200, { ...Anthropic.message({ content: "Hello" }), usage: { input_tokens: "20", output_tokens: "4" } })
  ],
  ["no usage", (res) => Anthropic.send(res, 200, withoutUsage)],
  ["an HTML page", (res) => Anthropic.send(res, 200, "<html><body>Welcome to the gateway</body></html>", { "content-type": "text/html" })]
]

describe.each(unreadable)("AiSdk, a 200 with %s", (_, answer) => {
  it.scoped("is MalformedOutput, and each attempt of a retried step under a budget is counted at its input", () =>
    Effect.gen(function*() {
      const server = yield* Anthropic.start((_, res) => answer(res))
      const ask = Step.make("ask", { retry: 3, run: () => LanguageModel.generate({ messages: [{ role: "user", content: "Say hello" }], maxTokens: 200 }) })
      const error = yield* Effect.flip(
        Pipeline.run(Pipeline.make("unreadable", { output: ask, budget: Cost.dollars(0.012) })).pipe(
          Effect.provide(layerOn(server.url))
        )
      )
      expect(error._tag).toBe("StepFailed")
      if (error._tag !== "StepFailed") return
      expect(error.error).toMatchObject({ _tag: "MalformedOutput", sent: { requests: 1, billable: 1 } })
      expect(server.received).toHaveLength(4)
      const total = error.partial.usage.total
      expect(total).toMatchObject({ requests: 4, outputTokens: 0, estimated: true })
      expect(total.inputTokens).toBeGreaterThan(0)
      expect(total.cost).toBeGreaterThan(0)
      expect(total.cost).toBe(total.inputTokens * 1_000)
    }))
})

describe("AiSdk, a streamed answer with a part that cannot be read", () => {
  it.scoped("is paid for: counted at its input, estimated", () =>
    Effect.gen(function*() {
      // The answer's last count, in its `message_delta`, as text.
      const events = Anthropic.events({ content: "Hello" }).map((event) =>
        event["type"] === "message_delta" ? { ...event, usage: { output_tokens: "4" } } : event
      )
      const server = yield* Anthropic.start((_, res) => Anthropic.sse(res, events))
      const ledger = yield* Ledger.make()
      const error = yield* Effect.flip(
        Stream.runCollect(LanguageModel.stream("Say hello")).pipe(
          Effect.provide(layerOn(server.url)),
          Effect.provideService(Ledger.Ledger, ledger)
        )
      )
      expect(error).toMatchObject({ _tag: "MalformedOutput", sent: { requests: 1, billable: 1 } })
      const spent = (yield* ledger.snapshot).total
      expect(spent).toMatchObject({ requests: 1, estimated: true })
      expect(spent.cost).toBeGreaterThan(0)
    }))
})
