import { Cost, Ledger, Loop, Pipeline, Usage } from "@trellis/core"
import { Durable } from "@trellis/durable"
import { Deferred, Effect, Either, Schema } from "effect"
import { fresh, run, crashOnce, cleanup } from "./h.mjs"

const st = { hang: false, at: 0, inCall: false, entered: undefined }
const runs = {}
const call = (i) => Ledger.metered({
  worstCase: Cost.nanos(2000),
  run: Effect.suspend(() => st.hang && st.inCall && i === st.at ? Effect.zipRight(Deferred.succeed(st.entered, undefined), Effect.never) : Effect.void),
  usage: () => Usage.make({ requests: 1, cost: Cost.nanos(1000) })
})
const refine = Loop.make("refine", {
  initial: () => ({ n: 0 }),
  body: (s, i) => Effect.suspend(() => {
    runs[i] = (runs[i] ?? 0) + 1
    if (st.hang && !st.inCall && i === st.at) return Effect.zipRight(Deferred.succeed(st.entered, undefined), Effect.never)
    return Effect.as(call(i), { n: s.n + 1 })
  }),
  until: () => false, maxIterations: 20, whenOutOfBudget: "end", state: Schema.Struct({ n: Schema.Number })
})
const d = Durable.make(Pipeline.make("lb", { output: refine, budget: Cost.nanos(5500) }))
const desc = (r) => Either.isLeft(r) ? `FAILED ${r.left.reason} ${r.left.detail}` : `${JSON.stringify(r.right.output)} cost=${r.right.usage.total.cost} est=${r.right.usage.total.estimated} byStep=${JSON.stringify(Object.fromEntries(Object.entries(r.right.usage.byStep).map(([k, v]) => [k, v.cost + (v.estimated ? "e" : "")])))} timeline=${r.right.timeline.map((t) => t.step + ":" + t.status).join(",")}`
await Effect.runPromise(Effect.gen(function*() {
  const plain = yield* Effect.either(Pipeline.run(d.pipeline))
  console.log("plain     :", desc(plain))
  const ref = yield* run(d, fresh(), "ref")
  console.log("durable   :", desc(ref))
  for (const [at, inCall] of [[2, false], [3, false], [4, false], [5, false], [3, true], [4, true]]) {
    for (const k in runs) delete runs[k]
    const file = fresh()
    Object.assign(st, { hang: true, at, inCall, entered: yield* Deferred.make() })
    yield* crashOnce(d, file, "x", st.entered)
    st.hang = false
    const r = yield* run(d, file, "x")
    console.log(`crash at #${at}${inCall ? " (in call)" : ""}:`, desc(r), "runs", JSON.stringify(runs))
    const again = yield* run(d, file, "x")
    if (JSON.stringify(again) !== JSON.stringify(r)) console.log("  stored differs:", desc(again))
  }
}))
cleanup()
