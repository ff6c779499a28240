import { ForEach, Pipeline } from "@trellis/core"
import { Effect } from "effect"
const list = Array.from({ length: 100 }, (_, i) => i)
const p = Pipeline.make("map", { output: ForEach.make("items", { items: () => list, each: (i) => Effect.succeed(i + 1), concurrency: 10 }) })
const ev = { onEvent() {} }
for (let i = 0; i < 1500; i++) await Effect.runPromise(Pipeline.run(p, ev))
