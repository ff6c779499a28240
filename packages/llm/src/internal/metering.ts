/**
 * Reserve-then-settle for model calls, and their spans, written once: the worst case is reserved in the current
 * ledger before anything is sent, and the reservation is settled to what the call used, however it ended. Outside
 * a ledger nothing is reserved and the call just runs.
 *
 * The reservation is made with interruption masked and the settlement always runs, so an interruption that arrives
 * while the money is being reserved still finds it settled; only the call itself is interruptible.
 */
import { type Cost, Ledger, type Usage } from "@trellis/core"
import * as Clock from "effect/Clock"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Exit from "effect/Exit"
import * as FiberRef from "effect/FiberRef"
import * as Option from "effect/Option"
import type * as Scope from "effect/Scope"
import * as Tracer from "effect/Tracer"
import { errorAttributes } from "./genai.js"

/** What one call holds in the ledger of its run, if it runs in one. */
type Hold = Option.Option<{ readonly ledger: Ledger.Service; readonly reservation: Ledger.Reservation }>

/** What a call reserves: its worst case, and the most an honest answer could be reported to cost. */
interface Bounds {
  readonly worstCase: Cost.Cost
  readonly ceiling: Cost.Cost
}

/** How a call is settled: what it used, and why its figures cannot be right, if they cannot. */
interface Settlement<A, E> {
  readonly usage: (exit: Exit.Exit<A, E>) => Usage.Usage
  readonly implausible: () => string | undefined
}

const reserve = (bounds: Bounds): Effect.Effect<Hold, Ledger.BudgetExceeded | Ledger.InvalidUsage> =>
  Effect.flatMap(Effect.serviceOption(Ledger.Ledger), (ledger) =>
    Option.isNone(ledger)
      ? Effect.succeed(Option.none())
      : Effect.map(
        ledger.value.reserve(bounds.worstCase, { ceiling: bounds.ceiling }),
        (reservation) => Option.some({ ledger: ledger.value, reservation })
      ))

const settle = <A, E>(settlement: Settlement<A, E>) => (hold: Hold, exit: Exit.Exit<A, E>) =>
  Option.isNone(hold)
    ? Effect.void
    : hold.value.ledger.settle(hold.value.reservation, settlement.usage(exit), { implausible: settlement.implausible() })

/**
 * Options of {@link meteredCall}: the call, what it may cost, how its answer is priced, and its span.
 */
export interface CallOptions<A, B, E, R> extends Bounds, Settlement<B, E> {
  /** The span of the call, opened as `Effect.withSpan` would open it, with these attributes. */
  readonly span: string
  readonly attributes: Record<string, unknown>
  /** The request itself: the only part that can be interrupted. */
  readonly call: Effect.Effect<A, E, R>
  /** Turns the provider's answer into the result, with its priced usage; fails when the answer cannot be used. */
  readonly price: (answer: A) => Effect.Effect<B, E>
  /** Attributes of a successful result, set on the span before it ends. */
  readonly annotate: (result: B) => Record<string, unknown>
}

/** What a call opened, to be closed when it ends. */
interface Opened {
  readonly hold: Hold
  readonly span: Tracer.Span
  /** The caller's context, put back when the call ends. */
  readonly outer: Context.Context<never>
}

/**
 * Runs a model call metered and traced, as one region masked against interruption: its span opened and the worst
 * case reserved (a refused reservation, `BudgetExceeded` or `InvalidUsage`, ends the span with it and nothing is
 * sent), the span made the current one, then only `call` interruptible; its answer priced with interruption masked
 * again (an interruption after the provider answered does not turn a priced answer into an estimate); and at its
 * end, however it ended, the reservation settled, the span ended (with the `error.type` of a failure) and the
 * caller's context put back.
 *
 * It is `Effect.withSpan` around `Effect.acquireUseRelease` written out as one region because, composed, they cost
 * too much for each call in flight: `withSpan` makes its span current with `Effect.locally` (a second
 * acquire-use-release, and a copy of the fiber's refs, held for the call's duration), measured at +5.3 KB of heap
 * per call in flight on top of a bare fiber, and the metering's acquire-use-release +2.0 KB more. As one region a
 * call holds one mask, one interruptible region and one continuation for its end, whichever way it ends: a whole
 * call in flight (request, span, reservation and all) measured 8.9 KB composed, 4.6 KB as one region.
 */
export const meteredCall = <A, B, E, R>(
  options: CallOptions<A, B, E, R>
): Effect.Effect<B, E | Ledger.BudgetExceeded | Ledger.InvalidUsage, R> =>
  Effect.uninterruptibleMask((restore) =>
    Effect.flatMap(open(options), (opened) =>
      Effect.flatMap(Effect.exit(Effect.flatMap(restore(options.call), options.price)), (exit) =>
        close(options, opened, exit)))
  )

/** Opens the span, reserves the worst case, and makes the span the current one. */
const open = <A, B, E, R>(
  options: CallOptions<A, B, E, R>
): Effect.Effect<Opened, Ledger.BudgetExceeded | Ledger.InvalidUsage> =>
  Effect.flatMap(
    Effect.makeSpan(options.span, { kind: "client", attributes: options.attributes, captureStackTrace: false }),
    (span) =>
      Effect.matchCauseEffect(reserve(options), {
        onFailure: (cause) => {
          const exit = Exit.failCause(cause)
          return Effect.zipRight(endSpan(span, exit, errorAttributes(exit)), exit)
        },
        onSuccess: (hold) =>
          Effect.map(
            FiberRef.modify(FiberRef.currentContext, (outer) => [outer, Context.add(outer, Tracer.ParentSpan, span)]),
            (outer) => ({ hold, span, outer })
          )
      })
  )

/** Settles the reservation, ends the span and puts the caller's context back, then ends as the call did. */
const close = <A, B, E, R>(options: CallOptions<A, B, E, R>, opened: Opened, exit: Exit.Exit<B, E>): Effect.Effect<B, E> =>
  settle(options)(opened.hold, exit).pipe(
    Effect.zipRight(
      endSpan(opened.span, exit, Exit.isSuccess(exit) ? options.annotate(exit.value) : errorAttributes(exit))
    ),
    Effect.zipRight(FiberRef.set(FiberRef.currentContext, opened.outer)),
    Effect.zipRight(exit)
  )

/**
 * Ends a span as `Effect.useSpan` does (at the clock's time when tracer timing is on, and only once), with
 * `attributes` set on it first.
 */
const endSpan = (
  span: Tracer.Span,
  exit: Exit.Exit<unknown, unknown>,
  attributes?: Record<string, unknown>
): Effect.Effect<void> =>
  Effect.flatMap(FiberRef.get(FiberRef.currentTracerTimingEnabled), (timing) =>
    Effect.map(timing ? Clock.currentTimeNanos : Effect.succeed(BigInt(0)), (endTime) => {
      if (span.status._tag === "Ended") return
      if (attributes !== undefined) {
        for (const [key, value] of Object.entries(attributes)) span.attribute(key, value)
      }
      span.end(endTime, exit)
    }))

/**
 * The same metering for a call that lasts as long as a scope (a stream): `worstCase` reserved now (with its
 * `ceiling`), settled to `usage` of the scope's exit when it closes.
 */
export const meteredScoped = (
  options: Bounds & Settlement<unknown, unknown>
): Effect.Effect<void, Ledger.BudgetExceeded | Ledger.InvalidUsage, Scope.Scope> =>
  Effect.asVoid(Effect.acquireRelease(reserve(options), settle(options)))
