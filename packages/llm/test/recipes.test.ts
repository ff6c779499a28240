import { describe, expect, it } from "@effect/vitest"
import { Cost, Ledger, Pipeline, Step } from "@trellis/core"
import { Effect, Fiber, Schema, TestClock } from "effect"
import { Agent, Crew, Debate, Prompt, Reflexion, ScriptedModel, TreeOfThoughts } from "../src/index.js"

/** The role's instructions: the last system message (structured output puts its own first). */
const system = (request: Prompt.ResolvedRequest) =>
  request.messages.filter((m) => m.role === "system").at(-1)?.content ?? ""
const lastUser = (request: Prompt.ResolvedRequest) =>
  request.messages.filter((m) => m.role === "user").at(-1)?.content ?? ""

const writer = Agent.make({ name: "writer", instructions: "WRITER", maxTokens: 100 })
const critic = Agent.make({ name: "critic", instructions: "CRITIC", maxTokens: 100, output: Reflexion.Verdict })

/** A writer that numbers its drafts, and a critic that approves draft `approveAt` (never, when undefined). */
const reflexionModel = (approveAt: number | undefined) => {
  let drafts = 0
  return ScriptedModel.make({
    reply: (request) => {
      if (system(request) === "WRITER") return `draft ${++drafts}`
      const draft = Number(/draft (\d+)/.exec(lastUser(request))![1])
      return JSON.stringify({ approved: draft === approveAt, critique: `fix point ${draft}` })
    }
  })
}

const essay = (maxRounds: number, whenOutOfBudget?: "end") =>
  Reflexion.make("essay", {
    task: () => "Announce the launch.",
    writer,
    critic,
    maxRounds,
    ...(whenOutOfBudget === undefined ? {} : { whenOutOfBudget })
  })

describe("Reflexion", () => {
  it.effect("stops on the critic's approval, carrying every reflection into each revision", () => {
    const model = reflexionModel(2)
    return Effect.gen(function*() {
      const result = yield* Pipeline.run(Pipeline.make("doc", { output: essay(5) }))
      expect(result.output).toEqual({
        state: { draft: "draft 2", approved: true, reflections: ["fix point 1"] },
        iterations: 2,
        ended: "Condition"
      })
      // draft, critique, revise, critique: nothing after the approval.
      expect(model.calls.map(system)).toEqual(["WRITER", "CRITIC", "WRITER", "CRITIC"])
      expect(lastUser(model.calls[2]!)).toContain("Your last draft:\ndraft 1")
      expect(lastUser(model.calls[2]!)).toContain("1. fix point 1")
      expect(Object.keys(result.usage.byStep)).toEqual(expect.arrayContaining(["essay.draft", "essay#1", "essay#2"]))
    }).pipe(Effect.provide(model.layer))
  })

  it.effect("holds its bound when the critic never approves, ending on a critiqued draft", () => {
    const model = reflexionModel(undefined)
    return Effect.gen(function*() {
      const result = yield* Pipeline.run(Pipeline.make("doc", { output: essay(3) }))
      expect(result.output.ended).toBe("MaxIterations")
      expect(result.output.iterations).toBe(3)
      expect(result.output.state).toEqual({
        draft: "draft 3",
        approved: false,
        reflections: ["fix point 1", "fix point 2", "fix point 3"]
      })
      expect(model.calls.map(system)).toEqual(["WRITER", "CRITIC", "WRITER", "CRITIC", "WRITER", "CRITIC"])
      const revision = lastUser(model.calls[4]!)
      expect(revision).toContain("1. fix point 1\n2. fix point 2")
    }).pipe(Effect.provide(model.layer))
  })

  it.effect("takes a critic written as code", () => {
    const model = ScriptedModel.make({ reply: (_, index) => (index === 0 ? "too long draft" : "short") })
    const step = Reflexion.make("essay", {
      task: () => "Say it in one word.",
      writer,
      critic: ({ draft }) => Effect.succeed({ approved: !draft.includes(" "), critique: "one word only" }),
      maxRounds: 4
    })
    return Effect.gen(function*() {
      const result = yield* Pipeline.run(Pipeline.make("doc", { output: step }))
      expect(result.output).toMatchObject({ state: { draft: "short", approved: true }, iterations: 2 })
      expect(model.calls).toHaveLength(2)
    }).pipe(Effect.provide(model.layer))
  })

  it.effect("under a small budget with whenOutOfBudget \"end\", ends with the last critiqued draft, within the budget", () => {
    const model = reflexionModel(undefined)
    return Effect.gen(function*() {
      // Each call reserves about 100 output tokens of gpt-4o-mini: this budget pays for three calls at most.
      const budget = Cost.dollars(0.0002)
      const result = yield* Pipeline.run(Pipeline.make("doc", { output: essay(10, "end"), budget }))
      expect(result.output.ended).toBe("OutOfBudget")
      expect(result.output.iterations).toBeLessThan(10)
      expect(result.output.state.draft).toBe(`draft ${result.output.iterations}`)
      expect(result.usage.total.cost).toBeLessThanOrEqual(budget)
    }).pipe(Effect.provide(model.layer))
  })

  it.effect("under a small budget by default, fails the run with BudgetExceeded", () => {
    const model = reflexionModel(undefined)
    return Effect.gen(function*() {
      const error = yield* Effect.flip(
        Pipeline.run(Pipeline.make("doc", { output: essay(10), budget: Cost.dollars(0.0002) }))
      )
      expect(error).toBeInstanceOf(Ledger.BudgetExceeded)
    }).pipe(Effect.provide(model.layer))
  })

  it("refuses bad options with InvalidStep naming the option", () => {
    expect(() => essay(0)).toThrow(/Invalid step "essay": maxRounds must be a whole number of at least 1, got 0/)
    expect(() => Reflexion.make("essay", { task: () => "", writer, critic, maxRound: 3 } as any)).toThrow(
      /unknown option "maxRound" \(did you mean "maxRounds"\?\)/
    )
    expect(() => Reflexion.make("essay", { task: () => "", writer, critic: "yes", maxRounds: 3 } as any)).toThrow(
      Step.InvalidStep
    )
  })
})

