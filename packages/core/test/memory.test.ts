import { describe, expect, it } from "@effect/vitest"
import { Cost, Ledger, Pipeline, Step, Usage } from "@trellis/core"
import { Context, Data, Effect, Exit, Fiber } from "effect"
import { setFlagsFromString } from "node:v8"
import { runInNewContext } from "node:vm"

setFlagsFromString("--expose-gc")
const gc = runInNewContext("gc") as () => void

/** A service large enough to matter, which the steps read. */
class Big extends Context.Tag("Big")<Big, { readonly bytes: Uint8Array }>() {}

/**
 * Whether the object behind `ref` is collected once the run's last tasks are over and full collections ran. Effect's
 * scheduler may still hold a finished fiber for a task or two after the run's promise resolved, so this looks up to
 * ten times, each after a turn of the event loop and a full collection: an object still reachable from what the
 * test keeps stays uncollected however often it looks.
 */
const collected = async (ref: WeakRef<object>): Promise<boolean> => {
  for (let look = 0; look < 10; look++) {
    // A target read in this job is kept until the job ends.
    await new Promise((resolve) => setTimeout(resolve, 0))
    gc()
    await new Promise((resolve) => setTimeout(resolve, 0))
    if (ref.deref() === undefined) return true
  }
  return false
}

const reads = Step.make("reads", { run: () => Effect.map(Big, (big) => big.bytes.length) })
const stops = Step.make("stops", { after: { reads }, run: () => Pipeline.stop("enough") })
const fails = Step.make("fails", { after: { reads }, run: () => Effect.fail("broken" as const) })
const waits = Step.make("waits", { after: { reads }, run: () => Effect.never })
const sibling = Step.make("sibling", { after: { reads }, run: () => Effect.map(Big, (big) => big.bytes[0]) })
const join = Step.make("join", { after: { waits, sibling }, run: () => Effect.void })

/**
 * Runs `run` with a fresh large service, keeps what it returns, drops the service, and says whether the service was
 * collected while the pipeline and what the run returned are still held.
 */
const serviceCollected = async <A, E>(run: Effect.Effect<A, E, Big>): Promise<{ kept: A; collected: boolean }> => {
  let big: { bytes: Uint8Array } | undefined = { bytes: new Uint8Array(8 * 1024 * 1024) }
  const ref = new WeakRef(big)
  const kept = await Effect.runPromise(Effect.provideService(run, Big, big))
  big = undefined
  return { kept, collected: await collected(ref) }
}

