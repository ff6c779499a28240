/**
 * Local servers that speak providers' APIs, shared by the tests of the packages.
 */
export * as Anthropic from "./Anthropic.js"
export * as Counting from "./Counting.js"
export * as OpenAi from "./OpenAi.js"
