/**
 * Checks of the figures a provider reports for a call (token counts, requests sent), and the tally of requests a
 * call keeps for a provider: a figure that cannot be right is named, never priced.
 */
import * as Predicate from "effect/Predicate"
import type { Sent } from "../LlmError.js"
import type { Completion, ReportedUsage, Tally } from "../Provider.js"

// Far beyond any model's context: past it a reported token count is not a count but a broken server.
const maxReportedTokens = 1_000_000_000
// Far beyond any provider's retries for one call (the OpenAI layer allows 1,001 requests).
const maxRequests = 10_000

// A figure as a message shows it: a string in quotes, so "12" is not mistaken for the number 12; kept short.
const show = (value: unknown): string =>
  (typeof value === "string" ? JSON.stringify(value) : String(value)).slice(0, 100)

const isWhole = (value: unknown, min: number, max: number): value is number =>
  typeof value === "number" && Number.isSafeInteger(value) && value >= min && value <= max

/**
 * What is wrong with the usage a provider reported, if anything: each count a whole number from 0 to a billion,
 * cached tokens no more than the input, reasoning tokens no more than the output. Nothing reported is nothing wrong.
 */
export const usageProblem = (reported: unknown): string | undefined => {
  if (reported == null) return undefined
  if (typeof reported !== "object") return `usage is ${show(reported)}, not token counts`
  const usage = reported as Record<string, unknown>
  for (const field of ["inputTokens", "outputTokens", "cachedInputTokens", "reasoningTokens"]) {
    const value = usage[field]
    const optional = field === "cachedInputTokens" || field === "reasoningTokens"
    if (!(optional && value == null) && !isWhole(value, 0, maxReportedTokens)) {
      return `${field} is ${show(value)}, not a whole number from 0 to ${maxReportedTokens}`
    }
  }
  const { cachedInputTokens, inputTokens, outputTokens, reasoningTokens } = usage as unknown as ReportedUsage
  if ((cachedInputTokens ?? 0) > inputTokens) {
    return `cachedInputTokens (${cachedInputTokens}) is more than inputTokens (${inputTokens})`
  }
  if ((reasoningTokens ?? 0) > outputTokens) {
    return `reasoningTokens (${reasoningTokens}) is more than outputTokens (${outputTokens})`
  }
  return undefined
}

/** What is wrong with the count of requests a provider sent for an answer, and of those billable, if anything. */
export const requestsProblem = (completion: Completion): string | undefined => {
  const { billable, requests } = completion
  if (requests != null && !isWhole(requests, 1, maxRequests)) {
    return `requests is ${show(requests)}, not a whole number from 1 to ${maxRequests}`
  }
  const unanswered = (requests ?? 1) - 1
  return billable == null || isWhole(billable, 0, unanswered)
    ? undefined
    : `billable is ${show(billable)}, not a whole number from 0 to ${unanswered} (requests - 1)`
}

/**
 * A call's tally of requests (see `Provider.Tally`), and what it says was sent: each request still in flight counted
 * as billable; undefined when the provider marked none.
 */
export const makeTally = (): Tally & { readonly total: () => Sent | undefined } => {
  let requests = 0
  let ended = 0
  let billable = 0
  return {
    sent: () => {
      requests++
    },
    ended: (billed) => {
      ended++
      if (billed) billable++
    },
    total: () => (requests === 0 ? undefined : { requests, billable: billable + requests - ended })
  }
}

/**
 * The requests a failed call sent, as its error says (`LlmError.Sent`), if it says and its figures can be right;
 * figures that cannot be right are taken as unsaid.
 */
export const sentOf = (error: unknown): Sent | undefined => {
  if (!Predicate.hasProperty(error, "sent") || !Predicate.isObject(error.sent)) return undefined
  const sent = error.sent as Partial<Sent>
  return isWhole(sent.requests, 0, maxRequests) && isWhole(sent.billable, 0, sent.requests)
    ? { requests: sent.requests, billable: sent.billable }
    : undefined
}
