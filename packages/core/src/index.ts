/**
 * @since 0.1.0
 */
export * as Budget from "./Budget.js"
export * as Cost from "./Cost.js"
export * as Event from "./Event.js"
export * as ForEach from "./ForEach.js"
export * as Ledger from "./Ledger.js"
export * as Loop from "./Loop.js"
export * as OptionKeys from "./OptionKeys.js"
export * as Pipeline from "./Pipeline.js"
export * as PipelineError from "./PipelineError.js"
export * as Result from "./Result.js"
export * as Router from "./Router.js"
export * as Step from "./Step.js"
export * as StepExecutor from "./StepExecutor.js"
export * as SubPipeline from "./SubPipeline.js"
export * as Usage from "./Usage.js"
