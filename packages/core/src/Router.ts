/**
 * Routing stays in code: a route effect (which may ask an LLM to classify) yields a key, and code picks the
 * pipeline for it. The key's type is the routes' keys, so an unhandled key does not compile.
 *
 * @since 0.1.0
 */
import * as Data from "effect/Data"
import * as Effect from "effect/Effect"
import * as Pipeline from "./Pipeline.js"

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
 * Picks a route and runs its pipeline.
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
  Effect.flatMap(self.route, (route): Effect.Effect<any, any, any> => {
    const pipeline = Object.prototype.hasOwnProperty.call(self.routes, route) ? self.routes[route] : undefined
    if (pipeline === undefined) return Effect.fail(new UnknownRoute({ route, known: Object.keys(self.routes) }))
    return Effect.map(
      Effect.annotateCurrentSpan("trellis.route", route).pipe(Effect.zipRight(Pipeline.run(pipeline, options))),
      (result) => ({ route, result }) as any
    )
  }).pipe(Effect.withSpan("router")) as any
