/**
 * Routing stays in code: a route effect (which may ask an LLM to classify) yields a key, and code picks the
 * pipeline for it. The key's type is the routes' keys, so an unhandled key does not compile.
 *
 * @since 0.1.0
 */
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import * as Cost from "./Cost.js"
import * as RunLedger from "./internal/ledger.js"
import * as Ledger from "./Ledger.js"
import { planOf } from "./internal/plans.js"
import { run as runPlan } from "./internal/run.js"
import type * as Pipeline from "./Pipeline.js"

/**
 * A router from keys to pipelines.
 *
 * @since 0.1.0
 */
export interface Router<Routes extends Record<string, Pipeline.Any>, E, R> {
  readonly route: Effect.Effect<keyof Routes & string, E, R>
  readonly routes: Routes
}

/**
 * The route effect produced a key that has no pipeline (possible only when its type was bypassed at run time,
 * for example by casting a model's answer).
 *
 * @since 0.1.0
 */
export class UnknownRoute extends Data.TaggedError("UnknownRoute")<{
  readonly route: string
  readonly known: ReadonlyArray<string>
}> {
  override get message(): string {
    return `No pipeline for route "${this.route}"; known routes: ${this.known.map((k) => `"${k}"`).join(", ")}`
  }
}

/**
 * Makes a router.
 *
 * @example
 * ```ts
 * const router = Router.make({
 *   route: Effect.map(Document, (doc) => doc.text.length < 500 ? "simple" : "complex"),
 *   routes: { simple: quickPipeline, complex: thoroughPipeline }
 * })
 * ```
 *
 * @since 0.1.0
 */
export const make = <const Routes extends Record<string, Pipeline.Any>, E = never, R = never>(options: {
  readonly route: Effect.Effect<NoInfer<keyof Routes & string>, E, R>
  readonly routes: Routes
}): Router<Routes, E, R> => ({ route: options.route, routes: options.routes })

/**
 * The result of a routed run: which route was taken, and its pipeline's result.
 *
 * @since 0.1.0
 */
export type Routed<Routes extends Record<string, Pipeline.Any>> = {
  readonly [K in keyof Routes & string]: { readonly route: K; readonly result: Pipeline.ResultOf<Routes[K]> }
}[keyof Routes & string]

/**
 * Picks a route and runs its pipeline. What the route effect spends (an LLM asked to classify, say) is metered as
 * the step `route` of the run it chooses: it counts in that run's usage and budget. As the choice is not known
 * while the route runs, the route is held to the smallest budget among the routes, then the chosen run to its own.
 *
 * @since 0.1.0
 */
export const run = <Routes extends Record<string, Pipeline.Any>, E, R>(
  self: Router<Routes, E, R>,
  options?: Pipeline.RunOptions
): Effect.Effect<
  Routed<Routes>,
  E | UnknownRoute | Pipeline.ErrorOf<Routes[keyof Routes]>,
  R | Pipeline.RequirementsOf<Routes[keyof Routes]>
> =>
  Effect.gen(function*() {
    const budgets = Object.values(self.routes).flatMap((pipeline) => (pipeline.budget === undefined ? [] : [pipeline.budget]))
    const parent = yield* Effect.serviceOption(Ledger.Ledger)
    const routing = RunLedger.make({
      budget: budgets.length === 0 ? undefined : Cost.nanos(Math.min(...budgets)),
      parent: Option.getOrUndefined(parent)
    })
    const route = yield* Effect.provideService(self.route, Ledger.Ledger, routing.ledger.forStep(routeStep))
    const pipeline = Object.prototype.hasOwnProperty.call(self.routes, route) ? self.routes[route] : undefined
    if (pipeline === undefined) return yield* Effect.fail(new UnknownRoute({ route, known: Object.keys(self.routes) }))
    yield* Effect.annotateCurrentSpan("trellis.route", route)
    const spent = routing.snapshot().byStep
    const result = yield* runPlan(planOf(pipeline), options?.onEvent, spent)
    return { route, result }
  }).pipe(Effect.withSpan("router")) as any

/** The step a route's spending is recorded under, in the run it chooses. */
const routeStep = "route"
