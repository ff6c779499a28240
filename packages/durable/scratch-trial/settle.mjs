import { ForEach, Pipeline, Step } from "@trellis/core"
import { Durable } from "@trellis/durable"
import { Data, Effect, Either, Schema } from "effect"
import { fresh, run, cleanup } from "./h.mjs"

class Boom extends Data.TaggedError("Boom") {}
class Declared extends Schema.TaggedError()("Declared", { why: Schema.String }) {}

const mk = (name, failWith, error) => {
  const doc = Step.make("doc", { output: Schema.Array(Schema.String), run: () => Effect.succeed(["a", "b", "c"]) })
  const m = ForEach.make("m", {
    after: { doc }, items: ({ doc }) => doc,
    each: (s) => s === "b" ? Effect.fail(failWith()) : Effect.succeed(s.toUpperCase()),
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
    const plain = yield* Effect.either(Pipeline.run(d.pipeline))
    const file = fresh()
    const r1 = yield* run(d, file, "x")
    const r2 = yield* run(d, file, "x")
    console.log("==", name)
    const desc = (r) => Either.isLeft(r) ? `LEFT ${r.left._tag}: ${r.left.message}` : JSON.stringify(r.right.output.map((e) => Either.isLeft(e) ? { left: e.left, ctor: e.left?.constructor?.name, tag: e.left?._tag } : e))
    console.log(" plain :", desc(plain))
    console.log(" first :", desc(r1))
    console.log(" second:", desc(r2))
    if (Either.isRight(r1) && Either.isRight(r2)) {
      const l1 = r1.right.output[1].left, l2 = r2.right.output[1].left
      console.log(" left1 instanceof", l1?.constructor?.name, "left2", l2?.constructor?.name, "equal?", JSON.stringify(l1) === JSON.stringify(l2), "timeline", r1.right.timeline.map((t) => t.step + ":" + t.status).join(","), "byStep", Object.keys(r1.right.usage.byStep).join(","))
      console.log(" l1 message:", l1?.message, "| l2 message:", l2?.message)
    }
  }
})
Effect.runPromise(program).then(() => { cleanup(); process.exit(0) }, (e) => { console.error("DIED", e); cleanup(); process.exit(1) })
