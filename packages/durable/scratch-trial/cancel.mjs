import { ForEach, Loop, Pipeline, Step, SubPipeline } from "@trellis/core"
import { Durable, Runs } from "@trellis/durable"
import { Effect, Either, Schema } from "effect"
import { fresh, storeWith, cleanup, paidCall } from "./h.mjs"

const log = []
const started = []
let finalized = 0
const m = ForEach.make("m", {
  items: () => Array.from({ length: 30 }, (_, i) => i),
  each: (i) => Effect.suspend(() => { started.push([i, Date.now()]); return Effect.as(Effect.zipRight(paidCall(1000), Effect.sleep("200 millis")), i * 2) }).pipe(Effect.ensuring(Effect.sync(() => finalized++))),
  output: Schema.Number, concurrency: 2, mode: process.argv[2] === "settle" ? "settle" : "failFast"
})
const after = Step.make("after", { after: { m }, output: Schema.Number, run: () => Effect.sync(() => { log.push("after ran"); return 1 }) })
const d = Durable.make(Pipeline.make("cx", { output: after }))
const file = fresh()
const events = []
await Effect.runPromise(Effect.gen(function*() {
  yield* Durable.start(d, { id: "c" })
  yield* Effect.sleep("1 second")
  const tCancel = Date.now()
  yield* Durable.cancel(d, { id: "c" })
  const r = yield* Effect.either(Effect.timeout(Durable.run(d, { id: "c" }), "10 seconds"))
  const tEnd = Date.now()
  const afterCancel = started.filter(([, t]) => t > tCancel).map(([i]) => i)
  console.log("mode", process.argv[2] ?? "failFast")
  console.log("result:", Either.isLeft(r) ? `${r.left._tag} reason=${r.left.reason} step=${r.left.step} detail=${r.left.detail} cost=${r.left.usage?.total.cost}` : `COMPLETED ${JSON.stringify(r.right.output)}`)
  console.log(`items started before cancel: ${started.length - afterCancel.length}, after cancel: ${JSON.stringify(afterCancel)}; ended ${tEnd - tCancel} ms after cancel; finalized ${finalized}/${started.length}`, log)
  if (Either.isLeft(r) && r.left.timeline) console.log("timeline statuses:", JSON.stringify(r.left.timeline.reduce((a, t) => (a[t.status] = (a[t.status] ?? 0) + 1, a), {})), "parts with usage", Object.keys(r.left.usage.byStep).length)
  const n = started.length
  yield* Effect.sleep("1 second")
  console.log("items started later:", started.length - n)
  const again = yield* Effect.either(Durable.run(d, { id: "c" }))
  console.log("second run same:", JSON.stringify(again) === JSON.stringify(r))
  console.log("Runs.list:", JSON.stringify((yield* Runs.list({ pipeline: "cx" })).map((x) => [x.status, x.steps.length, x.cost])))
}).pipe(Effect.provide(storeWith(file, d, (e) => { events.push(e._tag) }))))
cleanup()
