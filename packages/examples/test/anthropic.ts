import { Anthropic } from "@trellis/test-servers"

/** The usage the local Anthropic server reports for each call of the document pipeline. */
export const usagePerCall = { input_tokens: 100, output_tokens: 10 }

/**
 * Answers the document pipeline's calls as a model would, by what each asks: the extraction and the classification
 * by the JSON Schema in their instructions, the brief otherwise.
 */
export const documentAnswers: Anthropic.Handler = (request, res) =>
  Anthropic.answer(request, res, { content: documentReply(Anthropic.textOf(request)), usage: usagePerCall })

/**
 * What a model answers to a call of the document pipeline whose text is `text`: the extraction and the
 * classification by the JSON Schema in their instructions, the brief otherwise.
 */
export const documentReply = (text: string): string =>
  !text.includes("Answer with one JSON document")
    ? "Renew before January."
    : text.includes("\"category\"")
    ? "{\"category\":\"contract\"}"
    : "{\"title\":\"Supply contract\",\"company\":\"Fabrikam Logistics\",\"summary\":\"A renewal.\",\"topics\":[]}"
