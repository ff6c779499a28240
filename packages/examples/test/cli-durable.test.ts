/**
 * The demo's durable runs: `--store` with `--run-id` runs the document pipeline durably, the same id again returns
 * the stored result without calling the model, a store held by another process is refused, and each of the two
 * flags alone is a usage error.
 */
import { describe, expect, it } from "@effect/vitest"
import { Store } from "@trellis/durable"
import { OfflineModel } from "@trellis/llm"
import { Effect, Layer } from "effect"
import { spawn } from "node:child_process"
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { fileURLToPath } from "node:url"
import { booking, layer, settled } from "../src/booking.js"
import { demo } from "./support.js"

// The executable as installed: the built JavaScript, on plain Node (the test command builds first).
const bin = fileURLToPath(new URL("../dist/cli/main.js", import.meta.url))

/** Runs the built demo in a child process with `args`, in `cwd`, on the offline model. */
const cli = (args: ReadonlyArray<string>, cwd: string) =>
  new Promise<{ code: number | null; stdout: string; stderr: string }>((resolve) => {
    const child = spawn(process.execPath, [bin, ...args], {
      cwd,
      env: { ...process.env, CI: "1", OPENAI_API_KEY: "" }
    })
    let stdout = ""
    let stderr = ""
    child.stdout.on("data", (chunk) => (stdout += chunk))
    child.stderr.on("data", (chunk) => (stderr += chunk))
    child.on("exit", (code) => resolve({ code, stdout, stderr }))
  })

