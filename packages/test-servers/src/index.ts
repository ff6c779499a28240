/**
 * Local servers that speak providers' APIs, shared by the tests of the packages.
 */
export * as Anthropic from "./Anthropic.js"
