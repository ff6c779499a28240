import { describe, expect, it } from "@effect/vitest"
import { Pipeline, Step } from "@trellis/core"
import * as DurableDeferred from "@effect/workflow/DurableDeferred"
import { Durable, Runs } from "@trellis/durable"
import { Data, Effect, Schema } from "effect"
import * as path from "node:path"
import { paidCall, runValid, settled, storeWith, tempDir } from "./utils.js"

const dir = tempDir()

class Broken extends Data.TaggedError("Broken")<{}> {}

const first = Step.make("first", { output: Schema.Number, run: () => Effect.as(paidCall(1_000), 1) })

const completes = Durable.make(Pipeline.make("completes", {
  output: Step.make("second", {
    after: { first },
    output: Schema.Number,
    run: ({ first }) => Effect.as(paidCall(2_000), first + 1)
  })
}))

const fails = Durable.make(Pipeline.make("fails", {
  output: Step.make("second", { after: { first }, output: Schema.Number, run: () => Effect.fail(new Broken()) })
}))

const stops = Durable.make(
  Pipeline.make("stops", {
    output: Step.make("second", { after: { first }, output: Schema.Number, run: () => Pipeline.stop("enough") })
  }),
  { stop: Schema.String }
)

const waits = Durable.make(Pipeline.make("waits", {
  output: Step.make("second", {
    after: { answer: Durable.await("answer", { schema: Schema.Number, after: { first } }) },
    output: Schema.Number,
    run: ({ answer }) => Effect.succeed(answer)
  })
}))

describe("Runs.list", () => {
  it.live("lists every stored run with its status, the steps it finished and their cost", () =>
    Effect.gen(function*() {
      const file = path.join(dir, "runs.db")
      yield* Effect.gen(function*() {
        yield* Durable.run(completes, { id: "c1" })
        yield* Durable.run(completes, { id: "c2" })
        yield* Effect.flip(runValid(fails, { id: "f" }))
        yield* Durable.run(stops, { id: "s" })
        yield* Durable.start(waits, { id: "w" })
        while ((yield* Durable.status(waits, { id: "w" }))._tag !== "Waiting") yield* Effect.sleep("20 millis")
      }).pipe(Effect.provide(storeWith(file, completes, fails, stops, waits)))
      // Listed by a later process, from the file alone.
      const runs = yield* Runs.list().pipe(Effect.provide(storeWith(file)))
      expect(runs).toEqual([
        { pipeline: "completes", id: "c1", status: "completed", steps: ["first", "second"], cost: 3_000 },
        { pipeline: "completes", id: "c2", status: "completed", steps: ["first", "second"], cost: 3_000 },
        { pipeline: "fails", id: "f", status: "failed", steps: ["first", "second"], cost: 1_000 },
        { pipeline: "stops", id: "s", status: "stopped", steps: ["first", "second"], cost: 1_000 },
        { pipeline: "waits", id: "w", status: "waiting", steps: ["first"], cost: 1_000 }
      ])
      const one = yield* Runs.list({ pipeline: "fails" }).pipe(Effect.provide(storeWith(file)))
      expect(one.map((run) => run.id)).toEqual(["f"])
      // A delivered signal is a finished step.
      const answered = yield* Durable.signal(waits, { id: "w", step: "answer", value: 7 }).pipe(
        Effect.zipRight(Durable.run(waits, { id: "w" })),
        Effect.zipRight(Runs.list({ pipeline: "waits" })),
        Effect.provide(storeWith(file, waits))
      )
      expect(answered).toEqual([
        { pipeline: "waits", id: "w", status: "completed", steps: ["first", "answer", "second"], cost: 1_000 }
      ])
    }))
})

describe("Runs.list of a cancelled run", () => {
  it.live("does not list a waiting step as done for a signal stored after the run ended", () =>
    Effect.gen(function*() {
      const answer = Durable.await("answer", { schema: Schema.Number })
      const waits = Durable.make(Pipeline.make("late", { output: answer }))
      const listed = yield* Effect.gen(function*() {
        yield* Durable.start(waits, { id: "c" })
        expect((yield* settled(waits, "c"))._tag).toBe("Waiting")
        yield* Durable.cancel(waits, { id: "c" })
        expect((yield* settled(waits, "c"))._tag).toBe("Finished")
        // Written to the engine directly, as a store that already holds one has it: `Durable.signal` no longer
        // stores a signal for a finished run.
        const signal = DurableDeferred.make("Signal/answer", { success: Schema.Number })
        const executionId = yield* waits.workflow.executionId({ id: "c" })
        yield* DurableDeferred.succeed(signal, {
          token: DurableDeferred.tokenFromExecutionId(signal, { workflow: waits.workflow, executionId }),
          value: 7
        })
        return yield* Runs.list()
      }).pipe(Effect.provide(storeWith(path.join(dir, "late.db"), waits)))
      expect(listed.map((run) => [run.id, run.status, run.steps])).toEqual([["c", "cancelled", []]])
    }))
})
