/**
 * What a model's tokens cost, in exact nano-dollars.
 *
 * Prices come from `@pydantic/genai-prices`, whose data ships inside the package: look-ups work offline and
 * nothing is fetched at run time. Users override prices per model (a negotiated rate, a self-hosted model);
 * a model that is neither known nor overridden costs 0 and is warned about once.
 *
 * @since 0.1.0
 */
import { calcPrice } from "@pydantic/genai-prices"
import { Cost, Usage } from "@trellis/core"
import * as Context from "effect/Context"
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Option from "effect/Option"

/**
 * A model's prices in dollars per million tokens.
 *
 * @since 0.1.0
 */
export interface Rates {
  readonly inputPerMillion: number
  readonly outputPerMillion: number
  /** Input tokens served from the provider's prompt cache; the input price when absent. */
  readonly cachedInputPerMillion?: number | undefined
}

/**
 * The pricing service.
 *
 * @since 0.1.0
 */
export interface Service {
  /** The rates of a model, if known or overridden. */
  readonly rates: (model: string) => Option.Option<Rates>
  /** The cost of some usage of a model; 0 (with one warning per model) when the model has no price. */
  readonly cost: (model: string, usage: Usage.Usage) => Effect.Effect<Cost.Cost>
  /** The most a call can cost: its input tokens and every output token it may produce, at the model's rates. */
  readonly worstCase: (model: string, inputTokens: number, maxOutputTokens: number) => Cost.Cost
}

/**
 * The prices a language model is metered with. Language model layers use the bundled prices when this service
 * is not provided.
 *
 * @since 0.1.0
 */
export class Pricing extends Context.Tag("@trellis/llm/Pricing")<Pricing, Service>() {}

/**
 * Options for {@link make}.
 *
 * @since 0.1.0
 */
export interface Options {
  /** Prices that win over the bundled ones, by model name. */
  readonly overrides?: Readonly<Record<string, Rates>> | undefined
  /** The provider the bundled prices are looked up under (default "openai"). */
  readonly provider?: string | undefined
}

/**
 * A price per million tokens that may depend on the size of the call: `base`, or the price of the last tier whose
 * `start` the call's input tokens pass (as `@pydantic/genai-prices` prices Anthropic's and Google's long prompts:
 * every token of a call past 200k input tokens at the higher price).
 */
interface Tiered {
  readonly base: number
  readonly tiers: ReadonlyArray<{ readonly start: number; readonly price: number }>
}

/** A model's prices: input, cached input and output, each possibly tiered. */
interface Price {
  readonly input: Tiered
  readonly cachedInput: Tiered
  readonly output: Tiered
}

const flat = (perMillion: number): Tiered => ({ base: perMillion, tiers: [] })

const tieredOf = (value: unknown): Tiered | undefined => {
  if (typeof value === "number") return flat(value)
  if (typeof value === "object" && value !== null && "base" in value && typeof value.base === "number") {
    const tiers = "tiers" in value && Array.isArray(value.tiers) ? value.tiers : []
    return {
      base: value.base,
      tiers: tiers
        .filter((t): t is { start: number; price: number } => typeof t?.start === "number" && typeof t?.price === "number")
        .sort((a, b) => a.start - b.start)
    }
  }
  return undefined
}

/** The price per million tokens for a call with `inputTokens` input tokens. */
const at = (tiered: Tiered, inputTokens: number): number => {
  let price = tiered.base
  for (const tier of tiered.tiers) if (inputTokens > tier.start) price = tier.price
  return price
}

// Looked up once per model by the callers: a look-up walks the whole table.
const bundled = (model: string, provider: string): Option.Option<Price> => {
  const probe = { input_tokens: 1, output_tokens: 1 }
  const found = calcPrice(probe, model, { providerId: provider }) ?? calcPrice(probe, model)
  if (found === null) return Option.none()
  const input = tieredOf(found.model_price["input_mtok"])
  const output = tieredOf(found.model_price["output_mtok"])
  if (input === undefined || output === undefined) return Option.none()
  return Option.some({ input, output, cachedInput: tieredOf(found.model_price["cache_read_mtok"]) ?? input })
}

const fromRates = (rates: Rates): Price => ({
  input: flat(rates.inputPerMillion),
  output: flat(rates.outputPerMillion),
  cachedInput: flat(rates.cachedInputPerMillion ?? rates.inputPerMillion)
})

