/**
 * @since 0.1.0
 */
export * as EffectAi from "./EffectAi.js"
