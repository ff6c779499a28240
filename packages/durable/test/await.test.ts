import { describe, expect, it } from "@effect/vitest"
import { Pipeline, Step } from "@trellis/core"
import { Durable } from "@trellis/durable"
import type { WorkflowEngine } from "@effect/workflow/WorkflowEngine"
import { Deferred, Effect, Layer, Schema } from "effect"
import * as path from "node:path"
import { paidCall, settled, storeWith, tempDir } from "./utils.js"

const dir = tempDir()
let files = 0
const freshFile = () => path.join(dir, `await-${++files}.db`)

/** Asks a question, waits for the answer, replies; counts each step's runs in `runs`. */
const conversation = (name: string, runs: Record<string, number>) => {
  const counted = <A>(step: string, value: A) =>
    Effect.suspend(() => {
      runs[step] = (runs[step] ?? 0) + 1
      return Effect.as(paidCall(1_000), value)
    })
  const question = Step.make("question", { output: Schema.String, run: () => counted("question", "Your name?") })
  const answer = Durable.await("answer", { schema: Schema.Struct({ name: Schema.String }), after: { question } })
  const reply = Step.make("reply", {
    after: { answer },
    output: Schema.String,
    run: ({ answer }) => counted("reply", `Hello, ${answer.name}`)
  })
  return Durable.make(Pipeline.make(name, { output: reply }))
}

