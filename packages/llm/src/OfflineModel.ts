/**
 * The offline model: the embedded default. Deterministic, with no network, and good enough to run every example
 * end to end.
 *
 * It does not understand language; it reads the request's shape. Asked for JSON, it fills the JSON Schema from
 * the conversation: a choice among words by which of them the text mentions most, numbers and dates by pattern,
 * names from capitalised words, summaries from the first sentences. Offered tools, it calls the one the prompt
 * names. Otherwise it drafts from a template, keeping the sentences that share most words with the instructions.
 * It counts tokens with the real tokenizer (`Tokenizer.o200k`, as a server counts with its own) and prices them as
 * a named real model, so budgets behave as they would online: displays show it with its {@link label}, "offline,
 * simulated prices".
 *
 * @since 0.1.0
 */
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Stream from "effect/Stream"
import * as LanguageModel from "./LanguageModel.js"
import type { ResolvedRequest, ToolCall } from "./Prompt.js"
import type { Completion, Provider } from "./Provider.js"
import { replay, words } from "./ScriptedModel.js"
import { o200k as tokenizer } from "./Tokenizer.js"

/**
 * Options of the offline model.
 *
 * @since 0.1.0
 */
export interface Options extends LanguageModel.Options {
  /** The real model whose prices it simulates, and whose name it answers with (default "gpt-4o-mini"). */
  readonly model?: string | undefined
  /** How long each call takes, on Effect's clock (default: no wait). */
  readonly latency?: Duration.DurationInput | undefined
}

/**
 * What a display shows next to the offline model's name: its prices are a real model's, its answers are not.
 *
 * @since 0.1.0
 */
export const label = "offline, simulated prices"

/**
 * The offline provider, for use with `LanguageModel.make`.
 *
 * @since 0.1.0
 */
export const provider = (options: Options = {}): Provider => {
  const model = options.model ?? "gpt-4o-mini"
  const latency = options.latency === undefined ? undefined : Duration.decode(options.latency)
  const generate = (request: ResolvedRequest): Effect.Effect<Completion> => {
    const completion = Effect.sync(() => answer(model, request))
    return latency === undefined ? completion : Effect.zipRight(Effect.sleep(latency), completion)
  }
  return {
    name: "offline",
    model,
    generate,
    stream: (request) => Stream.flatMap(Stream.fromEffect(generate(request)), replay)
  }
}

/**
 * The offline model as the application's language model.
 *
 * @since 0.1.0
 */
export const layer = (options: Options = {}): Layer.Layer<LanguageModel.LanguageModel> =>
  Layer.effect(LanguageModel.LanguageModel, LanguageModel.make(provider(options), options))

// ---------------------------------------------------------------------------------------------------------------
// Answers

const answer = (model: string, request: ResolvedRequest): Completion => {
  const text = conversationText(request)
  const instructions = request.messages.filter((m) => m.role === "system").map((m) => m.content).join("\n")
  const toolCall = request.json === undefined ? pickTool(request) : undefined
  const reply = toolCall !== undefined
    ? ""
    : request.json !== undefined
    ? JSON.stringify(fill(request.json.schema, rootOf(request.json.schema), "", text))
    : draft(instructions, text)
  const toolCalls = toolCall === undefined ? [] : [toolCall]
  const limited = truncate(reply, request.maxTokens)
  return {
    text: limited,
    toolCalls,
    finishReason: toolCalls.length > 0 ? "tool_calls" : limited.length < reply.length ? "length" : "stop",
    model,
    usage: {
      inputTokens: tokenizer.countMessages(request.messages),
      outputTokens: tokenizer.countOutput(limited, toolCalls)
    }
  }
}

// What the answer is about: the user's messages and the tools' results, not the instructions.
const conversationText = (request: ResolvedRequest): string =>
  request.messages
    .filter((m) => m.role === "user" || m.role === "tool")
    .map((m) => m.content)
    .join("\n")

