import { ForEach, Loop, Pipeline, Step, SubPipeline } from "@trellis/core"
import { Durable } from "@trellis/durable"
import { Effect, Either, Schema } from "effect"

const doc = Step.make("doc", { output: Schema.Array(Schema.String), run: () => Effect.succeed(["a", "b"]) })
const tryMake = (label, p) => {
  try {
    const r = Durable.makeEither(p)
    console.log(label, Either.isLeft(r) ? `REFUSED ${r.left._tag} steps=${JSON.stringify(r.left.steps)}` : "ACCEPTED")
    return Either.isRight(r) ? r.right : undefined
  } catch (e) { console.log(label, "THREW", e?.message ?? e); }
}
// A: ForEach.pipeline whose inner pipeline has a loop without state
{
  const loop = Loop.make("loop", { initial: () => 0, body: (n) => Effect.succeed(n + 1), until: (n) => n > 1, maxIterations: 3 })
  const fin = Step.make("fin", { after: { loop }, output: Schema.Number, run: ({ loop }) => Effect.succeed(loop.state) })
  const inner = Pipeline.make("inner", { output: fin })
  const fe = ForEach.pipeline("fe", { after: { doc }, items: ({ doc }) => doc, pipeline: inner })
  tryMake("A ForEach.pipeline > Loop without state:", Pipeline.make("A", { output: fe }))
}
// A2: ForEach.pipeline whose inner non-output step has no output schema
{
  const x = Step.make("x", { run: () => Effect.succeed(1) })
  const fin = Step.make("fin", { after: { x }, output: Schema.Number, run: ({ x }) => Effect.succeed(x) })
  const fe = ForEach.pipeline("fe", { after: { doc }, items: ({ doc }) => doc, pipeline: Pipeline.make("inner", { output: fin }) })
  tryMake("A2 ForEach.pipeline > step without output:", Pipeline.make("A2", { output: fe }))
}
// B: ForEach.pipeline with mode settle, everything with schemas
{
  const fin = Step.make("fin", { output: Schema.Number, run: () => Effect.succeed(1) })
  const fe = ForEach.pipeline("fe", { after: { doc }, items: ({ doc }) => doc, pipeline: Pipeline.make("inner", { output: fin }), mode: "settle" })
  console.log("B fe.output is", fe.output)
  tryMake("B ForEach.pipeline settle:", Pipeline.make("B", { output: fe }))
}
// C: Durable.await inside ForEach.pipeline's pipeline
{
  const w = Durable.await("w", { schema: Schema.Number })
  const fe = ForEach.pipeline("fe", { after: { doc }, items: ({ doc }) => doc, pipeline: Pipeline.make("inner", { output: w }) })
  tryMake("C await inside ForEach.pipeline:", Pipeline.make("C", { output: fe }))
}
// D: SubPipeline containing a ForEach without output; E: sub in sub, deep loop without state
{
  const m = ForEach.make("m", { items: () => [1, 2], each: (n) => Effect.succeed(n) })
  const fin = Step.make("fin", { after: { m }, output: Schema.Number, run: () => Effect.succeed(1) })
  const s = SubPipeline.make("s", { pipeline: Pipeline.make("inner", { output: fin }) })
  tryMake("D Sub > ForEach without item:", Pipeline.make("D", { output: s }))
  const loop = Loop.make("loop", { initial: () => 0, body: (n) => Effect.succeed(n + 1), until: (n) => n > 1, maxIterations: 3 })
  const fin2 = Step.make("fin2", { after: { loop }, output: Schema.Number, run: () => Effect.succeed(1) })
  const s2 = SubPipeline.make("s2", { pipeline: Pipeline.make("inner2", { output: fin2 }) })
  const fin3 = Step.make("fin3", { after: { s2 }, output: Schema.Number, run: () => Effect.succeed(1) })
  const s3 = SubPipeline.make("s3", { pipeline: Pipeline.make("inner3", { output: fin3 }) })
  tryMake("E Sub > Sub > Loop without state:", Pipeline.make("E", { output: s3 }))
  // F: SubPipeline inside ForEach.pipeline with missing deep
  const fe = ForEach.pipeline("fe", { after: { doc }, items: ({ doc }) => doc, pipeline: Pipeline.make("outerInner", { output: s3 }) })
  tryMake("F ForEach.pipeline > Sub > Sub > Loop without state:", Pipeline.make("F", { output: fe }))
}
