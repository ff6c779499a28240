/**
 * Opening a SQLite store's file: what the path is checked for before the driver sees it, the file taken for this
 * process alone, and its pages checked, so that each way a file can be wrong is a typed error naming it. The driver
 * alone throws from its constructor (a defect) for a folder or a missing folder, and a damaged file opens without
 * complaint, then fails every statement that reaches a damaged page: the runner retried its shard locks twice a
 * second for ever.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import { SqliteClient } from "@effect/sql-sqlite-node"
import * as Cause from "effect/Cause"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as fs from "node:fs"
import * as path from "node:path"
import { StoreUnavailable } from "./unavailable.js"

/**
 * Another process is the runner on this SQLite file.
 *
 * @since 0.2.0
 */
export class StoreInUse extends Data.TaggedError("StoreInUse")<{
  readonly filename: string
}> {
  override get message(): string {
    return `The SQLite file "${this.filename}" is in use by another process: one process at a time may run durable ` +
      `pipelines on a SQLite file (two could run a step twice)`
  }
}

/** The code SQLite gave a failed statement, if any. */
const codeOf = (error: SqlError): unknown => (error.cause as { readonly code?: unknown } | undefined)?.code

/** The codes of a file that is not a database, or whose pages are damaged. */
const damaged = new Set(["SQLITE_CORRUPT", "SQLITE_NOTADB"])

/** What the path is, before the driver opens it: a typed refusal, or nothing to say. */
const checkPath = (filename: string, create: boolean): Effect.Effect<void, StoreUnavailable> =>
  Effect.suspend(() => {
    const unavailable = (reason: StoreUnavailable["reason"], detail: string) =>
      Effect.fail(new StoreUnavailable({ store: filename, reason, detail }))
    let stat: fs.Stats | undefined
    try {
      stat = fs.statSync(filename)
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code
      if (code === "ENOTDIR") return unavailable("NoDirectory", "a part of its path is a file")
      if (code !== "ENOENT") return unavailable("CannotOpen", (error as Error).message)
    }
    if (stat !== undefined) return stat.isFile() ? Effect.void : unavailable("NotAFile", stat.isDirectory() ? "a folder" : "")
    if (!fs.existsSync(path.dirname(path.resolve(filename)))) return unavailable("NoDirectory", "")
    return create ? Effect.void : unavailable("NotFound", "")
  })

/**
 * Takes the file for this process until the connection closes, or fails at once with `StoreInUse`. SQLite has no
 * advisory locks, and the cluster's shard locks do not tell two runners on one file apart, so the file's own lock
 * does it: in exclusive locking mode the connection keeps the write lock it takes here, and the operating system
 * releases it when the process ends, however it ends. WAL is turned on here rather than by the client, after the
 * busy timeout is set to 0, so that a second process is refused at once instead of waiting. Then the file's pages are
 * checked (`quick_check` reads each once: milliseconds for a store of a few megabytes), since a damaged page would
 * otherwise be found by the cluster's loops, which log and retry for ever.
 */
const takeFile = (filename: string): Effect.Effect<void, StoreInUse | StoreUnavailable | SqlError, SqlClient.SqlClient> =>
  Effect.gen(function*() {
    const sql = yield* SqlClient.SqlClient
    yield* sql.unsafe("PRAGMA busy_timeout = 0")
    yield* sql.unsafe("PRAGMA locking_mode = EXCLUSIVE")
    yield* Effect.catchIf(
      Effect.zipRight(sql.unsafe("PRAGMA journal_mode = WAL"), sql.unsafe("BEGIN EXCLUSIVE")),
      (error) => codeOf(error) === "SQLITE_BUSY",
      () => Effect.fail(new StoreInUse({ filename }))
    )
    yield* sql.unsafe("COMMIT")
    const problems = (yield* sql.unsafe<{ readonly quick_check: string }>("PRAGMA quick_check(3)"))
      .map((row) => row.quick_check)
      .filter((problem) => problem !== "ok")
    if (problems.length > 0) {
      return yield* new StoreUnavailable({ store: filename, reason: "Corrupt", detail: problems.join("; ") })
    }
    yield* sql.unsafe("PRAGMA busy_timeout = 5000")
  }).pipe(
    Effect.catchIf(
      (error): error is SqlError => error._tag === "SqlError" && damaged.has(codeOf(error) as string),
      (error) =>
        Effect.fail(new StoreUnavailable({ store: filename, reason: "Corrupt", detail: String(error.cause) }))
    )
  )

/**
 * The SQL client on a SQLite file, held by this process: the path checked first (a missing file is made only when
 * `create` allows), the driver's refusal to open it a typed error rather than a defect, the file taken and checked.
 */
export const client = (
  filename: string,
  create: boolean
): Layer.Layer<SqlClient.SqlClient, StoreInUse | StoreUnavailable | SqlError> =>
  SqliteClient.layer({ filename, disableWAL: true }).pipe(
    // The driver throws from its constructor when the file cannot be opened (the layer's only failure, a ConfigError,
    // cannot happen with its options given as values).
    Layer.catchAllCause((cause) =>
      Cause.isInterruptedOnly(cause)
        ? Layer.failCause(cause as Cause.Cause<never>)
        : Layer.fail(new StoreUnavailable({ store: filename, reason: "CannotOpen", detail: String(Cause.squash(cause)) }))
    ),
    Layer.tap((context) => Effect.provide(takeFile(filename), context)),
    (opened) => Layer.unwrapEffect(Effect.as(checkPath(filename, create), opened))
  )
