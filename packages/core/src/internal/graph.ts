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
  /** The steps' names in order, shared by every run's `RunStarted` event. */
  readonly names: ReadonlyArray<string>
}

/** Why a graph was rejected, with the steps involved. */
export interface GraphProblem {
  readonly reason: "DuplicateName" | "Cycle" | "UnknownStep"
  readonly steps: ReadonlyArray<string>
  readonly detail: string
}

/** A step on the walk's path, with how far its dependencies have been walked. */
interface Frame {
  readonly step: Step.Any
  readonly keys: ReadonlyArray<string>
  readonly deps: Array<number>
}

/**
 * Walks the graph from the output (and the extra steps), depth first, numbering steps after their dependencies.
 * Steps are told apart by identity, so two different steps with one name are caught, and a step that is
 * reached again while still on the walk's path closes a cycle. The walk keeps its own stack, so a chain of
 * any length compiles.
 */
export const compile = (output: unknown, extra: ReadonlyArray<unknown>): Graph | GraphProblem => {
  const index = new Map<Step.Any, number>()
  const byName = new Map<string, Step.Any>()
  const onPath = new Set<Step.Any>()
  const path: Array<Frame> = []
  const nodes: Array<Node> = []
  let problem: GraphProblem | undefined

  /** The step's index if it is numbered already, `OPENED` after pushing it on the path, or `FAILED`. */
  const open = (step: Step.Any): number => {
    const known = index.get(step)
    if (known !== undefined) return known
    if (onPath.has(step)) {
      const names = path.map((frame) => frame.step.name)
      const cycle = [...names.slice(names.indexOf(step.name)), step.name]
      problem = { reason: "Cycle", steps: cycle, detail: `cycle ${cycle.map((s) => `"${s}"`).join(" -> ")}` }
      return FAILED
    }
    const twin = byName.get(step.name)
    if (twin !== undefined && twin !== step) {
      problem = {
        reason: "DuplicateName",
        steps: [step.name],
        detail: `two different steps are named "${step.name}"`
      }
      return FAILED
    }
    byName.set(step.name, step)
    onPath.add(step)
    path.push({ step, keys: Object.keys(step.after), deps: [] })
    return OPENED
  }

  const visit = (root: Step.Any): number => {
    let result = open(root)
    while (path.length > 0) {
      const frame = path[path.length - 1]!
      const { deps, keys, step } = frame
      if (deps.length < keys.length) {
        const key = keys[deps.length]!
        const dep: unknown = step.after[key]
        if (!Step.isStep(dep)) {
          problem = {
            reason: "UnknownStep",
            steps: [step.name],
            detail: `step "${step.name}" depends on "${key}", which is not a step (got ${describe(dep)})`
          }
          return FAILED
        }
        const d = open(dep)
        if (d === FAILED) return FAILED
        if (d !== OPENED) deps.push(d)
        continue
      }
      path.pop()
      onPath.delete(step)
      const node: Node = { index: nodes.length, step, name: step.name, deps, keys, dependents: [] }
      nodes.push(node)
      index.set(step, node.index)
      if (path.length > 0) path[path.length - 1]!.deps.push(node.index)
      else result = node.index
    }
    return result
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

  extra.forEach((step, i) => start(step, `include[${i}]`))
  const out = start(output, "the output")
  if (problem !== undefined) return problem
  const roots: Array<number> = []
  for (const node of nodes) {
    if (node.deps.length === 0) roots.push(node.index)
    for (const d of node.deps) nodes[d]!.dependents.push(node.index)
  }
  return {
    nodes,
    roots,
    output: out,
    names: nodes.map((node) => node.name)
  }
}

const OPENED = -2
const FAILED = -1

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