describe("TreeOfThoughts", () => {
  // The thinker proposes "<parent>.<candidate>" paths; the scorer (code) likes paths whose last digit is high.
  const thinkerModel = () =>
    ScriptedModel.make({
      reply: (request) => {
        const text = lastUser(request)
        const candidate = Number(/candidate (\d+)/.exec(text)![1]) - 1
        return `c${candidate}`
      }
    })
  const thinker = Agent.make({ name: "thinker", instructions: "THINK", maxTokens: 20 })
  const scores: Record<string, number> = { c0: 1, c1: 3, c2: 2 }
  const score = (path: ReadonlyArray<string>) => path.reduce((sum, step) => sum + scores[step]!, 0)

  it.effect("keeps the best b of k candidates per level, to depth d", () => {
    const model = thinkerModel()
    const seen: Array<ReadonlyArray<string>> = []
    const tree = TreeOfThoughts.make("tot", {
      problem: () => "Find the best path.",
      thinker,
      scorer: (node) => Effect.sync(() => (seen.push(node.path), score(node.path))),
      breadth: 3,
      beam: 2,
      depth: 3
    })
    return Effect.gen(function*() {
      const result = yield* Pipeline.run(Pipeline.make("search", { output: tree }))
      expect(result.output).toEqual({
        best: { path: ["c1", "c1", "c1"], score: 9 },
        levels: 3,
        explored: 3 + 6 + 6,
        ended: "Depth"
      })
      // Level 2 expanded exactly the two best of level 1 (c1: 3, c2: 2), not c0.
      const level2 = seen.filter((path) => path.length === 2).map((path) => path[0])
      expect(new Set(level2)).toEqual(new Set(["c1", "c2"]))
      expect(model.calls).toHaveLength(15)
      expect(Object.keys(result.usage.byStep)).toEqual(expect.arrayContaining(["tot.level1[0.0]", "tot.level2[1.2]"]))
    }).pipe(Effect.provide(model.layer))
  })

  it.effect("ends early once a path reaches the threshold", () => {
    const model = thinkerModel()
    const tree = TreeOfThoughts.make("tot", {
      problem: () => "Find a good path.",
      thinker,
      scorer: (node) => Effect.succeed(score(node.path)),
      breadth: 3,
      beam: 1,
      depth: 5,
      threshold: 6
    })
    return Effect.gen(function*() {
      const result = yield* Pipeline.run(Pipeline.make("search", { output: tree }))
      expect(result.output).toMatchObject({ best: { path: ["c1", "c1"], score: 6 }, levels: 2, ended: "Threshold" })
      expect(model.calls).toHaveLength(6)
    }).pipe(Effect.provide(model.layer))
  })

  it.effect("under a small budget with whenOutOfBudget \"end\", ends with the best path so far, within the budget", () => {
    const model = thinkerModel()
    const tree = TreeOfThoughts.make("tot", {
      problem: () => "Find the best path.",
      thinker,
      scorer: (node) => Effect.succeed(score(node.path)),
      breadth: 3,
      beam: 3,
      depth: 4,
      concurrency: 1,
      whenOutOfBudget: "end"
    })
    return Effect.gen(function*() {
      const budget = Cost.dollars(0.00008)
      const result = yield* Pipeline.run(Pipeline.make("search", { output: tree, budget }))
      expect(result.output.ended).toBe("OutOfBudget")
      expect(result.output.levels).toBeLessThan(4)
      expect(result.output.best).toBeDefined()
      expect(result.usage.total.cost).toBeLessThanOrEqual(budget)
    }).pipe(Effect.provide(model.layer))
  })

  it.effect("takes a model scorer", () => {
    const model = ScriptedModel.make({
      reply: (request) =>
        request.json !== undefined
          ? JSON.stringify({ score: lastUser(request).includes("c1") ? 1 : 0 })
          : `c${Number(/candidate (\d+)/.exec(lastUser(request))![1]) - 1}`
    })
    const tree = TreeOfThoughts.make("tot", {
      problem: () => "p",
      thinker,
      scorer: Agent.make({ name: "scorer", instructions: "SCORE", output: TreeOfThoughts.Score, maxTokens: 20 }),
      breadth: 2,
      beam: 1,
      depth: 1
    })
    return Effect.gen(function*() {
      const result = yield* Pipeline.run(Pipeline.make("search", { output: tree }))
      expect(result.output.best).toEqual({ path: ["c1"], score: 1 })
      expect(model.calls).toHaveLength(4)
    }).pipe(Effect.provide(model.layer))
  })

  it("refuses bad options with InvalidStep naming the option", () => {
    const base = { problem: () => "", thinker, scorer: () => Effect.succeed(0), breadth: 2, beam: 1, depth: 2 }
    expect(() => TreeOfThoughts.make("tot", { ...base, depth: 0 })).toThrow(/depth must be a whole number/)
    expect(() => TreeOfThoughts.make("tot", { ...base, beam: 1.5 })).toThrow(/beam must be a whole number/)
    expect(() => TreeOfThoughts.make("tot", { ...base, width: 3 } as any)).toThrow(/unknown option "width"/)
  })
})

