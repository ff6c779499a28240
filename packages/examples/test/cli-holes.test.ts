/**
 * The demo CLI's edges: flags it must refuse (and how), `--input` that is not a small text file, stdout holding
 * the JSON alone, `--mermaid` without a run, `--gantt`, and steps stopped from outside shown as interrupted.
 */
import { describe, expect, it } from "@effect/vitest"
import { Pipeline, Step } from "@trellis/core"
import { ScriptedModel } from "@trellis/llm"
import { Effect, Schedule } from "effect"
import { spawn } from "node:child_process"
import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import type { Io } from "../src/cli/demo.js"
import { Progress, stepsJson, table } from "../src/cli/report.js"
import { shortNote } from "../src/document/samples.js"
import { demo } from "./support.js"

/** Runs the demo with each of `cases`, expecting exit 2, nothing on stdout, and `message` as the one line on stderr. */
const refuses = (cases: ReadonlyArray<readonly [ReadonlyArray<string>, string]>, io: Partial<Io> = {}) =>
  Effect.gen(function*() {
    for (const [args, message] of cases) {
      for (const json of [false, true]) {
        const { code, stderr, stdout } = yield* demo(json ? [...args, "--json"] : args, io)
        expect({ args, json, code, stdout, stderr }).toEqual({ args, json, code: 2, stdout: "", stderr: `trellis-demo: ${message}\n` })
      }
    }
  })

const scratch = () => mkdtempSync(join(tmpdir(), "trellis-cli-"))

describe("trellis-demo flags", () => {
  it.effect("refuses a budget it cannot hold or read, with one line and exit 2, --json or not", () =>
    refuses([
      [["--budget", "1e7"], `--budget must be at most 9007199 dollars (the most a Cost can hold), got "1e7"`],
      [["--budget", "1e400"], `--budget must be at most 9007199 dollars (the most a Cost can hold), got "1e400"`],
      [["--budget", "0x10"], `--budget must be a non-negative number of dollars, got "0x10"`],
      [["--budget", " 0.5"], `--budget must be a non-negative number of dollars, got " 0.5"`],
      [["--budget", "0.5 "], `--budget must be a non-negative number of dollars, got "0.5 "`],
      [["--budget", "NaN"], `--budget must be a non-negative number of dollars, got "NaN"`],
      [["--budget", "Infinity"], `--budget must be a non-negative number of dollars, got "Infinity"`],
      [["--budget", "-1"], `--budget must be a non-negative number of dollars, got "-1"`],
      [["--budget", ""], `--budget must be a non-negative number of dollars, got ""`]
    ]))

  it.effect("takes a budget up to what a Cost holds, in plain or exponent form", () =>
    Effect.gen(function*() {
      for (const budget of ["9007199", "1e6", ".5", "2."]) {
        const { code, stderr } = yield* demo(["--json", "--budget", budget])
        expect({ budget, code }).toEqual({ budget, code: 0 })
        expect(stderr).toContain(", budget $")
      }
    }))

  it.effect("refuses an empty model name, a flag given twice and a flag without its value, naming the problem", () =>
    refuses([
      [["--model", ""], `--model must name a model (not empty, no spaces around it), got ""`],
      [["--model", " gpt-4o-mini"], `--model must name a model (not empty, no spaces around it), got " gpt-4o-mini"`],
      [["--budget", "1", "--budget", "2"], "--budget is given more than once"],
      [["--model=a", "--model", "b"], "--model is given more than once"],
      [["--mermaid", "--mermaid"], "--mermaid is given more than once"],
      [["--budget"], "--budget needs a value"],
      [["--budget="], "--budget needs a value"],
      [["--input", "--budget", "1"], "--input needs a value"],
      [["--max-input-bytes", "0x10"], `--max-input-bytes must be a whole number of bytes, got "0x10"`],
      [["--max-input-bytes", "0"], `--max-input-bytes must be a whole number of bytes, at least 1, got "0"`],
      [["--mermaid", "--gantt"], "--mermaid shows the graph without running it, so --gantt cannot go with it"],
      [["--frobnicate"], "Received unknown argument: '--frobnicate'"]
    ]))

  it.effect("--wizard without a terminal is refused with one line, instead of waiting for answers", () =>
    refuses([[["--wizard"], "--wizard asks its questions in a terminal; give the flags instead"]]))

  it.effect("--help names each flag's value in its own words, with colours only for a terminal", () =>
    Effect.gen(function*() {
      const piped = yield* demo(["--help"])
      expect(piped.code).toBe(0)
      expect(piped.stdout).toContain("--budget dollars")
      expect(piped.stdout).toContain("The most the run may spend, in dollars")
      expect(piped.stdout).not.toContain("A user-defined piece of text")
      expect(piped.stdout).not.toContain("\x1b[")
      const terminal = yield* demo(["--help"], { terminal: true })
      expect(terminal.stdout).toContain("\x1b[")
    }))
})

