/**
 * The language model layer's own overhead per call (pricing, metering through the ledger, the token count for
 * the reservation, its span), with a provider that answers at once, for a 1 KB prompt; and the time to count
 * the tokens of a 10 KB prompt.
 */
import { Cost, Ledger } from "@trellis/core"
import { LanguageModel, type Provider, Tokenizer } from "@trellis/llm"
import * as Effect from "effect/Effect"
import { compare, effectBatch, median, type Settings } from "./harness.js"

const vocabulary = (
  "the a of to and in that for on with as by contract buyer seller shares price closing market regulator " +
  "approval quarter revenue growth margin customer segment filing notice clause party agreement deadline"
).split(" ")

/** About `bytes` of English-like text, the same on every run. */
const prose = (bytes: number): string => {
  let seed = 42
  const words: Array<string> = []
  let length = 0
  while (length < bytes) {
    seed = (seed * 1103515245 + 12345) % 2147483648
    const word = vocabulary[seed % vocabulary.length]!
    words.push(word)
    length += word.length + 1
  }
  return words.join(" ").slice(0, bytes)
}

const prompt1kb = prose(1024)
const prompt10kb = prose(10 * 1024)

const completion: Provider.Completion = {
  text: "A short answer.",
  toolCalls: [],
  finishReason: "stop",
  model: "gpt-4o-mini",
  usage: { inputTokens: 230, outputTokens: 4 }
}

/** A provider with no network and no work: what is left of a call is the layer's own. */
const provider: Provider.Provider = {
  name: "instant",
  model: "gpt-4o-mini",
  generate: () => Effect.succeed(completion),
  stream: () => {
    throw new Error("not used")
  }
}

export const llmOverhead = async (s: Settings) => {
  const model = await Effect.runPromise(LanguageModel.make(provider))
  const ledger = await Effect.runPromise(Ledger.make({ budget: Cost.dollars(1_000_000) }))
  const inLedger = <A, E>(effect: Effect.Effect<A, E>) => Effect.provideService(effect, Ledger.Ledger, ledger)
  const perCall = await compare(s, {
    layer: effectBatch(() => inLedger(model.generate(prompt1kb))),
    provider: effectBatch(() => provider.generate({
      messages: [{ role: "user", content: prompt1kb }],
      model: "gpt-4o-mini",
      temperature: undefined,
      maxTokens: 4096,
      tools: [],
      json: undefined
    }))
  })
  const counts: Array<number> = []
  for (let i = 0; i < (s.quick ? 5 : 41); i++) {
    const start = performance.now()
    Tokenizer.o200k.count(prompt10kb)
    counts.push(performance.now() - start)
  }
  return {
    llm_call_1kb: { unit: "us/call" as const, trellis: perCall.layer, provider: perCall.provider },
    tokenize_10kb: { unit: "ms" as const, trellis: median(counts) }
  }
}
