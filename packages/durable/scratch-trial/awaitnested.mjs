import { ForEach, Pipeline, Step } from "@trellis/core"
import { Durable } from "@trellis/durable"
import { Effect, Either, Schema } from "effect"
import { fresh, storeWith, cleanup } from "./h.mjs"

const doc = Step.make("doc", { output: Schema.Array(Schema.String), run: () => Effect.succeed(["a", "b"]) })
const w = Durable.await("w", { schema: Schema.Number })
const fe = ForEach.pipeline("fe", { after: { doc }, items: ({ doc }) => doc, pipeline: Pipeline.make("inner", { output: w }) })
const d = Durable.make(Pipeline.make("C", { output: fe }))
const file = fresh()
const events = []
const program = Effect.gen(function*() {
  yield* Durable.start(d, { id: "c" })
  yield* Effect.sleep("2 seconds")
  console.log("status:", JSON.stringify(yield* Durable.status(d, { id: "c" })))
  for (const step of ["w", "fe[0]/w"]) {
    const s = yield* Effect.either(Durable.signal(d, { id: "c", step, value: 1 }))
    console.log("signal", step, "->", Either.isLeft(s) ? `${s.left._tag}: ${s.left.message}` : "ok")
  }
  yield* Effect.sleep("1 second")
  console.log("status after signal:", JSON.stringify(yield* Durable.status(d, { id: "c" })).slice(0, 300))
  const c = yield* Effect.either(Durable.cancel(d, { id: "c" }))
  console.log("cancel ->", Either.isLeft(c) ? c.left._tag : "ok")
  const r = yield* Effect.either(Effect.timeout(Durable.run(d, { id: "c" }), "5 seconds"))
  console.log("run after cancel:", Either.isLeft(r) ? `${r.left._tag} ${r.left.reason ?? ""} ${r.left.detail ?? r.left.message}` : "OK")
  console.log("events", events.join(" | "))
}).pipe(Effect.provide(storeWith(file, d, (e) => { events.push(`${e._tag} ${e.step ?? ""}`) })))
Effect.runPromise(program).then(() => { cleanup(); process.exit(0) }, (e) => { console.error("DIED", String(e).slice(0, 1500)); cleanup(); process.exit(1) })
