/**
 * The test kit of the packages: local servers that speak providers' APIs, and what tests look at beside them.
 */
export * as Anthropic from "./Anthropic.js"
export * as Counting from "./Counting.js"
export * as Http from "./Http.js"
export * as OpenAi from "./OpenAi.js"
export * as Tracing from "./Tracing.js"
