/**
 * The document pipeline: extract -> classify -> fetch_market || fetch_user -> combine, with the key point of each
 * section read at the same time (a map over the document's sections, known only once the document is).
 *
 * The language model only reads and writes text inside steps (extraction, classification, the brief); code
 * decides which steps run, in what order, and routes short documents to a fast pipeline and long ones to the
 * thorough one.
 */
import { Cost, ForEach, Pipeline, Router, Step } from "@trellis/core"
import { LanguageModel } from "@trellis/llm"
import { Context, Effect, Schema } from "effect"
import { categories, findAccount, market } from "./dataset.js"

/** The document a run works on: the pipeline's input, provided as an ordinary Effect service. */
export class Document extends Context.Tag("@trellis/examples/Document")<Document, { readonly text: string }>() {}

/** What the extraction step reads out of the document. */
export const Extraction = Schema.Struct({
  title: Schema.String,
  company: Schema.String,
  summary: Schema.String,
  topics: Schema.Array(Schema.String).pipe(Schema.maxItems(5))
})

/** How the document is classified. */
export const Classification = Schema.Struct({
  category: Schema.Literal(...categories)
})

/** The document's text as a durable run stores it, so that a resumed run reads the same document. */
export const DocumentText = Schema.Struct({ text: Schema.String })

// The steps' output schemas: a durable run journals each step's output through its schema.
const MarketNote = Schema.Struct({ sector: Schema.String, outlook: Schema.String, benchmarkGrowthPercent: Schema.Number })

const Account = Schema.Struct({
  company: Schema.String,
  tier: Schema.Literal("enterprise", "growth", "starter"),
  owner: Schema.String,
  openTickets: Schema.Number
})

const Classified = Schema.Struct({ ...Extraction.fields, category: Classification.fields.category })

const extract = Step.make("extract", {
  retry: 1,
  output: Extraction,
  run: () =>
    Effect.flatMap(Document, (document) =>
      LanguageModel.generateObject(Extraction, {
        system: "Read the business document. Give its title, the company it is about, a two-sentence summary, " +
          "and up to five topics.",
        messages: [{ role: "user", content: document.text }],
        // A call reserves every output token it allows: ask for what a title, a summary and five topics need.
        maxTokens: 200
      })).pipe(Effect.map((answer) => answer.value))
})

const classify = Step.make("classify", {
  after: { extract },
  retry: 1,
  output: Classified,
  run: ({ extract }) =>
    Effect.flatMap(Document, (document) =>
      LanguageModel.generateObject(Classification, {
        system: `Classify the document as one of: ${categories.join(", ")}.`,
        messages: [{ role: "user", content: `${extract.title}\n${document.text}` }],
        maxTokens: 50
      })).pipe(Effect.map((answer) => ({ ...extract, category: answer.value.category })))
})

// The two look-ups depend only on the classification, so they run at the same time. Each passes on what the
// brief needs from it, so the brief depends on them alone: the seed's diamond.
const fetchMarket = Step.make("fetch_market", {
  after: { classify },
  output: Schema.Struct({ category: Classification.fields.category, note: MarketNote }),
  run: ({ classify }) => Effect.succeed({ category: classify.category, note: market[classify.category] })
})

const fetchUser = Step.make("fetch_user", {
  after: { classify },
  output: Schema.Struct({
    title: Schema.String,
    summary: Schema.String,
    company: Schema.String,
    account: Schema.NullOr(Account)
  }),
  run: ({ classify }) =>
    Effect.succeed({
      title: classify.title,
      summary: classify.summary,
      company: classify.company,
      account: findAccount(classify.company) ?? null
    })
})

/** The most sections a document is read in: past it, the last section holds the rest. */
export const maxSections = 6

/** A document's sections: its paragraphs, a long one cut every four lines, at most {@link maxSections}. */
export const sectionsOf = (text: string): ReadonlyArray<string> => {
  const pieces = text.split(/\n\s*\n/).flatMap((paragraph) => {
    const lines = paragraph.split("\n").map((line) => line.trim()).filter((line) => line.length > 0)
    const cut: Array<string> = []
    for (let i = 0; i < lines.length; i += 4) cut.push(lines.slice(i, i + 4).join(" "))
    return cut
  })
  return pieces.length <= maxSections
    ? pieces
    : [...pieces.slice(0, maxSections - 1), pieces.slice(maxSections - 1).join(" ")]
}

