/**
 * A PostgreSQL restart while a step runs: the runner cannot write the step's outcome, and the engine would wait for it
 * for ever. The runner ends instead, within a bound, with `StoreUnavailable` (`Lost`); a new one finishes the run.
 * The restart is real, on a cluster of this file's own (the shared one serves the other files meanwhile), made with
 * the same PostgreSQL that CI installs; the file is skipped where there is none, or where the tests do not run as
 * root (the server runs as the `postgres` user).
 */
import { afterAll, beforeAll, describe, expect, it } from "@effect/vitest"
import { Pipeline, Step } from "@trellis/core"
import { Durable, Store } from "@trellis/durable"
import { Deferred, Effect, Fiber, Layer, Redacted, Schema } from "effect"
import { execFileSync } from "node:child_process"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"
import { freePort, postgresUrl } from "./utils.js"

const bin = fs.existsSync("/usr/lib/postgresql")
  ? fs.readdirSync("/usr/lib/postgresql").map((version) => `/usr/lib/postgresql/${version}/bin`)
    .find((dir) => fs.existsSync(`${dir}/pg_ctl`))
  : undefined
const runnable = postgresUrl !== undefined && bin !== undefined && process.getuid?.() === 0


describe.skipIf(!runnable)("a runner whose PostgreSQL database restarts while a step runs", () => {
  let dir = ""
  let port = 0
  const pgCtl = (...args: ReadonlyArray<string>) =>
    execFileSync("runuser", ["-u", "postgres", "--", `${bin}/pg_ctl`, "-D", `${dir}/data`, "-l", `${dir}/log`, "-w", ...args], {
      stdio: "ignore"
    })
  const startServer = () => pgCtl("-o", `-c listen_addresses=127.0.0.1 -p ${port} -k ${dir} -c fsync=off`, "start")

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "trellis-restart-"))
    fs.chmodSync(dir, 0o755)
    execFileSync("chown", ["postgres:postgres", dir])
    port = await freePort()
    execFileSync("runuser", ["-u", "postgres", "--", `${bin}/initdb`, "-D", `${dir}/data`, "-U", "postgres", "--auth=trust"], {
      stdio: "ignore"
    })
    startServer()
  }, 60_000)

  afterAll(() => {
    try {
      pgCtl("-m", "immediate", "stop")
    } catch {
      // Already stopped.
    }
    fs.rmSync(dir, { recursive: true, force: true })
  })

  it.live("ends the runner within seconds with StoreUnavailable (Lost); a new runner finishes the run", () =>
    Effect.gen(function*() {
      const url = Redacted.make(`postgres://postgres@127.0.0.1:${port}/postgres`)
      const entered = yield* Deferred.make<void>()
      let slowRuns = 0
      const first = Step.make("first", { output: Schema.Number, run: () => Effect.succeed(1) })
      const slow = Step.make("slow", {
        after: { first },
        output: Schema.Number,
        run: () =>
          Effect.sync(() => ++slowRuns).pipe(
            Effect.zipRight(Deferred.succeed(entered, undefined)),
            Effect.zipRight(Effect.sleep("1500 millis")),
            Effect.as(2)
          )
      })
      const last = Step.make("last", { after: { slow }, output: Schema.Number, run: ({ slow }) => Effect.succeed(slow + 1) })
      const durable = Durable.make(Pipeline.make("restarted", { output: last }))
      const runner = () =>
        Durable.layer(durable).pipe(
          Layer.provideMerge(Store.layerPg({ url, pollInterval: "100 millis", shutdownTimeout: "200 millis" })),
          Layer.orDie
        )

      // The first runner: the server stops while `slow` runs, and is back before long.
      const { error, waited } = yield* Effect.gen(function*() {
        const running = yield* Effect.fork(Effect.flip(Durable.run(durable, { id: "r" })))
        const lostToo = yield* Effect.fork(Effect.flip(Store.lost))
        yield* Deferred.await(entered)
        pgCtl("-m", "fast", "stop")
        const stopped = Date.now()
        yield* Effect.sleep("3 seconds")
        startServer()
        // Without the look at the database, this waited for ever (still waiting minutes after the server came back).
        const error = yield* Fiber.join(running).pipe(Effect.timeout("30 seconds"))
        expect(yield* Fiber.join(lostToo)).toEqual(error)
        return { error, waited: Date.now() - stopped }
      }).pipe(Effect.provide(runner()))
      expect(error).toBeInstanceOf(Store.StoreUnavailable)
      expect(error).toMatchObject({ _tag: "StoreUnavailable", reason: "Lost" })
      expect(error.message).toContain(`Lost the PostgreSQL database postgres://postgres@127.0.0.1:${port}/postgres`)
      // The bound: a look a second, each given 5 seconds at most.
      expect(waited).toBeLessThan(7_000)

      // A new runner resumes the run from its journal: `first` is replayed, `slow` runs again (it was in flight).
      const result = yield* Durable.run(durable, { id: "r" }).pipe(Effect.provide(runner()), Effect.timeout("30 seconds"))
      expect([result._tag, result.output, result.outputs]).toEqual(["Completed", 3, { first: 1, slow: 2, last: 3 }])
      expect(slowRuns).toBe(2)
    }), 90_000)
})
