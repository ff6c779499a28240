import * as Step from "../Step.js"

/** One step of a compiled graph, with its edges as indices. */
export interface Node {
  readonly index: number
  readonly step: Step.Any
  readonly name: string
  /** Indices of the steps this one needs, in the order of `keys`. */
  readonly deps: ReadonlyArray<number>
  /** The keys the dependencies' outputs arrive under. */
  readonly keys: ReadonlyArray<string>
  readonly dependents: Array<number>
}

/** A pipeline's steps in dependency order (every step after its dependencies). */
export interface Graph {
  readonly nodes: ReadonlyArray<Node>
  readonly roots: ReadonlyArray<number>
  readonly output: number
}

/** Why a graph was rejected, with the steps involved. */
export interface GraphProblem {
  readonly reason: "DuplicateName" | "Cycle" | "UnknownStep"
  readonly steps: ReadonlyArray<string>
  readonly detail: string
}

/**
 * Walks the graph from the output (and the extra steps), depth first, numbering steps after their dependencies.
 * Steps are told apart by identity, so two different steps with one name are caught, and a step that is
 * reached again while still on the walk's path closes a cycle.
 */
export const compile = (output: unknown, extra: ReadonlyArray<unknown>): Graph | GraphProblem => {
  const index = new Map<Step.Any, number>()
  const byName = new Map<string, Step.Any>()
  const onPath = new Set<Step.Any>()
  const path: Array<string> = []
  const nodes: Array<Node> = []
  let problem: GraphProblem | undefined

  const visit = (step: Step.Any): number => {
    const known = index.get(step)
    if (known !== undefined) return known
    if (onPath.has(step)) {
      const cycle = [...path.slice(path.indexOf(step.name)), step.name]
      problem = { reason: "Cycle", steps: cycle, detail: `cycle ${cycle.map((s) => `"${s}"`).join(" -> ")}` }
      return -1
    }
    const twin = byName.get(step.name)
    if (twin !== undefined && twin !== step) {
      problem = {
        reason: "DuplicateName",
        steps: [step.name],
        detail: `two different steps are named "${step.name}"`
      }
      return -1
    }
    byName.set(step.name, step)
    onPath.add(step)
    path.push(step.name)
    const keys = Object.keys(step.after)
    const deps: Array<number> = []
    for (const key of keys) {
      const dep: unknown = step.after[key]
      if (!Step.isStep(dep)) {
        problem = {
          reason: "UnknownStep",
          steps: [step.name],
          detail: `step "${step.name}" depends on "${key}", which is not a step (got ${describe(dep)})`
        }
        return -1
      }
      const d = visit(dep)
      if (d < 0) return -1
      deps.push(d)
    }
    onPath.delete(step)
    path.pop()
    const node: Node = { index: nodes.length, step, name: step.name, deps, keys, dependents: [] }
    nodes.push(node)
    index.set(step, node.index)
    return node.index
  }

  const start = (candidate: unknown, role: string): number => {
    if (problem !== undefined) return -1
    if (!Step.isStep(candidate)) {
      problem = {
        reason: "UnknownStep",
        steps: [],
        detail: `${role} is not a step (got ${describe(candidate)})`
      }
      return -1
    }
    return visit(candidate)
  }

  extra.forEach((step, i) => start(step, `steps[${i}]`))
  const out = start(output, "the output")
  if (problem !== undefined) return problem
  const roots: Array<number> = []
  for (const node of nodes) {
    if (node.deps.length === 0) roots.push(node.index)
    for (const d of node.deps) nodes[d]!.dependents.push(node.index)
  }
  return { nodes, roots, output: out }
}

const describe = (u: unknown): string =>
  u === undefined ? "undefined" : u === null ? "null" : typeof u === "object" ? "an object" : typeof u

/** Every step the given one depends on, directly or not. */
export const ancestors = (graph: Graph, index: number): Set<number> => {
  const seen = new Set<number>()
  const stack = [...graph.nodes[index]!.deps]
  while (stack.length > 0) {
    const i = stack.pop()!
    if (seen.has(i)) continue
    seen.add(i)
    stack.push(...graph.nodes[i]!.deps)
  }
  return seen
}
