import { Effect, Layer, Logger, Option, Tracer } from "effect"

/** A tracer that keeps every span it made, to assert on names and attributes. */
export const recordingTracer = () => {
  const spans: Array<Tracer.Span> = []
  let next = 0
  const tracer = Tracer.make({
    span(name, parent, context, links, startTime, kind) {
      const attributes = new Map<string, unknown>()
      const span: Tracer.Span = {
        _tag: "Span",
        name,
        spanId: `span${next++}`,
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
  return { spans, tracer, named: (name: string) => spans.filter((s) => s.name === name) }
}

/** A logger that keeps every message, to assert on warnings. */
export const capturingLogger = () => {
  const lines: Array<string> = []
  const logger = Logger.make(({ logLevel, message }) => {
    lines.push(`${logLevel.label} ${Array.isArray(message) ? message.join(" ") : String(message)}`)
  })
  return { lines, layer: Logger.replace(Logger.defaultLogger, logger) }
}

/** The name of a span's parent, if it is a span. */
export const parentName = (span: Tracer.Span): string | undefined =>
  Option.getOrUndefined(Option.flatMap(span.parent, (p) => (p._tag === "Span" ? Option.some(p.name) : Option.none())))

export const withTracer = (tracer: Tracer.Tracer) => <A, E, R>(self: Effect.Effect<A, E, R>) =>
  Effect.provide(self, Layer.setTracer(tracer))
