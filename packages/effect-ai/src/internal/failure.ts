/**
 * `@effect/ai` errors as Trellis's. The HTTP status decides the class where the server answered, whatever its body:
 * 429 is `RateLimited` (with its Retry-After), 401 and 403 `AuthenticationError`, 5xx `ServerError`, another error
 * status `BadRequest`, none of them billed; a success status with a body that cannot be read is `MalformedOutput`,
 * billed. Each failure says whether its request may have been billed (see `LlmError.Sent`), and every text taken from
 * it is scrubbed of the configured secrets by their value, then of anything shaped like a key.
 */
import type * as AiError from "@effect/ai/AiError"
import { LlmError, Provider } from "@trellis/llm"
import type { Answer } from "./observed.js"

/** A failure and whether the request that met it may have been billed. */
export interface Failure {
  readonly error: LlmError.LlmError
  readonly billable: boolean
}

/** The message of an error body as providers send it (`{ "error": { "message": ... } }`), else the body itself. */
export const bodyMessage = (body: string | undefined): string | undefined => {
  if (body === undefined || body.length === 0) return undefined
  try {
    const parsed = JSON.parse(body)
    const message = parsed?.error?.message ?? parsed?.message
    return typeof message === "string" ? message : body
  } catch {
    return body
  }
}

const innermost = (error: unknown): unknown => {
  let current = error
  for (let depth = 0; depth < 10; depth++) {
    const cause = (current as { readonly cause?: unknown } | undefined)?.cause
    if (cause === undefined || cause === null || typeof cause !== "object") break
    current = cause
  }
  return current
}

// Failures to connect at all: nothing reached a server, so nothing can have been billed.
const neverConnected = new Set(["ECONNREFUSED", "ENOTFOUND", "EAI_AGAIN", "EHOSTUNREACH", "ENETUNREACH", "UND_ERR_CONNECT_TIMEOUT"])

// The body a schema could not decode, as the parse error holds it: the JSON the server sent.
const undecoded = (error: AiError.MalformedOutput): string | undefined => {
  const issue = (error.cause as { readonly issue?: { readonly actual?: unknown } } | undefined)?.issue
  if (issue === undefined || !("actual" in issue)) return undefined
  try {
    return typeof issue.actual === "string" ? issue.actual : JSON.stringify(issue.actual)
  } catch {
    return undefined
  }
}

/**
 * Maps what a call of the model failed with. `answer` is the HTTP answer the call's request met, as far as its span
 * said; `scrub` removes the configured secrets by their value, before the text is cut to one line.
 */
export const failureOf = (provider: string, scrub: (text: string) => string) =>
(error: AiError.AiError, answer: Answer): Failure => {
  const clean = (text: string) => Provider.errorDetail(scrub(text))
  // An answer with an error status: the server did not do the work, and does not bill it.
  const refused = (status: number, detail: string, headers: Readonly<Record<string, string | undefined>>): Failure => {
    if (status === 401 || status === 403) {
      return { error: new LlmError.AuthenticationError({ provider, status, detail }), billable: false }
    }
    if (status === 429) {
      return { error: new LlmError.RateLimited({ provider, retryAfter: Provider.retryAfter(headers), detail }), billable: false }
    }
    if (status >= 500) return { error: new LlmError.ServerError({ provider, status, detail }), billable: false }
    return { error: new LlmError.BadRequest({ provider, status, detail }), billable: false }
  }
  // An answer with a success status that could not be read: the server did the work, and bills it.
  const malformed = (detail: string): Failure => ({
    error: new LlmError.MalformedOutput({ provider, text: "", detail: clean(`the answer could not be read: ${detail}`), attempts: 1 }),
    billable: true
  })
  const isSuccess = (status: number) => status >= 200 && status < 300
  switch (error._tag) {
    case "HttpRequestError": {
      const root = innermost(error)
      const code = (root as { readonly code?: unknown } | undefined)?.code
      const reason = root !== error && root instanceof Error ? ` (${root.message})` : ""
      return {
        error: new LlmError.ServerError({
          provider,
          status: undefined,
          detail: clean(`${error.reason}: ${error.description ?? "the request failed"}${reason}`)
        }),
        // Only a transport failure can come after the request left; a connection never made costs nothing.
        billable: error.reason === "Transport" && !(typeof code === "string" && neverConnected.has(code))
      }
    }
    case "HttpResponseError": {
      // Whether the body was read or not ("Decode": plain text, HTML), the status says what the answer was.
      const status = error.response.status
      const said = bodyMessage(error.body) ?? error.description ?? `HTTP ${status}`
      return isSuccess(status) ? malformed(said) : refused(status, clean(said), error.response.headers)
    }
    case "MalformedOutput": {
      // An error body of another shape than the provider's fails to decode too: its status, if the span said it,
      // tells a refusal from an answer.
      const body = undecoded(error)
      if (answer.status !== undefined && !isSuccess(answer.status)) {
        return refused(answer.status, clean(bodyMessage(body) ?? `HTTP ${answer.status}`), answer.headers)
      }
      return malformed(error.description ?? (error.cause instanceof Error ? error.cause.message : body ?? "unknown shape"))
    }
    case "MalformedInput":
      return {
        error: new LlmError.InvalidRequest({ provider, detail: clean(error.description ?? "the request could not be encoded") }),
        billable: false
      }
    case "UnknownError":
      return {
        error: new LlmError.ServerError({ provider, status: undefined, detail: clean(error.description ?? error.message) }),
        billable: true
      }
  }
}

/** The same error, carrying the one request the call sent. */
export const withSent = (error: LlmError.LlmError, billable: boolean): LlmError.LlmError =>
  LlmError.withSent(error, { requests: 1, billable: billable ? 1 : 0 })
