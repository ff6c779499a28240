/**
 * A runner process of `durable_pickup` (see `pickup.ts`): `node pickup-runner.js <postgres:// URL> <port>` runs the
 * pickup pipeline's runs on 127.0.0.1:<port> until it is killed.
 */
import * as SqlClient from "@effect/sql/SqlClient"
import { PgClient } from "@effect/sql-pg"
import { Pipeline, Step } from "@trellis/core"
import { Durable, Store } from "@trellis/durable"
import * as Context from "effect/Context"
import * as Effect from "effect/Effect"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import * as Schema from "effect/Schema"
import { pathToFileURL } from "node:url"

/** The run's id, each run's input, so that its steps can log it. */
export class RunId extends Context.Tag("RunId")<RunId, { readonly id: string }>() {}

/** Writes that a step of a run started, on this runner, now. */
const started = (step: string, runner: number) =>
  Effect.flatMap(RunId, ({ id }) =>
    Effect.flatMap(SqlClient.SqlClient, (sql) =>
      sql`INSERT INTO pickup_log (run, step, runner, at) VALUES (${id}, ${step}, ${runner}, ${Date.now()})`)).pipe(
    Effect.orDie
  )

/** Two steps: `hold` (1 s, in flight when a runner is killed) and `next`. */
export const pickup = (runner: number) => {
  const hold = Step.make("hold", {
    output: Schema.String,
    run: () => Effect.as(Effect.zipRight(started("hold", runner), Effect.sleep("1 second")), "held")
  })
  const next = Step.make("next", {
    after: { hold },
    output: Schema.String,
    run: ({ hold }) => Effect.as(started("next", runner), `${hold}, next`)
  })
  return Durable.make(Pipeline.make("pickup", { output: next }), {
    input: { tag: RunId, schema: Schema.Struct({ id: Schema.String }) }
  })
}

// Launched as a process (not imported by the scenario for the pipeline's definition).
if (import.meta.url === pathToFileURL(process.argv[1] ?? "").href) {
  const [url = "", port = ""] = process.argv.slice(2)
  const store = Store.layerPgRunner({
    url: Redacted.make(url),
    runner: { host: "127.0.0.1", port: Number(port) },
    retention: "forever"
  })
  const log = PgClient.layer({ url: Redacted.make(url), applicationName: "pickup-log" })
  Effect.runPromise(Layer.launch(Durable.layer(pickup(Number(port))).pipe(Layer.provide(log), Layer.provide(store))))
    .catch((error) => {
      process.stderr.write(`${error}\n`)
      process.exit(1)
    })
}