describe("trellis-demo --input", () => {
  it.effect("refuses what is not a small UTF-8 text file, with one line and exit 2", () =>
    Effect.gen(function*() {
      const dir = scratch()
      writeFileSync(join(dir, "binary.bin"), Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x00, 0x01]))
      writeFileSync(join(dir, "latin1.txt"), Buffer.from("caf\xe9 cr\xe8me", "latin1"))
      writeFileSync(join(dir, "big.txt"), "word ".repeat(300))
      writeFileSync(join(dir, "blank.txt"), "  \n")
      mkdirSync(join(dir, "folder"))
      yield* refuses([
        [["--input", "/dev/zero"], "--input /dev/zero is not a regular file: it is a character device"],
        [["--input", "folder"], "--input folder is not a regular file: it is a directory"],
        [["--input", "binary.bin"], "--input binary.bin is binary, not text"],
        [["--input", "latin1.txt"], "--input latin1.txt is not UTF-8 text"],
        [["--input", "blank.txt"], "--input blank.txt is empty"],
        [
          ["--input", "big.txt", "--max-input-bytes", "1000"],
          "--input big.txt is 1500 bytes, more than the 1000 allowed (raise it with --max-input-bytes)"
        ]
      ], { cwd: dir })
    }))

  it.effect("refuses a file over 1 MiB by default, and reads it when --max-input-bytes allows it", () =>
    Effect.gen(function*() {
      const dir = scratch()
      writeFileSync(join(dir, "large.txt"), "Northwind Traders grew. ".repeat(50_000))
      yield* refuses([[
        ["--input", "large.txt"],
        "--input large.txt is 1200000 bytes, more than the 1048576 allowed (raise it with --max-input-bytes)"
      ]], { cwd: dir })
      const { code } = yield* demo(["--json", "--input", "large.txt", "--max-input-bytes", "2000000"], { cwd: dir })
      expect(code).toBe(0)
    }))

  it.effect("reads a relative path from INIT_CWD (where pnpm was run) when set, else from the working directory", () =>
    Effect.gen(function*() {
      const user = scratch()
      const elsewhere = scratch()
      writeFileSync(join(user, "note.txt"), shortNote)
      const fromInitCwd = yield* demo(["--json", "--input", "note.txt"], { env: { INIT_CWD: user }, cwd: elsewhere })
      expect(fromInitCwd.code).toBe(0)
      expect(fromInitCwd.stdout).toContain(`"route":"fast"`)
      const fromCwd = yield* demo(["--json", "--input", "note.txt"], { cwd: user })
      expect(fromCwd.code).toBe(0)
      const missing = yield* demo(["--input", "note.txt"], { cwd: elsewhere })
      expect(missing.code).toBe(2)
      expect(missing.stderr).toMatch(/^trellis-demo: cannot read --input note\.txt: .*\n$/)
    }))
})

describe("trellis-demo output", () => {
  it.effect("with --json, stdout is the JSON object alone: progress, retries and warnings go to stderr", () =>
    Effect.gen(function*() {
      // A model without a price logs a warning; a malformed answer makes the step retry.
      const unpriced = yield* demo(["--json", "--model", "no-such-model"])
      expect(unpriced.code).toBe(0)
      expect(unpriced.stdout.split("\n")).toHaveLength(2)
      expect(JSON.parse(unpriced.stdout)).toMatchObject({ status: "completed", model: "no-such-model" })
      expect(unpriced.stderr).toContain(`trellis-demo: warn: No price is known for model "no-such-model"`)
      expect(unpriced.stderr).toContain("✓ extract done")

      const model = ScriptedModel.make({ reply: () => "not JSON" })
      const failing = yield* demo(["--json"], { model: model.layer })
      expect(failing.code).toBe(1)
      expect(failing.stdout.split("\n")).toHaveLength(2)
      expect(JSON.parse(failing.stdout)).toMatchObject({ status: "failed", error: { tag: "MalformedOutput" } })
      expect(failing.stderr).toContain("↻ extract retrying (attempt 2")
    }))

  it.effect("--mermaid prints the chosen pipeline's graph and runs nothing", () =>
    Effect.gen(function*() {
      const model = ScriptedModel.make({ reply: () => "{}" })
      const { code, stdout, stderr } = yield* demo(["--mermaid"], { model: model.layer })
      expect(code).toBe(0)
      expect(model.calls).toHaveLength(0)
      expect(stdout).toBe(
        "flowchart LR\n  extract\n  classify\n  fetch_market\n  fetch_user\n" +
          `  key_points[["key_points#colon; for each item, at most 3 at once (at most 6)"]]\n  combine\n` +
          "  extract --> classify\n  classify --> fetch_market\n  classify --> fetch_user\n  fetch_market --> combine\n" +
          "  fetch_user --> combine\n  key_points --> combine\n"
      )
      expect(stderr).toBe("")
      const json = yield* demo(["--mermaid", "--json"], { model: model.layer })
      expect(JSON.parse(json.stdout)).toMatchObject({ route: "thorough", pipeline: "document" })
      expect(model.calls).toHaveLength(0)
    }))

  it.effect("--gantt prints the finished run's timeline, and a failed run's from its partial result", () =>
    Effect.gen(function*() {
      const done = yield* demo(["--gantt"])
      expect(done.code).toBe(0)
      expect(done.stdout).toMatch(
        /\ngantt\n  title pipeline document\n[\s\S]*  combine :done, t\d+, \d+, \d+\n  section key_points\n[\s\S]*  key_points\[2\] :done, t\d+, \d+, \d+\n$/
      )
      const stopped = yield* demo(["--gantt", "--json", "--budget", "0.0002"])
      expect(stopped.code).toBe(1)
      const report = JSON.parse(stopped.stdout)
      expect(report.error.tag).toBe("BudgetExceeded")
      expect(report.gantt).toMatch(/^gantt\n[\s\S]*extract :done,[\s\S]*section key_points\n[\s\S]*key_points\[\d\] :crit,/)
    }))
})

