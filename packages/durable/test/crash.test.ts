import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { spawn } from "node:child_process"
import * as http from "node:http"
import type { AddressInfo } from "node:net"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { freshDatabase, postgresUrl, tempDir } from "./utils.js"

/**
 * How many times a run is killed (one run per kill point). CI raises it with TRELLIS_CRASH_POINTS=30; each kill point
 * is its own test, two processes of about 1.5 s each.
 */
const KILL_POINTS = Number(process.env.TRELLIS_CRASH_POINTS ?? 5)

/** The most a call reserves, as in the fixture. */
const WORST_CASE = 5_000

const fixture = fileURLToPath(new URL("./fixtures/document.mjs", import.meta.url))
const dir = tempDir()

/** Each step's dependencies in the fixture's document pipeline. */
const dependencies: Record<string, ReadonlyArray<string>> = {
  extract: [],
  classify: ["extract"],
  fetch_market: ["classify"],
  fetch_user: ["classify"],
  combine: ["fetch_market", "fetch_user"]
}

/** A step and everything it depends on. */
const closure = (step: string): Array<string> => [step, ...dependencies[step]!.flatMap(closure)]

/**
 * A local paid API: answers each request after 20 ms with a text and its cost, and logs the step that sent it.
 * `onRequest` sees the number of each request as it arrives.
 */
const server = async () => {
  const log: Array<string> = []
  let onRequest: (index: number) => void = () => {}
  const httpServer = http.createServer((req, res) => {
    let body = ""
    req.on("data", (chunk) => (body += chunk))
    req.on("end", () => {
      const step = (req.url ?? "").slice(1)
      const { input } = JSON.parse(body) as { input: string }
      log.push(step)
      onRequest(log.length)
      setTimeout(() => {
        res.end(JSON.stringify({ text: `${step}(${input})`, inputTokens: input.length, cost: 1_000 + input.length }))
      }, 20)
    })
  })
  await new Promise<void>((resolve) => httpServer.listen(0, "127.0.0.1", resolve))
  return {
    port: (httpServer.address() as AddressInfo).port,
    log,
    set onRequest(f: (index: number) => void) {
      onRequest = f
    },
    close: () => new Promise<void>((resolve) => httpServer.close(() => resolve()))
  }
}

interface Outcome {
  readonly code: number | null
  readonly signal: NodeJS.Signals | null
  readonly result: {
    readonly output: string
    readonly usage: { readonly total: { readonly cost: number; readonly estimated: boolean } }
  } | undefined
}

/** Runs the fixture once; `onRequest` can kill it. */
const runChild = (
  file: string,
  id: string,
  port: number,
  setHandler: (handler: (index: number) => void) => void,
  killAt?: { readonly request: number; readonly delayMs: number }
) =>
  new Promise<Outcome>((resolve, reject) => {
    const child = spawn(process.execPath, [fixture, file, id, String(port)], { stdio: ["ignore", "pipe", "pipe"] })
    let stdout = ""
    let stderr = ""
    child.stdout.on("data", (chunk) => (stdout += chunk))
    child.stderr.on("data", (chunk) => (stderr += chunk))
    setHandler((index) => {
      if (killAt !== undefined && index === killAt.request) {
        setTimeout(() => child.kill("SIGKILL"), killAt.delayMs)
      }
    })
    child.on("error", reject)
    child.on("exit", (code, signal) => {
      if (code !== 0 && signal === null) reject(new Error(`the run exited with ${code}: ${stderr}`))
      const last = stdout.trim().split("\n").pop()
      resolve({ code, signal, result: code === 0 && last ? JSON.parse(last) : undefined })
    })
  })

/** Where a run's journal is: a SQLite file per run, or one PostgreSQL database for the file's runs. */
interface Store {
  readonly name: string
  readonly setup: () => Promise<void>
  readonly teardown: () => Promise<void>
  readonly place: (run: string) => string
}

