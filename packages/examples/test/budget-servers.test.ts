/**
 * The demo under a budget on servers that count tokens otherwise than the local count (up to some 40% more, the
 * schema of structured output, Anthropic's tool-use prompt): it completes, paying what they report; against a server
 * whose figures cannot be right it fails, saying so.
 */
import { describe, expect, it } from "@effect/vitest"
import { Anthropic, Counting, OpenAi } from "@trellis/test-servers"
import { ConfigProvider, Effect } from "effect"
import { mkdtempSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { documentReply } from "./anthropic.js"
import { demo } from "./support.js"

const withEnv = (env: Record<string, string>) => Effect.withConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(env))))

/** The text of a Chat Completions request: every message's content. */
const textOf = (body: any): string =>
  (Array.isArray(body?.messages) ? body.messages : []).map((message: any) => String(message.content)).join("\n")

/** An OpenAI-compatible server answering the document pipeline, with usage from `usage`. */
const openAiServer = (usage: (body: any, text: string) => { prompt_tokens: number; completion_tokens: number }) =>
  OpenAi.start((request, res) => {
    const content = documentReply(textOf(request.body))
    OpenAi.json(res, 200, OpenAi.completion(content, { usage: usage(request.body, content), model: request.body.model }))
  })

const openAiEnv = (url: string) => ({ OPENAI_API_KEY: "sk-test", OPENAI_BASE_URL: url })

/**
 * A long report, so that the input dominates each call's cost: the output a call reserves but does not use no longer
 * hides a server counting more input than the local count.
 */
const longReport = () => {
  const file = join(mkdtempSync(join(tmpdir(), "trellis-budget-")), "report.txt")
  const paragraph = "Northwind Traders reported third quarter revenue of 48.2 million dollars, up 6.5 percent from a " +
    "year earlier, with growth in the wholesale distribution business in Europe and freight costs still high. "
  writeFileSync(file, `Northwind Traders: third quarter earnings report\n\n${paragraph.repeat(40)}`)
  return file
}

describe("trellis-demo --budget on servers that count otherwise", () => {
  it.scoped("completes on an OpenAI-compatible server that counts more, response_format's schema included", () =>
    Effect.gen(function*() {
      const server = yield* openAiServer(Counting.openAi)
      const env = openAiEnv(server.url)
      const { code, json, stderr } = yield* demo(["--json", "--budget", "0.01", "--input", longReport()], { env }).pipe(
        withEnv(env)
      )
      expect(stderr).not.toContain("BudgetOverrun")
      expect(code).toBe(0)
      const report = json()
      expect(report.status).toBe("completed")
      // Paid as the server reported it: its counts, which are more than the local count.
      const reported = server.received.map((request) =>
        Counting.openAi(request.body, documentReply(textOf(request.body))).prompt_tokens
      )
      expect(report.usage.inputTokens).toBe(reported.reduce((a, b) => a + b, 0))
      expect(server.received.some((request) => request.body.response_format !== undefined)).toBe(true)
    }))

  it.scoped("completes on Anthropic through the AI SDK, counting as Anthropic does", () =>
    Effect.gen(function*() {
      const server = yield* Anthropic.start((request, res) => {
        const content = documentReply(Anthropic.textOf(request))
        Anthropic.answer(request, res, { content, usage: Counting.anthropic(request.body, content) })
      })
      const env = { ANTHROPIC_API_KEY: "sk-ant-test", ANTHROPIC_BASE_URL: server.url }
      const args = ["--json", "--budget", "0.05", "--provider", "anthropic", "--input", longReport()]
      const { code, json } = yield* demo(args, { env }).pipe(withEnv(env))
      expect(code).toBe(0)
      expect(json().status).toBe("completed")
      // Extraction, classification, the brief, and a key point for each of the report's two sections.
      expect(server.received).toHaveLength(5)
    }))

  it.scoped("fails against a server whose output passes the limit it was sent, naming what cannot be right", () =>
    Effect.gen(function*() {
      const server = yield* openAiServer((body, text) => ({
        ...Counting.openAi(body, text),
        completion_tokens: (body.max_completion_tokens ?? body.max_tokens) + 100
      }))
      const env = openAiEnv(server.url)
      const { code, json } = yield* demo(["--json", "--budget", "0.01"], { env }).pipe(withEnv(env))
      expect(code).toBe(1)
      const report = json()
      expect(report.status).toBe("failed")
      expect(report.error.message).toMatch(/cannot be right: \d+ output tokens were reported, past the call's maxTokens/)
      // Nothing was sent after the first answer that could not be right: only the calls that start the run at once
      // (the extraction and the first sections' key points) reached the server, and each of them is counted.
      const systems = server.received.map((request) => JSON.stringify(request.body.messages[0]))
      expect(systems.length).toBeLessThanOrEqual(4)
      expect(systems.some((system) => system.includes("Classify") || system.includes("short brief"))).toBe(false)
      expect(report.usage.requests).toBe(server.received.length)
      expect(report.usage.outputTokens).toBeGreaterThan(0)
    }))
})
