import { describe, expect, it } from "@effect/vitest"
import { Span } from "@trellis/core"
import { Context, Effect, Exit, Option, TestClock, Tracer } from "effect"

const open = (name: string, options?: Span.Options) =>
  Effect.withFiberRuntime<Tracer.Span>((fiber) => Effect.succeed(Span.unsafeMake(fiber, name, options)))

const parentName = (span: Tracer.Span) =>
  Option.getOrUndefined(Option.map(span.parent, (p) => (p._tag === "Span" ? p.name : "external")))

describe("Span", () => {
  it.effect("opens under the native tracer the span Effect.makeSpan would, and ends it as Effect would", () =>
    Effect.gen(function*() {
      yield* TestClock.adjust("1 second")
      const ours = yield* open("call", { kind: "client", attributes: { model: "m", note: "mine" } })
      const effects = yield* Effect.makeSpan("call", { kind: "client", attributes: { model: "m", note: "mine" } })
      for (const span of [ours, effects]) {
        expect(span.name).toBe("call")
        expect(span.kind).toBe("client")
        expect(parentName(span)).toBe("outer")
        expect(span.spanId).toMatch(/^[0-9a-f]{16}$/)
        expect(span.status).toEqual({ _tag: "Started", startTime: BigInt(1e9) })
      }
      expect(ours.traceId).toBe(effects.traceId)
      // The span's attributes win over annotations of the same name, as with `Effect.makeSpan`.
      expect(Object.fromEntries(ours.attributes)).toEqual(Object.fromEntries(effects.attributes))
      expect(Object.fromEntries(ours.attributes)).toEqual({ model: "m", note: "mine", run: "r1" })

      yield* TestClock.adjust("2 seconds")
      const exit = Exit.succeed(42)
      yield* Effect.withFiberRuntime<void>((fiber) => Effect.sync(() => Span.unsafeEnd(fiber, ours, exit)))
      ours.attribute("tokens", 7)
      expect(ours.status).toEqual({ _tag: "Ended", startTime: BigInt(1e9), endTime: BigInt(3e9), exit })
      expect(ours.attributes.get("tokens")).toBe(7)
    }).pipe(
      Effect.withSpan("outer"),
      Effect.annotateSpans({ run: "r1", note: "annotation" })
    ))

  it.effect("is the parent of the spans opened in the work it covers", () =>
    Effect.gen(function*() {
      const span = yield* open("call")
      const child = yield* Effect.makeSpan("child").pipe(Effect.withParentSpan(span))
      expect(parentName(child)).toBe("call")
      expect(child.traceId).toBe(span.traceId)
      expect(span.kind).toBe("internal")
    }))

  it.effect("becomes the current span of the work given the context it sets, until the outer one is put back", () =>
    Effect.gen(function*() {
      const seen = yield* Effect.withFiberRuntime<[string | undefined, string | undefined]>((fiber) => {
        const span = Span.unsafeMake(fiber, "call")
        const outer = fiber.currentContext
        const name = Effect.map(Effect.option(Effect.currentSpan), (s) => Option.getOrUndefined(s)?.name)
        return Effect.flatMap(
          Span.unsafeSetContext(fiber, Context.add(outer, Tracer.ParentSpan, span), name),
          (inside) => Span.unsafeSetContext(fiber, outer, Effect.map(name, (after) => [inside, after]))
        )
      })
      expect(seen).toEqual(["call", "outer"])
    }).pipe(Effect.withSpan("outer")))
})
