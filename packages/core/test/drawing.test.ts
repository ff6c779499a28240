import { describe, expect, it } from "@effect/vitest"
import { ForEach, Loop, Pipeline, Step, SubPipeline } from "@trellis/core"
import { Effect } from "effect"

const chunks = Step.make("chunks", { run: () => Effect.succeed(["a", "bb"]) })
const sizes = ForEach.make("sizes", {
  after: { chunks },
  items: ({ chunks }) => chunks,
  each: (c) => Effect.succeed(c.length),
  concurrency: 4
})
const refine = Loop.make("refine", {
  after: { sizes },
  initial: () => 1,
  body: (n) => Effect.succeed(n * 2),
  until: (n) => n > 4,
  maxIterations: 3
})
const look = Step.make("look", { run: () => Effect.succeed(1) })
const write = Step.make("write", { after: { look }, run: ({ look }) => Effect.succeed(look + 1) })
const research = Pipeline.make("research", { output: write })
const sub = SubPipeline.make("sub", { after: { refine }, pipeline: research })
const whole = Pipeline.make("whole", { output: sub })

describe("drawing steps made of steps", () => {
  it("toMermaid draws a map as a stacked box, a loop with its bound, a sub-pipeline as a box of its steps", () => {
    expect(Pipeline.toMermaid(whole)).toBe([
      "flowchart LR",
      "  chunks",
      `  sizes[["sizes#colon; for each item, at most 4 at once (at most 1000)"]]`,
      `  refine(["refine#colon; loop"])`,
      `  subgraph sub ["sub#colon; pipeline research"]`,
      "    sub__look[\"look\"]",
      "    sub__write[\"write\"]",
      "    sub__look --> sub__write",
      "  end",
      `  refine -->|"again, at most 3 times"| refine`,
      "  chunks --> sizes",
      "  sizes --> refine",
      "  refine --> sub"
    ].join("\n"))
  })

  it.effect("toGantt puts the parts of a step in a section of their own", () =>
    Effect.gen(function*() {
      const result = yield* Pipeline.run(whole)
      const gantt = Pipeline.toGantt(result)
      const sections = gantt.split("\n").filter((line) => line.startsWith("  section")).map((line) => line.slice(10))
      expect(sections).toEqual(["steps", "sizes", "refine", "sub"])
      expect(gantt).toContain("  refine#35;2 :done, ")
      expect(gantt).toContain("  sizes[1] :done, ")
      expect(gantt).toContain("  sub/write :done, ")
    }))
})

describe("drawing odd names", () => {
  it("made-up Mermaid ids never take a name already used, and a label cannot break its line", () => {
    const s1 = Step.make("s1", { run: () => Effect.void })
    const spaced = Step.make("x y", { after: { s1 }, run: () => Effect.void })
    expect(Pipeline.toMermaid(Pipeline.make("p", { output: spaced }))).toBe(
      ["flowchart LR", "  s1", `  s1_1["x y"]`, "  s1 --> s1_1"].join("\n")
    )
    const odd = Step.make("a\nb;c", { run: () => Effect.void })
    expect(Pipeline.toMermaid(Pipeline.make("p", { output: odd }))).toBe(["flowchart LR", `  s0["a b#59;c"]`].join("\n"))
  })

  it("the parts of a step named steps keep a section of their own", () => {
    const gantt = Pipeline.toGantt({
      pipeline: "p",
      timeline: [
        { step: "steps", status: "succeeded", startedAt: 0, endedAt: 2, attempts: 1 },
        { step: "steps[0]", status: "succeeded", startedAt: 0, endedAt: 1, attempts: 1, parent: "steps" }
      ]
    })
    expect(gantt.split("\n").filter((line) => line.startsWith("  section"))).toEqual(["  section steps", "  section steps"])
  })
})
