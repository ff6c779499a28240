/**
 * `--record <file>` and `--replay <file>`: the demo's model calls recorded to a file, or answered from one with no
 * network and no key (see `Fixtures` of `@trellis/llm`).
 */
import { Options } from "@effect/cli"
import { Fixtures, type LanguageModel } from "@trellis/llm"
import { Layer, Option } from "effect"

export const fixtureFlags = {
  record: Options.text("record").pipe(
    Options.withPseudoName("file"),
    Options.withDescription("Record every model call and its answer to this JSON file, for --replay"),
    Options.optional
  ),
  replay: Options.text("replay").pipe(
    Options.withPseudoName("file"),
    Options.withDescription("Answer every model call from this file made by --record: no network, no key"),
    Options.optional
  )
}

/** The flags of this module that take a value, for the check of the raw arguments. */
export const fixtureValueFlags = ["--record", "--replay"]

/**
 * The model the demo runs on: `chosen`, recorded with `--record`; or, with `--replay`, the recording in its place
 * (the two together are refused with the other flags, see `checkArgs`).
 */
export const withFixtures = <E>(
  chosen: Layer.Layer<LanguageModel.LanguageModel, E>,
  flags: { readonly record: Option.Option<string>; readonly replay: Option.Option<string> }
): Layer.Layer<LanguageModel.LanguageModel, E | Fixtures.FixtureError> =>
  Option.isSome(flags.replay)
    ? Fixtures.replay(flags.replay.value)
    : Option.isSome(flags.record)
    ? Layer.provide(chosen, Fixtures.record(flags.record.value))
    : chosen
