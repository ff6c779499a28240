/**
 * The typed failures of a language model call. Every provider maps its own errors to these, so a pipeline can
 * retry, route or report on them without knowing which provider ran.
 *
 * @since 0.1.0
 */
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"

/**
 * The requests a call sent before it failed, on the error that ended it, so what they may cost is counted.
 *
 * A request the server refused with an error status (429, 5xx, 4xx) counts as a request that costs nothing:
 * providers bill the work they did, and an error status says none was done. A request that ended without a status
 * (a timeout, an abort, a lost connection) may have been read and processed all the same, and one answered with a
 * body that could not be used was: each of those counts as billed for its input, estimated. A connection that was
 * never made (refused, an unknown host) counts as a request that costs nothing too.
 *
 * The error of a provider that does not set it counts as one request, billed for its input when it is an
 * `LlmTimeout`, free otherwise. Errors raised before anything was sent (`InvalidRequest`, `UnpricedModel`) or after
 * the call was settled (`generateObject`'s `MalformedOutput` when the repairs run out) never carry it.
 *
 * @since 0.1.0
 */
export interface Sent {
  /** Every request sent for the call, retries included: a whole number from 0 to 10,000. */
  readonly requests: number
  /**
   * Of those, the ones that may have been billed for their input: ended without an error status (a timeout, an
   * abort, a lost connection), or answered with a body that could not be used. At most `requests`.
   */
  readonly billable: number
}

/**
 * The provider refused the credentials (HTTP 401 or 403). Never carries the key.
 *
 * @since 0.1.0
 */
export class AuthenticationError extends Data.TaggedError("AuthenticationError")<{
  readonly provider: string
  readonly status: number
  readonly detail: string
  /** The requests the call sent, when the provider says: see {@link Sent}. */
  readonly sent?: Sent | undefined
}> {
  override get message(): string {
    return `${this.provider} refused the credentials (HTTP ${this.status}): ${this.detail}`
  }
}

/**
 * The provider rejected the request itself (HTTP 400, 404, 422...): a wrong model name, a bad parameter.
 *
 * @since 0.1.0
 */
export class BadRequest extends Data.TaggedError("BadRequest")<{
  readonly provider: string
  readonly status: number
  readonly detail: string
  /** The requests the call sent, when the provider says: see {@link Sent}. */
  readonly sent?: Sent | undefined
}> {
  override get message(): string {
    return `${this.provider} rejected the request (HTTP ${this.status}): ${this.detail}`
  }
}

/**
 * The provider asked to slow down (HTTP 429), and retries did not get through.
 *
 * @since 0.1.0
 */
export class RateLimited extends Data.TaggedError("RateLimited")<{
  readonly provider: string
  readonly retryAfter: Duration.Duration | undefined
  readonly detail: string
  /** The requests the call sent, when the provider says: see {@link Sent}. */
  readonly sent?: Sent | undefined
}> {
  override get message(): string {
    const wait = this.retryAfter === undefined ? "" : `, retry after ${Duration.format(this.retryAfter)}`
    return `${this.provider} rate limited the call${wait}: ${this.detail}`
  }
}

/**
 * A call (one attempt) took longer than its timeout.
 *
 * @since 0.1.0
 */
export class LlmTimeout extends Data.TaggedError("LlmTimeout")<{
  readonly provider: string
  readonly timeout: Duration.Duration
  /** The requests the call sent, when the provider says: see {@link Sent}. */
  readonly sent?: Sent | undefined
}> {
  override get message(): string {
    return `${this.provider} did not answer within ${Duration.format(this.timeout)}`
  }
}

/**
 * The provider withheld the answer under its content policy.
 *
 * @since 0.1.0
 */
export class ContentFiltered extends Data.TaggedError("ContentFiltered")<{
  readonly provider: string
  readonly detail: string
  /** The requests the call sent, when the provider says: see {@link Sent}. */
  readonly sent?: Sent | undefined
}> {
  override get message(): string {
    return `${this.provider} filtered the answer: ${this.detail}`
  }
}

/**
 * The provider failed (HTTP 5xx) or could not be reached (`status` is undefined for a connection failure).
 *
 * @since 0.1.0
 */
export class ServerError extends Data.TaggedError("ServerError")<{
  readonly provider: string
  readonly status: number | undefined
  readonly detail: string
  /** The requests the call sent, when the provider says: see {@link Sent}. */
  readonly sent?: Sent | undefined
}> {
  override get message(): string {
    return this.status === undefined
      ? `${this.provider} could not be reached: ${this.detail}`
      : `${this.provider} failed (HTTP ${this.status}): ${this.detail}`
  }
}

