/**
 * What a language model service learns of how a server counts, from the calls it settles. The reservation counts a
 * request's input locally (with `Tokenizer`); a server with another tokenizer, or that adds text of its own around
 * the request, reports more. Once a model's call has settled, the ratio of what its server reported to what was
 * counted here scales that model's later reservations, so a consistent difference stops mattering after one call.
 *
 * The ratio only grows (the largest seen) and never goes below 1: a reservation never shrinks below the local
 * count, and a server whose count varies with the text is reserved for at its largest. Figures taken as a lie never
 * reach it (they fail the run instead), so the ratio is bounded by the plausibility ceiling.
 */
export interface Calibration {
  /** The factor this model's local input counts are scaled by: 1 until a call of it has settled. */
  readonly ratio: (model: string) => number
  /** Learns from a settled call of `model`: `counted` input tokens here, `reported` by the server. */
  readonly learn: (model: string, counted: number, reported: number) => void
  /** True the first time it is asked for `model`, false after: for a warning given once per model. */
  readonly firstTime: (model: string) => boolean
}

/** A calibration that has learned nothing yet. */
export const make = (): Calibration => {
  const ratios = new Map<string, number>()
  const told = new Set<string>()
  return {
    ratio: (model) => ratios.get(model) ?? 1,
    learn: (model, counted, reported) => {
      if (!(counted > 0 && reported > counted)) return
      const ratio = reported / counted
      if (ratio > (ratios.get(model) ?? 1)) ratios.set(model, ratio)
    },
    firstTime: (model) => {
      if (told.has(model)) return false
      told.add(model)
      return true
    }
  }
}
