/**
 * What a call's own spans see. The `@effect/ai` model and its HTTP client make spans of their own under the call's
 * `chat` span: `LanguageModel.generateText` ends with the provider's error (whose text holds what the server sent),
 * `http.client POST` holds the URL, headers and the answer's status, and the model's telemetry the model name the
 * server reported. Under a call, every span they make goes through a tracer that delegates to the application's,
 * with the configured secrets scrubbed from the span's name, attributes, events and the failure it ends with.
 *
 * The same tracer notes the status and headers of the HTTP answer, as the HTTP client records them on its span: an
 * `@effect/ai` provider that cannot read an error body (plain text, another provider's JSON) fails with
 * `MalformedOutput`, which says nothing of the status the server answered with. When tracing is turned off, no span
 * is made and nothing is noted.
 */
import * as Cause from "effect/Cause"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as Stream from "effect/Stream"
import * as Tracer from "effect/Tracer"

/** The HTTP answer to the call's request, as its span says; `status` is undefined until one arrived. */
export interface Answer {
  readonly status: number | undefined
  readonly headers: Readonly<Record<string, string>>
}

const statusAttribute = "http.response.status_code"
const headerAttribute = "http.response.header."

// A failure as text only: what it said, scrubbed, and nothing else it held (a body, a cause, a request).
class Scrubbed extends Error {
  constructor(original: unknown, scrub: (text: string) => string) {
    const tag = (original as { readonly _tag?: unknown } | null)?._tag
    super(scrub(original instanceof Error ? original.message : String(original)))
    this.name = typeof tag === "string" ? tag : original instanceof Error ? original.name : "Error"
    // The frames of the original, under the scrubbed message.
    const frames = original instanceof Error && typeof original.stack === "string"
      ? original.stack.split("\n").filter((line) => /^\s+at /.test(line))
      : []
    this.stack = scrub([`${this.name}: ${this.message}`, ...frames].join("\n"))
  }
}

const scrubbedCause = (cause: Cause.Cause<unknown>, scrub: (text: string) => string): Cause.Cause<unknown> =>
  Cause.match<Cause.Cause<unknown>, unknown>(cause, {
    onEmpty: Cause.empty,
    onFail: (error) => Cause.fail(new Scrubbed(error, scrub)),
    onDie: (defect) => Cause.die(new Scrubbed(defect, scrub)),
    onInterrupt: (fiberId) => Cause.interrupt(fiberId),
    onSequential: (left, right) => Cause.sequential(left, right),
    onParallel: (left, right) => Cause.parallel(left, right)
  })

// An attribute's value with its text scrubbed, in arrays and plain objects too (a few levels down).
const scrubbedValue = (value: unknown, scrub: (text: string) => string, depth = 0): unknown => {
  if (typeof value === "string") return scrub(value)
  if (depth > 4 || typeof value !== "object" || value === null) return value
  if (Array.isArray(value)) return value.map((item) => scrubbedValue(item, scrub, depth + 1))
  if (Object.getPrototypeOf(value) !== Object.prototype) return value
  return Object.fromEntries(Object.entries(value).map(([key, item]) => [scrub(key), scrubbedValue(item, scrub, depth + 1)]))
}

/**
 * A watch over one call: `effect` and `stream` run the call under the scrubbing tracer, `answer` is what its HTTP
 * answer was (the last one, if there were several).
 */
export const watch = (scrub: (text: string) => string) => {
  let status: number | undefined
  const headers: Record<string, string> = {}
  const note = (key: string, value: unknown) => {
    if (key === statusAttribute && typeof value === "number") status = value
    else if (key.startsWith(headerAttribute) && typeof value === "string") headers[key.slice(headerAttribute.length)] = value
  }

  const wrap = (tracer: Tracer.Tracer): Tracer.Tracer =>
    Tracer.make({
      span(name, parent, context, links, startTime, kind, options) {
        const span = tracer.span(scrub(name), parent, context, links, startTime, kind, options)
        // The span itself is kept (its identity and class matter to the tracer it came from, as a parent of others):
        // only its methods that take text are put behind the scrubber.
        const { attribute, end, event } = span
        const methods: Pick<Tracer.Span, "attribute" | "end" | "event"> = {
          attribute: (key, value) => {
            note(key, value)
            attribute.call(span, key, scrubbedValue(value, scrub))
          },
          event: (name, time, attributes) =>
            event.call(
              span,
              scrub(name),
              time,
              attributes === undefined
                ? undefined
                : Object.fromEntries(Object.entries(attributes).map(([key, value]) => [key, scrubbedValue(value, scrub)]))
            ),
          end: (time, exit) =>
            end.call(span, time, Exit.isFailure(exit) ? Exit.failCause(scrubbedCause(exit.cause, scrub)) : exit)
        }
        try {
          return Object.assign(span, methods)
        } catch {
          // A span that cannot take them (frozen) is left as it is.
          return span
        }
      },
      context: (f, fiber) => tracer.context(f, fiber)
    })

  return {
    effect: <A, E, R>(self: Effect.Effect<A, E, R>): Effect.Effect<A, E, R> =>
      Effect.tracerWith((tracer) => Effect.withTracer(self, wrap(tracer))),
    stream: <A, E, R>(self: Stream.Stream<A, E, R>): Stream.Stream<A, E, R> =>
      Stream.unwrapScoped(Effect.tracerWith((tracer) => Effect.as(Effect.withTracerScoped(wrap(tracer)), self))),
    answer: (): Answer => ({ status, headers: { ...headers } })
  }
}