const truncate = (text: string, maxTokens: number): string => {
  if (tokenizer.count(text) <= maxTokens) return text
  const parts = words(text)
  let kept = ""
  for (const part of parts) {
    if (tokenizer.count(kept + part) > maxTokens) break
    kept += part
  }
  return kept
}

// A tool is called when the last user message names it and no tool has answered since.
const pickTool = (request: ResolvedRequest): ToolCall | undefined => {
  const last = request.messages[request.messages.length - 1]
  if (last === undefined || last.role !== "user" || request.tools.length === 0) return undefined
  const prompt = last.content.toLowerCase()
  const tool = request.tools.find((t) => prompt.includes(t.name.toLowerCase()) || prompt.includes(spaced(t.name)))
  if (tool === undefined) return undefined
  const args = fill(tool.parameters, rootOf(tool.parameters), "", last.content)
  return { id: `call_${request.messages.length}_${tool.name}`, name: tool.name, arguments: JSON.stringify(args) }
}

const spaced = (name: string): string => name.replace(/[_-]+/g, " ").replace(/([a-z])([A-Z])/g, "$1 $2").toLowerCase()

const sentences = (text: string): Array<string> =>
  text.split(/(?<=[.!?])\s+|\n+/).map((s) => s.trim()).filter((s) => s.length > 0)

const wordsOf = (text: string): Array<string> => text.toLowerCase().match(/[a-z][a-z'-]{2,}/g) ?? []

// Keeps the three sentences that share most words with the instructions, in their original order.
const draft = (instructions: string, text: string): string => {
  const wanted = new Set(wordsOf(instructions))
  const all = sentences(text)
  if (all.length === 0) return "Nothing to work from."
  const scored = all.map((sentence, index) => ({
    sentence,
    index,
    score: wordsOf(sentence).filter((w) => wanted.has(w)).length
  }))
  const best = [...scored].sort((a, b) => b.score - a.score || a.index - b.index).slice(0, 3)
  return best.sort((a, b) => a.index - b.index).map((s) => s.sentence).join(" ")
}

// ---------------------------------------------------------------------------------------------------------------
// Filling a JSON Schema from text

type JsonSchema = { readonly [key: string]: any }

const rootOf = (schema: object): JsonSchema => schema as JsonSchema

const resolveRef = (root: JsonSchema, schema: JsonSchema): JsonSchema => {
  const ref = schema["$ref"]
  if (typeof ref !== "string" || !ref.startsWith("#/")) return schema
  let target: any = root
  for (const part of ref.slice(2).split("/")) target = target?.[part]
  return target === undefined ? schema : resolveRef(root, target)
}

// How often a choice is mentioned: the whole choice, or each of its words (a crude stem of five letters).
const mentions = (choice: string, text: string): number => {
  const lower = text.toLowerCase()
  const stems = wordsOf(spaced(choice)).map((w) => w.slice(0, 5))
  if (stems.length === 0) return 0
  let score = 0
  for (const word of wordsOf(lower)) if (stems.some((stem) => word.startsWith(stem))) score++
  return score
}

const choose = <A>(choices: ReadonlyArray<A>, text: string): A => {
  let best = choices[0] as A
  let bestScore = -1
  for (const choice of choices) {
    const score = mentions(String(choice), text)
    if (score > bestScore) {
      best = choice
      bestScore = score
    }
  }
  return best
}

const numbers = (text: string): Array<number> =>
  (text.match(/-?\d+(?:[.,]\d+)*/g) ?? []).map((n) => Number(n.replace(/,/g, ""))).filter(Number.isFinite)

const capitalised = (text: string): Array<string> => {
  const found = text.match(/\b[A-Z][a-z]+(?:\s+[A-Z][a-z]+)+\b/g) ?? text.match(/\b[A-Z][a-zA-Z]{2,}\b/g) ?? []
  return [...new Set(found)]
}

const keywords = (text: string, max: number): Array<string> => {
  const counts = new Map<string, number>()
  for (const word of wordsOf(text)) if (word.length > 4) counts.set(word, (counts.get(word) ?? 0) + 1)
  return [...counts.entries()].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0])).slice(0, max).map(([w]) => w)
}

