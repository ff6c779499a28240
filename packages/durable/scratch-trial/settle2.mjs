import { ForEach, Pipeline, Step } from "@trellis/core"
import { Durable } from "@trellis/durable"
import { Data, Deferred, Effect, Either, Schema } from "effect"
import { fresh, run, crashOnce, cleanup, paidCall } from "./h.mjs"

class Boom extends Data.TaggedError("Boom") {}
class Declared extends Schema.TaggedError()("Declared", { why: Schema.String }) {}
const state = { hang: true, entered: undefined }
const runs = {}
const mk = (name, failWith, error) => {
  const doc = Step.make("doc", { output: Schema.Array(Schema.String), run: () => Effect.succeed(["a", "b", "c"]) })
  const m = ForEach.make("m", {
    after: { doc }, items: ({ doc }) => doc,
    each: (s) => Effect.suspend(() => {
      runs[name + s] = (runs[name + s] ?? 0) + 1
      if (s === "b") return Effect.zipRight(paidCall(1000), Effect.fail(failWith()))
      if (s === "c" && state.hang) return Effect.zipRight(Deferred.succeed(state.entered, undefined), Effect.never)
      return Effect.as(paidCall(1000), s.toUpperCase())
    }),
    output: Schema.String, mode: "settle", ...(error ? { error } : {})
  })
  return Durable.make(Pipeline.make(name, { output: m }))
}
const cases = [
  ["undeclared", () => new Boom({ message: "boom msg" })],
  ["declared", () => new Declared({ why: "because" }), Declared],
  ["string", () => "plain string"],
]
const program = Effect.gen(function*() {
  for (const [name, f, err] of cases) {
    const d = mk(name, f, err)
    const file = fresh()
    state.hang = true; state.entered = yield* Deferred.make()
    yield* crashOnce(d, file, "x", state.entered)
    state.hang = false
    const r1 = yield* run(d, file, "x")
    const r2 = yield* run(d, file, "x")
    console.log("==", name, "runs", JSON.stringify(runs))
    const l = (r) => Either.isLeft(r) ? `RUN FAILED ${r.left.message}` : (() => { const x = r.right.output[1]; return `${x._tag} ${x.left?.constructor?.name} ${JSON.stringify(x.left)} msg=${x.left?.message}` })()
    console.log(" resumed:", l(r1)); console.log(" stored :", l(r2))
    if (Either.isRight(r1)) console.log(" cost", r1.right.usage.total.cost, JSON.stringify(Object.fromEntries(Object.entries(r1.right.usage.byStep).map(([k, v]) => [k, v.cost]))), r1.right.timeline.map((t) => `${t.step}:${t.status}:${t.parent ?? ""}`).join(","))
  }
})
Effect.runPromise(program).then(() => { cleanup(); process.exit(0) }, (e) => { console.error("DIED", e); cleanup(); process.exit(1) })
