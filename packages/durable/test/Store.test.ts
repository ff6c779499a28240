import { describe, expect, it } from "@effect/vitest"
import { Store } from "@trellis/durable"
import { type Duration, Effect, Layer, Redacted } from "effect"
import * as fs from "node:fs"
import { tempDir } from "./utils.js"

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

describe("a store's durations", () => {
  const url = Redacted.make("postgres://trellis:s3cret@127.0.0.1:1/runs")
  const runner = { host: "127.0.0.1", port: 34431 }
  // Effect reads a negative or NaN amount as zero: an interval of zero would poll the database without pause, a
  // retention of zero would remove every finished run.
  const cases: ReadonlyArray<[string, (dir: string) => Layer.Layer<Store.Services, unknown>]> = [
    ["retention", (dir) => Store.layerSqlite({ filename: `${dir}/a.db`, retention: -1 })],
    ["retention", (dir) => Store.layerSqlite({ filename: `${dir}/b.db`, retention: "7 dasy" as Duration.DurationInput })],
    ["pollInterval", (dir) => Store.layerSqlite({ filename: `${dir}/c.db`, pollInterval: 0 })],
    ["shutdownTimeout", (dir) => Store.layerSqlite({ filename: `${dir}/d.db`, shutdownTimeout: Number.NaN })],
    ["pollInterval", () => Store.layerPg({ url, pollInterval: "-1 second" as Duration.DurationInput })],
    ["pickUpInterval", () => Store.layerPgRunner({ url, runner, pickUpInterval: Number.NaN })],
    ["pickUpInterval", () => Store.layerPgClient({ url, pickUpInterval: 0 })]
  ]
  for (const [option, layer] of cases) {
    it.scoped(`a bad ${option} fails the layer with InvalidOption, naming it, before anything is opened`, () =>
      Effect.gen(function*() {
        const dir = tempDir()
        const error = yield* Effect.flip(Layer.build(layer(dir)))
        expect(error).toBeInstanceOf(Store.InvalidOption)
        expect((error as Store.InvalidOption).option).toBe(option)
        expect((error as Store.InvalidOption).message).toContain(option)
        // Nothing was opened: no SQLite file was made.
        expect(fs.readdirSync(dir)).toEqual([])
      }))
  }
})
