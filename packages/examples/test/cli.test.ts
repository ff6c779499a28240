import { describe, expect, it } from "@effect/vitest"
import { Cost } from "@trellis/core"
import { ScriptedModel } from "@trellis/llm"
import { ConfigProvider, Effect } from "effect"
import { spawn } from "node:child_process"
import { createServer } from "node:http"
import type { AddressInfo } from "node:net"
import { mkdtempSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { shortNote } from "../src/document/samples.js"
import { demo } from "./support.js"

describe("trellis-demo", () => {
  it.effect("runs the document pipeline offline and reports it as JSON, last on stdout", () =>
    Effect.gen(function*() {
      const { code, json, stderr } = yield* demo(["--json"])
      expect(code).toBe(0)
      const report = json()
      expect(report).toMatchObject({ status: "completed", provider: "offline", model: "gpt-4o-mini", route: "thorough" })
      expect(report.output).toMatchObject({ category: "earnings", company: "Northwind Traders" })
      expect(report.steps.map((s: any) => [s.name, s.status])).toEqual([
        ["extract", "done"],
        ["classify", "done"],
        ["fetch_market", "done"],
        ["fetch_user", "done"],
        ["key_points", "done"],
        ["key_points[0]", "done"],
        ["key_points[1]", "done"],
        ["key_points[2]", "done"],
        ["combine", "done"]
      ])
      // Each section's call is an item of the map, under it.
      expect(report.steps.filter((s: any) => s.parent === "key_points")).toHaveLength(3)
      const stepCost = report.steps.reduce((sum: number, s: any) => sum + s.usage.costNanoUsd, 0)
      expect(report.usage.costNanoUsd).toBe(stepCost)
      // Extraction, classification, the brief, and one call for each of the document's three sections.
      expect(report.usage.requests).toBe(6)
      expect(report.usage.costUsd).toBe(Cost.toDollars(Cost.nanos(report.usage.costNanoUsd)))
      expect(report.error).toBeUndefined()
      expect(stderr).toContain("Provider: offline (offline, simulated prices), model gpt-4o-mini")
    }))

  it.effect("shows progress, a table of steps with tokens and cost, and the total, for a person", () =>
    Effect.gen(function*() {
      const { code, stdout } = yield* demo([])
      expect(code).toBe(0)
      expect(stdout).toContain("✓ extract done")
      expect(stdout).toMatch(/step\s+status\s+duration\s+tokens in\/out\s+cost/)
      expect(stdout).toMatch(/combine\s+done\s+[\d.]+s\s+\d+\/\d+\s+\$0\.\d{6}/)
      expect(stdout).toMatch(/total\s+\d+\/\d+\s+\$0\.\d{6}/)
    }))

  it.effect("takes the fast pipeline for a short document read from --input", () =>
    Effect.gen(function*() {
      const file = join(mkdtempSync(join(tmpdir(), "trellis-")), "note.txt")
      writeFileSync(file, shortNote)
      const { code, json } = yield* demo(["--json", "--input", file])
      expect(code).toBe(0)
      expect(json()).toMatchObject({ status: "completed", route: "fast", output: { company: "Fabrikam Logistics" } })
    }))

  it.effect("fails with BudgetExceeded under a budget too small, spending no more than it, and reports the usage so far", () =>
    Effect.gen(function*() {
      const { code, json } = yield* demo(["--json", "--budget", "0.0002"])
      expect(code).toBe(1)
      const report = json()
      expect(report.status).toBe("failed")
      expect(report.error.tag).toBe("BudgetExceeded")
      expect(report.error.message).toContain(`could pass the budget of pipeline "document" of $0.000200`)
      expect(report.usage.costNanoUsd).toBeGreaterThan(0)
      expect(report.usage.costNanoUsd).toBeLessThanOrEqual(Cost.dollars(0.0002))
      expect(report.steps.find((s: any) => s.name === "extract").status).toBe("done")
    }))

  it.effect("fails with a typed error naming the step when the model's answer is malformed", () =>
    Effect.gen(function*() {
      const model = ScriptedModel.make({ reply: () => "I would rather not answer in JSON." })
      const { code, json } = yield* demo(["--json"], { model: model.layer })
      expect(code).toBe(1)
      expect(json()).toMatchObject({
        status: "failed",
        provider: "scripted",
        error: { tag: "MalformedOutput", step: "extract" }
      })
      // Three attempts (the first and two repairs) per try, and the step retries once.
      expect(model.calls).toHaveLength(6)
      expect(json().usage.requests).toBe(6)
    }))

  it.effect("prints the pipeline's graph as a Mermaid flowchart", () =>
    Effect.gen(function*() {
      const { stdout } = yield* demo(["--mermaid"])
      expect(stdout).toContain("flowchart LR\n  extract\n")
      expect(stdout).toContain("classify --> fetch_market\n  classify --> fetch_user\n  fetch_market --> combine")
    }))

  it.effect("rejects bad input with one line and exit code 2", () =>
    Effect.gen(function*() {
      for (
        const [args, message] of [
          [["--budget", "abc"], `trellis-demo: --budget must be a non-negative number of dollars, got "abc"`],
          [["--budget", "-1"], `trellis-demo: --budget must be a non-negative number of dollars, got "-1"`],
          [["--input", "/no/such/file.txt"], "trellis-demo: cannot read --input /no/such/file.txt"],
          [["--frobnicate"], "trellis-demo: Received unknown argument: '--frobnicate'"]
        ] as const
      ) {
        const { code, stderr, stdout } = yield* demo(args)
        expect(code).toBe(2)
        expect(stderr.startsWith(message)).toBe(true)
        expect(stderr.trim().split("\n")).toHaveLength(1)
        expect(stdout).toBe("")
      }
    }))

  it.scoped("runs on OpenAI (here a compatible server on 127.0.0.1) when OPENAI_API_KEY is set", () =>
    Effect.gen(function*() {
      const bodies: Array<any> = []
      // Answers like Chat Completions: the extraction and classification by their schema, else the brief.
      const server = createServer((req, res) => {
        let raw = ""
        req.on("data", (chunk) => (raw += chunk))
        req.on("end", () => {
          const body = JSON.parse(raw)
          bodies.push({ body, authorization: req.headers.authorization })
          const fields = Object.keys(body.response_format?.json_schema?.schema?.properties ?? {})
          const content = fields.includes("category")
            ? `{"category":"contract"}`
            : fields.includes("company")
            ? `{"title":"Supply contract","company":"Fabrikam Logistics","summary":"A renewal.","topics":[]}`
            : "Renew before January."
          res.writeHead(200, { "content-type": "application/json" })
          res.end(JSON.stringify({
            id: "c",
            object: "chat.completion",
            created: 0,
            model: body.model,
            choices: [{ index: 0, message: { role: "assistant", content, refusal: null }, finish_reason: "stop", logprobs: null }],
            usage: { prompt_tokens: 100, completion_tokens: 10, total_tokens: 110 }
          }))
        })
      })
      yield* Effect.acquireRelease(
        Effect.async<void>((resume) => void server.listen(0, "127.0.0.1", () => resume(Effect.void))),
        () => Effect.sync(() => server.close())
      )
      const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/v1`
      const key = "sk-demo-KEY-never-printed"
      const { code, json, stdout, stderr } = yield* demo(["--json", "--model", "gpt-4.1-mini"], {
        env: { OPENAI_API_KEY: key }
      }).pipe(Effect.withConfigProvider(ConfigProvider.fromMap(new Map([["OPENAI_API_KEY", key], ["OPENAI_BASE_URL", url]]))))
      expect(code).toBe(0)
      expect(json()).toMatchObject({
        status: "completed",
        provider: "openai",
        model: "gpt-4.1-mini",
        output: { category: "contract", company: "Fabrikam Logistics", brief: "Renew before January." }
      })
      // gpt-4.1-mini: $0.40 per million input tokens, $1.60 output: 6 calls of 100 in and 10 out.
      expect(json().usage).toMatchObject({ inputTokens: 600, outputTokens: 60, costNanoUsd: 6 * (100 * 400 + 10 * 1600) })
      expect(bodies).toHaveLength(6)
      expect(bodies.every((b) => b.body.model === "gpt-4.1-mini" && b.authorization === `Bearer ${key}`)).toBe(true)
      expect(stdout + stderr).not.toContain(key)
    }))

  it("cancels on Ctrl-C: in-flight calls stop, the usage so far is printed, and the exit code is 130", async () => {
    // The executable as installed: the built JavaScript, on plain Node (the test command builds first).
    const bin = fileURLToPath(new URL("../dist/cli/main.js", import.meta.url))
    const child = spawn(process.execPath, [bin], { env: { ...process.env, CI: "1", OPENAI_API_KEY: "" } })
    let stdout = ""
    const started = new Promise<void>((resolve) => {
      child.stdout.on("data", (chunk) => {
        stdout += chunk
        if (stdout.includes("● extract running")) resolve()
      })
    })
    const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)))
    await started
    child.kill("SIGINT")
    expect(await exited).toBe(130)
    expect(stdout).toMatch(/extract\s+interrupted\s+[\d.]+s\s+\d+\/0/)
    expect(stdout).toMatch(/total\s+\d+\/0\s+\$0\.\d{6} \(estimated\)/)
    expect(stdout).toContain("Interrupted: cancelled: in-flight calls were aborted")
    expect(stdout).toMatch(/combine\s+pending/)
  }, 30_000)
})
