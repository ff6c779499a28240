/**
 * @since 0.1.0
 */
export * as Budget from "./Budget.js"
export * as Cost from "./Cost.js"
export * as Ledger from "./Ledger.js"
export * as Result from "./Result.js"
export * as Usage from "./Usage.js"
