import { Tracing } from "@trellis/test-servers"
import { Effect, Layer, Option, type Tracer } from "effect"

export const recordingTracer = Tracing.recordingTracer
export const capturingLogger = Tracing.capturingLogger

/** The name of a span's parent, if it is a span. */
export const parentName = (span: Tracer.Span): string | undefined =>
  Option.getOrUndefined(Option.flatMap(span.parent, (p) => (p._tag === "Span" ? Option.some(p.name) : Option.none())))

export const withTracer = (tracer: Tracer.Tracer) => <A, E, R>(self: Effect.Effect<A, E, R>) =>
  Effect.provide(self, Layer.setTracer(tracer))
