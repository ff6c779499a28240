import type { WorkflowEngine } from "@effect/workflow/WorkflowEngine"
import { Durable, Store } from "@trellis/durable"
import { Cost, Ledger, Usage } from "@trellis/core"
import { Effect, Layer } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"

/** A fresh folder for SQLite files, removed when the process exits. */
export const tempDir = (): string => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "trellis-durable-"))
  process.once("exit", () => fs.rmSync(dir, { recursive: true, force: true }))
  return dir
}

/** The layer a process runs durable pipelines with: the pipelines registered on a SQLite file's engine. */
export const storeWith = (filename: string, ...pipelines: ReadonlyArray<Durable.Durable<any, any, never, any, any>>) =>
  storeWithOptions({ filename }, ...pipelines)

/** As {@link storeWith}, with the store's options. */
export const storeWithOptions = (
  options: Store.SqliteOptions,
  ...pipelines: ReadonlyArray<Durable.Durable<any, any, never, any, any>>
) =>
  pipelines.reduce(
    (layer, pipeline) => Layer.merge(layer, Durable.layer(pipeline)),
    Layer.empty as Layer.Layer<never, never, WorkflowEngine>
  ).pipe(
    Layer.provideMerge(Store.layerSqlite({ pollInterval: "100 millis", shutdownTimeout: "200 millis", ...options })),
    Layer.orDie
  )

/** A paid call that costs exactly `nanos`, reported with 10 input and 5 output tokens. */
export const paidCall = (nanos: number) =>
  Ledger.metered({
    worstCase: Cost.nanos(nanos * 2),
    run: Effect.void,
    usage: () => Usage.make({ requests: 1, inputTokens: 10, outputTokens: 5, cost: Cost.nanos(nanos) })
  })
