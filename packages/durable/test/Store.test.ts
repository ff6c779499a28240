import { describe, expect, it } from "@effect/vitest"
import { Store } from "@trellis/durable"
import { Effect, Layer, Redacted } from "effect"

describe("Store.layerPgRunner", () => {
  const url = Redacted.make("postgres://trellis:s3cret@127.0.0.1:1/runs")

  for (const runner of [{ host: "127.0.0.1", port: 0 }, { host: "127.0.0.1", port: 70_000 }, { host: " ", port: 5432 }, {
    host: "a-host-name-too-long-to-fit-in-a-connection-name.example.com",
    port: 5432
  }]) {
    it.scoped(`refuses the runner address "${runner.host}:${runner.port}" before connecting, naming it`, () =>
      Effect.gen(function*() {
        const error = yield* Effect.flip(Layer.build(Store.layerPgRunner({ url, runner })))
        expect(error).toBeInstanceOf(Store.InvalidRunner)
        expect(error.message).toContain(`"${runner.host}:${runner.port}"`)
        expect(error.message).not.toContain("s3cret")
      }))
  }
})