describe("Debate", () => {
  const participant = (name: string) =>
    Agent.make({ name, instructions: name.toUpperCase(), output: Debate.Position, maxTokens: 60 })
  const judge = Agent.make({ name: "judge", instructions: "JUDGE", output: Debate.Position, maxTokens: 60 })
  const answer = (text: string) => JSON.stringify({ answer: text, reasoning: "because" })

  /** `a` always says yes; `b` says no until it has seen `a`'s answer `convincedAfter` times. */
  const debateModel = (convincedAfter: number) => {
    let seen = 0
    return ScriptedModel.make({
      reply: (request) => {
        const who = system(request)
        if (who === "A") return answer("yes")
        if (who === "JUDGE") return answer("yes, on balance")
        if (lastUser(request).includes("- a: yes")) seen++
        return answer(seen >= convincedAfter ? "Yes." : "no")
      }
    })
  }
  const panel = (rounds: number, whenOutOfBudget?: "end") =>
    Debate.make("panel", {
      question: () => "Ship on Friday?",
      participants: [participant("a"), participant("b")],
      judge,
      rounds,
      ...(whenOutOfBudget === undefined ? {} : { whenOutOfBudget })
    })

  it.effect("ends early on agreement, each participant seeing the others' last answers, and needs no judge", () => {
    const model = debateModel(1)
    return Effect.gen(function*() {
      const result = yield* Pipeline.run(Pipeline.make("debate", { output: panel(5) }))
      expect(result.output).toMatchObject({ answer: "yes", decidedBy: "Agreement", rounds: 2, ended: "Condition" })
      expect(result.output.transcript.map((round) => round.map((p) => p.answer))).toEqual([["yes", "no"], ["yes", "Yes."]])
      // Two answers per round, two rounds, no judgement.
      expect(model.calls).toHaveLength(4)
      const rebuttalOfA = model.calls.find((c) => system(c) === "A" && lastUser(c).includes("others' last answers"))!
      expect(lastUser(rebuttalOfA)).toContain("- b: no (because)")
      expect(Object.keys(result.usage.byStep)).toEqual(
        expect.arrayContaining(["panel.opening[a]", "panel.opening[b]", "panel.rounds#1"])
      )
    }).pipe(Effect.provide(model.layer))
  })

  it.effect("runs at most its rounds, then the judge decides", () => {
    const model = debateModel(99)
    return Effect.gen(function*() {
      const result = yield* Pipeline.run(Pipeline.make("debate", { output: panel(3) }))
      expect(result.output).toMatchObject({ answer: "yes, on balance", decidedBy: "Judge", rounds: 3, ended: "MaxIterations" })
      expect(model.calls).toHaveLength(3 * 2 + 1)
    }).pipe(Effect.provide(model.layer))
  })

  it.effect("under a small budget with whenOutOfBudget \"end\", ends within the budget with an answer", () => {
    const model = debateModel(99)
    return Effect.gen(function*() {
      const budget = Cost.dollars(0.00015)
      const result = yield* Pipeline.run(Pipeline.make("debate", { output: panel(10, "end"), budget }))
      expect(result.output.ended).toBe("OutOfBudget")
      expect(result.output.rounds).toBeLessThan(10)
      expect(["Judge", "Majority"]).toContain(result.output.decidedBy)
      expect(result.usage.total.cost).toBeLessThanOrEqual(budget)
    }).pipe(Effect.provide(model.layer))
  })

  it.effect("answers a round's participants at once, on the test clock", () => {
    const model = ScriptedModel.make({ latency: "1 second", reply: () => answer("same") })
    return Effect.gen(function*() {
      const fiber = yield* Effect.fork(Pipeline.run(Pipeline.make("debate", { output: panel(3) })))
      yield* TestClock.adjust("1 second")
      const result = yield* Fiber.join(fiber)
      expect(result.output).toMatchObject({ decidedBy: "Agreement", rounds: 1 })
    }).pipe(Effect.provide(model.layer))
  })

  it("refuses bad options with InvalidStep naming the option", () => {
    expect(() => Debate.make("panel", { question: () => "", participants: [participant("a")], judge, rounds: 2 }))
      .toThrow(/participants must be a list of at least two agents/)
    expect(() =>
      Debate.make("panel", { question: () => "", participants: [participant("a"), participant("a")], judge, rounds: 2 })
    ).toThrow(/"a" is given twice/)
    expect(() => panel(0)).toThrow(/rounds must be a whole number of at least 1/)
  })
})

