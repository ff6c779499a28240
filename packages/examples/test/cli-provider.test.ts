/**
 * The demo's `--provider`: Anthropic through the AI SDK adapter, against a local server that speaks Anthropic's
 * Messages API; the choice printed at start; a provider outside the list refused.
 */
import { describe, expect, it } from "@effect/vitest"
import { Anthropic } from "@trellis/test-servers"
import { ConfigProvider, Effect } from "effect"
import { mkdtempSync, readFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
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
      // claude-haiku-4-5: $1 per million input tokens, $5 output; six calls (extraction, classification, the brief,
      // a key point for each of three sections) as the server reported them.
      expect(json().usage).toMatchObject({
        inputTokens: 6 * usagePerCall.input_tokens,
        outputTokens: 6 * usagePerCall.output_tokens,
        costNanoUsd: 6 * (usagePerCall.input_tokens * 1_000 + usagePerCall.output_tokens * 5_000)
      })
      expect(server.received).toHaveLength(6)
      expect(server.received.every((request) => request.headers["x-api-key"] === key)).toBe(true)
      expect(stdout + stderr).not.toContain(key)
    }))

  it.scoped("a key of another shape that the server echoes back is printed nowhere, nor recorded", () =>
    Effect.gen(function*() {
      const groqLike = "gsk_live_abc123DEF456ghi789JKL"
      // A 401 for the first run, a 500 for the second.
      let status = 401
      const server = yield* Anthropic.start((request, res) =>
        Anthropic.error(res, status, `${status === 401 ? "invalid x-api-key" : "upstream refused"} ${String(request.headers["x-api-key"])}`)
      )
      const env = { ANTHROPIC_API_KEY: groqLike, ANTHROPIC_BASE_URL: server.url }
      const file = join(mkdtempSync(join(tmpdir(), "trellis-")), "echo.json")
      const refused = yield* demo(["--json", "--provider", "anthropic", "--record", file], { env }).pipe(withEnv(env))
      status = 500
      const failed = yield* demo(["--provider", "anthropic", "--trace"], { env }).pipe(withEnv(env))
      expect(server.received.map((request) => request.headers["x-api-key"])).toContain(groqLike)
      expect(refused.code).toBe(1)
      expect(refused.json().error.message).toContain("invalid x-api-key <redacted>")
      expect(failed.code).toBe(1)
      expect(failed.stdout + failed.stderr).toContain("upstream refused <redacted>")
      const recorded = (() => {
        try {
          return readFileSync(file, "utf8")
        } catch {
          return ""
        }
      })()
      expect(refused.stdout + refused.stderr + failed.stdout + failed.stderr + recorded).not.toContain(groqLike)
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
