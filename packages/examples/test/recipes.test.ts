import { describe, expect, it } from "@effect/vitest"
import { Effect } from "effect"
import { crewModel, crewRun, debate, debateModel, reflexion, reflexionModel, tot, totModel } from "../src/recipes.js"

describe("recipes example", () => {
  it.effect("Reflexion: revises with the code critic's reflections until it approves", () =>
    Effect.gen(function*() {
      const result = yield* reflexion
      expect(result).toMatchObject({ approved: true, rounds: 3, ended: "Condition" })
      expect(result.answer).toContain("2.4")
      expect(result.reflections).toHaveLength(2)
    }).pipe(Effect.provide(reflexionModel().layer)))

  it.effect("Tree of Thoughts: finds 24 and ends at the threshold", () =>
    Effect.gen(function*() {
      const result = yield* tot
      expect(result.best).toEqual({ path: ["13 - 9 = 4", "10 - 4 = 6", "6 * 4 = 24"], score: 1 })
      expect(result.ended).toBe("Threshold")
    }).pipe(Effect.provide(totModel().layer)))

  it.effect("Debate: ends on agreement in the second round, without the judge", () =>
    Effect.gen(function*() {
      const result = yield* debate
      expect(result).toMatchObject({ answer: "Monday", decidedBy: "Agreement", rounds: 2, ended: "Condition" })
    }).pipe(Effect.provide(debateModel().layer)))

  it.effect("Crew: the writer builds on the research handed off", () =>
    Effect.gen(function*() {
      const result = yield* crewRun
      expect(result.answer).toBe("Version 2.4 is out: faster exports and dark theme.")
      expect(result.handedOff).toEqual({ version: "2.4", changes: ["faster exports", "dark theme"] })
    }).pipe(Effect.provide(crewModel().layer)))
})
