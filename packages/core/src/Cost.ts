/**
 * Money as an exact integer count of nano-dollars (1e-9 USD).
 *
 * Cheap models cost a fraction of a micro-dollar per token, so whole micro-dollars would lose money on every
 * call. Nano-dollar integers add up exactly: sums never drift. A JavaScript number holds integers exactly up to
 * 2^53 nano-dollars (about nine million dollars), far beyond any single run.
 *
 * @since 0.1.0
 */
import type * as Brand from "effect/Brand"
import * as Order from "effect/Order"

/**
 * A non-negative amount of money in whole nano-dollars.
 *
 * @since 0.1.0
 */
export type Cost = number & Brand.Brand<"@trellis/core/Cost">

const NANOS_PER_DOLLAR = 1_000_000_000

/**
 * Builds a cost from a count of nano-dollars, failing on anything that is not a non-negative integer.
 *
 * @since 0.1.0
 */
export const nanos = (n: number): Cost => {
  if (!(Number.isSafeInteger(n) && n >= 0)) {
    throw new RangeError(`Expected a non-negative whole number of nano-dollars, got ${n}`)
  }
  return n as Cost
}

/**
 * Zero dollars.
 *
 * @since 0.1.0
 */
export const zero: Cost = 0 as Cost

/**
 * Converts dollars to a cost, rounding to the nearest nano-dollar: `Cost.dollars(0.1)` is 100,000,000 nano-dollars.
 *
 * @since 0.1.0
 */
export const dollars = (amount: number): Cost => nanos(Math.round(amount * NANOS_PER_DOLLAR))

/**
 * The cost of `tokens` at a price given in dollars per million tokens, rounded to the nearest nano-dollar.
 *
 * @since 0.1.0
 */
export const perMillionTokens = (tokens: number, dollarsPerMillion: number): Cost =>
  Math.round(tokens * dollarsPerMillion * 1000) as Cost

/**
 * Adds costs.
 *
 * @since 0.1.0
 */
export const add = (self: Cost, that: Cost): Cost => (self + that) as Cost

/**
 * Adds every cost in the iterable.
 *
 * @since 0.1.0
 */
export const sum = (costs: Iterable<Cost>): Cost => {
  let total = 0
  for (const c of costs) total += c
  return total as Cost
}

/**
 * Subtracts `that` from `self`, never going below zero.
 *
 * @since 0.1.0
 */
export const subtract = (self: Cost, that: Cost): Cost => Math.max(0, self - that) as Cost

/**
 * Converts a cost to (floating point) dollars, for display.
 *
 * @since 0.1.0
 */
export const toDollars = (cost: Cost): number => cost / NANOS_PER_DOLLAR

/**
 * Formats a cost in dollars: four decimals by default (`Cost.format(Cost.dollars(0.1))` is `"$0.1000"`), six for a
 * cost under a cent, where single model calls live (`"$0.000094"` rather than `"$0.0001"`), and nine, every
 * nano-dollar, under a micro-dollar (`"$0.000000500"` rather than `"$0.000001"`).
 *
 * @since 0.1.0
 */
export const format = (cost: Cost, decimals?: number): string =>
  `$${toDollars(cost).toFixed(decimals ?? (cost === 0 || cost >= 10_000_000 ? 4 : cost >= 1_000 ? 6 : 9))}`

/**
 * Orders costs from cheapest to dearest.
 *
 * @since 0.1.0
 */
export const order: Order.Order<Cost> = Order.number
