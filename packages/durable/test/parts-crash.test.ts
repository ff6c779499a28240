import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { SqliteClient } from "@effect/sql-sqlite-node"
import { PgClient } from "@effect/sql-pg"
import { Runs } from "@trellis/durable"
import { Effect, Layer, Redacted } from "effect"
import { spawn } from "node:child_process"
import * as http from "node:http"
import type { AddressInfo } from "node:net"
import * as path from "node:path"
import { fileURLToPath } from "node:url"
import { freshDatabase, postgresUrl, tempDir } from "./utils.js"

/** How many random kill points each shape gets per store; CI can raise it with TRELLIS_CRASH_POINTS. */
const KILL_POINTS = Math.max(1, Math.ceil(Number(process.env.TRELLIS_CRASH_POINTS ?? 3)))

/** The most a call reserves, as in the fixture. */
const WORST_CASE = 5_000

const fixture = fileURLToPath(new URL("./fixtures/parts.mjs", import.meta.url))
const dir = tempDir()

/** The map's items that fail their first attempt (the server refuses the first request it gets for each). */
const flaky = new Set(["sections[6]", "sections[13]"])

/**
 * A local paid API, outside the processes it serves: answers each request after a few milliseconds (more for some
 * items, so that the map's items end out of order) with a text and its cost, and logs who sent it.
 */
const server = async () => {
  const log: Array<string> = []
  // Every name ever sent, whatever the test clears of the log between processes.
  const seen = new Set<string>()
  let onRequest: (name: string, index: number) => void = () => {}
  const httpServer = http.createServer((req, res) => {
    let body = ""
    req.on("data", (chunk) => (body += chunk))
    req.on("end", () => {
      const name = decodeURIComponent((req.url ?? "").slice(1))
      const { input } = JSON.parse(body) as { input: string }
      const first = !seen.has(name)
      seen.add(name)
      log.push(name)
      onRequest(name, log.length)
      const index = Number(/\[(\d+)\]/.exec(name)?.[1] ?? 0)
      setTimeout(() => {
        res.end(JSON.stringify(
          flaky.has(name) && first
            ? { failed: true, inputTokens: 1, cost: 500 }
            : { text: `${name}(${input})`, inputTokens: input.length, cost: 1_000 + input.length }
        ))
      }, 10 + (index % 3) * 15)
    })
  })
  await new Promise<void>((resolve) => httpServer.listen(0, "127.0.0.1", resolve))
  return {
    port: (httpServer.address() as AddressInfo).port,
    log,
    set onRequest(f: (name: string, index: number) => void) {
      onRequest = f
    },
    close: () => new Promise<void>((resolve) => httpServer.close(() => resolve()))
  }
}

interface Usage {
  readonly cost: number
  readonly requests: number
  readonly estimated: boolean
}

interface Outcome {
  readonly signal: NodeJS.Signals | null
  readonly result: {
    readonly output: unknown
    readonly usage: { readonly total: Usage; readonly byStep: Record<string, Usage> }
    readonly timeline: ReadonlyArray<{ readonly step: string; readonly attempts: number; readonly parent?: string }>
  } | undefined
}

/** When to kill the process: at the request `kill` says yes to, after `delayMs`. */
interface Kill {
  readonly at: (name: string, index: number) => boolean
  readonly delayMs: number
}

type Shape = "map" | "loop"

/** Runs the fixture once; `kill` can kill it. */
const runChild = (
  shape: Shape,
  where: string,
  id: string,
  api: Awaited<ReturnType<typeof server>>,
  kill?: Kill
) =>
  new Promise<Outcome>((resolve, reject) => {
    const child = spawn(process.execPath, [fixture, where, id, String(api.port), shape], { stdio: ["ignore", "pipe", "pipe"] })
    let stdout = ""
    let stderr = ""
    let killing = false
    child.stdout.on("data", (chunk) => (stdout += chunk))
    child.stderr.on("data", (chunk) => (stderr += chunk))
    api.onRequest = (name, index) => {
      if (kill !== undefined && !killing && kill.at(name, index)) {
        killing = true
        setTimeout(() => child.kill("SIGKILL"), kill.delayMs)
      }
    }
    child.on("error", reject)
    child.on("exit", (code, signal) => {
      if (code !== 0 && signal === null) reject(new Error(`the run exited with ${code}: ${stderr}`))
      const last = stdout.trim().split("\n").pop()
      resolve({ signal, result: code === 0 && last ? JSON.parse(last) : undefined })
    })
  })

/** Where a run's journal is, and how to read what it finished. */
interface Store {
  readonly name: string
  readonly setup: () => Promise<void>
  readonly teardown: () => Promise<void>
  readonly place: (run: string) => string
  readonly sql: (where: string) => Layer.Layer<any, unknown>
}

const sqlite: Store = {
  name: "SQLite",
  setup: async () => {},
  teardown: async () => {},
  place: (run) => path.join(dir, `${run}.db`),
  sql: (filename) => SqliteClient.layer({ filename })
}

const postgres = (url: string): Store => {
  let database: Awaited<ReturnType<typeof freshDatabase>> | undefined
  return {
    name: "PostgreSQL",
    setup: async () => {
      database = await freshDatabase(url, "trellis_parts_crash")
    },
    teardown: async () => {
      await database?.drop()
    },
    place: () => database!.url,
    sql: (where) => PgClient.layer({ url: Redacted.make(where) })
  }
}

/** The parts whose outcome the journal holds for the run, read from the store after the kill. */
const journaled = (store: Store, where: string, shape: Shape, id: string) =>
  Effect.runPromise(
    Runs.list({ pipeline: shape }).pipe(
      Effect.map((runs) => new Set(runs.find((run) => run.id === id)?.steps ?? [])),
      Effect.provide(Runs.layer.pipe(Layer.provide(store.sql(where))))
    ) as Effect.Effect<Set<string>, unknown>
  )

