/**
 * `fan100_noop` (1 -> 100 parallel -> 1, steps that do no work) and `fan100_sleep20` (the same, each parallel
 * step waiting 20 ms on a real timer).
 */
import { Pipeline, Step } from "@trellis/core"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import { compare, compareWall, effectBatch, promiseBatch, type Settings, withEvents } from "./harness.js"

const width = 100
const indices = Array.from({ length: width }, (_, i) => i)
const sum = (xs: ReadonlyArray<number>) => xs.reduce((a, b) => a + b, 0)

/** The Trellis fan: a source, `width` steps after it, a sink after all of them. */
const fanPipeline = (leaf: (i: number, input: number) => Effect.Effect<number>) => {
  const source = Step.make("source", { run: () => Effect.succeed(1) })
  const leaves = indices.map((i) =>
    Step.make(`leaf_${i}`, { after: { source }, run: ({ source }) => leaf(i, source) })
  )
  const sink = Step.make("sink", {
    after: Object.fromEntries(leaves.map((step) => [step.name, step])),
    run: (inputs) => Effect.succeed(sum(Object.values(inputs)))
  })
  return Pipeline.make("fan", { output: sink })
}

/** The least an Effect program can do: fork every parallel step but one, run that one inline, join the rest. */
const forkJoin = (leaf: (i: number, input: number) => Effect.Effect<number>) => () =>
  Effect.gen(function*() {
    const input = yield* Effect.succeed(1)
    const fibers: Array<Fiber.RuntimeFiber<number>> = []
    for (let i = 1; i < width; i++) fibers.push(yield* Effect.fork(leaf(i, input)))
    const outputs = [yield* leaf(0, input)]
    for (const fiber of fibers) outputs.push(yield* Fiber.join(fiber))
    return yield* Effect.succeed(sum(outputs))
  })

const all = (leaf: (i: number, input: number) => Effect.Effect<number>) => () =>
  Effect.gen(function*() {
    const input = yield* Effect.succeed(1)
    const outputs = yield* Effect.all(indices.map((i) => leaf(i, input)), { concurrency: "unbounded" })
    return yield* Effect.succeed(sum(outputs))
  })

const noop = (i: number, input: number) => Effect.succeed(i + input)
const noopPipeline = fanPipeline(noop)

const promiseNoop = async () => {
  const input = await (async () => 1)()
  const outputs = await Promise.all(indices.map(async (i) => i + input))
  return (async () => sum(outputs))()
}

export const fan100Noop = async (s: Settings) => ({
  unit: "us/run" as const,
  ...(await compare(s, {
    trellis: effectBatch(() => Pipeline.run(noopPipeline, withEvents)),
    effectForkJoin: effectBatch(forkJoin(noop)),
    effectAll: effectBatch(all(noop)),
    promise: promiseBatch(promiseNoop)
  }))
})

const waitMs = 20
const sleeping = (i: number, input: number) => Effect.as(Effect.sleep(waitMs), i + input)
const sleepingPipeline = fanPipeline(sleeping)

const promiseSleeping = async () => {
  const input = await (async () => 1)()
  const outputs = await Promise.all(
    indices.map((i) => new Promise<number>((resolve) => setTimeout(() => resolve(i + input), waitMs)))
  )
  return (async () => sum(outputs))()
}

export const fan100Sleep20 = async (s: Settings) => ({
  unit: "ms/run" as const,
  ...(await compareWall(s, {
    trellis: () => Effect.runPromise(Pipeline.run(sleepingPipeline, withEvents)),
    promise: promiseSleeping
  }))
})