/**
 * The answer could not be used: a body that is not the protocol's JSON, or (from `generateObject`) text that
 * never decoded to the schema within the allowed repairs. `text` keeps the last raw answer.
 *
 * @since 0.1.0
 */
export class MalformedOutput extends Data.TaggedError("MalformedOutput")<{
  readonly provider: string
  readonly text: string
  readonly detail: string
  readonly attempts: number
  /** The requests the call sent, when the provider says: see {@link Sent}. */
  readonly sent?: Sent | undefined
}> {
  override get message(): string {
    return `${this.provider} gave an answer that could not be used after ${this.attempts} attempt(s): ${this.detail}`
  }
}

/**
 * A call under a budget named a model with no known price, so its worst case could not be counted: it was refused
 * before anything was sent. Price it (`Pricing.layer({ overrides })`), or give it zero prices to say it is free.
 *
 * @since 0.1.0
 */
export class UnpricedModel extends Data.TaggedError("UnpricedModel")<{
  readonly provider: string
  readonly model: string
}> {
  override get message(): string {
    return `No price is known for model "${this.model}", so a call to it cannot be held to the budget and was not ` +
      `sent. Price it with Pricing.layer({ overrides: { "${this.model}": { inputPerMillion, outputPerMillion } } }), ` +
      `or give it zero prices if it is free.`
  }
}

/**
 * A request was refused before it was sent because one of its settings cannot be right: a `maxTokens` that is not a
 * whole number from 1 to 10 million, a `temperature` that is not a finite number from 0 to 2.
 *
 * @since 0.1.0
 */
export class InvalidRequest extends Data.TaggedError("InvalidRequest")<{
  readonly provider: string
  readonly detail: string
}> {
  override get message(): string {
    return `A request to ${this.provider} was not sent: ${this.detail}`
  }
}

/**
 * A replayed recording (`Fixtures.replay`) holds no answer for a request: `request` names it (its key, model and
 * last message), `nearest` says which recorded request comes closest and where it differs, when the file holds any.
 * Nothing was sent.
 *
 * @since 0.3.0
 */
export class NoRecording extends Data.TaggedError("NoRecording")<{
  readonly provider: string
  readonly file: string
  readonly request: string
  readonly nearest: string | undefined
  /** Always no request: a replay sends nothing. */
  readonly sent?: Sent | undefined
}> {
  override get message(): string {
    const nearest = this.nearest === undefined ? "it holds no recorded request" : `the nearest one ${this.nearest}`
    return `${this.file} has no recorded answer for request ${this.request}; ${nearest}`
  }
}

/**
 * Any failure of a language model call.
 *
 * @since 0.1.0
 */
export type LlmError =
  | AuthenticationError
  | BadRequest
  | RateLimited
  | LlmTimeout
  | ContentFiltered
  | ServerError
  | MalformedOutput
  | UnpricedModel
  | InvalidRequest
  | NoRecording

/**
 * The same error, carrying the requests the call sent (for a provider of one's own that counts them). Errors raised
 * before anything is sent (`UnpricedModel`, `InvalidRequest`, `NoRecording`) are returned as they are.
 *
 * @since 0.2.0
 */
export const withSent = (error: LlmError, sent: Sent): LlmError => {
  switch (error._tag) {
    case "AuthenticationError":
      return new AuthenticationError({ ...error, sent })
    case "BadRequest":
      return new BadRequest({ ...error, sent })
    case "RateLimited":
      return new RateLimited({ ...error, sent })
    case "LlmTimeout":
      return new LlmTimeout({ ...error, sent })
    case "ContentFiltered":
      return new ContentFiltered({ ...error, sent })
    case "ServerError":
      return new ServerError({ ...error, sent })
    case "MalformedOutput":
      return new MalformedOutput({ ...error, sent })
    case "UnpricedModel":
    case "InvalidRequest":
    case "NoRecording":
      return error
  }
}

/**
 * Whether a failure may pass if the same call is sent again: rate limits, timeouts and server failures.
 *
 * @since 0.1.0
 */
export const isTransient = (error: LlmError): boolean =>
  error._tag === "RateLimited" || error._tag === "LlmTimeout" || error._tag === "ServerError"