const clampLength = (s: string, schema: JsonSchema): string => {
  const max = typeof schema["maxLength"] === "number" ? schema["maxLength"] : undefined
  const min = typeof schema["minLength"] === "number" ? schema["minLength"] : 0
  const cut = max === undefined ? s : s.slice(0, max)
  return cut.length >= min ? cut : cut.padEnd(min, ".")
}

const fillString = (schema: JsonSchema, key: string, text: string): string => {
  const k = key.toLowerCase()
  const all = sentences(text)
  const pick = (): string => {
    if (/e-?mail/.test(k)) return text.match(/[\w.+-]+@[\w-]+\.[\w.]+/)?.[0] ?? ""
    if (/date|when|deadline/.test(k)) return text.match(/\d{4}-\d{2}-\d{2}/)?.[0] ?? ""
    if (/name|company|customer|client|user|author|person|vendor|who/.test(k)) return capitalised(text)[0] ?? ""
    if (/title|subject|headline|topic/.test(k)) return (all[0] ?? "").split(/\s+/).slice(0, 8).join(" ")
    if (/summary|description|abstract|overview|brief|reason|rationale|explanation/.test(k)) {
      return all.slice(0, 2).join(" ")
    }
    return all[0] ?? ""
  }
  return clampLength(pick(), schema)
}

const fillNumber = (schema: JsonSchema, key: string, text: string): number => {
  const near = key === "" ? undefined : new RegExp(`${spaced(key).split(" ")[0]}\\D{0,30}(-?\\d+(?:[.,]\\d+)*)`, "i")
    .exec(text)?.[1]
  let n = near !== undefined ? Number(near.replace(/,/g, "")) : numbers(text)[0] ?? 0
  if (schema["type"] === "integer") n = Math.round(n)
  if (typeof schema["minimum"] === "number") n = Math.max(n, schema["minimum"])
  if (typeof schema["maximum"] === "number") n = Math.min(n, schema["maximum"])
  return n
}

const fill = (root: JsonSchema, node: JsonSchema, key: string, text: string): unknown => {
  const schema = resolveRef(root, node)
  if ("const" in schema) return schema["const"]
  if (Array.isArray(schema["enum"])) return choose(schema["enum"], text)
  const alternatives: Array<JsonSchema> | undefined = schema["anyOf"] ?? schema["oneOf"]
  if (Array.isArray(alternatives)) {
    const resolved = alternatives.map((a) => resolveRef(root, a))
    const literals = resolved.flatMap((a) => ("const" in a ? [a["const"]] : Array.isArray(a["enum"]) ? a["enum"] : []))
    if (literals.length === resolved.length) return choose(literals, text)
    const first = resolved.find((a) => a["type"] !== "null") ?? resolved[0]!
    return fill(root, first, key, text)
  }
  switch (schema["type"]) {
    case "string":
      return fillString(schema, key, text)
    case "number":
    case "integer":
      return fillNumber(schema, key, text)
    case "boolean":
      return key !== "" && mentions(key, text) > 0
    case "null":
      return null
    case "array": {
      const min = typeof schema["minItems"] === "number" ? schema["minItems"] : 0
      const max = typeof schema["maxItems"] === "number" ? schema["maxItems"] : 5
      const items: JsonSchema = resolveRef(root, schema["items"] ?? {})
      if (items["type"] === "string" && items["enum"] === undefined) {
        const found = /name|people|companies|entities/.test(key.toLowerCase())
          ? capitalised(text)
          : keywords(text, max)
        const list = found.slice(0, max)
        while (list.length < min) list.push(`item ${list.length + 1}`)
        return list
      }
      return Array.from({ length: Math.max(min, 1) }, () => fill(root, items, key, text)).slice(0, max)
    }
    default: {
      const properties: Record<string, JsonSchema> = schema["properties"] ?? {}
      const out: Record<string, unknown> = {}
      for (const [name, property] of Object.entries(properties)) out[name] = fill(root, property, name, text)
      return out
    }
  }
}
