import { describe, expect, it } from "@effect/vitest"
import { SqlClient } from "@effect/sql"
import { SqliteClient } from "@effect/sql-sqlite-node"
import { Store } from "@trellis/durable"
import { type Duration, Effect, Layer, Redacted } from "effect"
import * as fs from "node:fs"
import * as path from "node:path"
import { postgresUrl, tempDir } from "./utils.js"

describe("Store.layerPgRunner", () => {
  const url = Redacted.make("postgres://trellis:s3cret@127.0.0.1:1/runs")

  for (const runner of [{ host: "127.0.0.1", port: 0 }, { host: "127.0.0.1", port: 70_000 }, { host: " ", port: 5432 }, {
    host: "a-host-name-too-long-to-fit-in-a-connection-name.example.com",
    port: 5432
  }]) {
    it.scoped(`refuses the runner address "${runner.host}:${runner.port}" before connecting, naming it`, () =>
      Effect.gen(function*() {
        const error = yield* Effect.flip(Layer.build(Store.layerPgRunner({ url, runner })))
        expect(error).toBeInstanceOf(Store.InvalidRunner)
        expect(error.message).toContain(`"${runner.host}:${runner.port}"`)
        expect(error.message).not.toContain("s3cret")
      }))
  }
})

describe("a store's durations", () => {
  const url = Redacted.make("postgres://trellis:s3cret@127.0.0.1:1/runs")
  const runner = { host: "127.0.0.1", port: 34431 }
  // Effect reads a negative or NaN amount as zero: an interval of zero would poll the database without pause, a
  // retention of zero would remove every finished run.
  const cases: ReadonlyArray<[string, (dir: string) => Layer.Layer<Store.Services, unknown>]> = [
    ["retention", (dir) => Store.layerSqlite({ filename: `${dir}/a.db`, retention: -1 })],
    ["retention", (dir) => Store.layerSqlite({ filename: `${dir}/b.db`, retention: "7 dasy" as Duration.DurationInput })],
    ["pollInterval", (dir) => Store.layerSqlite({ filename: `${dir}/c.db`, pollInterval: 0 })],
    ["shutdownTimeout", (dir) => Store.layerSqlite({ filename: `${dir}/d.db`, shutdownTimeout: Number.NaN })],
    ["pollInterval", () => Store.layerPg({ url, pollInterval: "-1 second" as Duration.DurationInput })],
    ["pickUpInterval", () => Store.layerPgRunner({ url, runner, pickUpInterval: Number.NaN })],
    ["pickUpInterval", () => Store.layerPgClient({ url, pickUpInterval: 0 })],
    // Keys a TypeScript caller could not write: refused, not ignored.
    ["retension", (dir) => Store.layerSqlite({ filename: `${dir}/e.db`, retension: "1 day" } as never)],
    ["file", (dir) => Store.layerSqlite({ file: `${dir}/f.db` } as never)],
    ["runner.hostname", () => Store.layerPgRunner({ url, runner: { ...runner, hostname: "x" } } as never)],
    ["pickupInterval", () => Store.layerPgClient({ url, pickupInterval: 5 } as never)]
  ]
  for (const [option, layer] of cases) {
    it.scoped(`a bad ${option} fails the layer with InvalidOption, naming it, before anything is opened`, () =>
      Effect.gen(function*() {
        const dir = tempDir()
        const error = yield* Effect.flip(Layer.build(layer(dir)))
        expect(error).toBeInstanceOf(Store.InvalidOption)
        expect((error as Store.InvalidOption).option).toBe(option)
        expect((error as Store.InvalidOption).message).toContain(option)
        // Nothing was opened: no SQLite file was made.
        expect(fs.readdirSync(dir)).toEqual([])
      }))
  }
})

/** One statement on a SQLite file, through a connection of its own. */
const sqlOn = (filename: string, statement: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) => sql.unsafe<Record<string, number>>(statement)).pipe(
    Effect.provide(SqliteClient.layer({ filename })),
    Effect.map((rows) => rows as ReadonlyArray<any>),
    Effect.orDie
  )

