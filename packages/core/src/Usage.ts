/**
 * What a run consumed: tokens, requests, tool calls and the money they cost.
 *
 * @since 0.1.0
 */
import * as Cost from "./Cost.js"

/**
 * Usage of one call, one step or a whole run.
 *
 * `estimated` is true when any part of it was counted locally rather than reported by the provider (for example a
 * server that does not return token counts, or a call interrupted before it answered).
 *
 * @since 0.1.0
 */
export interface Usage {
  readonly inputTokens: number
  readonly outputTokens: number
  readonly cachedInputTokens: number
  readonly reasoningTokens: number
  readonly requests: number
  readonly toolCalls: number
  readonly cost: Cost.Cost
  readonly estimated: boolean
}

/**
 * No usage at all.
 *
 * @since 0.1.0
 */
export const empty: Usage = {
  inputTokens: 0,
  outputTokens: 0,
  cachedInputTokens: 0,
  reasoningTokens: 0,
  requests: 0,
  toolCalls: 0,
  cost: Cost.zero,
  estimated: false
}

/**
 * Builds a usage from the fields given; the others are zero.
 *
 * @since 0.1.0
 */
export const make = (fields: Partial<Usage>): Usage => ({ ...empty, ...fields })

/**
 * Adds two usages field by field.
 *
 * @since 0.1.0
 */
export const add = (self: Usage, that: Usage): Usage => ({
  inputTokens: self.inputTokens + that.inputTokens,
  outputTokens: self.outputTokens + that.outputTokens,
  cachedInputTokens: self.cachedInputTokens + that.cachedInputTokens,
  reasoningTokens: self.reasoningTokens + that.reasoningTokens,
  requests: self.requests + that.requests,
  toolCalls: self.toolCalls + that.toolCalls,
  cost: Cost.add(self.cost, that.cost),
  estimated: self.estimated || that.estimated
})

/**
 * Adds every usage in the iterable.
 *
 * @since 0.1.0
 */
export const sum = (usages: Iterable<Usage>): Usage => {
  let total = empty
  for (const u of usages) total = add(total, u)
  return total
}

/**
 * Total tokens, input plus output.
 *
 * @since 0.1.0
 */
export const totalTokens = (usage: Usage): number => usage.inputTokens + usage.outputTokens

/**
 * Whether a usage counts nothing: no request, no token, no tool call, no cost (whether or not it is marked
 * estimated).
 *
 * @since 0.3.0
 */
export const isEmpty = (usage: Usage): boolean =>
  usage.cost === 0 && usage.requests === 0 && usage.inputTokens === 0 && usage.outputTokens === 0 &&
  usage.cachedInputTokens === 0 && usage.reasoningTokens === 0 && usage.toolCalls === 0
