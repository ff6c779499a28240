/**
 * Token counts, for reservations and for servers that do not report usage.
 *
 * The default, {@link o200k}, counts with the `o200k_base` encoding (OpenAI's current models): the real counts for
 * those models and a close estimate for others. Only that encoding is imported, so the vocabulary is loaded once.
 * Provide {@link layer} with another count to reserve with the tokenizer of the model really used.
 *
 * @since 0.1.0
 */
import * as Context from "effect/Context"
import * as Layer from "effect/Layer"
import { countTokens } from "gpt-tokenizer/encoding/o200k_base"
import type { Message, ToolCall } from "./Prompt.js"

/**
 * The tokenizer service.
 *
 * @since 0.1.0
 */
export interface Service {
  /** The tokens of a text. */
  readonly count: (text: string) => number
  /**
   * The input tokens of a conversation as a chat completion counts them: each message's content and tool calls,
   * the markup around each message, and `extra` texts (the tool definitions offered).
   */
  readonly countMessages: (messages: ReadonlyArray<Message>, extra?: ReadonlyArray<string>) => number
  /** The output tokens of an answer: its text and the tool calls it asked for. */
  readonly countOutput: (text: string, toolCalls?: ReadonlyArray<ToolCall>) => number
}

/**
 * The tokenizer language models count with. `LanguageModel.make` uses {@link o200k} when none is provided.
 *
 * @since 0.1.0
 */
export class Tokenizer extends Context.Tag("@trellis/llm/Tokenizer")<Tokenizer, Service>() {}

// Chat formats wrap every message in a few tokens of markup, and prime the answer with a few more.
const perMessage = 3
const primer = 3

/**
 * The longest run of one kind of character (letters, other signs, or blanks) counted in one piece. An encoder first
 * splits text where the kind of character changes, then merges byte pairs within each part in time that grows with
 * the square of its length (160 KB of `x` took 11.5 s, 20 KB of CJK text 3.6 s). A longer run is counted in pieces
 * of this length: linear in the text, within a token or so of the exact count per piece (more, as a rule; rarely one
 * less, which the reservation's margin covers).
 * Ordinary text, code and JSON never hold such runs, and are counted exactly.
 */
const longestRun = 256
const longRuns = new RegExp(
  `[\\p{L}\\p{M}]{${longestRun + 1},}|[^\\s\\p{L}\\p{M}\\p{N}]{${longestRun + 1},}|\\s{${longestRun + 1},}`,
  "gu"
)

/**
 * Counts `text` with `countText`, long runs in pieces (see `longestRun`): time linear in the text's length. A piece
 * is cut by code units, so a character outside the Basic Multilingual Plane may be split: its halves then count as
 * the bytes they are.
 */
const countLinear = (countText: (text: string) => number, text: string): number => {
  let total = 0
  let from = 0
  for (const run of text.matchAll(longRuns)) {
    if (run.index > from) total += countText(text.slice(from, run.index))
    for (let at = 0; at < run[0].length; at += longestRun) total += countText(run[0].slice(at, at + longestRun))
    from = run.index + run[0].length
  }
  return from === 0 ? countText(text) : from < text.length ? total + countText(text.slice(from)) : total
}

/**
 * Makes a tokenizer from a function counting the tokens of a text; the chat markup around messages is added, and
 * long runs of one kind of character are counted in pieces, so that counting takes time linear in the text.
 *
 * @since 0.1.0
 */
export const make = (countText: (text: string) => number): Service => {
  const count = (text: string): number => (text.length === 0 ? 0 : countLinear(countText, text))

  const countOutput = (text: string, toolCalls: ReadonlyArray<ToolCall> = []): number => {
    let total = count(text)
    for (const call of toolCalls) total += count(call.name) + count(call.arguments)
    return total
  }

  const countMessages = (messages: ReadonlyArray<Message>, extra: ReadonlyArray<string> = []): number => {
    let total = primer
    for (const message of messages) {
      total += perMessage + count(message.content)
      if (message.role === "assistant" && message.toolCalls !== undefined) total += countOutput("", message.toolCalls)
    }
    for (const text of extra) total += count(text)
    return total
  }

  return { count, countMessages, countOutput }
}

// Text that spells a special token (`<|endoftext|>`) is text a server counts as such, not a reason to throw, which
// the encoder does by default.
const plainText = { disallowedSpecial: new Set<string>() }

/**
 * The default tokenizer: the `o200k_base` encoding, special tokens counted as the text they are.
 *
 * @since 0.1.0
 */
export const o200k: Service = make((text) => countTokens(text, plainText))

/**
 * A layer counting tokens with `countText`, for example the tokenizer of a self-hosted model.
 *
 * @since 0.1.0
 */
export const layer = (countText: (text: string) => number): Layer.Layer<Tokenizer> =>
  Layer.succeed(Tokenizer, make(countText))
