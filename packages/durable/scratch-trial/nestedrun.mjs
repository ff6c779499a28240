import { ForEach, Loop, Pipeline, Step } from "@trellis/core"
import { Durable } from "@trellis/durable"
import { Effect, Either, Schema } from "effect"
import { fresh, run, cleanup } from "./h.mjs"

const doc = Step.make("doc", { output: Schema.Array(Schema.String), run: () => Effect.succeed(["a", "b"]) })
const report = (label, r) => console.log(label, Either.isLeft(r) ? `FAILED ${r.left._tag} reason=${r.left.reason} step=${r.left.step} errorTag=${r.left.errorTag} detail=${r.left.detail}` : `OK ${JSON.stringify(r.right.output)}`)
const which = process.argv[2]
const program = Effect.gen(function*() {
  if (which === "A") {
    const loop = Loop.make("loop", { initial: () => 0, body: (n) => Effect.succeed(n + 1), until: (n) => n > 1, maxIterations: 3 })
    const fin = Step.make("fin", { after: { loop }, output: Schema.Number, run: ({ loop }) => Effect.succeed(loop.state) })
    const fe = ForEach.pipeline("fe", { after: { doc }, items: ({ doc }) => doc, pipeline: Pipeline.make("inner", { output: fin }) })
    const d = Durable.make(Pipeline.make("A", { output: fe }))
    report("A run:", yield* Effect.timeout(run(d, fresh(), "a"), "15 seconds"))
  }
  if (which === "A2") {
    const x = Step.make("x", { run: () => Effect.succeed(1) })
    const fin = Step.make("fin", { after: { x }, output: Schema.Number, run: ({ x }) => Effect.succeed(x) })
    const fe = ForEach.pipeline("fe", { after: { doc }, items: ({ doc }) => doc, pipeline: Pipeline.make("inner", { output: fin }) })
    const d = Durable.make(Pipeline.make("A2", { output: fe }))
    report("A2 run:", yield* Effect.timeout(run(d, fresh(), "a"), "15 seconds"))
  }
  if (which === "C") {
    const w = Durable.await("w", { schema: Schema.Number })
    const fe = ForEach.pipeline("fe", { after: { doc }, items: ({ doc }) => doc, pipeline: Pipeline.make("inner", { output: w }) })
    const d = Durable.make(Pipeline.make("C", { output: fe }))
    const file = fresh()
    const r = yield* Effect.either(Effect.timeout(run(d, file, "c"), "5 seconds"))
    console.log("C run (5s timeout):", JSON.stringify(r).slice(0, 400))
  }
})
Effect.runPromise(program).then(() => { cleanup(); process.exit(0) }, (e) => { console.error("DIED", String(e).slice(0, 1500)); cleanup(); process.exit(1) })
