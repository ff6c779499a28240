/**
 * Interruption: a run cancelled mid-flight. Every running step is interrupted, its in-flight model call is
 * abandoned (an HTTP request would be aborted), every finalizer runs, the ledger keeps what was spent, and no
 * fiber is left running. Run it with `pnpm --filter @trellis/examples example:interrupt`.
 */
import { NodeRuntime } from "@effect/platform-node"
import { Cost, Ledger, Pipeline, Step } from "@trellis/core"
import { LanguageModel, OfflineModel } from "@trellis/llm"
import { Duration, Effect, Fiber, Supervisor } from "effect"

/** What happened, in order: steps opening and releasing their resources. */
export type Journal = Array<string>

// A step that holds a resource (a connection, a temporary file) for as long as it runs.
const withResource = (journal: Journal, step: string, question: string) =>
  Effect.acquireUseRelease(
    Effect.sync(() => journal.push(`${step}: opened its connection`)),
    () => LanguageModel.generate({ messages: [{ role: "user", content: question }], maxTokens: 100 }),
    (_, exit) => Effect.sync(() => journal.push(`${step}: released its connection (${exit._tag === "Success" ? "done" : "interrupted"})`))
  )

/** Three independent research steps and a summary of them. */
export const pipeline = (journal: Journal) => {
  const market = Step.make("market", { run: () => withResource(journal, "market", "Market outlook for wholesale.") })
  const competitors = Step.make("competitors", { run: () => withResource(journal, "competitors", "Main competitors.") })
  const risks = Step.make("risks", { run: () => withResource(journal, "risks", "Risks for next quarter.") })
  const summary = Step.make("summary", {
    after: { market, competitors, risks },
    run: ({ market, competitors, risks }) => LanguageModel.generate([market.text, competitors.text, risks.text].join("\n"))
  })
  return Pipeline.make("research", { output: summary })
}

/**
 * Starts the run, cancels it after `after`, and reports what was left: the journal, the usage the ledger kept,
 * and how many fibers the run forked are still running.
 */
export const cancelAfter = (after: Duration.DurationInput) =>
  Effect.gen(function*() {
    const journal: Journal = []
    const supervisor = yield* Supervisor.track
    const spent = yield* Ledger.make()
    const fiber = yield* Pipeline.run(pipeline(journal)).pipe(
      Effect.provideService(Ledger.Ledger, spent),
      Effect.supervised(supervisor),
      Effect.fork
    )
    yield* Effect.sleep(after)
    // The supervisor lists the fibers of the run that are alive: the steps in flight now, none afterwards.
    const runningBefore = (yield* supervisor.value).length
    yield* Fiber.interrupt(fiber)
    journal.push(`run cancelled after ${Duration.format(after)}`)
    const stillRunning = (yield* supervisor.value).length
    return { journal, usage: (yield* spent.snapshot).total, runningBefore, stillRunning }
  })

if (import.meta.url === `file://${process.argv[1]}`) {
  NodeRuntime.runMain(
    cancelAfter("500 millis").pipe(
      Effect.tap(({ journal, runningBefore, stillRunning, usage }) =>
        Effect.sync(() => {
          console.log(journal.join("\n"))
          console.log(`usage kept: ${usage.requests} calls, ${usage.inputTokens} input tokens, ` +
            `${Cost.format(usage.cost, 6)}${usage.estimated ? " (estimated: the calls were cut short)" : ""}`)
          console.log(`fibers of the run alive before the cancel: ${runningBefore}, after: ${stillRunning}`)
        })
      ),
      Effect.provide(OfflineModel.layer({ latency: "2 seconds" }))
    )
  )
}
