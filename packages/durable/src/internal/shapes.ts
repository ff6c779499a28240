/**
 * What a durable run needs of a pipeline's steps, looked for in the steps made of steps too: every part of a run is
 * journaled on its own (an item of a `ForEach` through its item schema, an iteration of a `Loop` through its state
 * schema, a step of a `SubPipeline` through its own), so a schema missing anywhere inside is found when the pipeline
 * is made durable, not when a resumed run cannot read its journal.
 */
import type { Pipeline, Step } from "@trellis/core"
import * as Waiting from "./waiting.js"

/** A schema a step lacks: the step's name in the run, which schema, and the option that declares it. */
export interface Missing {
  readonly step: string
  readonly schema: "output" | "item" | "state"
  readonly option: string
}

/** A step of the pipeline or of one of its sub-pipelines, with its name in the run (`research/extract`). */
export interface Found {
  readonly path: string
  readonly step: Step.Any
  /** Whether the step is inside a sub-pipeline. */
  readonly nested: boolean
}

/** Every step of the pipeline and of its sub-pipelines, at any depth, each with its name in the run. */
export const walk = (pipeline: Pipeline.Any | Step.SubPipelineOf, prefix = ""): ReadonlyArray<Found> =>
  pipeline.steps.flatMap((step): ReadonlyArray<Found> => {
    const path = prefix + step.name
    const found: Found = { path, step, nested: prefix !== "" }
    const shape = step.shape
    // A pipeline per item: its steps are named under the item (`research[acme]/look`), `[*]` here for any item.
    if (shape?._tag === "ForEach" && shape.pipeline !== undefined) {
      return [found, ...walk(shape.pipeline, `${path}[*]/`)]
    }
    return shape?._tag === "SubPipeline" ? [found, ...walk(shape.pipeline, `${path}/`)] : [found]
  })

/** The schemas the pipeline's steps lack, at any depth, in the order of the steps. */
export const missingSchemas = (pipeline: Pipeline.Any): ReadonlyArray<Missing> =>
  walk(pipeline).flatMap(({ path, step }): ReadonlyArray<Missing> => {
    const shape = step.shape
    switch (shape?._tag) {
      // A sub-pipeline's output is its output step's, which is looked at as a step of its own.
      case "SubPipeline":
        return []
      // A pipeline per item: its output is its output step's, looked at as a step of its own.
      case "ForEach":
        if (shape.pipeline !== undefined) return []
        return shape.item === undefined ? [{ step: path, schema: "item", option: "ForEach.make's output option" }] : []
      case "Loop":
        return shape.state === undefined ? [{ step: path, schema: "state", option: "Loop.make's state option" }] : []
      default:
        return step.output === undefined ? [{ step: path, schema: "output", option: "Step.make's output option" }] : []
    }
  })

/**
 * The waiting steps inside sub-pipelines. A durable run refuses them: a signal is addressed to a waiting step of the
 * pipeline by its name, and the same sub-pipeline can be a step of a pipeline more than once.
 */
export const nestedWaiting = (pipeline: Pipeline.Any): ReadonlyArray<string> =>
  walk(pipeline).filter(({ nested, step }) => nested && Waiting.isWaiting(step)).map(({ path }) => path)
