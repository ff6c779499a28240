/**
 * What a language model service learns of how a server counts, from the calls it settles. The reservation counts a
 * request's input locally (with `Tokenizer`); a server with another tokenizer reports more in proportion, and one
 * that adds text of its own (a preamble, a tool-use prompt) reports a fixed number more. Once a model's call has
 * settled, both are allowed for in its later reservations: the local count is scaled by the largest ratio seen on
 * calls long enough for a ratio to mean something, and the largest excess left over is added. A consistent
 * difference stops mattering after a call or two.
 *
 * Both only grow and never go below nothing (a reservation never shrinks below the local count); the ratio is
 * bounded, so that one call cannot make every later reservation of the model absurd. Figures taken as a lie never
 * reach it (they fail the run instead).
 */
export interface Calibration {
  /** The input tokens to reserve for `counted` tokens counted here, for `model`: `counted` until a call has settled. */
  readonly input: (model: string, counted: number) => number
  /** Learns from a settled call of `model`: `counted` input tokens here, `reported` by the server. */
  readonly learn: (model: string, counted: number, reported: number) => void
  /** True the first time it is asked for `model`, false after: for a warning given once per model. */
  readonly firstTime: (model: string) => boolean
}

/**
 * The shortest input a ratio is learned from: below it, text a server adds of its own dwarfs the count (a 3,000-token
 * preamble on a one-word prompt is no ratio of 300).
 */
const ratioFrom = 256
/** The largest ratio learned: four times the local count is already past any tokenizer in use on ordinary text. */
const maxRatio = 4

interface Learned {
  readonly ratio: number
  readonly excess: number
}

/** A calibration that has learned nothing yet. */
export const make = (): Calibration => {
  const learned = new Map<string, Learned>()
  const told = new Set<string>()
  return {
    input: (model, counted) => {
      const known = learned.get(model)
      return known === undefined ? counted : Math.ceil(counted * known.ratio + known.excess)
    },
    learn: (model, counted, reported) => {
      if (!(counted > 0 && reported > counted)) return
      const known = learned.get(model) ?? { ratio: 1, excess: 0 }
      const ratio = counted >= ratioFrom ? Math.max(known.ratio, Math.min(reported / counted, maxRatio)) : known.ratio
      const excess = Math.max(known.excess, reported - counted * ratio)
      learned.set(model, { ratio, excess })
    },
    firstTime: (model) => {
      if (told.has(model)) return false
      told.add(model)
      return true
    }
  }
}
