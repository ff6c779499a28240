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

const bundled = (model: string, provider: string): Option.Option<Rates> => {
  // A million of each kind of token reads the rates straight off the table (tiers and dated prices included).
  // Callers cache the result because a look-up walks the whole table.
  const million = { input_tokens: 1_000_000, output_tokens: 1_000_000 }
  const found = calcPrice(million, model, { providerId: provider }) ?? calcPrice(million, model)
  if (found === null) return Option.none()
  const cached = found.model_price["cache_read_mtok"]
  return Option.some({
    inputPerMillion: found.input_price,
    outputPerMillion: found.output_price,
    cachedInputPerMillion: typeof cached === "number" ? cached : found.input_price
  })
}

/**
 * Makes a pricing service from the bundled prices and the given overrides.
 *
 * @since 0.1.0
 */
export const make = (options: Options = {}): Service => {
  const provider = options.provider ?? "openai"
  const known = new Map<string, Option.Option<Rates>>()
  const warned = new Set<string>()

  const rates = (model: string): Option.Option<Rates> => {
    const override = options.overrides?.[model]
    if (override !== undefined) return Option.some(override)
    let found = known.get(model)
    if (found === undefined) {
      found = bundled(model, provider)
      known.set(model, found)
    }
    return found
  }

  const priceOf = (r: Rates, usage: Usage.Usage): Cost.Cost => {
    const cached = Math.min(usage.cachedInputTokens, usage.inputTokens)
    return Cost.sum([
      Cost.perMillionTokens(usage.inputTokens - cached, r.inputPerMillion),
      Cost.perMillionTokens(cached, r.cachedInputPerMillion ?? r.inputPerMillion),
      Cost.perMillionTokens(usage.outputTokens, r.outputPerMillion)
    ])
  }

  return {
    rates,
    cost: (model, usage) => {
      // Priced at once when the model is known (a call's hot path); looked at again when run otherwise, to warn once.
      const r = rates(model)
      if (Option.isSome(r)) return Effect.succeed(priceOf(r.value, usage))
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
      const r = rates(model)
      return Option.isSome(r) ? priceOf(r.value, Usage.make({ inputTokens, outputTokens: maxOutputTokens })) : Cost.zero
    }
  }
}

/**
 * A layer with the bundled prices and the given overrides.
 *
 * @since 0.1.0
 */
export const layer = (options: Options = {}): Layer.Layer<Pricing> => Layer.sync(Pricing, () => make(options))