describe("Memory: nothing of a run stays reachable from its result or its pipeline", () => {
  it("a completed run", async () => {
    const pipeline = Pipeline.make("completed", { output: reads })
    const { collected, kept } = await serviceCollected(Pipeline.run(pipeline))
    expect(kept._tag).toBe("Completed")
    expect(collected).toBe(true)
  })

  it("a stopped run", async () => {
    const pipeline = Pipeline.make("stopped", { output: stops })
    const { collected, kept } = await serviceCollected(Pipeline.run(pipeline))
    expect(kept._tag).toBe("Stopped")
    expect(collected).toBe(true)
  })

  it("a failed run, whose error holds the partial result", async () => {
    const pipeline = Pipeline.make("failed", { output: fails })
    const { collected, kept } = await serviceCollected(Effect.flip(Pipeline.run(pipeline)))
    expect(kept._tag).toBe("StepFailed")
    expect(kept.partial.outputs).toEqual({ reads: 8 * 1024 * 1024 })
    expect(collected).toBe(true)
  })

  it("a run whose step failed with an error object, made where the service is in reach", async () => {
    class Broken extends Data.TaggedError("Broken")<{ readonly size: number }> {}
    const failsWithError = Step.make("failsWithError", {
      after: { reads },
      run: () => Effect.flatMap(Big, (big) => Effect.fail(new Broken({ size: big.bytes.length })))
    })
    const pipeline = Pipeline.make("failedWithError", { output: failsWithError })
    const { collected, kept } = await serviceCollected(Effect.flip(Pipeline.run(pipeline)))
    expect(kept._tag).toBe("StepFailed")
    expect(collected).toBe(true)
  })

  it("a run whose step failed with an error wrapping another, made where the service is in reach", async () => {
    class Wrapped extends Data.TaggedError("Wrapped")<{ readonly cause: unknown }> {}
    const failsWrapped = Step.make("failsWrapped", {
      after: { reads },
      run: () =>
        Effect.flatMap(Big, (big) =>
          Effect.try({
            try: () => {
              throw new Error(`inner at ${big.bytes.length}`)
            },
            catch: (cause) => new Wrapped({ cause })
          }))
    })
    const pipeline = Pipeline.make("failedWrapped", { output: failsWrapped })
    const { collected, kept } = await serviceCollected(Effect.flip(Pipeline.run(pipeline)))
    expect(kept._tag).toBe("StepFailed")
    expect(collected).toBe(true)
  })

  it("a run whose step died", async () => {
    const dies = Step.make("dies", {
      after: { reads },
      run: () =>
        Effect.flatMap(Big, (big) =>
          Effect.sync(() => {
            throw new Error(`broken at ${big.bytes.length}`)
          }))
    })
    const pipeline = Pipeline.make("died", { output: dies })
    const { collected, kept } = await serviceCollected(Effect.flip(Pipeline.run(pipeline)))
    expect(kept._tag).toBe("StepFailed")
    expect(collected).toBe(true)
  })

  it("a run that passed its timeout", async () => {
    const pipeline = Pipeline.make("late", { output: join, timeout: "5 millis" })
    const { collected, kept } = await serviceCollected(Effect.flip(Pipeline.run(pipeline)))
    expect(kept._tag).toBe("PipelineTimeout")
    expect(collected).toBe(true)
  })

  it("a run whose step failed, with tracing on", async () => {
    const pipeline = Pipeline.make("failedTraced", { output: fails })
    const { collected, kept } = await serviceCollected(Effect.flip(Pipeline.run(pipeline)).pipe(Effect.withSpan("caller")))
    expect(kept._tag).toBe("StepFailed")
    expect(collected).toBe(true)
  })

  it("a run refused by its budget, and one whose call cost past its ceiling", async () => {
    const call = (cost: number) =>
      Effect.flatMap(Big, (big) =>
        Ledger.metered({
          worstCase: Cost.nanos(50),
          run: Effect.succeed(big.bytes.length),
          usage: () => Usage.make({ requests: 1, cost: Cost.nanos(cost) })
        }))
    const spends = Step.make("spends", { after: { reads }, run: () => Effect.zipRight(call(50), call(50)) })
    const refused = await serviceCollected(Effect.flip(Pipeline.run(Pipeline.make("refused", { output: spends, budget: Cost.nanos(60) }))))
    expect(refused.kept._tag).toBe("BudgetExceeded")
    expect(refused.collected).toBe(true)
    const lies = Step.make("lies", { after: { reads }, run: () => call(500) })
    const lied = await serviceCollected(Effect.flip(Pipeline.run(Pipeline.make("lied", { output: lies, budget: Cost.nanos(1000) }))))
    expect(lied.kept._tag).toBe("BudgetOverrun")
    expect(lied.collected).toBe(true)
  })

  it("an interrupted run, with a step fiber of its own", async () => {
    const pipeline = Pipeline.make("interrupted", { output: join })
    const { collected, kept } = await serviceCollected(
      Effect.gen(function*() {
        const fiber = yield* Effect.fork(Pipeline.run(pipeline))
        yield* Effect.sleep("10 millis")
        return yield* Fiber.interrupt(fiber)
      })
    )
    expect(Exit.isInterrupted(kept)).toBe(true)
    expect(collected).toBe(true)
  })

  it("the check itself sees a service that is still held", async () => {
    const pipeline = Pipeline.make("held", { output: reads })
    let leak: unknown
    const { collected } = await serviceCollected(
      Effect.tap(Pipeline.run(pipeline), () => Effect.map(Big, (big) => void (leak = big)))
    )
    expect(collected).toBe(false)
    expect(leak).toBeDefined()
  })
})