// One call per section, each a step of the run of its own (`key_points[0]`...): seen, metered, retried and, in a
// durable run, journaled item by item. The sections come from the document itself, so a resumed run finds the same.
const keyPoints = ForEach.make("key_points", {
  items: () => Effect.map(Document, (document) => sectionsOf(document.text)),
  each: (section) =>
    Effect.map(
      LanguageModel.generate({
        system: "Give the key point of this section of a business document in one sentence.",
        messages: [{ role: "user", content: section }],
        // A sentence or two: a longer answer is cut at the limit, which the call reserves in full.
        maxTokens: 100
      }),
      (response) => response.text
    ),
  concurrency: 3,
  maxItems: maxSections,
  retry: 1,
  output: Schema.String
})

const combine = Step.make("combine", {
  after: { fetchMarket, fetchUser, keyPoints },
  output: Schema.Struct({
    category: Classification.fields.category,
    company: Schema.String,
    account: Schema.NullOr(Account),
    brief: Schema.String
  }),
  run: ({ fetchMarket, fetchUser, keyPoints }) =>
    Effect.map(
      LanguageModel.generate({
        system: "Write a short brief for the account owner: what the document says, the market context, " +
          "and what to do next.",
        messages: [{
          role: "user",
          content: [
            `Document (${fetchMarket.category}): ${fetchUser.title}. ${fetchUser.summary}`,
            `Market: ${fetchMarket.note.sector}. ${fetchMarket.note.outlook} ` +
            `Benchmark growth ${fetchMarket.note.benchmarkGrowthPercent} percent.`,
            fetchUser.account === null
              ? `Account: ${fetchUser.company} is not a customer yet.`
              : `Account: ${fetchUser.account.company}, ${fetchUser.account.tier} tier, ` +
                `owner ${fetchUser.account.owner}, ${fetchUser.account.openTickets} open tickets.`,
            `Key points: ${keyPoints.join(" ")}`
          ].join("\n")
        }],
        // A brief of two or three sentences.
        maxTokens: 120
      }),
      (response) => ({
        category: fetchMarket.category,
        company: fetchUser.company,
        account: fetchUser.account,
        brief: response.text
      })
    )
})

const quickBrief = Step.make("brief", {
  after: { extract },
  output: Schema.Struct({ company: Schema.String, account: Schema.NullOr(Account), brief: Schema.String }),
  run: ({ extract }) =>
    Effect.map(
      LanguageModel.generate({
        system: "Write a one-paragraph brief of the note and what to do next.",
        messages: [{ role: "user", content: `${extract.title}. ${extract.summary}` }],
        maxTokens: 150
      }),
      (response) => ({ company: extract.company, account: findAccount(extract.company) ?? null, brief: response.text })
    )
})

/** Options of the document pipelines. */
export interface Options {
  readonly budget?: Cost.Cost | undefined
}

const budgetOf = (options: Options) => (options.budget === undefined ? {} : { budget: options.budget })

/** The thorough pipeline: the seed's diamond. */
export const thorough = (options: Options = {}) =>
  Pipeline.make("document", { output: combine, concurrency: 4, timeout: "5 minutes", ...budgetOf(options) })

/** The fast pipeline: extraction and a brief, for short notes. */
export const fast = (options: Options = {}) =>
  Pipeline.make("document-fast", { output: quickBrief, timeout: "2 minutes", ...budgetOf(options) })

/** Documents shorter than this many words take the fast pipeline. */
export const shortDocumentWords = 60

/** Code picks the pipeline: short documents go the fast way, the rest the thorough way. */
export const router = (options: Options = {}) =>
  Router.make({
    route: Effect.map(Document, (document): "fast" | "thorough" =>
      document.text.split(/\s+/).filter((w) => w.length > 0).length < shortDocumentWords ? "fast" : "thorough"),
    routes: { fast: fast(options), thorough: thorough(options) }
  })