describe("steps stopped from outside", () => {
  const progressOf = <A, E>(pipeline: Pipeline.Pipeline<A, E, never, any, any>) =>
    Effect.gen(function*() {
      const progress = new Progress(() => {}, false)
      yield* Effect.exit(Pipeline.run(pipeline, { onEvent: progress.onEvent }))
      const rows = [...progress.rows.values()]
      return { table: table(rows, progress.total()), steps: stepsJson(rows) }
    })

  it.live("a step retrying when a sibling fails shows as interrupted, with its duration, never as retrying", () =>
    Effect.gen(function*() {
      const flaky = Step.make("flaky", {
        retry: { times: 5, schedule: Schedule.spaced("200 millis") },
        run: () => Effect.fail("not yet")
      })
      const boom = Step.make("boom", { run: () => Effect.fail("boom").pipe(Effect.delay("50 millis")) })
      const last = Step.make("last", { after: { flaky, boom }, run: () => Effect.succeed(1) })
      const { steps, table: text } = yield* progressOf(Pipeline.make("siblings", { output: last }))
      expect(steps.map((s) => [s.name, s.status])).toEqual([["flaky", "interrupted"], ["boom", "failed"], ["last", "pending"]])
      expect(steps[0]!.durationMs).toBeGreaterThanOrEqual(0)
      expect(text).toMatch(/flaky\s+interrupted\s+[\d.]+s/)
      expect(text).not.toContain("retrying")
    }))

  it.live("steps running when the pipeline times out show as interrupted", () =>
    Effect.gen(function*() {
      const slow = Step.make("slow", { run: () => Effect.never })
      const flaky = Step.make("flaky", { retry: Schedule.spaced("1 second"), run: () => Effect.fail("no") })
      const last = Step.make("last", { after: { slow, flaky }, run: () => Effect.succeed(1) })
      const { steps, table: text } = yield* progressOf(Pipeline.make("slow", { output: last, timeout: "100 millis" }))
      expect(steps.map((s) => [s.name, s.status])).toEqual([["slow", "interrupted"], ["flaky", "interrupted"], ["last", "pending"]])
      expect(steps.every((s) => s.name === "last" || typeof s.durationMs === "number")).toBe(true)
      expect(text).not.toContain("retrying")
    }))
})

describe("trellis-demo as a process", () => {
  it("keeps stdout to the JSON and reads --input from the directory pnpm was run in (INIT_CWD)", async () => {
    const user = scratch()
    writeFileSync(join(user, "note.txt"), shortNote)
    // The executable as installed: the built JavaScript, on plain Node (the test command builds first).
    const bin = fileURLToPath(new URL("../dist/cli/main.js", import.meta.url))
    const child = spawn(process.execPath, [bin, "--json", "--model", "no-such-model", "--input", "note.txt"], {
      cwd: fileURLToPath(new URL("..", import.meta.url)),
      env: { ...process.env, CI: "1", OPENAI_API_KEY: "", INIT_CWD: user }
    })
    let stdout = ""
    let stderr = ""
    child.stdout.on("data", (chunk) => (stdout += chunk))
    child.stderr.on("data", (chunk) => (stderr += chunk))
    const code = await new Promise<number | null>((resolve) => child.on("exit", resolve))
    expect(code).toBe(0)
    expect(stdout.split("\n")).toHaveLength(2)
    expect(JSON.parse(stdout)).toMatchObject({ status: "completed", route: "fast", model: "no-such-model" })
    expect(stderr).toContain("No price is known")
  }, 30_000)
})
