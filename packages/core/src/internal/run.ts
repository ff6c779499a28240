/**
 * Where a run starts: a pipeline's own run, or a sub-pipeline's inside the run of the step made of it. Each makes
 * the run's span, observer and ledger, and hands them to a `Runner`.
 */
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Option from "effect/Option"
import type * as Event from "../Event.js"
import * as Ledger from "../Ledger.js"
import type * as Result from "../Result.js"
import * as StepExecutor from "../StepExecutor.js"
import type * as Usage from "../Usage.js"
import * as RunLedger from "./ledger.js"
import type { Nest } from "./nest.js"
import { Observer } from "./observer.js"
import type { Plan } from "./plans.js"
import { Runner } from "./runner.js"

/**
 * Runs a pipeline's plan; fails with a `PipelineError`. The run opens its span, reports its start, and runs under
 * one exit handler that, however it ends, interrupts any step fiber still running, ends the span and reports the end.
 */
export const run = (
  plan: Plan,
  listener: Event.Listener | undefined,
  prior?: Readonly<Record<string, Usage.Usage>>
): Effect.Effect<Result.Result<unknown, unknown, unknown>, unknown, unknown> =>
  Effect.flatMap(
    Effect.makeSpan(`pipeline ${plan.name}`, { attributes: { "trellis.pipeline": plan.name }, captureStackTrace: false }),
    (span) =>
      Effect.withFiberRuntime((fiber) => {
        const context = fiber.currentContext
        const observer = new Observer(plan.name, listener, fiber, span)
        const ledger = RunLedger.make({
          budget: plan.budget,
          pipeline: plan.name,
          // A run inside a step of another run meters into that step too.
          parent: Option.getOrUndefined(Context.getOption(context, Ledger.Ledger)),
          onRecord: (step, usage) => observer.usage(step, usage),
          onExceeded: (step, reserved, cost) => observer.exceeded(step, reserved, cost),
          prior
        })
        const executor = Option.getOrElse(Context.getOption(context, StepExecutor.StepExecutor), () => StepExecutor.local)
        const runner = new Runner(plan, observer, ledger, executor, plan.graph.names, undefined)
        const body = observer.listening
          ? observer.runStarted(plan.graph.names).pipe(
            // What was spent for this run before it started (its router's choice of it) is reported first.
            Effect.zipRight(Effect.forEach(Object.entries(prior ?? {}), ([step, usage]) => observer.usage(step, usage), { discard: true })),
            Effect.zipRight(runner.whole)
          )
          : runner.whole
        return Effect.onExit(body, (exit) => runner.finish(exit))
      })
  )

/**
 * Runs a sub-pipeline's plan as part of the run of the step made of it: its steps are steps of that run, named by
 * their paths (`research/extract`), their events told to that run's listener, their calls attributed to them in that
 * run's ledger (and held to the sub-pipeline's own budget, if it has one), their timings handed to that run's report.
 */
export const runNested = (plan: Plan, nest: Nest): Effect.Effect<Result.Result<unknown, unknown, unknown>, unknown, unknown> =>
  Effect.flatMap(
    Effect.makeSpan(`pipeline ${plan.name}`, { attributes: { "trellis.pipeline": plan.name }, captureStackTrace: false }),
    (span) =>
      Effect.withFiberRuntime((fiber) => {
        const outer = nest.observer
        const observer = new Observer(outer.pipeline, outer.listener, fiber, span, true)
        const ledger = RunLedger.make({ budget: plan.budget, pipeline: plan.name, parent: nest.ledger, sameSteps: true })
        const names = plan.graph.names.map((name) => `${nest.path}/${name}`)
        const runner = new Runner(plan, observer, ledger, nest.executor, names, nest)
        return Effect.onExit(runner.whole, (exit) => runner.finish(exit))
      })
  )

