import { Cost, ForEach, Loop, Pipeline, Step } from "@trellis/core"
import { Durable } from "@trellis/durable"
import { Context as C, Deferred, Effect, Either, Schema } from "effect"
import { fresh, run, crashOnce, cleanup, paidCall } from "./h.mjs"

class Item extends C.Tag("Item")() {}
const runs = {}
const state = { hang: true, entered: undefined, at: "b#2" }
const doc = Step.make("doc", { output: Schema.Array(Schema.String), run: () => Effect.succeed(["a", "b", "c"]) })
const loop = Loop.make("loop", {
  initial: () => "",
  body: (s, i) => Effect.flatMap(Item, (item) => Effect.suspend(() => {
    const k = `${item}#${i}`
    runs[k] = (runs[k] ?? 0) + 1
    if (state.hang && k === state.at) return Effect.zipRight(Deferred.succeed(state.entered, undefined), Effect.never)
    return Effect.as(paidCall(1000), s + item)
  })),
  until: (s) => s.length >= 3, maxIterations: 5, state: Schema.String
})
const fin = Step.make("fin", { after: { loop }, output: Schema.String, run: ({ loop }) => Effect.succeed(`${loop.state}/${loop.iterations}`) })
const fe = ForEach.pipeline("fe", { after: { doc }, items: ({ doc }) => doc, key: (s) => s, input: (s) => C.make(Item, s), pipeline: Pipeline.make("inner", { output: fin }), concurrency: 1 })
const d = Durable.make(Pipeline.make("FL", { output: fe, budget: Cost.nanos(1_000_000) }))
const program = Effect.gen(function*() {
  const file = fresh()
  state.entered = yield* Deferred.make()
  yield* crashOnce(d, file, "x", state.entered)
  const before = { ...runs }
  state.hang = false
  const events = []
  const r = yield* run(d, file, "x", (e) => { if (e.step?.startsWith("fe")) events.push(`${e._tag} ${e.step}${e.parent !== undefined ? " parent=" + e.parent : ""}`) })
  console.log("before crash", JSON.stringify(before)); console.log("total runs", JSON.stringify(runs))
  if (Either.isLeft(r)) { console.log("FAILED", r.left.message); return }
  console.log("output", JSON.stringify(r.right.output), "cost", r.right.usage.total.cost)
  console.log("byStep", JSON.stringify(Object.fromEntries(Object.entries(r.right.usage.byStep).map(([k, v]) => [k, v.cost]))))
  console.log("timeline", r.right.timeline.map((t) => `${t.step}<${t.parent ?? ""}>`).join(" "))
  console.log("events:\n  " + events.join("\n  "))
  const again = yield* run(d, file, "x")
  console.log("stored equal (JSON):", JSON.stringify(again.right) === JSON.stringify(r.right))
})
Effect.runPromise(program).then(() => { cleanup(); process.exit(0) }, (e) => { console.error("DIED", e); cleanup(); process.exit(1) })
