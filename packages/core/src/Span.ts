/**
 * Spans for code that opens one per call on a hot path, as the language model layer does: opened as
 * `Effect.makeSpan` opens them (same tracer, parent, links, annotations), without its stack capture, and, under
 * Effect's native tracer (no exporter installed), holding next to nothing until something reads them.
 *
 * ```ts
 * Effect.withFiberRuntime((fiber) => {
 *   const span = Span.unsafeMake(fiber, "llm.generate", { kind: "client", attributes: { "gen_ai.request.model": model } })
 *   const outer = fiber.currentContext
 *   return Effect.onExit(
 *     Span.unsafeSetContext(fiber, Context.add(outer, Tracer.ParentSpan, span), work),
 *     (exit) => Span.unsafeSetContext(fiber, outer, Effect.sync(() => Span.unsafeEnd(fiber, span, exit)))
 *   )
 * })
 * ```
 *
 * @since 0.1.0
 */
import * as Chunk from "effect/Chunk"
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import type * as Exit from "effect/Exit"
import type * as Fiber from "effect/Fiber"
import * as FiberRef from "effect/FiberRef"
import * as HashMap from "effect/HashMap"
import type * as Tracer from "effect/Tracer"
import { nativeTracer, open, parentOf } from "./internal/span.js"

/**
 * Options of {@link unsafeMake}.
 *
 * @since 0.1.0
 */
export interface Options {
  readonly kind?: Tracer.SpanKind | undefined
  /** The span's attributes; the object becomes the span's own, so pass a fresh one. */
  readonly attributes?: Record<string, unknown> | undefined
}

/**
 * Opens a span, the child of the fiber's current span. Making it the current span of the work it covers, and
 * ending it, is the caller's part. With tracing turned off it is a span that nothing exports.
 *
 * @since 0.1.0
 */
export const unsafeMake = (
  fiber: Fiber.RuntimeFiber<unknown, unknown>,
  name: string,
  options: Options = {}
): Tracer.Span => {
  const enabled = fiber.getFiberRef(FiberRef.currentTracerEnabled)
  const annotations = fiber.getFiberRef(FiberRef.currentTracerSpanAnnotations)
  return open(
    enabled ? fiber.currentTracer : nativeTracer,
    name,
    parentOf(fiber.currentSpan),
    options.kind ?? "internal",
    options.attributes ?? {},
    Chunk.toReadonlyArray(fiber.getFiberRef(FiberRef.currentTracerSpanLinks)),
    HashMap.size(annotations) === 0 ? undefined : annotations,
    unsafeNow(fiber)
  )
}

/**
 * Ends a span opened by {@link unsafeMake} on the same fiber.
 *
 * @since 0.1.0
 */
export const unsafeEnd = (
  fiber: Fiber.RuntimeFiber<unknown, unknown>,
  span: Tracer.Span,
  exit: Exit.Exit<unknown, unknown>
): void => span.end(unsafeNow(fiber), exit)

/**
 * Sets the context of `fiber`, the fiber running this code, then runs `next`: how a span opened with
 * {@link unsafeMake} becomes the current one (a context with it as `Tracer.ParentSpan`), and how the previous
 * context is put back. Effect's own fibers set it in place, which saves the effects of `FiberRef.set`; any other
 * fiber gets `FiberRef.set`.
 *
 * @since 0.1.0
 */
export const unsafeSetContext = <A, E, R>(
  fiber: Fiber.RuntimeFiber<unknown, unknown>,
  context: Context.Context<never>,
  next: Effect.Effect<A, E, R>
): Effect.Effect<A, E, R> => {
  const settable = fiber as Partial<{ setFiberRef(ref: FiberRef.FiberRef<Context.Context<never>>, value: unknown): void }>
  if (typeof settable.setFiberRef !== "function") return Effect.zipRight(FiberRef.set(FiberRef.currentContext, context), next)
  settable.setFiberRef(FiberRef.currentContext, context)
  return next
}

// As Effect does: spans carry times only while the fiber's tracer timing is on.
const unsafeNow = (fiber: Fiber.RuntimeFiber<unknown, unknown>): bigint =>
  fiber.getFiberRef(FiberRef.currentTracerTimingEnabled)
    ? Context.get(fiber.currentDefaultServices, Clock.Clock).unsafeCurrentTimeNanos()
    : BigInt(0)
