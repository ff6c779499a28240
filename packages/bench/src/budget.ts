/**
 * `budget_contention`: 1,000 steps, each making one metered call to the scripted model at the same time, under a
 * budget that fits exactly 100 of them. Reported: how many calls were admitted (reached the model) and by how
 * much the spend passed the budget.
 */
import { Cost, Pipeline, Step } from "@trellis/core"
import { LanguageModel, Pricing, type Prompt, ScriptedModel, Tokenizer } from "@trellis/llm"
import * as Effect from "effect/Effect"
import type { Settings } from "./harness.js"

const calls = 1_000
const fits = 100
const maxTokens = 100
const modelName = "gpt-4o-mini"
const request: Prompt.Request = { messages: [{ role: "user", content: "Summarise the filing." }], maxTokens }
/** The reservation's margin over the input counted locally, set here so the scenario knows the reservation. */
const inputMargin = 0.1
/** The input tokens a call reserves: the local count with the margin. */
const inputTokens = Math.ceil(Tokenizer.o200k.countMessages(request.messages) * (1 + inputMargin))

/**
 * Each call reserves its worst case and really costs it: the server reports the reserved input and every output
 * token allowed, so no settled call frees room for more.
 */
const worstCase = Pricing.make().worstCase(modelName, inputTokens, maxTokens)

const contention = () => {
  const model = ScriptedModel.make({
    model: modelName,
    reply: () => ({ text: "A summary.", usage: { inputTokens, outputTokens: maxTokens } }),
    latency: "10 millis",
    options: { inputMargin }
  })
  const steps = Array.from({ length: calls }, (_, i) =>
    Step.make(`call_${i}`, { run: () => LanguageModel.generate(request) }))
  const all = Step.make("all", {
    after: Object.fromEntries(steps.map((step) => [step.name, step])),
    run: () => Effect.void
  })
  const budget = Cost.nanos(worstCase * fits)
  const pipeline = Pipeline.make("contention", { output: all, budget })
  return Effect.map(
    Effect.either(Effect.provide(Pipeline.run(pipeline), model.layer)),
    (result) => {
      const spent = result._tag === "Left" && "partial" in result.left && result.left.partial !== undefined
        ? result.left.partial.usage.total.cost
        : result._tag === "Right"
        ? result.right.usage.total.cost
        : Number.NaN
      return { admitted: model.calls.length, overshootNanoUsd: Math.max(0, spent - budget) }
    }
  )
}

export const budgetContention = async (s: Settings) => {
  if (!(worstCase > 0)) throw new Error(`no price for ${modelName}: the budget scenario needs a priced model`)
  const runs: Array<{ admitted: number; overshootNanoUsd: number }> = []
  for (let i = 0; i < (s.quick ? 1 : 3); i++) runs.push(await Effect.runPromise(contention()))
  // Every run should agree; report the one furthest from the target.
  return runs.reduce((worst, run) =>
    Math.abs(run.admitted - fits) + run.overshootNanoUsd > Math.abs(worst.admitted - fits) + worst.overshootNanoUsd
      ? run
      : worst
  )
}
