/**
 * AI SDK errors as Trellis's: the HTTP status decides the class where there is one, each failure says whether its
 * request may have been billed (see `LlmError.Sent`), and every text taken from it is scrubbed of the configured
 * secrets by their value, then of anything shaped like a key.
 */
import { APICallError } from "@ai-sdk/provider"
import { LlmError, Provider } from "@trellis/llm"

/** A failure and whether the request that met it may have been billed. */
export interface Failure {
  readonly error: LlmError.LlmError
  readonly billable: boolean
}

const innermost = (error: unknown): unknown => {
  let current = error
  for (let depth = 0; depth < 10 && current instanceof Error && current.cause instanceof Error; depth++) {
    current = current.cause
  }
  return current
}

// Failures to connect at all: nothing reached a server, so nothing can have been billed.
const neverConnected = new Set(["ECONNREFUSED", "ENOTFOUND", "EAI_AGAIN", "EHOSTUNREACH", "ENETUNREACH", "UND_ERR_CONNECT_TIMEOUT"])

// What an error says: its message, or the JSON of an error object sent as data (a stream's error part).
const describe = (error: unknown): string => {
  if (error instanceof Error) return error.message
  if (typeof error === "object" && error !== null) {
    const inner = (error as { readonly error?: unknown }).error ?? error
    const message = (inner as { readonly message?: unknown }).message
    if (typeof message === "string") return message
    try {
      return JSON.stringify(error) ?? String(error)
    } catch {
      return String(error)
    }
  }
  return String(error)
}

// The message of an error body as providers send it (`{ "error": { "message": ... } }`), else the body itself.
const bodyMessage = (body: string | undefined): string | undefined => {
  if (body === undefined || body.trim().length === 0) return undefined
  try {
    const parsed = JSON.parse(body)
    const message = parsed?.error?.message ?? parsed?.message
    return typeof message === "string" ? message : body
  } catch {
    return body
  }
}

// The SDK's own checks of an answer: a body that is not the API's JSON, a part of the wrong shape.
const unreadable = /JSONParseError|TypeValidationError|InvalidResponseDataError|EmptyResponseBodyError|NoContentGeneratedError/

/**
 * Maps what a call of the model failed with. `scrub` removes the configured secrets by their value; it runs before
 * the text is cut to one line, so no part of a secret is left at the cut.
 */
export const failureOf = (provider: string, scrub: (text: string) => string) => (error: unknown): Failure => {
  const clean = (text: string) => Provider.errorDetail(scrub(text))
  const root = innermost(error)
  // Why, when the error wraps another: a refused connection, the shape the answer broke.
  const reason = root instanceof Error && root !== error ? ` (${root.message})` : ""
  const malformed = (): Failure => ({
    error: new LlmError.MalformedOutput({
      provider,
      text: "",
      detail: clean(`the answer could not be read: ${describe(error)}${reason}`),
      attempts: 1
    }),
    billable: true
  })
  if (APICallError.isInstance(error)) {
    const status = error.statusCode
    if (status === undefined) {
      // The SDK wraps a failed fetch ("Cannot connect to API"); the innermost cause says which failure it was.
      const code = (root as { readonly code?: unknown } | undefined)?.code
      return {
        error: new LlmError.ServerError({ provider, status: undefined, detail: clean(describe(error) + reason) }),
        billable: !(typeof code === "string" && neverConnected.has(code))
      }
    }
    // A success status: the server did the work and bills it, whatever the SDK could not read in the answer (a
    // body that is not the API's JSON, usage of the wrong shape, a proxy's HTML page).
    if (status >= 200 && status < 300) return malformed()
    // An error status: the server did not do the work, and does not bill it. A body the SDK could not read as the
    // API's error (plain text, another provider's JSON) leaves it only the status text: the body says more.
    const detail = clean(error.data === undefined ? bodyMessage(error.responseBody) ?? describe(error) : describe(error))
    if (status === 401 || status === 403) {
      return { error: new LlmError.AuthenticationError({ provider, status, detail }), billable: false }
    }
    if (status === 429) {
      return {
        error: new LlmError.RateLimited({ provider, retryAfter: Provider.retryAfter(error.responseHeaders), detail }),
        billable: false
      }
    }
    if (status >= 500) return { error: new LlmError.ServerError({ provider, status, detail }), billable: false }
    return { error: new LlmError.BadRequest({ provider, status, detail }), billable: false }
  }
  if (unreadable.test(error instanceof Error ? error.name : "")) return malformed()
  // An error event inside a stream (Anthropic's "overloaded_error" mid-answer), or anything else without a status.
  return { error: new LlmError.ServerError({ provider, status: undefined, detail: clean(describe(error)) }), billable: true }
}

/** The same error, carrying the one request the call sent. */
export const withSent = (error: LlmError.LlmError, billable: boolean): LlmError.LlmError =>
  LlmError.withSent(error, { requests: 1, billable: billable ? 1 : 0 })
