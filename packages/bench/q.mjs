import { ForEach, Pipeline } from "@trellis/core"
import { Effect } from "effect"
const list = Array.from({ length: 100 }, (_, i) => i)
const p = Pipeline.make("map", { output: ForEach.make("items", { items: () => list, each: (i) => Effect.succeed(i + 1), concurrency: 10 }) })
const ev = process.env.NOEV ? {} : { onEvent() {} }
const time = async (label, f, n) => { for (let i = 0; i < 50; i++) await f(); const t = performance.now(); for (let i = 0; i < n; i++) await f(); console.log(label, ((performance.now() - t) * 1000 / n).toFixed(0), "us/run") }
await time("trellis", () => Effect.runPromise(Pipeline.run(p, ev)), 300)
await time("forEach", () => Effect.runPromise(Effect.forEach(list, (i) => Effect.succeed(i + 1), { concurrency: 10 })), 300)
await time("trellis", () => Effect.runPromise(Pipeline.run(p, ev)), 300)
await time("forEach", () => Effect.runPromise(Effect.forEach(list, (i) => Effect.succeed(i + 1), { concurrency: 10 })), 300)
