import type { Graph } from "./graph.js"
import type * as Result from "../Result.js"

const reserved = new Set(["end", "graph", "subgraph", "flowchart", "style", "class", "click", "default"])

const ids = (names: ReadonlyArray<string>): Array<string> => {
  const used = new Set<string>()
  return names.map((name, i) => {
    const id = /^[A-Za-z_][A-Za-z0-9_]*$/.test(name) && !reserved.has(name.toLowerCase()) && !used.has(name)
      ? name
      : `s${i}`
    used.add(id)
    return id
  })
}

const label = (name: string) => name.replace(/"/g, "#quot;")

/** A graph as a Mermaid `flowchart`. */
export const flowchart = (graph: Graph): string => {
  const nodes = graph.nodes
  const id = ids(nodes.map((n) => n.name))
  const lines = ["flowchart LR"]
  for (const node of nodes) {
    lines.push(id[node.index] === node.name ? `  ${node.name}` : `  ${id[node.index]}["${label(node.name)}"]`)
  }
  for (const node of nodes) {
    for (const d of node.deps) lines.push(`  ${id[d]} --> ${id[node.index]}`)
  }
  return lines.join("\n")
}

const tag: Record<Result.StepTiming["status"], string> = {
  succeeded: "done, ",
  failed: "crit, ",
  stopped: "milestone, ",
  interrupted: "active, "
}

/** A run's timeline as a Mermaid Gantt chart. */
export const gantt = (pipeline: string, timeline: ReadonlyArray<Result.StepTiming>): string => {
  const start = Math.min(...timeline.map((t) => t.startedAt))
  const lines = ["gantt", `  title pipeline ${label(pipeline)}`, "  dateFormat x", "  axisFormat %S.%L", "  section steps"]
  timeline.forEach((t, i) => {
    const from = t.startedAt - start
    // Mermaid draws nothing for a zero-length task: give instant steps one millisecond.
    const to = Math.max(t.endedAt - start, from + 1)
    lines.push(`  ${label(t.step).replace(/:/g, "#colon;")} :${tag[t.status]}t${i}, ${from}, ${to}`)
  })
  return lines.join("\n")
}
