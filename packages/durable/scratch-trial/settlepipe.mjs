import { ForEach, Pipeline, Step } from "@trellis/core"
import { Durable } from "@trellis/durable"
import { Effect, Schema } from "effect"
const doc = Step.make("doc", { output: Schema.Array(Schema.String), run: () => Effect.succeed(["a", "b"]) })
const fin = Step.make("fin", { output: Schema.Number, run: () => Effect.succeed(1) })
const fe = ForEach.pipeline("fe", { after: { doc }, items: ({ doc }) => doc, pipeline: Pipeline.make("inner", { output: fin }), mode: "settle" })
const p = Pipeline.make("B", { output: fe })
console.log("plain run:", JSON.stringify((await Effect.runPromise(Pipeline.run(p))).output))
try { Durable.makeEither(p); console.log("makeEither returned") } catch (e) { console.log("makeEither threw:", e.constructor.name, e.message); console.log(e.stack.split("\n").slice(1, 6).join("\n")) }
// settle ForEach.pipeline as a non-output step
const last = Step.make("last", { after: { fe }, output: Schema.Number, run: () => Effect.succeed(1) })
try { Durable.make(Pipeline.make("B2", { output: last })); console.log("B2 make returned") } catch (e) { console.log("B2 make threw:", e.constructor.name, e.message) }
