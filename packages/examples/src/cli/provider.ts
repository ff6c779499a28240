/**
 * `--provider`: which language model the demo runs on. OpenAI through its own layer, Anthropic through the AI SDK
 * adapter (`@ai-sdk/anthropic`), or the offline model. Without the flag, the choice is as it always was: OpenAI
 * when `OPENAI_API_KEY` is set, else offline.
 */
import { createAnthropic } from "@ai-sdk/anthropic"
import { AiSdk } from "@trellis/ai-sdk"
import { type LanguageModel, OfflineModel, OpenAi } from "@trellis/llm"
import { Config, ConfigError, type Duration, Effect, Layer, Option, Redacted } from "effect"
import { InputError, type ProviderName } from "./args.js"

/** The model asked on Anthropic when `--model` names none. */
export const defaultAnthropicModel = "claude-haiku-4-5"

/**
 * Anthropic through the AI SDK adapter: `ANTHROPIC_API_KEY` (required, read as `Redacted`) and `ANTHROPIC_BASE_URL`
 * (optional, with its `/v1` as the AI SDK reads it: Anthropic's API when unset).
 */
const anthropic = (model: string | undefined): Layer.Layer<LanguageModel.LanguageModel, ConfigError.ConfigError> =>
  Layer.unwrapEffect(
    Effect.gen(function*() {
      const { apiKey, baseURL } = yield* Config.all({
        apiKey: Config.redacted("ANTHROPIC_API_KEY").pipe(
          Config.validate({ message: "ANTHROPIC_API_KEY is empty", validation: (key) => Redacted.value(key).length > 0 })
        ),
        baseURL: Config.withDefault(Config.string("ANTHROPIC_BASE_URL"), "")
      })
      const provider = createAnthropic({
        apiKey: Redacted.value(apiKey),
        ...(baseURL.length > 0 ? { baseURL } : {})
      })
      // The key is also given as a secret: a server that echoes it back (in a 401, a 500) must not put it in errors,
      // and from there in stderr, `--json`, spans, recordings or the journal.
      return AiSdk.layer({ model: provider(model ?? defaultAnthropicModel), secrets: apiKey }).pipe(
        Layer.catchAll((invalid) => Layer.fail(ConfigError.InvalidData([invalid.option], invalid.message)))
      )
    })
  )

const layerOf = (
  provider: ProviderName,
  model: string | undefined,
  offlineLatency: Duration.DurationInput | undefined
): Layer.Layer<LanguageModel.LanguageModel, ConfigError.ConfigError> => {
  switch (provider) {
    case "openai":
      return OpenAi.layerConfig({ model })
    case "anthropic":
      return anthropic(model)
    case "offline":
      return OfflineModel.layer({ model, latency: offlineLatency })
  }
}

// A setting the provider needs that is missing or wrong is bad input: one line naming it, exit code 2.
const describeConfigError = (provider: ProviderName, error: ConfigError.ConfigError): string =>
  ConfigError.reduceWithContext<undefined, string>(error, undefined, {
    andCase: (_, left, right) => [left, right].filter((text) => text !== "").join("; "),
    orCase: (_, left, right) => [left, right].filter((text) => text !== "").join("; "),
    invalidDataCase: (_, path, message) => `${path.join(".")}: ${message}`,
    missingDataCase: (_, path) => `${path.join(".")} is not set`,
    sourceUnavailableCase: (_, path, message) => `${path.join(".")} could not be read: ${message}`,
    unsupportedCase: (_, path, message) => `${path.join(".")}: ${message}`
  }).replace(/^/, `the ${provider} provider cannot start: `)

/**
 * The language model of the chosen provider (the default one when none is chosen); a setting it needs that is
 * missing or wrong fails with an `InputError` naming it.
 */
export const chooseProvider = (
  provider: Option.Option<ProviderName>,
  model: Option.Option<string>,
  env: Readonly<Record<string, string | undefined>>,
  offlineLatency: Duration.DurationInput | undefined
): Layer.Layer<LanguageModel.LanguageModel, InputError> => {
  const chosen = Option.getOrElse(provider, (): ProviderName => (env["OPENAI_API_KEY"] ? "openai" : "offline"))
  return layerOf(chosen, Option.getOrUndefined(model), offlineLatency).pipe(
    Layer.mapError((error) => new InputError({ message: describeConfigError(chosen, error) }))
  )
}
