/**
 * The seed's "other school" as bounded recipes, each run offline on a scripted model (give it
 * `OpenAi.layerConfig()` instead to run on a real one):
 *
 * - `example:reflexion`: a writer drafts release notes, a critic written as code checks them, the writer revises
 *   with every reflection so far, at most three rounds.
 * - `example:tot`: Tree of Thoughts on the game of 24: three candidate steps per path, the best two kept, three levels
 *   deep, ended early by a scorer in code once a path makes 24.
 * - `example:debate`: two participants and a judge, at most three rounds, ended early when they agree.
 * - `example:crew`: a researcher and a writer, two tasks in a static graph, the research handed off typed.
 *
 * Each prints its answer, how it ended and what it spent: `npx -y pnpm@10 --filter @trellis/examples example:tot`.
 */
import { NodeRuntime } from "@effect/platform-node"
import { Cost, Pipeline } from "@trellis/core"
import { Agent, Crew, Debate, type LanguageModel, type Prompt, Reflexion, ScriptedModel, TreeOfThoughts } from "@trellis/llm"
import { Effect, Schema } from "effect"

const lastUser = (request: Prompt.ResolvedRequest) =>
  request.messages.filter((m) => m.role === "user").at(-1)?.content ?? ""
const role = (request: Prompt.ResolvedRequest) =>
  request.messages.filter((m) => m.role === "system").at(-1)?.content ?? ""

// ---------------------------------------------------------------------------------------------------------------
// Reflexion

const notes = Reflexion.make("notes", {
  task: () => "Write the release note for version 2.4 in at most 25 words.",
  writer: Agent.make({ name: "writer", instructions: "You write release notes.", maxTokens: 120 }),
  // Code is the strictest critic there is: it counts.
  critic: ({ draft }) => {
    const words = draft.split(/\s+/).length
    const problems = [
      ...(draft.includes("2.4") ? [] : ["name the version, 2.4"]),
      ...(words <= 25 ? [] : [`cut it to 25 words (it has ${words})`])
    ]
    return Effect.succeed({ approved: problems.length === 0, critique: problems.join("; ") })
  },
  maxRounds: 3
})

/** A writer that first rambles, then forgets the version, then gets it right. */
export const reflexionModel = () =>
  ScriptedModel.make({
    reply: (request) => {
      const reflections = (lastUser(request).match(/^\d+\. /gm) ?? []).length
      return [
        "This release brings many improvements that our users have asked for over the last months, including " +
        "faster exports, a new dark theme, and many fixes to the sync engine that was slow.",
        "Faster exports, a dark theme and a quicker sync engine.",
        "Version 2.4: faster exports, a dark theme and a quicker sync engine."
      ][reflections]!
    }
  })

/** Runs the Reflexion recipe. */
export const reflexion = Effect.map(Pipeline.run(Pipeline.make("release", { output: notes })), (result) => ({
  answer: result.output.state.draft,
  approved: result.output.state.approved,
  rounds: result.output.iterations,
  ended: result.output.ended,
  reflections: result.output.state.reflections,
  cost: result.usage.total.cost
}))

// ---------------------------------------------------------------------------------------------------------------
// Tree of Thoughts: the game of 24

/** The numbers left after a path of steps such as "13 - 9 = 4". */
export const left = (start: ReadonlyArray<number>, path: ReadonlyArray<string>): Array<number> => {
  const numbers = [...start]
  for (const step of path) {
    const [, a, , b, result] = /^(\d+) ([-+*/]) (\d+) = (\d+)$/.exec(step) ?? []
    for (const used of [a, b]) {
      const at = numbers.indexOf(Number(used))
      if (at === -1) return []
      numbers.splice(at, 1)
    }
    numbers.push(Number(result))
  }
  return numbers
}

const start = [4, 9, 10, 13]

/** A thinker that proposes, for the numbers left, the `candidate`-th of its few favourite steps. */
export const totModel = () =>
  ScriptedModel.make({
    reply: (request) => {
      const text = lastUser(request)
      const path = [...text.matchAll(/^\d+\. (.+)$/gm)].map((m) => m[1]!)
      const candidate = Number(/candidate (\d+)/.exec(text)![1]) - 1
      const [x, y, ...rest] = left(start, path).sort((a, b) => b - a)
      if (y === undefined) return `${x} + 0 = ${x}`
      const z = rest[0]
      const steps = [`${x} - ${y} = ${x - y}`, `${x} + ${y} = ${x + y}`, `${x} * ${y} = ${x * y}`]
      if (z !== undefined) steps.unshift(`${y} - ${z} = ${y - z}`)
      if (x === 13 && y === 10) steps.unshift("13 - 9 = 4", "10 - 4 = 6")
      if (path.length === 2) steps.unshift(`${x} * ${y} = ${x * y}`)
      return steps[candidate % steps.length]!
    }
  })

