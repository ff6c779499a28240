/**
 * @since 0.1.0
 */
export * as AiSdk from "./AiSdk.js"