describe("Crew", () => {
  const researcher = Crew.role("researcher", { goal: "find the facts", maxTokens: 80 })
  const writerRole = Crew.role("writer", { goal: "write the announcement", maxTokens: 80 })
  const Facts = Schema.Struct({ facts: Schema.Array(Schema.String) })

  it.effect("turns the task list into a static graph whose hand-offs arrive typed and in full", () => {
    const model = ScriptedModel.make({
      reply: (request) =>
        system(request).startsWith("You are the researcher")
          ? JSON.stringify({ facts: ["ships Friday", "costs $5"] })
          : `Announcement: ${lastUser(request).includes("\"ships Friday\"") ? "ships Friday" : "?"}`
    })
    const research = Crew.task("research", {
      role: researcher,
      description: () => "List the launch facts.",
      output: Facts
    })
    const write = Crew.task("write", {
      role: writerRole,
      after: { research },
      description: ({ research }) => `Write from these ${research.facts.length} facts.`
    })
    const crew = Crew.make("launch", { tasks: [research, write], output: write })
    return Effect.gen(function*() {
      expect(Pipeline.toMermaid(crew)).toContain("research --> write")
      const result = yield* Pipeline.run(crew)
      expect(result.output).toBe("Announcement: ships Friday")
      expect(result.outputs.research).toEqual({ facts: ["ships Friday", "costs $5"] })
      const [first, second] = model.calls
      expect(system(first!)).toContain("Your goal: find the facts")
      expect(first!.json).toBeDefined()
      expect(system(second!)).toContain("You are the writer")
      expect(lastUser(second!)).toMatch(/^Write from these 2 facts\.\n\n# What you were handed\n\n## research\n/)
    }).pipe(Effect.provide(model.layer))
  })

  it("refuses a task list with a hidden step, or a step that is not a task", () => {
    const hidden = Step.make("hidden", { run: () => Effect.succeed("x") })
    const write = Crew.task("write", { role: writerRole, after: { hidden }, description: () => "w" })
    expect(() => Crew.make("launch", { tasks: [write], output: write })).toThrow(
      /task "write" builds on "hidden" \(step "hidden"\), which is not in tasks/
    )
    expect(() => Crew.make("launch", { tasks: [hidden], output: hidden })).toThrow(/tasks\[0\] must be made with Crew.task/)
    expect(() => Crew.role("writer", { goal: "" })).toThrow(/goal must be a non-empty string/)
  })
})
