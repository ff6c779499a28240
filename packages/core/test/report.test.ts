import { describe, expect, it } from "@effect/vitest"
import { Step } from "@trellis/core"
import { Effect } from "effect"
import { compile, type Graph } from "../src/internal/graph.js"
import { Report } from "../src/internal/report.js"

describe("Report", () => {
  it("gives the timeline of a run with more parts than a call can take arguments", () => {
    const graph = compile(Step.make("m", { run: () => Effect.void }), []) as Graph
    const report = new Report("p", graph)
    report.started(0, 0)
    const parts = 200_000
    for (let i = 0; i < parts; i++) {
      report.partEnded({ step: `m[${i}]`, status: "succeeded", startedAt: 0, endedAt: 1, attempts: 1, parent: "m" }, report.partStarted())
    }
    report.ended(0, "succeeded", 2)
    const timeline = report.timeline(2)
    expect(timeline).toHaveLength(parts + 1)
    expect(timeline[0]!.step).toBe("m")
    expect(timeline.at(-1)!.step).toBe(`m[${parts - 1}]`)
  })
})
