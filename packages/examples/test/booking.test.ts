import { describe, expect, it } from "@effect/vitest"
import { Durable } from "@trellis/durable"
import { OfflineModel } from "@trellis/llm"
import { Effect } from "effect"
import { mkdtempSync, rmSync } from "node:fs"
import { tmpdir } from "node:os"
import { join } from "node:path"
import { booking, converse, layer, settled } from "../src/booking.js"

const answers = ["Maria Anders, please.", "maria.anders@northwind.example", "Let's say 2026-12-18."]
const confirmation = "Booked for Maria Anders on 2026-12-18; confirmation sent to maria.anders@northwind.example."

const scratch = Effect.acquireRelease(
  Effect.sync(() => mkdtempSync(join(tmpdir(), "trellis-booking-"))),
  (dir) => Effect.sync(() => rmSync(dir, { recursive: true, force: true }))
)

describe("the durable booking conversation", () => {
  it.scopedLive("asks each question, waits for its answer, and confirms the form the model read", () =>
    Effect.gen(function*() {
      const dir = yield* scratch
      const { result, transcript } = yield* converse("c1", answers).pipe(
        Effect.provide(layer(join(dir, "booking.db"))),
        Effect.provide(OfflineModel.layer())
      )
      expect(transcript).toEqual([
        "assistant: What name should the booking be under?",
        `user: ${answers[0]}`,
        "assistant: Which email address should the confirmation go to?",
        `user: ${answers[1]}`,
        "assistant: For which date (YYYY-MM-DD)?",
        `user: ${answers[2]}`,
        `assistant: ${confirmation}`
      ])
      expect(result.outputs).toMatchObject({
        readName: "Maria Anders",
        readEmail: "maria.anders@northwind.example",
        readDate: "2026-12-18"
      })
      expect(result.usage.total.requests).toBe(3)
    }))

  it.scopedLive("goes on after a restart from where it waited, without reading an answer again", () =>
    Effect.gen(function*() {
      const dir = yield* scratch
      const file = join(dir, "booking.db")
      yield* Effect.gen(function*() {
        yield* Durable.start(booking, { id: "c2" })
        yield* settled("c2")
        yield* Durable.signal(booking, { id: "c2", step: "name", value: answers[0]! })
        expect((yield* settled("c2"))._tag).toBe("Waiting")
      }).pipe(Effect.provide(layer(file)), Effect.provide(OfflineModel.layer()))
      // A new process on the same file: the name was read before the restart.
      const result = yield* Effect.gen(function*() {
        yield* Durable.signal(booking, { id: "c2", step: "email", value: answers[1]! })
        yield* settled("c2")
        yield* Durable.signal(booking, { id: "c2", step: "date", value: answers[2]! })
        return yield* Durable.run(booking, { id: "c2" })
      }).pipe(Effect.provide(layer(file)), Effect.provide(OfflineModel.layer()))
      expect(result.output).toBe(confirmation)
      // Three reads in all: the one before the restart counted once, from the journal.
      expect(result.usage.total.requests).toBe(3)
    }))
})
