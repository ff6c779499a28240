import { describe, expect, it } from "@effect/vitest"
import { Event, ForEach, Pipeline, Step, StepExecutor } from "@trellis/core"
import { Cause, Data, Effect, Exit, Schedule } from "effect"
import { runWithClock } from "./utils.js"

class Flaky extends Data.TaggedError("Flaky")<{ readonly attempt: number }> {}

type Outcome = StepExecutor.Attempted<unknown, unknown>

/**
 * An executor made from one attempt, with a journal of attempts by `name/number`, as a durable one keeps: an attempt
 * it holds is replayed, not run; one it runs is written down, with the verdict it was given.
 */
const journaling = (journal: Map<string, Outcome>, ran: Array<string>) =>
  StepExecutor.fromAttempt((attempt) =>
    Effect.suspend(() => {
      const key = `${attempt.name}/${attempt.number}`
      const kept = journal.get(key)
      if (kept !== undefined) return Effect.succeed({ ...kept, replayed: true } as never)
      ran.push(key)
      return Effect.tap(StepExecutor.local.attempt!(attempt), (outcome) => Effect.sync(() => journal.set(key, outcome)))
    })
  )

const listen = (events: Array<string>) => (event: Event.Event) => {
  if (event._tag !== "UsageRecorded" && event._tag !== "RunStarted" && event._tag !== "StepStarted") {
    events.push("step" in event ? `${event._tag} ${event.step}` : event._tag)
  }
}

describe("an executor made from one attempt (StepExecutor.fromAttempt)", () => {
  // Fails its first two attempts, then succeeds; retried three times, a minute apart.
  const flaky = (calls: { count: number }) =>
    Step.make("flaky", {
      retry: { times: 3, schedule: Schedule.spaced("1 minute") },
      run: () =>
        Effect.suspend(() => {
          const call = ++calls.count
          return call <= 2 ? Effect.fail(new Flaky({ attempt: call })) : Effect.succeed(call)
        })
    })

  it.effect("is retried by the runner's loop: the replayed failures are not run or waited for, and count as attempts", () =>
    Effect.gen(function*() {
      const journal = new Map<string, Outcome>([
        ["flaky/1", { _tag: "Failed", error: new Flaky({ attempt: 1 }), cause: Cause.fail(new Flaky({ attempt: 1 })), retryable: true, replayed: false }],
        ["flaky/2", { _tag: "Failed", error: new Flaky({ attempt: 2 }), cause: Cause.fail(new Flaky({ attempt: 2 })), retryable: true, replayed: false }]
      ])
      const ran: Array<string> = []
      const events: Array<string> = []
      const calls = { count: 2 }
      const pipeline = Pipeline.make("p", { output: flaky(calls) })
      const result = yield* runWithClock(
        Pipeline.run(pipeline, { onEvent: listen(events) }).pipe(Effect.provide(StepExecutor.layer(journaling(journal, ran))))
      )
      expect(result.output).toBe(3)
      expect(ran).toEqual(["flaky/3"])
      expect(result.timeline.map((t) => [t.step, t.attempts, t.endedAt - t.startedAt])).toEqual([["flaky", 3, 0]])
      expect(events).toEqual(["StepRetrying flaky", "StepRetrying flaky", "StepSucceeded flaky", "RunFinished"])
    }))

  it.effect("takes a failure's retry verdict from the attempt: a journaled failure not to be retried ends the step", () =>
    Effect.gen(function*() {
      const journal = new Map<string, Outcome>([
        ["flaky/1", { _tag: "Failed", error: new Flaky({ attempt: 1 }), cause: Cause.fail(new Flaky({ attempt: 1 })), retryable: false, replayed: false }]
      ])
      const ran: Array<string> = []
      const pipeline = Pipeline.make("p", { output: flaky({ count: 0 }) })
      const error = yield* Effect.flip(Pipeline.run(pipeline).pipe(Effect.provide(StepExecutor.layer(journaling(journal, ran)))))
      expect(ran).toEqual([])
      expect(error._tag === "StepFailed" ? error.error : error).toEqual(new Flaky({ attempt: 1 }))
    }))

  it.effect("tells a step and an item whose output is replayed as StepReplayed, and runs neither", () =>
    Effect.gen(function*() {
      const journal = new Map<string, Outcome>()
      const ran: Array<string> = []
      let runs = 0
      const list = Step.make("list", { run: () => Effect.succeed([1, 2]) })
      const doubled = ForEach.make("doubled", {
        after: { list },
        items: ({ list }) => list,
        each: (n) => Effect.sync(() => (runs++, n * 2))
      })
      const pipeline = Pipeline.make("p", { output: doubled })
      const executor = StepExecutor.layer(journaling(journal, ran))
      yield* Pipeline.run(pipeline).pipe(Effect.provide(executor))
      expect([ran, runs]).toEqual([["list/1", "doubled[0]/1", "doubled[1]/1"], 2])
      const events: Array<string> = []
      const again = yield* Pipeline.run(pipeline, { onEvent: listen(events) }).pipe(Effect.provide(executor))
      expect([again.output, runs]).toEqual([[2, 4], 2])
      expect(events).toEqual([
        "StepReplayed list",
        "StepReplayed doubled[0]",
        "StepReplayed doubled[1]",
        "StepSucceeded doubled",
        "RunFinished"
      ])
    }))

  it.effect("ends a step whose attempt suspends with StepSuspended, and the run with RunSuspended", () =>
    Effect.gen(function*() {
      const events: Array<string> = []
      const suspending = StepExecutor.fromAttempt((attempt) =>
        attempt.name === "wait" ? Effect.succeed({ _tag: "Suspended" as const }) : StepExecutor.local.attempt!(attempt)
      )
      const first = Step.make("first", { run: () => Effect.succeed(1) })
      const wait = Step.make("wait", { after: { first }, run: () => Effect.succeed("never run") })
      const exit = yield* Effect.exit(
        Pipeline.run(Pipeline.make("p", { output: wait }), { onEvent: listen(events) }).pipe(
          Effect.provide(StepExecutor.layer(suspending))
        )
      )
      expect(Exit.isFailure(exit)).toBe(true)
      expect(events).toEqual(["StepSucceeded first", "StepSuspended wait", "RunSuspended"])
    }))
})
