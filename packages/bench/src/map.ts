/**
 * `map100_noop`: a step over a list of 100 items that do no work (`ForEach`, 10 at a time), against the hand-written
 * `Effect.forEach` with the same concurrency; and `map10000_noop`, the same over 10,000 items, to see that an item
 * costs the same however long the list is. Each item is a step of the run: its events, span, usage line and
 * timeline entry are what the time pays for.
 */
import { ForEach, Pipeline } from "@trellis/core"
import * as Effect from "effect/Effect"
import { compare, effectBatch, type Settings, withEvents } from "./harness.js"

const concurrency = 10
const listOf = (length: number) => Array.from({ length }, (_, i) => i)
const item = (i: number) => Effect.succeed(i + 1)

const mapPipeline = (list: ReadonlyArray<number>) =>
  Pipeline.make("map", {
    output: ForEach.make("items", { items: () => list, each: item, concurrency, maxItems: list.length })
  })

/** Microseconds per run of the 100-item map and of its baseline, and per item of both lengths. */
export const maps = async (s: Settings) => {
  const short = listOf(100)
  const long = listOf(10_000)
  const shortMap = mapPipeline(short)
  const longMap = mapPipeline(long)
  const perRun = await compare(s, {
    trellis: effectBatch(() => Pipeline.run(shortMap, withEvents)),
    effectForEach: effectBatch(() => Effect.forEach(short, item, { concurrency }))
  })
  const perLongRun = await compare(s, { trellis: effectBatch(() => Pipeline.run(longMap, withEvents)) })
  return {
    map100_noop: { unit: "us/run" as const, trellis: perRun.trellis, effectForEach: perRun.effectForEach },
    map_per_item: {
      unit: "us/item" as const,
      map100: perRun.trellis / short.length,
      map10000: perLongRun.trellis / long.length
    }
  }
}
