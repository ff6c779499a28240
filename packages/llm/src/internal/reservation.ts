/**
 * What a model call reserves, and how the figures its server reports are judged: the reservation counts what the
 * server bills as input (the messages and their markup, the tool definitions, the schema of structured output, which
 * a server receives beside the instruction that repeats it), scaled by what the model's earlier calls taught (see
 * `calibration`), with the margin, and every output token allowed; the ceiling is what the most any tokenizer could
 * count would cost (see `plausibility`).
 */
import { Cost, type Usage } from "@trellis/core"
import * as Effect from "effect/Effect"
import type * as Pricing from "../Pricing.js"
import type { ResolvedRequest } from "../Prompt.js"
import type { ReportedUsage } from "../Provider.js"
import type * as Tokenizer from "../Tokenizer.js"
import * as Calibration from "./calibration.js"
import * as Plausibility from "./plausibility.js"

/** One call as it goes: what was counted and reserved for it, and what its answer turned out to be. */
export interface Call {
  readonly request: ResolvedRequest
  /** Its input tokens as counted here. */
  readonly inputTokens: number
  readonly worstCase: Cost.Cost
  /** The most input tokens an honest server could count for it, and what a call at that count would cost. */
  readonly ceilingTokens: number
  readonly ceiling: Cost.Cost
  /** Set when the answer came with figures that cannot be used: the call fails, settled to this. */
  billed: Usage.Usage | undefined
  /** Set when the answer's figures cannot be right: a budgeted run then fails. */
  implausible: string | undefined
}

/** Opens calls, and judges what their servers report, learning each model's counting as it goes. */
export interface Reservations {
  readonly open: (request: ResolvedRequest) => Call
  /**
   * Judges the figures a server reported for a call that cost `cost`: past what an honest server could report, the
   * call is marked implausible, which fails a budgeted run, and a warning says so; within it, they teach the model's
   * calibration, and a cost above the reservation is warned of once per model.
   */
  readonly judge: (call: Call, reported: ReportedUsage | null | undefined, cost: Cost.Cost) => Effect.Effect<void>
}

/** The reservations of one language model service, counting with `tokenizer` and pricing with `pricing`. */
export const make = (tokenizer: Tokenizer.Service, pricing: Pricing.Service, inputMargin: number): Reservations => {
  const calibration = Calibration.make()

  const open = (request: ResolvedRequest): Call => {
    const extra = request.tools.map((tool) => tool.name + tool.description + JSON.stringify(tool.parameters))
    if (request.json !== undefined) extra.push(request.json.name + JSON.stringify(request.json.schema))
    const inputTokens = tokenizer.countMessages(request.messages, extra)
    const reservedInput = Math.ceil(calibration.input(request.model, inputTokens) * (1 + inputMargin))
    const ceilingTokens = Plausibility.inputCeiling(request, extra)
    return {
      request,
      inputTokens,
      worstCase: pricing.worstCase(request.model, reservedInput, request.maxTokens),
      ceilingTokens,
      ceiling: pricing.worstCase(request.model, Math.max(ceilingTokens, reservedInput), request.maxTokens),
      billed: undefined,
      implausible: undefined
    }
  }

  const judge = (call: Call, reported: ReportedUsage | null | undefined, cost: Cost.Cost): Effect.Effect<void> => {
    if (reported == null) return Effect.void
    const model = call.request.model
    const implausible = Plausibility.implausibility(call.request, reported, call.ceilingTokens)
    if (implausible !== undefined) {
      call.implausible = implausible
      return Effect.logWarning(`A call of ${model} reported figures that cannot be right: ${implausible}`)
    }
    calibration.learn(model, call.inputTokens, reported.inputTokens)
    return cost > call.worstCase && calibration.firstTime(model)
      ? Effect.logWarning(
        `A call of ${model} cost ${Cost.format(cost)} where ${Cost.format(call.worstCase)} was reserved: its ` +
          `server counts ${reported.inputTokens} input tokens where ${call.inputTokens} were counted here. Later ` +
          `reservations for ${model} allow for the difference.`
      )
      : Effect.void
  }

  return { open, judge }
}
