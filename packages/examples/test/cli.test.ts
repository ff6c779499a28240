import { describe, expect, it } from "@effect/vitest"
import { NodeContext } from "@effect/platform-node"
import { Cost } from "@trellis/core"
import { ScriptedModel } from "@trellis/llm"
import { Effect } from "effect"
import { spawn } from "node:child_process"
import { mkdtempSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { type Io, run } from "../src/cli/demo.js"
import { shortNote } from "../src/document/samples.js"

const demo = (args: ReadonlyArray<string>, io: Partial<Io> = {}) =>
  Effect.gen(function*() {
    let stdout = ""
    let stderr = ""
    const code = yield* run(args, {
      stdout: (text) => void (stdout += text),
      stderr: (text) => void (stderr += text),
      live: false,
      env: {},
      ...io
    })
    const lines = stdout.trim().split("\n")
    return { code, stdout, stderr, json: () => JSON.parse(lines[lines.length - 1]!) }
  }).pipe(Effect.provide(NodeContext.layer))

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
        ["combine", "done"]
      ])
      const stepCost = report.steps.reduce((sum: number, s: any) => sum + s.usage.costNanoUsd, 0)
      expect(report.usage.costNanoUsd).toBe(stepCost)
      expect(report.usage.requests).toBe(3)
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
      const { code, json } = yield* demo(["--json", "--budget", "0.0003"])
      expect(code).toBe(1)
      const report = json()
      expect(report.status).toBe("failed")
      expect(report.error.tag).toBe("BudgetExceeded")
      expect(report.error.message).toContain("Budget of $0.0003")
      expect(report.usage.costNanoUsd).toBeGreaterThan(0)
      expect(report.usage.costNanoUsd).toBeLessThanOrEqual(Cost.dollars(0.0003))
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

  it("cancels on Ctrl-C: in-flight calls stop, the usage so far is printed, and the exit code is 130", async () => {
    const bin = fileURLToPath(new URL("../bin/trellis-demo.js", import.meta.url))
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