/** A temporary directory, removed after `f` however it ends. */
const inScratch = async <A>(f: (dir: string) => Promise<A>): Promise<A> => {
  const dir = mkdtempSync(join(tmpdir(), "trellis-durable-cli-"))
  try {
    return await f(dir)
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

describe("trellis-demo --store", () => {
  it("runs durably into a SQLite file, and returns the stored result for the same id without running again", () =>
    inScratch(async (dir) => {
      const args = ["--json", "--store", "runs.db", "--run-id", "report-1"]
      const first = await cli(args, dir)
      expect(first.code).toBe(0)
      expect(first.stderr).toContain(`trellis-demo: run "report-1" stored in the store "runs.db"`)
      // The steps are shown as they run (with --json, on stderr).
      expect(first.stderr).toContain("● extract running")
      expect(first.stderr).toContain("✓ combine done")
      const report = JSON.parse(first.stdout)
      expect(report).toMatchObject({ status: "completed", route: "thorough" })
      expect(report.steps.map((step: { name: string; status: string }) => [step.name, step.status])).toEqual([
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
      expect(first.stderr).toContain("✓ key_points[2] done")
      expect(report.usage.requests).toBe(6)

      // The stored result, durations and usage included: the model is not asked again.
      const second = await cli(args, dir)
      expect(second.code).toBe(0)
      expect(second.stderr).toContain(`trellis-demo: run "report-1" returned from the store "runs.db"`)
      expect(second.stdout).toBe(first.stdout)
      expect(second.stderr).not.toContain("running")

      // A run without a store gives the same output and usage.
      const plain = JSON.parse((await cli(["--json"], dir)).stdout)
      expect({ output: plain.output, usage: plain.usage }).toEqual({ output: report.output, usage: report.usage })
    }), 60_000)

  it("refuses a SQLite file another process runs on, with one line and a non-zero exit", () =>
    inScratch(async (dir) => {
      const filename = join(dir, "held.db")
      // This process holds the file for as long as the store's layer is open.
      const result = await Effect.runPromise(
        Effect.scoped(Effect.flatMap(Layer.build(Store.layerSqlite({ filename })), () =>
          Effect.promise(() => cli(["--store", filename, "--run-id", "report-1"], dir))))
      )
      expect(result.code).toBe(1)
      expect(result.stdout).toBe("")
      expect(result.stderr).toBe(
        `trellis-demo: The SQLite file "${filename}" is in use by another process: one process at a time may run ` +
          `durable pipelines on a SQLite file (two could run a step twice)\n`
      )
    }), 60_000)

  it("says why a store cannot be opened (a folder, a missing folder, a file that is no database), as JSON too", () =>
    inScratch(async (dir) => {
      const run = (args: ReadonlyArray<string>) => Effect.runPromise(demo(args, { cwd: dir }))
      const notes = join(dir, "notes.txt")
      writeFileSync(notes, "not a database\n".repeat(100))
      const cases = [
        [dir, "NotAFile", `Cannot open the SQLite file "${dir}": it is not a file (a folder)`],
        [join(dir, "nowhere", "runs.db"), "NoDirectory", `Cannot open the SQLite file "${join(dir, "nowhere", "runs.db")}": its folder does not exist`],
        [notes, "Corrupt", `Cannot open the SQLite file "${notes}": it is not a SQLite database, or it is damaged`]
      ] as const
      for (const [store, reason, message] of cases) {
        for (const args of [["--store", store, "--run-id", "r1"], ["runs", "--store", store]]) {
          const plain = await run(args)
          expect({ args, code: plain.code, stdout: plain.stdout }).toEqual({ args, code: 1, stdout: "" })
          expect(plain.stderr).toMatch(new RegExp(`^trellis-demo: ${message.replace(/[.*+?^${}()|[\]\\]/g, "\\$&")}.*\n$`))
          const json = await run([...args, "--json"])
          expect(json.code).toBe(1)
          expect(JSON.parse(json.stdout)).toEqual({
            status: "failed",
            error: { tag: "StoreUnavailable", reason, step: null, message: expect.stringContaining(message) }
          })
        }
      }
      expect(existsSync(join(dir, "nowhere"))).toBe(false)
    }), 60_000)

  it.effect("refuses --run-id without --store and --store without --run-id, with one line and exit 2", () =>
    Effect.gen(function*() {
      const cases = [
        [["--run-id", "report-1"], "--run-id names a durable run, so it needs --store (a SQLite file or a postgres:// URL)"],
        [["--store", "runs.db"], "--store keeps a durable run, so it needs --run-id (the run's id)"],
        [["--store", "runs.db", "--run-id", " x"], `--run-id must name a run (not empty, no spaces around it), got " x"`],
        [["--run-id", "a", "--run-id", "b", "--store", "runs.db"], "--run-id is given more than once"],
        [["--store"], "--store needs a value"]
      ] as const
      for (const [args, message] of cases) {
        const { code, stderr, stdout } = yield* demo(args)
        expect({ args, code, stdout, stderr }).toEqual({ args, code: 2, stdout: "", stderr: `trellis-demo: ${message}\n` })
      }
    }))
})

describe("trellis-demo book, signal and runs", () => {
  it("holds the durable booking conversation one command at a time, and lists it with its progress", () =>
    inScratch(async (dir) => {
      const store = join(dir, "booking.db")
      const run = (args: ReadonlyArray<string>) => Effect.runPromise(demo(args, { cwd: dir }))
      const asked = await run(["book", "--store", store, "--run-id", "b1"])
      expect([asked.code, asked.stdout]).toEqual([0, "What name should the booking be under?\n"])
      expect(asked.stderr).toContain(`answer with: trellis-demo signal b1 name '"..."' --store ${store}`)

      const email = await run(["signal", "b1", "name", JSON.stringify("Maria Anders"), "--store", store])
      expect([email.code, email.stdout]).toEqual([0, "Which email address should the confirmation go to?\n"])

      const listed = await run(["runs", "--store", store, "--json"])
      expect(JSON.parse(listed.stdout)).toEqual([{
        pipeline: "booking_conversation",
        id: "b1",
        status: "waiting",
        steps: ["name", "readName"],
        cost: expect.any(Number)
      }])

      // A value that does not fit, or a step that does not wait, is refused with exit 2, and the run waits on.
      const wrong = await run(["signal", "b1", "email", "42", "--store", store])
      expect([wrong.code, wrong.stderr]).toEqual([
        2,
        `trellis-demo: Cannot signal "email" of pipeline "booking_conversation": the value does not fit the step's schema: Expected string, actual 42\n`
      ])
      const notJson = await run(["signal", "b1", "email", "maria", "--store", store])
      expect([notJson.code, notJson.stderr]).toEqual([
        2,
        `trellis-demo: the value must be JSON (a string in quotes: '"Ada"'), got "maria"\n`
      ])

      await run(["signal", "b1", "email", JSON.stringify("maria.anders@northwind.example"), "--store", store])
      const done = await run(["signal", "b1", "date", JSON.stringify("2026-12-18"), "--store", store])
      expect([done.code, done.stdout]).toEqual([
        0,
        "Booked for Maria Anders on 2026-12-18; confirmation sent to maria.anders@northwind.example.\n"
      ])
      const table = await run(["runs", "--store", store])
      expect(table.stdout.split("\n")[1]).toMatch(
        /^booking_conversation {2}b1 {2}completed {2}7 \(name, readName, email, readEmail, date, readDate, confirm\) {2}\$\d\.\d{6}$/
      )
    }), 60_000)

  it("takes --store, --provider and --model before the command's name as well as after it", () =>
    inScratch(async (dir) => {
      const store = join(dir, "booking.db")
      const run = (args: ReadonlyArray<string>) => Effect.runPromise(demo(args, { cwd: dir }))
      const before = await run(["--store", store, "--provider", "offline", "book", "--run-id", "b1"])
      expect([before.code, before.stdout]).toEqual([0, "What name should the booking be under?\n"])
      const after = await run(["book", "--provider", "offline", "--model", "gpt-4o", "--store", store, "--run-id", "b2"])
      expect([after.code, after.stdout]).toEqual([0, "What name should the booking be under?\n"])
      const signalled = await run(["--store", store, "signal", "b1", "name", JSON.stringify("Ada"), "--provider", "offline"])
      expect([signalled.code, signalled.stdout]).toEqual([0, "Which email address should the confirmation go to?\n"])
      const listed = await run(["--store", store, "runs", "--json"])
      expect(JSON.parse(listed.stdout).map((run: { id: string }) => run.id)).toEqual(["b1", "b2"])
      const badModel = await run(["book", "--model", "", "--store", store, "--run-id", "b3"])
      expect([badModel.code, badModel.stderr]).toEqual([2, expect.stringContaining("trellis-demo: --model")])
    }), 60_000)

  it("cancels a waiting conversation: it ends failed, as cancelled, and stays so", () =>
    inScratch(async (dir) => {
      const store = join(dir, "booking.db")
      const run = (args: ReadonlyArray<string>) => Effect.runPromise(demo(args, { cwd: dir }))
      await run(["book", "--store", store, "--run-id", "b1"])
      const cancelled = await run(["cancel", "b1", "--store", store])
      const ended = `Durable run "b1" of pipeline "booking_conversation" failed: it was cancelled, at step "name"\n`
      expect([cancelled.code, cancelled.stdout]).toEqual([1, ended])
      const signalled = await run(["signal", "b1", "name", JSON.stringify("Ada"), "--store", store])
      expect([signalled.code, signalled.stdout]).toEqual([1, ended])
      const listed = await run(["runs", "--store", store, "--json"])
      // The answer that came after the cancel is not a step the run did.
      expect(JSON.parse(listed.stdout).map((run: { status: string; steps: Array<string> }) => [run.status, run.steps]))
        .toEqual([["cancelled", []]])
    }), 60_000)

  it("refuses signal and cancel of a run the store does not hold at once, naming it, and stores nothing", () =>
    inScratch(async (dir) => {
      const store = join(dir, "booking.db")
      const run = (args: ReadonlyArray<string>) => Effect.runPromise(demo(args, { cwd: dir }))
      await run(["book", "--store", store, "--run-id", "b1"])
      const unknown = `No run "b9" of pipeline "booking_conversation" in the store: it was never started, or was removed ` +
        `as finished long ago`
      for (const args of [["signal", "b9", "name", JSON.stringify("Ada")], ["cancel", "b9"]]) {
        const refused = await run([...args, "--store", store])
        expect({ args, code: refused.code, stdout: refused.stdout, stderr: refused.stderr }).toEqual({
          args,
          code: 2,
          stdout: "",
          stderr: `trellis-demo: ${unknown}\n`
        })
      }
      const listed = await run(["runs", "--store", store, "--json"])
      expect(JSON.parse(listed.stdout).map((run: { id: string; status: string }) => [run.id, run.status])).toEqual([
        ["b1", "waiting"]
      ])
    }), 60_000)

  it("never makes a store to read, signal or cancel: a missing SQLite file is one line naming it, exit 1", () =>
    inScratch(async (dir) => {
      const run = (args: ReadonlyArray<string>) => Effect.runPromise(demo(args, { cwd: dir }))
      const missing = join(dir, "typo.db")
      for (const args of [["runs"], ["runs", "--json"], ["signal", "b1", "name", JSON.stringify("Ada")], ["cancel", "b1"]]) {
        const refused = await run([...args, "--store", missing])
        expect({ args, code: refused.code, stderr: refused.stderr }).toEqual({
          args,
          code: 1,
          stderr: `trellis-demo: Cannot open the SQLite file "${missing}": it does not exist\n`
        })
        expect(existsSync(missing)).toBe(false)
      }
    }), 60_000)

  it("prints ids with their control characters escaped, and refuses them in a run id", () =>
    inScratch(async (dir) => {
      const store = join(dir, "booking.db")
      const raw = "b\u001b[2J\u009b1"
      // A run stored under such an id by a program that went around `Durable.start`'s check.
      await Effect.runPromise(
        booking.workflow.execute({ id: raw }, { discard: true }).pipe(
          Effect.zipRight(settled(raw)),
          Effect.provide(layer(store)),
          Effect.provide(OfflineModel.layer())
        )
      )
      const run = (args: ReadonlyArray<string>) => Effect.runPromise(demo(args, { cwd: dir }))
      const table = await run(["runs", "--store", store])
      expect(table.stdout).toContain("b\\u001b[2J\\u009b1")
      const json = await run(["runs", "--store", store, "--json"])
      expect(JSON.parse(json.stdout)[0].id).toBe(raw)
      const refused = [
        await run(["signal", raw, "name", JSON.stringify("Ada"), "--store", store]),
        await run(["cancel", raw, "--store", store]),
        await run(["book", "--run-id", raw, "--store", store]),
        await run(["--run-id", raw, "--store", store])
      ]
      for (const output of [table, json, ...refused]) {
        expect(/\p{Cc}/u.test(output.stdout.replaceAll("\n", "") + output.stderr.replaceAll("\n", ""))).toBe(false)
      }
      for (const { code, stderr } of refused) {
        expect([code, stderr]).toEqual([2, `trellis-demo: --run-id cannot have control characters, got "b\\u001b[2J\\u009b1"\n`])
      }
    }), 60_000)

  it("says which refusal a PostgreSQL store gave, without its password", async () => {
    const refused = await Effect.runPromise(demo(["runs", "--store", "postgres://ada:s3cret@127.0.0.1:1/runs", "--json"]))
    expect(refused.code).toBe(1)
    expect(refused.stderr).toBe(
      "trellis-demo: Cannot open the PostgreSQL database postgres://ada@127.0.0.1:1/runs: nothing answered at its host " +
        "and port (is the server running there?) (connect ECONNREFUSED 127.0.0.1:1)\n"
    )
    expect(JSON.parse(refused.stdout).error).toMatchObject({ tag: "StoreUnavailable", reason: "Refused" })
  }, 60_000)

  it.effect("needs --store, and book needs --run-id, with one line and exit 2", () =>
    Effect.gen(function*() {
      const cases = [
        [["runs"], "this command reads a store: give --store (a SQLite file or a postgres:// URL)"],
        [["book", "--store", "x.db"], "book needs --run-id (the conversation's id)"],
        [["signal", "b1", "name", "\"Ada\""], "this command reads a store: give --store (a SQLite file or a postgres:// URL)"]
      ] as const
      for (const [args, message] of cases) {
        const { code, stderr, stdout } = yield* demo(args)
        expect({ args, code, stdout, stderr }).toEqual({ args, code: 2, stdout: "", stderr: `trellis-demo: ${message}\n` })
      }
    }))
})