const stores: ReadonlyArray<Store> = postgresUrl === undefined ? [sqlite] : [sqlite, postgres(postgresUrl)]

/** The parts of each shape, in order. */
const partsOf: Record<Shape, ReadonlyArray<string>> = {
  map: Array.from({ length: 20 }, (_, i) => `sections[${i}]`),
  loop: Array.from({ length: 10 }, (_, i) => `refine#${i + 1}`)
}

const delays = [0, 5, 15, 30]
const random = (n: number) => Math.floor(Math.random() * n)

/** Kill points: random requests of each shape (22 for the map, with its two retries; 10 for the loop), and one at a retry. */
const points: ReadonlyArray<{ readonly shape: Shape; readonly title: string; readonly kill: Kill }> = [
  ...Array.from({ length: KILL_POINTS }, () => {
    const request = 1 + random(22)
    const delayMs = delays[random(delays.length)]!
    return { shape: "map" as const, title: `request ${request} of the map, then ${delayMs} ms`, kill: { at: (_: string, i: number) => i === request, delayMs } }
  }),
  {
    shape: "map",
    title: "the retry of an item whose first attempt failed",
    kill: { at: (name, index) => name === "sections[6]" && index > 1, delayMs: 0 }
  },
  ...Array.from({ length: KILL_POINTS }, () => {
    const request = 1 + random(10)
    const delayMs = delays[random(delays.length)]!
    return { shape: "loop" as const, title: `iteration ${request} of the loop, then ${delayMs} ms`, kill: { at: (_: string, i: number) => i === request, delayMs } }
  })
]

for (const store of stores) {
  describe(`a durable map and a durable loop on ${store.name} killed with SIGKILL`, () => {
    beforeAll(() => store.setup())
    afterAll(() => store.teardown())
    const references = new Map<Shape, NonNullable<Outcome["result"]>>()

    /** The result of the same run, never interrupted. */
    const uninterrupted = async (shape: Shape) => {
      const known = references.get(shape)
      if (known !== undefined) return known
      const api = await server()
      try {
        const outcome = await runChild(shape, store.place(`reference-${shape}`), `reference-${shape}`, api)
        expect([...new Set(api.log)].sort()).toEqual([...partsOf[shape]].sort())
        references.set(shape, outcome.result!)
        return outcome.result!
      } finally {
        await api.close()
      }
    }

    points.forEach((point, n) => {
      it(`kill point ${n + 1}, at ${point.title}: no finished part sent again, each part's usage counted once, the output in order`, async () => {
        const { kill, shape } = point
        const expected = await uninterrupted(shape)
        const parts = partsOf[shape]
        const api = await server()
        try {
          const where = store.place(`crash-${n}`)
          const id = `run-${n}`
          const killed = await runChild(shape, where, id, api, kill)
          expect(killed.signal).toBe("SIGKILL")
          const before = [...api.log]
          const finished = await journaled(store, where, shape, id)
          api.log.length = 0
          const resumed = await runChild(shape, where, id, api)
          const after = [...api.log]
          const result = resumed.result!
          // The same output, in the order of the items (iterations).
          expect(result.output).toEqual(expected.output)
          // No part whose outcome the journal held is sent again; every part ran.
          expect(after.filter((name) => finished.has(name))).toEqual([])
          expect(new Set([...before, ...after])).toEqual(new Set(parts))
          for (const part of parts) {
            const sentAfter = after.filter((name) => name === part).length
            const sentBefore = before.filter((name) => name === part).length
            // A part is sent once by the resumed process, or twice for a refused first attempt sent there.
            expect(sentAfter).toBeLessThanOrEqual(flaky.has(part) && sentBefore === 0 ? 2 : 1)
            // A part that had its retry sent before the kill had its failed attempt journaled: it is not given its
            // retries again (the journaled failure counts as its first attempt).
            if (flaky.has(part) && sentBefore >= 2) {
              expect(sentAfter).toBeLessThanOrEqual(1)
              expect(result.timeline.find((t) => t.step === part)?.attempts).toBe(2)
            }
            const usage = result.usage.byStep[part]!
            const reference = expected.usage.byStep[part]!
            if (finished.has(part)) {
              // Journaled before the kill: counted once, exactly what it cost in a run never interrupted.
              expect(usage, part).toEqual(reference)
            } else {
              // Not journaled: what the killed process spent on it counts too, settled or held (a call whose hold was
              // written may have been sent, even if the server never saw it), and the figure is then an estimate.
              expect(usage.cost, part).toBeGreaterThanOrEqual(reference.cost)
              expect(usage.cost, part).toBeLessThanOrEqual(reference.cost + Math.max(1, sentBefore) * WORST_CASE)
              // (A flaky item's lost first attempt can make up the cost of the attempt it then did not need.)
              if (usage.cost !== reference.cost) expect(usage.estimated, part).toBe(true)
            }
            expect(result.timeline.find((t) => t.step === part)?.parent).toBe(shape === "map" ? "sections" : "refine")
          }
          const total = Object.values(result.usage.byStep).reduce((sum, usage) => sum + usage.cost, 0)
          expect(result.usage.total.cost).toBe(total)
          // A later run of the id returns the stored result and sends nothing.
          api.log.length = 0
          const stored = await runChild(shape, where, id, api)
          expect(stored.result).toEqual(result)
          expect(api.log).toEqual([])
        } finally {
          await api.close()
        }
      }, 60_000)
    })
  })
}
