import { ForEach, Pipeline, Step } from "@trellis/core"
import { Durable, Runs, Store } from "@trellis/durable"
import { Deferred, Effect, Either, Layer, Schema } from "effect"
import { fresh, run, crashOnce, cleanup, paidCall, storeWith } from "./h.mjs"

// 1. keys that collide only on resume
{
  let phase = 1
  const runs = []
  const st = { hang: true, entered: undefined }
  const m = ForEach.make("m", {
    items: () => ["a", "b", "c"],
    key: (s) => phase === 2 && s === "c" ? "a" : s,
    each: (s) => Effect.suspend(() => { runs.push(s); return st.hang && s === "c" ? Effect.zipRight(Deferred.succeed(st.entered, undefined), Effect.never) : Effect.as(paidCall(1000), s.toUpperCase()) }),
    output: Schema.String
  })
  const d = Durable.make(Pipeline.make("collide", { output: m }))
  const file = fresh()
  await Effect.runPromise(Effect.gen(function*() {
    st.entered = yield* Deferred.make()
    yield* crashOnce(d, file, "x", st.entered)
    st.hang = false; phase = 2
    const r = yield* run(d, file, "x")
    console.log("collide on resume:", Either.isLeft(r) ? `RUN FAILED reason=${r.left.reason} step=${r.left.step} errorTag=${r.left.errorTag} detail=${r.left.detail} usage=${r.left.usage.total.cost}` : JSON.stringify(r.right.output))
    const r2 = yield* run(d, file, "x")
    console.log(" second run same?", Either.isLeft(r2) && r2.left.detail === r.left?.detail, "runs", runs.join(","))
  }))
}
// 2. unicode keys (incl. emoji, RTL, combining, zero-width, NBSP), also a key with quotes/backslash and spaces
{
  const items = ["café", "cafe\u0301", "日本語", "🙂", "a\u200bb", "ﬁ", "x y", "q\"u'o\\te", "%2F", "..", "Ω", "\u00a0"]
  const st = { hang: true, entered: undefined }
  const runs = {}
  const m = ForEach.make("m", {
    items: () => items, key: (s) => s,
    each: (s) => Effect.suspend(() => { runs[s] = (runs[s] ?? 0) + 1; return st.hang && s === "%2F" ? Effect.zipRight(Deferred.succeed(st.entered, undefined), Effect.never) : Effect.as(paidCall(1000), s) }),
    output: Schema.String
  })
  const d = Durable.make(Pipeline.make("uni", { output: m }))
  const file = fresh()
  await Effect.runPromise(Effect.gen(function*() {
    st.entered = yield* Deferred.make()
    yield* crashOnce(d, file, "x", st.entered)
    st.hang = false
    const r = yield* run(d, file, "x")
    console.log("unicode:", Either.isLeft(r) ? `RUN FAILED ${r.left.detail}` : `output ok=${JSON.stringify(r.right.output) === JSON.stringify(items)} cost=${r.right.usage.total.cost} lines=${Object.keys(r.right.usage.byStep).length}`)
    console.log(" runs per item:", JSON.stringify(runs))
    const r2 = yield* run(d, file, "x")
    console.log(" stored equal:", JSON.stringify(r2) === JSON.stringify(r))
    const listed = yield* Runs.list({ pipeline: "uni" }).pipe(Effect.provide(Runs.layer.pipe(Layer.provide(Store.layerSqlite({ filename: file })))), Effect.either)
    console.log(" Runs.list steps:", JSON.stringify(listed).slice(0, 600))
  }))
}
cleanup()
