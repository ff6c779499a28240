import { describe, expect, it } from "@effect/vitest"
import { SqlClient } from "@effect/sql"
import { SqliteClient } from "@effect/sql-sqlite-node"
import { Pipeline, Step } from "@trellis/core"
import { Durable, Runs } from "@trellis/durable"
import { Effect, Schema } from "effect"
import * as path from "node:path"
import { runValid, settled, storeWith, tempDir } from "./utils.js"

const dir = tempDir()
let files = 0
const freshFile = () => path.join(dir, `unknown-${++files}.db`)

const answer = Durable.await("answer", { schema: Schema.String })
const reply = Step.make("reply", { after: { answer }, output: Schema.String, run: ({ answer }) => Effect.succeed(`Hi, ${answer}`) })
const asking = Durable.make(Pipeline.make("asking", { output: reply }))

/** The rows of the store's message table and of Trellis's cancellations, read from the file once it is closed. */
const storedRows = (file: string) =>
  Effect.flatMap(SqlClient.SqlClient, (sql) =>
    Effect.all([
      sql<{ readonly n: number }>`SELECT count(*) AS n FROM cluster_messages`,
      sql<{ readonly n: number }>`SELECT count(*) AS n FROM trellis_cancel`
    ])).pipe(
      Effect.map(([messages, cancels]) => ({ messages: messages[0]!.n, cancels: cancels[0]!.n })),
      Effect.provide(SqliteClient.layer({ filename: file })),
      Effect.orDie
    )

describe("a run the store does not hold", () => {
  it.live("is refused by signal and cancel at once with UnknownRun, naming the id, and nothing is written", () =>
    Effect.gen(function*() {
      const file = freshFile()
      const [signalled, cancelled, listed] = yield* Effect.all([
        Effect.flip(Durable.signal(asking, { id: "typo-42", step: "answer", value: "Ada" })),
        Effect.flip(Durable.cancel(asking, { id: "typo-42" })),
        Runs.list()
      ]).pipe(Effect.timeout("5 seconds"), Effect.provide(storeWith(file, asking)))
      for (const error of [signalled, cancelled]) {
        expect(error).toBeInstanceOf(Durable.UnknownRun)
        expect(error).toMatchObject({ pipeline: "asking", id: "typo-42" })
        expect(error.message).toContain(`No run "typo-42" of pipeline "asking"`)
      }
      expect(listed).toEqual([])
      expect(yield* storedRows(file)).toEqual({ messages: 0, cancels: 0 })
    }))

  it.live("is told apart from a run that exists: the same calls reach a started run", () =>
    Effect.gen(function*() {
      const result = yield* Effect.gen(function*() {
        yield* Durable.start(asking, { id: "real" })
        expect((yield* settled(asking, "real"))._tag).toBe("Waiting")
        yield* Durable.signal(asking, { id: "real", step: "answer", value: "Ada" })
        return yield* runValid(asking, { id: "real" })
      }).pipe(Effect.provide(storeWith(freshFile(), asking)))
      expect(result.output).toBe("Hi, Ada")
    }))
})

describe("a run's id", () => {
  it.live("is refused by run and start with InvalidId when empty or with control characters, and nothing starts", () =>
    Effect.gen(function*() {
      const file = freshFile()
      const errors = yield* Effect.forEach(
        ["", "a\u001b[2Jb", "line\nbreak", "c1\u009b"],
        (id) => Effect.all([Effect.flip(Durable.run(asking, { id })), Effect.flip(Durable.start(asking, { id }))])
      ).pipe(Effect.provide(storeWith(file, asking)))
      for (const error of errors.flat()) expect(error).toBeInstanceOf(Durable.InvalidId)
      // The message shows the id with its control characters escaped, never raw.
      expect(errors[1]![0].message).toBe(
        `Invalid run id "a\\u001b[2Jb" for pipeline "asking": an id cannot have control characters`
      )
      expect(errors[0]![0].message).toContain("an id cannot be empty")
      expect(errors.flat().every((error) => !/\p{Cc}/u.test(error.message))).toBe(true)
      expect((yield* storedRows(file)).messages).toBe(0)
    }))
})