/**
 * A price given in `overrides` that cannot be right: every rate must be a number of dollars per million tokens
 * from 0 to 1,000,000.
 *
 * @since 0.2.0
 */
export class InvalidPrice extends Data.TaggedError("InvalidPrice")<{
  readonly model: string
  readonly rate: string
  readonly value: unknown
}> {
  override get message(): string {
    return `The price of model "${this.model}" is not usable: ${this.rate} must be a number of dollars per million ` +
      `tokens from 0 to 1000000, got ${String(this.value)}`
  }
}

/** A bound on any price per million tokens, far past every real one, so a typo cannot price a call in billions. */
const maxPerMillion = 1_000_000

/** The first override that cannot be right, if any. */
const invalidPrice = (options: Options): InvalidPrice | undefined => {
  for (const [model, rates] of Object.entries(options.overrides ?? {})) {
    for (const rate of ["inputPerMillion", "outputPerMillion", "cachedInputPerMillion"] as const) {
      const value: unknown = rates[rate]
      if (value === undefined && rate === "cachedInputPerMillion") continue
      if (!(typeof value === "number" && value >= 0 && value <= maxPerMillion)) return new InvalidPrice({ model, rate, value })
    }
  }
  return undefined
}

/**
 * Makes a pricing service from the bundled prices and the given overrides. Throws `InvalidPrice` for an override
 * that cannot be right (`layer` fails with it instead).
 *
 * @since 0.1.0
 */
export const make = (options: Options = {}): Service => {
  const invalid = invalidPrice(options)
  if (invalid !== undefined) throw invalid
  const provider = options.provider ?? "openai"
  const known = new Map<string, Option.Option<Price>>()
  const warned = new Set<string>()

  const priceOfModel = (model: string): Option.Option<Price> => {
    const override = options.overrides?.[model]
    if (override !== undefined) return Option.some(fromRates(override))
    let found = known.get(model)
    if (found === undefined) {
      found = bundled(model, provider)
      known.set(model, found)
    }
    return found
  }

  // The rates of the smallest calls: the base of each tier.
  const rates = (model: string): Option.Option<Rates> =>
    Option.map(priceOfModel(model), (price) => ({
      inputPerMillion: price.input.base,
      outputPerMillion: price.output.base,
      cachedInputPerMillion: price.cachedInput.base
    }))

  // Every token of a call at the tier its input tokens (cached ones included) fall in.
  const priceOf = (price: Price, usage: Usage.Usage): Cost.Cost => {
    const cached = Math.min(usage.cachedInputTokens, usage.inputTokens)
    const size = usage.inputTokens
    return Cost.sum([
      Cost.perMillionTokens(usage.inputTokens - cached, at(price.input, size)),
      Cost.perMillionTokens(cached, at(price.cachedInput, size)),
      Cost.perMillionTokens(usage.outputTokens, at(price.output, size))
    ])
  }

  return {
    rates,
    cost: (model, usage) => {
      // Priced at once when the model is known (a call's hot path); looked at again when run otherwise, to warn once.
      const price = priceOfModel(model)
      if (Option.isSome(price)) return Effect.succeed(priceOf(price.value, usage))
      return Effect.suspend(() => {
        if (warned.has(model)) return Effect.succeed(Cost.zero)
        warned.add(model)
        return Effect.as(
          Effect.logWarning(
            `No price is known for model "${model}": its calls are counted as costing $0. ` +
              `Give it a price with Pricing.layer({ overrides: { "${model}": { inputPerMillion, outputPerMillion } } }).`
          ),
          Cost.zero
        )
      })
    },
    worstCase: (model, inputTokens, maxOutputTokens) => {
      const price = priceOfModel(model)
      return Option.isSome(price)
        ? priceOf(price.value, Usage.make({ inputTokens, outputTokens: maxOutputTokens }))
        : Cost.zero
    }
  }
}

/**
 * A layer with the bundled prices and the given overrides; fails with `InvalidPrice` for an override that cannot be
 * right.
 *
 * @since 0.1.0
 */
export const layer = (options: Options = {}): Layer.Layer<Pricing, InvalidPrice> => {
  const invalid = invalidPrice(options)
  return invalid === undefined ? Layer.sync(Pricing, () => make(options)) : Layer.fail(invalid)
}
