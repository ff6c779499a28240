/**
 * Budget-aware routing: each step reads `Budget.remaining` and, when money runs low, asks a cheaper model.
 *
 * Run it with `pnpm --filter @trellis/examples example:budget`. The first summaries go to the larger model;
 * once what is left could not pay for another large call, the steps switch to the small one, and the run
 * finishes within its budget instead of failing.
 */
import { NodeRuntime } from "@effect/platform-node"
import { Budget, Cost, Pipeline, Step } from "@trellis/core"
import { LanguageModel, OfflineModel, Pricing } from "@trellis/llm"
import { Effect, Option } from "effect"

/** The models to choose from, most capable first. */
export const models = { large: "gpt-4.1", small: "gpt-4.1-nano" } as const

const maxTokens = 200

/**
 * Picks the large model while the budget left could pay for two large calls at their worst, so that one can
 * always still be made; the small one after that.
 */
export const chooseModel = (prompt: string) =>
  Effect.map(Budget.remaining, (remaining) => {
    const worstCase = Pricing.make().worstCase(models.large, Math.ceil(prompt.length / 2), maxTokens)
    return Option.match(remaining, {
      onNone: () => models.large,
      onSome: (left) => (left >= worstCase * 2 ? models.large : models.small)
    })
  })

const tickets = [
  "Acme Corporation reports that invoices from March were charged twice and asks for a refund.",
  "Globex Industries cannot log in since the password reset on Monday and needs access before Friday.",
  "Initech asks whether the enterprise plan includes single sign-on and audit logs.",
  "Umbrella Logistics reports that the export to CSV drops the last column for large files.",
  "Stark Manufacturing wants to move the renewal date of its contract to January."
]

const summarise = <const Name extends string, const Deps extends Step.Dependencies>(
  name: Name,
  index: number,
  after: Deps
) =>
  Step.make(name, {
    after,
    run: () =>
      Effect.gen(function*() {
        const prompt = tickets[index]!
        const model = yield* chooseModel(prompt)
        const response = yield* LanguageModel.generate({
          system: "Summarise the support ticket in one sentence.",
          messages: [{ role: "user", content: prompt }],
          model,
          maxTokens
        })
        return { model, summary: response.text, cost: response.usage.cost }
      })
  })

// One after the other, so each step sees what the previous ones spent.
const ticket1 = summarise("ticket_1", 0, {})
const ticket2 = summarise("ticket_2", 1, { ticket1 })
const ticket3 = summarise("ticket_3", 2, { ticket2 })
const ticket4 = summarise("ticket_4", 3, { ticket3 })
const ticket5 = summarise("ticket_5", 4, { ticket4 })

/** The tickets' pipeline under a budget. */
export const pipeline = (budget: Cost.Cost) => Pipeline.make("tickets", { output: ticket5, budget })

/** Runs the pipeline and lists which model each step used. */
export const program = (budget: Cost.Cost) =>
  Effect.map(Pipeline.run(pipeline(budget)), (result) => ({
    steps: Object.entries(result.outputs).map(([name, output]) => ({ name, model: output.model, cost: output.cost })),
    spent: result.usage.total.cost
  }))

if (import.meta.url === `file://${process.argv[1]}`) {
  const budget = Cost.dollars(0.004)
  NodeRuntime.runMain(
    program(budget).pipe(
      Effect.tap(({ steps, spent }) =>
        Effect.sync(() => {
          for (const step of steps) console.log(`${step.name}: ${step.model} (${Cost.format(step.cost, 6)})`)
          console.log(`spent ${Cost.format(spent, 6)} of ${Cost.format(budget, 6)}`)
        })
      ),
      Effect.provide(OfflineModel.layer())
    )
  )
}
