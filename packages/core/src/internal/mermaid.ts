/**
 * Pictures of a pipeline as Mermaid text: its graph as a `flowchart` (a step over a list as a stacked box, a loop
 * with its bound on an edge back to itself, a sub-pipeline as a box holding its steps), and a run's timeline as a
 * `gantt` (the parts of a step in a section of their own under it).
 */
import type { Graph } from "./graph.js"
import * as Plans from "./plans.js"
import type * as Result from "../Result.js"
import type * as Step from "../Step.js"

const reserved = new Set(["end", "graph", "subgraph", "flowchart", "style", "class", "click", "default"])

/** Mermaid ids for names: the name itself where Mermaid takes it, else a made-up one; `prefix` keeps nested ones apart. */
const ids = (names: ReadonlyArray<string>, prefix: string, used: Set<string>): Array<string> => {
  // The names Mermaid takes as they are come first, so that a made-up id never takes one of them.
  const own = names.map((name) => {
    const id = prefix + name
    return /^[A-Za-z_][A-Za-z0-9_]*$/.test(id) && !reserved.has(id.toLowerCase()) && !used.has(id) ? id : undefined
  })
  for (const id of own) if (id !== undefined) used.add(id)
  return own.map((id, i) => {
    if (id !== undefined) return id
    let made = `${prefix}s${i}`
    for (let n = 1; used.has(made); n++) made = `${prefix}s${i}_${n}`
    used.add(made)
    return made
  })
}

/**
 * Text Mermaid shows as it is: `#` would start an entity, `"` end a label, `:` and `;` end a Gantt task's name or a
 * statement, a line break end a line.
 */
const label = (name: string) => name.replace(/[#":;]|\p{Cc}/gu, (c) => escapes[c] ?? " ")

const escapes: Record<string, string> = { "#": "#35;", "\"": "#quot;", ":": "#colon;", ";": "#59;" }

const bound = (n: number) => n === Infinity ? "all at once" : n === 1 ? "one at a time" : `at most ${n} at once`

/** A graph as a Mermaid `flowchart`. */
export const flowchart = (graph: Graph): string => ["flowchart LR", ...body(graph, "", "  ", new Set())].join("\n")

const body = (graph: Graph, prefix: string, indent: string, used: Set<string>): Array<string> => {
  const nodes = graph.nodes
  const id = ids(nodes.map((n) => n.name), prefix, used)
  const lines: Array<string> = []
  const edges: Array<string> = []
  for (const node of nodes) {
    const own = id[node.index]!
    lines.push(...drawn(own, node.name, node.step.shape, indent, used, edges))
  }
  for (const node of nodes) {
    for (const d of node.deps) edges.push(`${indent}${id[d]} --> ${id[node.index]}`)
  }
  return [...lines, ...edges]
}

/** One step: a plain box, or the shape of what it is made of. */
const drawn = (
  id: string,
  name: string,
  shape: Step.Shape | undefined,
  indent: string,
  used: Set<string>,
  edges: Array<string>
): Array<string> => {
  const plain = id === name ? `${indent}${name}` : `${indent}${id}["${label(name)}"]`
  if (shape === undefined) return [plain]
  switch (shape._tag) {
    case "ForEach": {
      const each = `for each item, ${bound(shape.concurrency)} (at most ${shape.maxItems})`
      if (shape.pipeline === undefined) return [`${indent}${id}[["${label(name)}#colon; ${each}"]]`]
      return nested(id, `${label(name)}#colon; ${each}, pipeline ${label(shape.pipeline.name)}`, shape.pipeline, indent, used)
    }
    case "Loop":
      edges.push(`${indent}${id} -->|"again, at most ${shape.maxIterations} times"| ${id}`)
      return [`${indent}${id}(["${label(name)}#colon; loop"])`]
    case "SubPipeline":
      return nested(id, `${label(name)}#colon; pipeline ${label(shape.pipeline.name)}`, shape.pipeline, indent, used)
  }
}

/** A sub-pipeline: a box holding its steps' graph. */
const nested = (id: string, title: string, pipeline: Step.SubPipelineOf, indent: string, used: Set<string>) => [
  `${indent}subgraph ${id} ["${title}"]`,
  ...body(Plans.planOf(pipeline).graph, `${id}__`, `${indent}  `, used),
  `${indent}end`
]

const tag: Record<Result.StepTiming["status"], string> = {
  succeeded: "done, ",
  failed: "crit, ",
  stopped: "milestone, ",
  interrupted: "active, "
}

/**
 * A run's timeline as a Mermaid Gantt chart. The steps of the run are in the section `steps`; the parts of a step
 * made of steps follow in a section named after it, so that a map's items or a loop's iterations read as a group.
 */
export const gantt = (pipeline: string, timeline: ReadonlyArray<Result.StepTiming>): string => {
  const start = Math.min(...timeline.map((t) => t.startedAt))
  const lines = ["gantt", `  title pipeline ${label(pipeline)}`, "  dateFormat x", "  axisFormat %S.%L"]
  // The run's own steps are the section `steps`, kept apart from the parts of a step that happens to be named so.
  const sections = new Map<string | undefined, Array<number>>([[undefined, []]])
  timeline.forEach((t, i) => {
    if (!sections.has(t.parent)) sections.set(t.parent, [])
    sections.get(t.parent)!.push(i)
  })
  for (const [section, rows] of sections) {
    if (rows.length === 0) continue
    lines.push(`  section ${section === undefined ? "steps" : label(section)}`)
    for (const i of rows) {
      const t = timeline[i]!
      const from = t.startedAt - start
      // Mermaid draws nothing for a zero-length task: give instant steps one millisecond.
      const to = Math.max(t.endedAt - start, from + 1)
      lines.push(`  ${label(t.step)} :${tag[t.status]}t${i}, ${from}, ${to}`)
    }
  }
  return lines.join("\n")
}
