/**
 * @since 0.2.0
 */
export * as Cancellations from "./Cancellations.js"
export * as Durable from "./Durable.js"
export * as Retention from "./Retention.js"
export * as Runs from "./Runs.js"
export * as SpendLog from "./SpendLog.js"
export * as Store from "./Store.js"
