import { Cost, ForEach, Pipeline, Step } from "@trellis/core"
import { Durable } from "@trellis/durable"
import { Deferred, Effect, Either, Schema } from "effect"
import { fresh, run, crashOnce, cleanup, paidCall } from "./h.mjs"
import * as fs from "node:fs"

const N = Number(process.env.N ?? 1000)
const conc = process.argv[2] === "unbounded" ? "unbounded" : Number(process.argv[2] ?? 1)
const st = { hang: true, entered: undefined }
const runs = new Map()
const m = ForEach.make("m", {
  items: () => Array.from({ length: N }, (_, i) => `item ${i}`),
  each: (s, i) => Effect.suspend(() => { runs.set(i, (runs.get(i) ?? 0) + 1); return st.hang && i === Math.floor(N * 0.9) ? Effect.zipRight(Deferred.succeed(st.entered, undefined), Effect.never) : Effect.as(paidCall(1000), s.toUpperCase()) }),
  output: Schema.String, concurrency: conc
})
const d = Durable.make(Pipeline.make("big", { output: m, budget: Cost.nanos(10_000_000) }))
const t = () => performance.now()
await Effect.runPromise(Effect.gen(function*() {
  st.hang = false
  let t0 = t()
  const plain = yield* Pipeline.run(d.pipeline)
  console.log(`plain run: ${(t() - t0).toFixed(0)} ms`)
  const f1 = fresh()
  t0 = t()
  const r = yield* run(d, f1, "x")
  console.log(`durable fresh run (concurrency ${conc}): ${(t() - t0).toFixed(0)} ms`, Either.isRight(r) ? `ok cost=${r.right.usage.total.cost} timeline=${r.right.timeline.length}` : r.left.message, "file MB", (fs.statSync(f1).size / 1e6).toFixed(1))
  t0 = t()
  const r2 = yield* run(d, f1, "x")
  console.log(`stored result read: ${(t() - t0).toFixed(0)} ms equal=${JSON.stringify(r2) === JSON.stringify(r)}`)
  // crash at item 900 then resume
  runs.clear()
  st.hang = true; st.entered = yield* Deferred.make()
  const f2 = fresh()
  t0 = t()
  yield* crashOnce(d, f2, "y", st.entered)
  console.log(`crashed run up to item 900: ${(t() - t0).toFixed(0)} ms`)
  st.hang = false
  t0 = t()
  const r3 = yield* run(d, f2, "y")
  const twice = [...runs.entries()].filter(([, n]) => n > 1).map(([i]) => i)
  console.log(`resume: ${(t() - t0).toFixed(0)} ms`, Either.isRight(r3) ? `ok cost=${r3.right.usage.total.cost} ran-twice=${JSON.stringify(twice)}` : r3.left.message)
}))
cleanup()