const sqlite: Store = {
  name: "SQLite",
  setup: async () => {},
  teardown: async () => {},
  place: (run) => path.join(dir, `${run}.db`)
}

const postgres = (url: string): Store => {
  let database: Awaited<ReturnType<typeof freshDatabase>> | undefined
  return {
    name: "PostgreSQL",
    setup: async () => {
      database = await freshDatabase(url, "trellis_crash")
    },
    teardown: async () => {
      await database?.drop()
    },
    place: () => database!.url
  }
}

const stores: ReadonlyArray<Store> = postgresUrl === undefined ? [sqlite] : [sqlite, postgres(postgresUrl)]

for (const store of stores) {
  describe(`a durable run on ${store.name} killed with SIGKILL`, () => {
    beforeAll(() => store.setup())
    afterAll(() => store.teardown())
    let reference: { readonly output: string; readonly cost: number } | undefined

    /** The result of the same run, never interrupted. */
    const uninterrupted = async () => {
      if (reference !== undefined) return reference
      const api = await server()
      try {
        const outcome = await runChild(store.place("reference"), "reference", api.port, (h) => (api.onRequest = h))
        expect([...api.log].sort()).toEqual(Object.keys(dependencies).sort())
        reference = { output: outcome.result!.output, cost: outcome.result!.usage.total.cost }
        return reference
      } finally {
        await api.close()
      }
    }

    // Kill points: when the n-th request of the run arrives (1 to 5), then at once, while it is answered (in 20 ms), or
    // after the answer, while the step's end is being journaled.
    const delays = [0, 10, 25, 5, 40, 15, 30, 20, 50, 35]
    const points = Array.from({ length: KILL_POINTS }, (_, i) => ({
      point: i + 1,
      request: (i % 5) + 1,
      delayMs: delays[Math.floor(i / 5) % delays.length]!
    }))

    for (const point of points) {
      const title = `kill point ${point.point} (request ${point.request}, then ${point.delayMs} ms)`
      it(`${title}: same output, no finished step sent again, spend counted`, async () => {
        const expected = await uninterrupted()
        const api = await server()
        try {
          const file = store.place(`crash-${point.point}`)
          const id = `run-${point.point}`
          const killed = await runChild(file, id, api.port, (h) => (api.onRequest = h), point)
          expect(killed.signal).toBe("SIGKILL")
          const before = [...api.log]
          // A step had finished (and was journaled) if a step depending on it had sent its request.
          const finished = new Set(before.flatMap((step) => closure(step).filter((s) => s !== step)))
          api.log.length = 0
          const resumed = await runChild(file, id, api.port, (h) => (api.onRequest = h))
          const after = [...api.log]
          expect(resumed.result?.output).toBe(expected.output)
          expect(after.filter((step) => finished.has(step))).toEqual([])
          // Every step ran, each at most once per process.
          expect(new Set([...before, ...after])).toEqual(new Set(Object.keys(dependencies)))
          expect(new Set(after).size).toBe(after.length)
          // Steps in flight at the kill are sent again: at most the two that can run at once.
          const again = after.filter((step) => before.includes(step))
          expect(again.length).toBeLessThanOrEqual(2)
          // What the killed process spent on steps it did not finish is counted: a settled call at its cost (1,000 or
          // more), one in flight at its reservation. Only steps that run again can have such calls, one each.
          const { cost, estimated } = resumed.result!.usage.total
          expect(cost).toBeGreaterThanOrEqual(expected.cost + again.length * 1_000)
          expect(cost).toBeLessThanOrEqual(expected.cost + after.length * WORST_CASE)
          expect(estimated).toBe(cost !== expected.cost)
          // A later run of the id returns the stored result and sends nothing.
          api.log.length = 0
          const stored = await runChild(file, id, api.port, (h) => (api.onRequest = h))
          expect(stored.result).toEqual(resumed.result)
          expect(api.log).toEqual([])
        } finally {
          await api.close()
        }
      }, 60_000)
    }
  })
}
