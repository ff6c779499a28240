import { Cost, Ledger, Step, Usage } from "@trellis/core"
import { type Duration, Effect, Fiber, TestClock } from "effect"

/** A step that waits `ms` on the clock (TestClock in tests) and returns its name. */
export const sleeper = <const Name extends string, const Deps extends Step.Dependencies = {}>(
  name: Name,
  ms: number,
  after?: Deps
) => Step.make(name, { after: after ?? ({} as Deps), run: () => Effect.as(Effect.sleep(ms), name) })

/** A metered call that costs exactly `nanos` and takes `ms`. */
export const paidCall = (nanos: number, ms = 0) =>
  Ledger.metered({
    worstCase: Cost.nanos(nanos),
    run: ms > 0 ? Effect.sleep(ms) : Effect.void,
    usage: () => Usage.make({ requests: 1, inputTokens: 10, outputTokens: 5, cost: Cost.nanos(nanos) })
  })

/** Start of each step relative to the first, from a result's timeline. */
export const starts = (timeline: ReadonlyArray<{ step: string; startedAt: number }>) => {
  const t0 = Math.min(...timeline.map((t) => t.startedAt))
  return Object.fromEntries(timeline.map((t) => [t.step, t.startedAt - t0]))
}

/** Runs `effect` on a fiber of its own while the TestClock moves on by `advance`, and gives how it ended. */
export const runWithClock = <A, E>(effect: Effect.Effect<A, E>, advance: Duration.DurationInput = "1 hour") =>
  Effect.gen(function*() {
    const fiber = yield* Effect.fork(effect)
    yield* TestClock.adjust(advance)
    return yield* Fiber.join(fiber)
  })
