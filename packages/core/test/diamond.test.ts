import { describe, expect, it } from "@effect/vitest"
import { Cost, Event, Pipeline, Result, Router, Step } from "@trellis/core"
import { Context, Effect, Fiber, TestClock } from "effect"
import { paidCall } from "./utils.js"

class Document extends Context.Tag("Document")<Document, { readonly text: string }>() {}

/** The seed's document pipeline, each step a paid call of a given price and duration. */
const diamond = (price: number) => {
  const extract = Step.make("extract", {
    run: () => Effect.zipRight(paidCall(price, 1000), Effect.map(Document, (d) => d.text.split(" ")))
  })
  const classify = Step.make("classify", {
    after: { extract },
    run: ({ extract }) => Effect.as(paidCall(price, 1000), extract.length > 3 ? "complex" : "simple")
  })
  const market = Step.make("fetch_market", {
    after: { classify },
    run: ({ classify }) => Effect.as(paidCall(price, 2000), { segment: classify, price: 42 })
  })
  const user = Step.make("fetch_user", {
    after: { classify },
    run: () => Effect.as(paidCall(price, 3000), { name: "Ada" })
  })
  const combine = Step.make("combine", {
    after: { market, user },
    run: ({ market, user }) => Effect.as(paidCall(price, 1000), `${user.name}: ${market.segment} at ${market.price}`)
  })
  return combine
}

const run = <A, E>(effect: Effect.Effect<A, E, Document>) =>
  Effect.gen(function*() {
    const fiber = yield* Effect.fork(Effect.provideService(effect, Document, { text: "Acme buys Globex for 3M" }))
    yield* TestClock.adjust("1 minute")
    return yield* Fiber.join(fiber)
  })

describe("the seed's document pipeline", () => {
  it.effect("runs the two fetches at the same time and sums usage across steps", () =>
    Effect.gen(function*() {
      const result = yield* run(Pipeline.run(Pipeline.make("document", { output: diamond(1_000) })))
      expect(Result.isCompleted(result) && result.output).toBe("Ada: complex at 42")
      const at = Object.fromEntries(result.timeline.map((t) => [t.step, t]))
      // Both fetches start when classify ends and overlap; combine waits for the slower one.
      expect(at["fetch_market"]!.startedAt).toBe(at["classify"]!.endedAt)
      expect(at["fetch_user"]!.startedAt).toBe(at["classify"]!.endedAt)
      expect(at["combine"]!.startedAt).toBe(at["fetch_user"]!.endedAt)
      expect(at["combine"]!.endedAt - at["extract"]!.startedAt).toBe(1000 + 1000 + 3000 + 1000)
      expect(result.usage.total).toMatchObject({ requests: 5, inputTokens: 50, outputTokens: 25, cost: 5_000 })
      expect(Object.keys(result.usage.byStep).sort()).toEqual(
        ["classify", "combine", "extract", "fetch_market", "fetch_user"]
      )
      expect(result.usage.byStep["fetch_user"]!.cost).toBe(1_000)
    }))

  it.effect("stops at the budget and returns what was spent", () =>
    Effect.gen(function*() {
      // Each call costs $0.01; $0.035 covers extract, classify and one fetch, not both.
      const error = yield* run(Effect.flip(
        Pipeline.run(Pipeline.make("document", { output: diamond(Cost.dollars(0.01)), budget: Cost.dollars(0.035) }))
      ))
      expect(error._tag).toBe("BudgetExceeded")
      if (error._tag !== "BudgetExceeded") return
      expect(["fetch_market", "fetch_user"]).toContain(error.step)
      // At the refusal $0.02 was spent and the other fetch's $0.01 reserved; that fetch then finished.
      expect(error.spent).toBe(Cost.dollars(0.02))
      expect(error.partial?.usage.total.cost).toBe(Cost.dollars(0.03))
      expect(Object.keys(error.partial?.outputs ?? {}).sort()).toEqual(
        ["classify", "extract", error.step === "fetch_user" ? "fetch_market" : "fetch_user"].sort()
      )
      expect(error.message).toBe(
        `A call in step "${error.step}" could pass the budget of pipeline "document" of $0.0350, so it was not sent: it could cost up to ` +
          `$0.0100, and $0.005000 was left (spent $0.0200, reserved $0.0100)`
      )
    }))
})

describe("Router", () => {
  const quick = Pipeline.make("quick", { output: Step.make("summary", { run: () => Effect.succeed("short summary") }) })
  const thorough = Pipeline.make("thorough", { output: diamond(10) })
  const router = Router.make({
    route: Effect.map(Document, (d) => d.text.length < 20 ? "simple" : "complex"),
    routes: { simple: quick, complex: thorough }
  })

  it.effect("code picks the pipeline from a typed key", () =>
    Effect.gen(function*() {
      const short = yield* Router.run(router).pipe(Effect.provideService(Document, { text: "hi" }))
      expect(short.route).toBe("simple")
      expect(short.result._tag === "Completed" && short.result.output).toBe("short summary")
      const long = yield* run(Router.run(router))
      expect(long.route).toBe("complex")
      expect(long.result._tag === "Completed" && long.result.pipeline).toBe("thorough")
      Router.make({
        // @ts-expect-error a key with no pipeline does not compile
        route: Effect.succeed("medium" as const),
        routes: { simple: quick, complex: thorough }
      })
    }))

  it.effect("a key forced past the types fails with UnknownRoute, naming the known routes", () =>
    Effect.gen(function*() {
      const forced = Router.make({
        route: Effect.succeed("medium" as unknown as "simple"),
        routes: { simple: quick, complex: thorough }
      })
      const error = yield* Effect.flip(Router.run(forced).pipe(Effect.provideService(Document, { text: "" })))
      expect(error._tag).toBe("UnknownRoute")
      expect(error.message).toBe(`No pipeline for route "medium"; known routes: "simple", "complex"`)
    }))

  it.effect("a route's spending counts in the chosen run's usage and budget", () =>
    Effect.gen(function*() {
      const cheap = Pipeline.make("cheap", { output: Step.make("answer", { run: () => paidCall(30) }), budget: Cost.nanos(50) })
      const rich = Pipeline.make("rich", { output: Step.make("answer", { run: () => paidCall(30) }), budget: Cost.nanos(1000) })
      const routed = (price: number, pick: "cheap" | "rich") =>
        Router.run(Router.make({ route: Effect.as(paidCall(price), pick), routes: { cheap, rich } }))
      const rich20 = yield* routed(20, "rich")
      expect(rich20.result.usage.byStep).toMatchObject({ route: { cost: 20 }, answer: { cost: 30 } })
      const events: Array<Event.Event> = []
      yield* Router.run(Router.make({ route: Effect.as(paidCall(20), "rich" as const), routes: { cheap, rich } }), {
        onEvent: (e) => {
          events.push(e)
        }
      })
      expect(events.filter(Event.$is("UsageRecorded")).map((e) => `${e.step} ${e.usage.cost}`)).toEqual(["route 20", "answer 30"])
      expect(rich20.result.usage.total.cost).toBe(50)
      // The route is held to the smallest budget among the routes, whichever it picks...
      const refused = yield* Effect.flip(routed(60, "rich"))
      expect(refused).toMatchObject({ _tag: "BudgetExceeded", step: "route", budget: 50 })
      // ...and what it spent counts in the budget of the run it chose: 30 + 30 cannot fit in 50.
      const over = yield* Effect.flip(routed(30, "cheap"))
      expect(over).toMatchObject({ _tag: "BudgetExceeded", step: "answer", spent: 30 })
    }))
})
