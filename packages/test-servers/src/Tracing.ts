/**
 * What tests look at beside the servers: a tracer that keeps every span, a logger that keeps every line, and text
 * views of spans and errors, to assert on names and attributes or to look for a secret that must not be there.
 */
import { Cause, Exit, Logger, Tracer } from "effect"

/** A tracer that keeps every span it made; `text` gives what they hold (attributes, the failure each ended with). */
export const recordingTracer = () => {
  const spans: Array<Tracer.Span> = []
  const tracer = Tracer.make({
    span(name, parent, context, links, startTime, kind) {
      const attributes = new Map<string, unknown>()
      const span: Tracer.Span = {
        _tag: "Span",
        name,
        spanId: `span${spans.length}`,
        traceId: "trace",
        parent,
        context,
        status: { _tag: "Started", startTime },
        attributes,
        links,
        sampled: true,
        kind,
        end(endTime, exit) {
          ;(span as { status: Tracer.SpanStatus }).status = { _tag: "Ended", startTime, endTime, exit }
        },
        attribute(key, value) {
          attributes.set(key, value)
        },
        event() {},
        addLinks() {}
      }
      spans.push(span)
      return span
    },
    context: (f) => f()
  })
  const text = () =>
    spans.map((span) =>
      span.name + JSON.stringify([...span.attributes]) +
      (span.status._tag === "Ended" && Exit.isFailure(span.status.exit) ? Cause.pretty(span.status.exit.cause) : "")
    ).join("\n")
  return { spans, tracer, text, named: (name: string) => spans.filter((s) => s.name === name) }
}

/** A logger that keeps every message, to assert on warnings. */
export const capturingLogger = () => {
  const lines: Array<string> = []
  const logger = Logger.make(({ logLevel, message }) => {
    lines.push(`${logLevel.label} ${Array.isArray(message) ? message.join(" ") : String(message)}`)
  })
  return { lines, layer: Logger.replace(Logger.defaultLogger, logger) }
}

/** Everything an error holds as text: its message, its fields, and the pretty print of a failure with it. */
export const errorText = (error: { readonly message: string }): string =>
  [error.message, JSON.stringify({ ...error }), Cause.pretty(Cause.fail(error))].join("\n")

/** API keys that look like no `sk-...` key (Groq's, Mistral's), for tests that a key is never shown. */
export const oddKeys = ["gsk_live_abc123DEF456ghi789JKL", "mistral-XYZ0123456789abcdefQRS"] as const
