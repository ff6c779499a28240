import { describe, expect, it } from "@effect/vitest"
import { Cost, Pipeline, Step } from "@trellis/core"
import { Durable } from "@trellis/durable"
import { Deferred, Effect, Either, Fiber, Option, Schema } from "effect"
import * as path from "node:path"
import { paidCall, storeWith, tempDir } from "./utils.js"

const dir = tempDir()
let files = 0
const freshFile = () => path.join(dir, `runs-${++files}.db`)

/** A diamond whose steps count their runs in `runs` and each pay 1,000 nano-dollars. */
const diamond = (name: string, runs: Record<string, number>, hooks: { readonly right?: Effect.Effect<void> } = {}) => {
  const counted = <A>(step: string, value: A) =>
    Effect.suspend(() => {
      runs[step] = (runs[step] ?? 0) + 1
      return Effect.as(paidCall(1_000), value)
    })
  const top = Step.make("top", { output: Schema.String, run: () => counted("top", "doc") })
  const left = Step.make("left", { after: { top }, output: Schema.Number, run: ({ top }) => counted("left", top.length) })
  const right = Step.make("right", {
    after: { top },
    output: Schema.Struct({ words: Schema.Array(Schema.String) }),
    run: ({ top }) => Effect.zipRight(hooks.right ?? Effect.void, counted("right", { words: [top, top] }))
  })
  const bottom = Step.make("bottom", {
    after: { left, right },
    output: Schema.String,
    run: ({ left, right }) => counted("bottom", `${left}:${right.words.join("+")}`)
  })
  return Pipeline.make(name, { output: bottom, budget: Cost.nanos(100_000) })
}

describe("Durable.make", () => {
  it("refuses a pipeline with a step that declares no output schema, naming it", () => {
    const a = Step.make("a", { output: Schema.Number, run: () => Effect.succeed(1) })
    const b = Step.make("b", { after: { a }, run: ({ a }) => Effect.succeed(a + 1) })
    const c = Step.make("c", { after: { b }, run: ({ b }) => Effect.succeed(b + 1) })
    const error = Either.getLeft(Durable.makeEither(Pipeline.make("p", { output: c })))
    expect(Option.map(error, (e) => [e._tag, e.steps])).toEqual(Option.some(["MissingSchema", ["b", "c"]]))
    expect(() => Durable.make(Pipeline.make("q", { output: b }))).toThrow(
      `Pipeline "q" cannot run durably: step "b" declares no output schema (Step.make's output option), so its output cannot be journaled`
    )
  })
})

describe("Durable.run", () => {
  it.live("runs a pipeline as a workflow: the same result as a plain run, usage included", () =>
    Effect.gen(function*() {
      const runs: Record<string, number> = {}
      const pipeline = diamond("diamond", runs)
      const plain = yield* Pipeline.run(pipeline)
      const durable = Durable.make(pipeline)
      const result = yield* Durable.run(durable, { id: "one" }).pipe(Effect.provide(storeWith(freshFile(), durable)))
      expect(result.output).toBe(plain.output)
      expect(result.outputs).toEqual(plain.outputs)
      expect(result.usage).toEqual(plain.usage)
      expect(result.usage.total.cost).toBe(4_000)
      expect(runs).toEqual({ top: 2, left: 2, right: 2, bottom: 2 })
    }))

  it.live("returns a finished run's stored result for its id and runs nothing, in a later process too", () =>
    Effect.gen(function*() {
      const runs: Record<string, number> = {}
      const durable = Durable.make(diamond("stored", runs))
      const file = freshFile()
      const first = yield* Durable.run(durable, { id: "done" }).pipe(Effect.provide(storeWith(file, durable)))
      expect(runs).toEqual({ top: 1, left: 1, right: 1, bottom: 1 })
      const again = yield* Durable.run(durable, { id: "done" }).pipe(Effect.provide(storeWith(file, durable)))
      expect(again).toEqual(first)
      expect(runs).toEqual({ top: 1, left: 1, right: 1, bottom: 1 })
      // Another id is another run.
      yield* Durable.run(durable, { id: "other" }).pipe(Effect.provide(storeWith(file, durable)))
      expect(runs).toEqual({ top: 2, left: 2, right: 2, bottom: 2 })
    }))

  it.live("resumes a run whose runtime was torn down mid-way: finished steps are replayed, not run, and paid once", () =>
    Effect.gen(function*() {
      const runs: Record<string, number> = {}
      const file = freshFile()
      const entered = yield* Deferred.make<void>()
      let hang = true
      const durable = Durable.make(diamond("resumed", runs, {
        right: Effect.suspend(() => hang ? Effect.zipRight(Deferred.succeed(entered, undefined), Effect.never) : Effect.void)
      }))
      const first = yield* Effect.fork(Durable.run(durable, { id: "r" }).pipe(Effect.provide(storeWith(file, durable))))
      yield* Deferred.await(entered)
      // `right` is in flight: stopping the fiber tears the engine and its database connection down.
      yield* Fiber.interrupt(first)
      expect(runs).toEqual({ top: 1, left: 1 })
      hang = false
      const result = yield* Durable.run(durable, { id: "r" }).pipe(Effect.provide(storeWith(file, durable)))
      expect(result.output).toBe("3:doc+doc")
      // `top` and `left` were journaled: replayed. `right` was in flight: it runs again (at least once).
      expect(runs).toEqual({ top: 1, left: 1, right: 1, bottom: 1 })
      expect(result.usage.total.cost).toBe(4_000)
      expect(result.usage.byStep.top?.cost).toBe(1_000)
    }))
})