describe("Store.layerSqlite on a file that cannot be a store", () => {
  const unavailable = (options: Store.SqliteOptions) =>
    Effect.flip(Layer.build(Store.layerSqlite(options))).pipe(Effect.timeout("10 seconds"))

  it.scoped("fails with StoreUnavailable for a folder, a missing folder or a path through a file, naming the path", () =>
    Effect.gen(function*() {
      const dir = tempDir()
      fs.writeFileSync(path.join(dir, "plain.txt"), "")
      const cases = [
        [dir, "NotAFile", `Cannot open the SQLite file "${dir}": it is not a file (a folder)`],
        [path.join(dir, "nowhere", "runs.db"), "NoDirectory", `": its folder does not exist`],
        [path.join(dir, "plain.txt", "runs.db"), "NoDirectory", `": its folder does not exist`]
      ] as const
      for (const [filename, reason, message] of cases) {
        const error = yield* unavailable({ filename })
        expect(error).toBeInstanceOf(Store.StoreUnavailable)
        expect(error).toMatchObject({ _tag: "StoreUnavailable", store: filename, reason })
        expect(error.message).toContain(filename)
        expect(error.message).toContain(message)
      }
      expect(fs.readdirSync(dir)).toEqual(["plain.txt"])
    }))

  it.scoped("fails with StoreUnavailable for a missing file it may not create, and makes none", () =>
    Effect.gen(function*() {
      const filename = path.join(tempDir(), "typo.db")
      const error = yield* unavailable({ filename, create: false })
      expect(error).toMatchObject({ _tag: "StoreUnavailable", reason: "NotFound" })
      expect(error.message).toBe(`Cannot open the SQLite file "${filename}": it does not exist`)
      expect(fs.existsSync(filename)).toBe(false)
    }))

  it.scoped("fails with StoreUnavailable for a file that is not a SQLite database, or whose pages are damaged", () =>
    Effect.gen(function*() {
      const dir = tempDir()
      const text = path.join(dir, "notes.db")
      fs.writeFileSync(text, "these are notes, not a database\n".repeat(200))
      // A store whose table of shard locks has its page overwritten, as a failing disk or a torn copy leaves it: the
      // file opens, its tables are there, and every statement on that table fails.
      const damaged = path.join(dir, "damaged.db")
      yield* Effect.scoped(Layer.build(Store.layerSqlite({ filename: damaged })))
      const [{ page_size }] = yield* sqlOn(damaged, "PRAGMA page_size")
      const [{ rootpage }] = yield* sqlOn(damaged, "SELECT rootpage FROM sqlite_master WHERE name = 'cluster_locks'")
      const fd = fs.openSync(damaged, "r+")
      fs.writeSync(fd, Buffer.alloc(page_size, 0x5a), 0, page_size, (rootpage - 1) * page_size)
      fs.closeSync(fd)
      for (const filename of [damaged, text]) {
        const error = yield* unavailable({ filename })
        expect(error).toMatchObject({ _tag: "StoreUnavailable", store: filename, reason: "Corrupt" })
        expect(error.message).toContain(`Cannot open the SQLite file "${filename}": it is not a SQLite database, or it is damaged`)
      }
    }))
})

describe("a PostgreSQL store that refuses the connection", () => {
  /** The server's URL with its user, password, port or database changed. */
  const changed = (url: string, change: (url: URL) => void) => {
    const changed = new URL(url)
    change(changed)
    return changed.toString()
  }
  const refusal = (url: string) =>
    Effect.flip(Layer.build(Store.layerPg({ url: Redacted.make(url) }))).pipe(Effect.timeout("20 seconds"))

  it.scoped("says nothing answered, for a port nothing listens on, without the password", () =>
    Effect.gen(function*() {
      const error = yield* refusal("postgres://trellis:s3cret@127.0.0.1:1/runs")
      expect(error).toMatchObject({ _tag: "StoreUnavailable", reason: "Refused", store: "postgres://trellis@127.0.0.1:1/runs" })
      expect(error.message).toBe(
        "Cannot open the PostgreSQL database postgres://trellis@127.0.0.1:1/runs: nothing answered at its host and port " +
          "(is the server running there?) (connect ECONNREFUSED 127.0.0.1:1)"
      )
    }))

  it.scoped.skipIf(postgresUrl === undefined)("says the user or password was refused, and that a database is missing", () =>
    Effect.gen(function*() {
      const url = postgresUrl!
      const user = yield* refusal(changed(url, (url) => ((url.username = "nobody_here"), (url.password = "s3cret"))))
      expect(user).toMatchObject({ _tag: "StoreUnavailable", reason: "AuthenticationFailed" })
      expect(user.message).toContain("the server refused the user name or password")
      expect(user.message).not.toContain("s3cret")
      const database = yield* refusal(changed(url, (url) => void (url.pathname = "/no_such_database")))
      expect(database).toMatchObject({ _tag: "StoreUnavailable", reason: "NoDatabase" })
      expect(database.message).toContain("the server has no database of that name")
      expect(database.message).toContain(`database "no_such_database" does not exist`)
    }))
})