const puzzle = TreeOfThoughts.make("puzzle", {
  problem: () => `Use ${start.join(" ")} and + - * to make 24, one step at a time.`,
  thinker: Agent.make({ name: "thinker", instructions: "Propose one arithmetic step.", maxTokens: 30 }),
  // 1 for a path that makes 24; below it, how promising the numbers left are.
  scorer: ({ path }) =>
    Effect.sync(() => {
      const numbers = left(start, path)
      if (numbers.length <= 1) return numbers[0] === 24 ? 1 : 0
      if (numbers.length === 2) {
        const [a, b] = numbers as [number, number]
        return [a + b, a * b, Math.abs(a - b)].includes(24) ? 0.9 : 0.1
      }
      return 0.5 * numbers.filter((n) => n !== 0 && 24 % n === 0).length / numbers.length
    }),
  breadth: 3,
  beam: 2,
  depth: 3,
  threshold: 1
})

/** Runs the Tree of Thoughts recipe. */
export const tot = Effect.map(Pipeline.run(Pipeline.make("game24", { output: puzzle })), (result) => ({
  ...result.output,
  cost: result.usage.total.cost
}))

// ---------------------------------------------------------------------------------------------------------------
// Debate

const speaker = (name: string, stance: string) =>
  Agent.make({ name, instructions: `You are ${name}. ${stance}`, output: Debate.Position, maxTokens: 80 })

const panel = Debate.make("panel", {
  question: () => "Should the 2.4 release ship on Friday or wait until Monday?",
  participants: [
    speaker("optimist", "You weigh what users gain by shipping early."),
    speaker("skeptic", "You weigh what can go wrong on a weekend.")
  ],
  judge: speaker("judge", "You weigh both sides and decide."),
  rounds: 3
})

/** The optimist holds to Monday; the skeptic moves to Monday once it has heard the optimist out. */
export const debateModel = () =>
  ScriptedModel.make({
    reply: (request) => {
      const text = lastUser(request)
      const answer = role(request).includes("optimist")
        ? { answer: "Monday", reasoning: "a Monday release gets the whole team's eyes on the first day" }
        : text.includes("optimist: Monday")
        ? { answer: "Monday", reasoning: "agreed: nobody watches a weekend release" }
        : { answer: "Friday", reasoning: "the fixes are ready now" }
      return JSON.stringify(answer)
    }
  })

/** Runs the debate recipe. */
export const debate = Effect.map(Pipeline.run(Pipeline.make("release_day", { output: panel })), (result) => ({
  ...result.output,
  cost: result.usage.total.cost
}))

// ---------------------------------------------------------------------------------------------------------------
// A role crew

const researcher = Crew.role("researcher", { goal: "find what changed in the release", maxTokens: 120 })
const writer = Crew.role("writer", { goal: "announce the release to customers", maxTokens: 120 })

const Changes = Schema.Struct({ changes: Schema.Array(Schema.String), version: Schema.String })

const research = Crew.task("research", {
  role: researcher,
  description: () => "List the user-visible changes of the release from the changelog: faster exports, dark theme.",
  output: Changes
})
const announce = Crew.task("announce", {
  role: writer,
  after: { research },
  description: ({ research }) => `Announce version ${research.version} and its ${research.changes.length} changes.`
})

/** The crew: two roles, two tasks, one budget. */
export const crew = Crew.make("launch", { tasks: [research, announce], output: announce, budget: Cost.dollars(0.01) })

/** A researcher that answers in JSON, and a writer that uses what it was handed. */
export const crewModel = () =>
  ScriptedModel.make({
    reply: (request) =>
      request.json !== undefined
        ? JSON.stringify({ version: "2.4", changes: ["faster exports", "dark theme"] })
        : `Version 2.4 is out: ${JSON.parse(lastUser(request).split("## research\n")[1]!).changes.join(" and ")}.`
  })

/** Runs the crew recipe. */
export const crewRun = Effect.map(Pipeline.run(crew), (result) => ({
  answer: result.output,
  handedOff: result.outputs.research,
  cost: result.usage.total.cost
}))

// ---------------------------------------------------------------------------------------------------------------

const recipes = {
  reflexion: [reflexion, reflexionModel],
  tot: [tot, totModel],
  debate: [debate, debateModel],
  crew: [crewRun, crewModel]
} as const

if (import.meta.url === `file://${process.argv[1]}`) {
  const name = process.argv[2] as keyof typeof recipes
  const recipe = recipes[name]
  if (recipe === undefined) {
    console.error(`usage: recipes.js ${Object.keys(recipes).join(" | ")}`)
    process.exit(2)
  }
  const [program, model] = recipe
  NodeRuntime.runMain(
    (program as Effect.Effect<{ readonly cost: Cost.Cost }, unknown, LanguageModel.LanguageModel>).pipe(
      Effect.tap(({ cost, ...rest }) =>
        Effect.sync(() => {
          console.log(JSON.stringify(rest, null, 2))
          console.log(`spent ${Cost.format(cost, 6)} (offline, simulated prices)`)
        })
      ),
      Effect.provide(model().layer)
    )
  )
}
