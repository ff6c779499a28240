import { ForEach, Pipeline, Step } from "@trellis/core"
import { Durable } from "@trellis/durable"
import { Deferred, Effect, Either, Schema } from "effect"
import { fresh, run, crashOnce, cleanup, paidCall } from "./h.mjs"

const scenario = async (label, first, second, key, hangItem) => {
  let list = first
  const runs = []
  const st = { hang: true, entered: undefined }
  const m = ForEach.make("m", {
    items: () => list, ...(key ? { key } : {}),
    each: (s, i) => Effect.suspend(() => {
      runs.push(`${s}@${i}`)
      if (st.hang && s === hangItem) return Effect.zipRight(Deferred.succeed(st.entered, undefined), Effect.never)
      return Effect.as(paidCall(1000), s.toUpperCase())
    }),
    output: Schema.String, concurrency: 1
  })
  const d = Durable.make(Pipeline.make("p" + label.replace(/\W/g, ""), { output: m }))
  const file = fresh()
  await Effect.runPromise(Effect.gen(function*() {
    st.entered = yield* Deferred.make()
    yield* crashOnce(d, file, "x", st.entered)
    const ranBefore = runs.length
    st.hang = false; list = second
    const r = yield* run(d, file, "x")
    console.log(`== ${label}: first ${JSON.stringify(first)} second ${JSON.stringify(second)}`)
    console.log("   ran before crash:", runs.slice(0, ranBefore).join(","), "| ran on resume:", runs.slice(ranBefore).join(","))
    if (Either.isLeft(r)) console.log("   RUN FAILED:", r.left.reason, r.left.detail)
    else console.log("   output:", JSON.stringify(r.right.output), "cost", r.right.usage.total.cost, "byStep", JSON.stringify(Object.keys(r.right.usage.byStep)))
  }))
}
await scenario("keys, reordered", ["a", "b", "c", "d"], ["d", "c", "b", "a"], (s) => s, "c")
await scenario("no keys, reordered", ["a", "b", "c", "d"], ["d", "c", "b", "a"], undefined, "c")
await scenario("no keys, grew", ["a", "b", "c", "d"], ["a", "b", "c", "d", "e"], undefined, "c")
await scenario("no keys, shrank", ["a", "b", "c", "d"], ["a", "c", "d"], undefined, "c")
await scenario("keys, item replaced", ["a", "b", "c", "d"], ["a", "x", "c", "d"], (s) => s, "c")
await scenario("keys collide after resume", ["a", "b", "c", "d"], ["a", "b", "c", "d"], ((n) => (s) => { return s }), "c")
cleanup()
