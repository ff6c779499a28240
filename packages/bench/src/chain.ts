/**
 * `chain1000_noop` and `chain10000_noop`: a long chain of steps that do no work, each after the one before,
 * to see what one more step costs and that the cost does not grow with the length.
 */
import { Pipeline, Step } from "@trellis/core"
import * as Effect from "effect/Effect"
import { compare, effectBatch, type Settings, withEvents } from "./harness.js"

/** A link of the chain: the number its predecessor gave, plus one. */
type Link = Step.Step<string, number, never, never, any>

const chain = (length: number) => {
  let last: Link = Step.make("s0", { run: () => Effect.succeed(0) })
  for (let i = 1; i < length; i++) {
    last = Step.make(`s${i}`, { after: { previous: last }, run: ({ previous }) => Effect.succeed(previous + 1) })
  }
  return Pipeline.make(`chain${length}`, { output: last })
}

/** Microseconds per step of each chain. */
export const chains = async (s: Settings) => {
  const short = chain(1000)
  const long = chain(10_000)
  const perRun = await compare(s, {
    chain1000: effectBatch(() => Pipeline.run(short, withEvents)),
    chain10000: effectBatch(() => Pipeline.run(long, withEvents))
  })
  return {
    chain1000_noop: { unit: "us/step" as const, trellis: perRun.chain1000 / 1000 },
    chain10000_noop: { unit: "us/step" as const, trellis: perRun.chain10000 / 10_000 }
  }
}
