/**
 * The demo's `--provider`: Anthropic through the AI SDK adapter, against a local server that speaks Anthropic's
 * Messages API; the choice printed at start; a provider outside the list refused.
 */
import { describe, expect, it } from "@effect/vitest"
import { Anthropic } from "@trellis/test-servers"
import { ConfigProvider, Effect } from "effect"
import { documentAnswers, usagePerCall } from "./anthropic.js"
import { demo } from "./support.js"

const key = "sk-ant-demo-KEY-never-printed"

const withEnv = (env: Record<string, string>) => Effect.withConfigProvider(ConfigProvider.fromMap(new Map(Object.entries(env))))

describe("trellis-demo --provider", () => {
  it.scoped("anthropic runs the document pipeline on Anthropic, reading ANTHROPIC_API_KEY and ANTHROPIC_BASE_URL", () =>
    Effect.gen(function*() {
      const server = yield* Anthropic.start(documentAnswers)
      const env = { ANTHROPIC_API_KEY: key, ANTHROPIC_BASE_URL: server.url }
      const { code, json, stderr, stdout } = yield* demo(["--json", "--provider", "anthropic"], { env }).pipe(withEnv(env))
      expect(code).toBe(0)
      expect(json()).toMatchObject({
        status: "completed",
        provider: "anthropic",
        model: "claude-haiku-4-5",
        output: { category: "contract", company: "Fabrikam Logistics", brief: "Renew before January." }
      })
      // claude-haiku-4-5: $1 per million input tokens, $5 output; three calls as the server reported them.
      expect(json().usage).toMatchObject({
        inputTokens: 3 * usagePerCall.input_tokens,
        outputTokens: 3 * usagePerCall.output_tokens,
        costNanoUsd: 3 * (usagePerCall.input_tokens * 1_000 + usagePerCall.output_tokens * 5_000)
      })
      expect(server.received).toHaveLength(3)
      expect(server.received.every((request) => request.headers["x-api-key"] === key)).toBe(true)
      expect(stdout + stderr).not.toContain(key)
    }))

  it.scoped("prints the provider and model at start, --model naming the Anthropic model", () =>
    Effect.gen(function*() {
      const server = yield* Anthropic.start(documentAnswers)
      const env = { ANTHROPIC_API_KEY: key, ANTHROPIC_BASE_URL: server.url }
      const { code, stdout } = yield* demo(["--provider", "anthropic", "--model", "claude-sonnet-4-5"], { env }).pipe(withEnv(env))
      expect(code).toBe(0)
      expect(stdout.split("\n")[0]).toBe("Provider: anthropic, model claude-sonnet-4-5")
      expect(server.received.every((request) => request.body.model === "claude-sonnet-4-5")).toBe(true)
    }))

  it.effect("offline wins over OPENAI_API_KEY when named", () =>
    Effect.gen(function*() {
      const { code, stdout } = yield* demo(["--provider", "offline"], { env: { OPENAI_API_KEY: "sk-unused" } })
      expect(code).toBe(0)
      expect(stdout.split("\n")[0]).toMatch(/^Provider: offline /)
    }))

  it.effect("anthropic without ANTHROPIC_API_KEY is refused as bad input, naming the variable", () =>
    Effect.gen(function*() {
      const { code, stderr, stdout } = yield* demo(["--provider", "anthropic"]).pipe(withEnv({}))
      expect(code).toBe(2)
      expect(stderr).toBe("trellis-demo: the anthropic provider cannot start: ANTHROPIC_API_KEY is not set\n")
      expect(stdout).toBe("")
    }))

  it.effect("a provider outside the list is refused, with exit code 2", () =>
    Effect.gen(function*() {
      const { code, stderr } = yield* demo(["--provider", "mistral"])
      expect(code).toBe(2)
      expect(stderr).toContain("openai")
      expect(stderr.trim().split("\n")).toHaveLength(1)
    }))
})