describe("Durable.await", () => {
  it.live("suspends the run until a signal arrives, across a restart; finished steps do not run again", () =>
    Effect.gen(function*() {
      const runs: Record<string, number> = {}
      const durable = conversation("ask", runs)
      const file = freshFile()
      // The first process starts the run, sees it waiting, and ends.
      const waiting = yield* Effect.zipRight(Durable.start(durable, { id: "r" }), settled(durable, "r")).pipe(
        Effect.provide(storeWith(file, durable))
      )
      expect(waiting._tag).toBe("Waiting")
      expect(runs).toEqual({ question: 1 })
      // The next delivers the answer and gets the result.
      const result = yield* Effect.zipRight(
        Durable.signal(durable, { id: "r", step: "answer", value: { name: "Ada" } }),
        Durable.run(durable, { id: "r" })
      ).pipe(Effect.provide(storeWith(file, durable)))
      expect(result._tag).toBe("Completed")
      expect(result.output).toBe("Hello, Ada")
      expect(result.outputs.answer).toEqual({ name: "Ada" })
      expect(runs).toEqual({ question: 1, reply: 1 })
      // The replayed question's spend counts in the resumed run's usage.
      expect(result.usage.total.cost).toBe(2_000)
    }))

  it.live("resumes a suspended run in the same process when the signal arrives", () =>
    Effect.gen(function*() {
      const runs: Record<string, number> = {}
      const durable = conversation("live", runs)
      const result = yield* Effect.gen(function*() {
        yield* Durable.start(durable, { id: "r" })
        expect((yield* settled(durable, "r"))._tag).toBe("Waiting")
        yield* Durable.signal(durable, { id: "r", step: conversationAnswer(durable), value: { name: "Grace" } })
        return yield* Durable.run(durable, { id: "r" })
      }).pipe(Effect.provide(storeWith(freshFile(), durable)))
      expect(result.output).toBe("Hello, Grace")
      expect(runs).toEqual({ question: 1, reply: 1 })
    }))

  it.live("keeps a value delivered before the run reaches the step, and uses it there", () =>
    Effect.gen(function*() {
      const release = yield* Deferred.make<void>()
      const question = Step.make("question", { output: Schema.String, run: () => Effect.as(Deferred.await(release), "?") })
      const answer = Durable.await("answer", { schema: Schema.String, after: { question } })
      const reply = Step.make("reply", { after: { answer }, output: Schema.String, run: ({ answer }) => Effect.succeed(`Hello, ${answer}`) })
      const durable = Durable.make(Pipeline.make("early", { output: reply }))
      const result = yield* Effect.gen(function*() {
        yield* Durable.start(durable, { id: "r" })
        // The run is stored, and held at the step before the waiting one.
        yield* Durable.signal(durable, { id: "r", step: "answer", value: "Early" })
        yield* Deferred.succeed(release, undefined)
        return yield* Durable.run(durable, { id: "r" })
      }).pipe(Effect.provide(storeWith(freshFile(), durable)))
      expect(result.output).toBe("Hello, Early")
    }))

  it.live("refuses a signal to a step that does not wait, or a value that does not fit, naming what is wrong", () =>
    Effect.gen(function*() {
      const durable = conversation("refused", {})
      const [unknown, wrong] = yield* Effect.all([
        Effect.flip(Durable.signal(durable, { id: "r", step: "question", value: "x" })),
        Effect.flip(Durable.signal(durable, { id: "r", step: "answer", value: { name: 42 } }))
      ]).pipe(Effect.provide(storeWith(freshFile(), durable)))
      expect(unknown.message).toBe(
        `Cannot signal "question" of pipeline "refused": it has no waiting step of that name (waiting: "answer")`
      )
      expect(wrong._tag).toBe("InvalidSignal")
      expect(wrong.message).toContain(`Cannot signal "answer" of pipeline "refused": the value does not fit`)
      expect(wrong.message).toContain("Expected string, actual 42")
    }))

  it.live("refuses a value its schema admits but the journal cannot carry (NaN), and takes a good one after", () =>
    Effect.gen(function*() {
      const answer = Durable.await("answer", { schema: Schema.Number })
      const double = Step.make("double", { after: { answer }, output: Schema.Number, run: ({ answer }) => Effect.succeed(answer * 2) })
      const durable = Durable.make(Pipeline.make("numbers", { output: double }))
      const result = yield* Effect.gen(function*() {
        yield* Durable.start(durable, { id: "r" })
        for (const value of [Number.NaN, Number.POSITIVE_INFINITY]) {
          const refused = yield* Effect.flip(Durable.signal(durable, { id: "r", step: answer, value }))
          expect(refused._tag).toBe("InvalidSignal")
          expect(refused.message).toContain("the value cannot be journaled")
        }
        yield* Durable.signal(durable, { id: "r", step: answer, value: 21 })
        return yield* Durable.run(durable, { id: "r" })
      }).pipe(Effect.provide(storeWith(freshFile(), durable)))
      // Stored as JSON, NaN would have come back as null, and the run would have failed when it read it.
      expect(result.output).toBe(42)
    }))

  it.live("lets a step running beside the waiting one finish before suspending, so that it never runs twice", () =>
    Effect.gen(function*() {
      const runs: Record<string, number> = {}
      const release = yield* Deferred.make<void>()
      const entered = yield* Deferred.make<void>()
      const slow = Step.make("slow", {
        output: Schema.Number,
        run: () =>
          Effect.suspend(() => {
            runs.slow = (runs.slow ?? 0) + 1
            return Deferred.succeed(entered, undefined).pipe(
              Effect.zipRight(Deferred.await(release)),
              Effect.zipRight(paidCall(5_000)),
              Effect.as(7)
            )
          })
      })
      const answer = Durable.await("answer", { schema: Schema.Number })
      const sum = Step.make("sum", {
        after: { slow, answer },
        output: Schema.Number,
        run: ({ answer, slow }) => Effect.succeed(slow + answer)
      })
      const durable = Durable.make(Pipeline.make("beside", { output: sum }))
      const file = freshFile()
      const status = yield* Effect.gen(function*() {
        yield* Durable.start(durable, { id: "r" })
        yield* Deferred.await(entered)
        // The waiting step has found no value; the run must not suspend while `slow` is in flight.
        yield* Effect.sleep("200 millis")
        expect((yield* Durable.status(durable, { id: "r" }))._tag).toBe("Pending")
        yield* Deferred.succeed(release, undefined)
        return yield* settled(durable, "r")
      }).pipe(Effect.provide(storeWith(file, durable)))
      expect(status._tag).toBe("Waiting")
      const result = yield* Effect.zipRight(
        Durable.signal(durable, { id: "r", step: "answer", value: 35 }),
        Durable.run(durable, { id: "r" })
      ).pipe(Effect.provide(storeWith(file, durable)))
      expect(result.output).toBe(42)
      expect(runs.slow).toBe(1)
      expect(result.usage.total.cost).toBe(5_000)
    }))

  it.live("tells a listener the suspension as StepSuspended and RunSuspended, then the resumed run, replays included", () =>
    Effect.gen(function*() {
      const durable = conversation("heard", {})
      const heard: Array<string> = []
      const listening = Durable.layer(durable, {
        onEvent: (event, id) => {
          const step = "step" in event ? ` ${event.step}` : ""
          const status = event._tag === "RunFinished" ? ` ${event.status}` : ""
          const cost = event._tag === "RunSuspended" || event._tag === "RunFinished" ? ` ${event.usage.cost}` : ""
          heard.push(`${id}: ${event._tag}${step}${status}${cost}`)
        }
      })
      const store = Layer.provideMerge(listening, storeWith(freshFile()))
      yield* Effect.gen(function*() {
        yield* Durable.start(durable, { id: "r" })
        expect((yield* settled(durable, "r"))._tag).toBe("Waiting")
        expect(heard).toEqual([
          "r: RunStarted",
          "r: StepStarted question",
          "r: UsageRecorded question",
          "r: StepSucceeded question",
          "r: StepStarted answer",
          "r: StepSuspended answer",
          "r: RunSuspended 1000"
        ])
        heard.length = 0
        yield* Durable.signal(durable, { id: "r", step: "answer", value: { name: "Ada" } })
        yield* Durable.run(durable, { id: "r" })
      }).pipe(Effect.provide(store))
      // The resumed execution reads the question's output from the journal, and says so.
      expect(heard).toEqual([
        "r: RunStarted",
        "r: StepStarted question",
        "r: UsageRecorded question",
        "r: StepReplayed question",
        "r: StepStarted answer",
        "r: StepSucceeded answer",
        "r: StepStarted reply",
        "r: UsageRecorded reply",
        "r: StepSucceeded reply",
        "r: RunFinished completed 2000"
      ])
    }))

  it.effect("runs in a plain run with signals of the caller's", () =>
    Effect.gen(function*() {
      const durable = conversation("plain", {})
      const answers = Layer.succeed(Durable.Signals, {
        await: (name, schema) => Effect.orDie(Schema.decodeUnknown(schema)({ answer: { name: "Test" } }[name]))
      })
      const result = yield* Pipeline.run(durable.pipeline).pipe(Effect.provide(answers))
      expect(result.output).toBe("Hello, Test")
    }))
})

/** The waiting step of a conversation, as a value (a signal can name the step or pass it). */
const conversationAnswer = <A, E, R, O, D>(durable: Durable.Durable<A, E, R, O, D>) =>
  durable.pipeline.steps.find((step) => step.name === "answer") as Step.Step<"answer", { readonly name: string }, never, Durable.Signals, any>

// The layer of a pipeline with a waiting step needs nothing for its signals.
export const _layer: Layer.Layer<never, never, WorkflowEngine> = Durable.layer(conversation("typed", {}))
