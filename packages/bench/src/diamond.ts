/**
 * `diamond5_noop`: the seed's document pipeline (extract -> classify -> fetch_market || fetch_user -> combine)
 * with steps that do no work, so that only orchestration is timed.
 */
import { Pipeline, Step } from "@trellis/core"
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"
import { compare, effectBatch, promiseBatch, type Settings, withEvents } from "./harness.js"
import { combine, kind, market, text, user, words } from "./work.js"


const extractStep = Step.make("extract", { run: () => Effect.succeed(words(text)) })
const classifyStep = Step.make("classify", {
  after: { extract: extractStep },
  run: ({ extract }) => Effect.succeed(kind(extract))
})
const marketStep = Step.make("fetch_market", {
  after: { classify: classifyStep },
  run: ({ classify }) => Effect.succeed(market(classify))
})
const userStep = Step.make("fetch_user", {
  after: { classify: classifyStep },
  run: ({ classify }) => Effect.succeed(user(classify))
})
const combineStep = Step.make("combine", {
  after: { market: marketStep, user: userStep },
  run: ({ market, user }) => Effect.succeed(combine(market, user))
})

/** The Trellis pipeline, with its features on as users get them (ledger, events, spans). */
export const pipeline = Pipeline.make("document", { output: combineStep })

const trellis = () => Pipeline.run(pipeline, withEvents)

const promise = async () => {
  const w = await (async () => words(text))()
  const k = await (async () => kind(w))()
  const [m, u] = await Promise.all([(async () => market(k))(), (async () => user(k))()])
  return (async () => combine(m, u))()
}

const effectSequential = () =>
  Effect.gen(function*() {
    const w = yield* Effect.succeed(words(text))
    const k = yield* Effect.succeed(kind(w))
    const m = yield* Effect.succeed(market(k))
    const u = yield* Effect.succeed(user(k))
    return yield* Effect.succeed(combine(m, u))
  })

const effectAll = () =>
  Effect.gen(function*() {
    const w = yield* Effect.succeed(words(text))
    const k = yield* Effect.succeed(kind(w))
    const [m, u] = yield* Effect.all([Effect.succeed(market(k)), Effect.succeed(user(k))], {
      concurrency: "unbounded"
    })
    return yield* Effect.succeed(combine(m, u))
  })

/** The least an Effect program can do and keep the two fetches concurrent: fork one, run the other, join. */
const effectForkJoin = () =>
  Effect.gen(function*() {
    const w = yield* Effect.succeed(words(text))
    const k = yield* Effect.succeed(kind(w))
    const fiber = yield* Effect.fork(Effect.succeed(market(k)))
    const u = yield* Effect.succeed(user(k))
    const m = yield* Fiber.join(fiber)
    return yield* Effect.succeed(combine(m, u))
  })

export const diamond5Noop = async (s: Settings) => ({
  unit: "us/run" as const,
  ...(await compare(s, {
    trellis: effectBatch(trellis),
    effectForkJoin: effectBatch(effectForkJoin),
    effectAll: effectBatch(effectAll),
    effectSequential: effectBatch(effectSequential),
    promise: promiseBatch(promise)
  }))
})
