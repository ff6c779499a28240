/**
 * @since 0.1.0
 */
export * as LanguageModel from "./LanguageModel.js"
export * as Prompt from "./Prompt.js"
export * as Provider from "./Provider.js"
export * as LlmError from "./LlmError.js"
export * as Pricing from "./Pricing.js"
export * as Tokenizer from "./Tokenizer.js"
export * as OfflineModel from "./OfflineModel.js"
export * as ScriptedModel from "./ScriptedModel.js"
export * as Agent from "./Agent.js"
export * as Tool from "./Tool.js"
export * as OpenAi from "./OpenAi.js"
export * as Fixtures from "./Fixtures.js"
export * as Redaction from "./Redaction.js"
