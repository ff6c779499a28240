import { Cost, Ledger, Usage } from "@trellis/core"
import { Durable, Store } from "@trellis/durable"
import { Deferred, Effect, Fiber, Layer } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"

export const dir = fs.mkdtempSync(path.join(os.tmpdir(), "trial-"))
let n = 0
export const fresh = () => path.join(dir, `t-${++n}.db`)

export const storeWith = (file, durable, onEvent) =>
  Durable.layer(durable, onEvent ? { onEvent } : undefined).pipe(
    Layer.provideMerge(Store.layerSqlite({ filename: file, pollInterval: "100 millis", shutdownTimeout: "200 millis" })),
    Layer.orDie
  )

export const paidCall = (nanos) =>
  Ledger.metered({
    worstCase: Cost.nanos(nanos * 2),
    run: Effect.void,
    usage: () => Usage.make({ requests: 1, inputTokens: 10, outputTokens: 5, cost: Cost.nanos(nanos) })
  })

export const run = (durable, file, id, onEvent) =>
  Durable.run(durable, { id }).pipe(Effect.provide(storeWith(file, durable, onEvent)), Effect.either)

export const crashOnce = (durable, file, id, entered) =>
  Effect.gen(function*() {
    const fiber = yield* Effect.fork(Durable.run(durable, { id }).pipe(Effect.provide(storeWith(file, durable))))
    yield* Deferred.await(entered)
    yield* Fiber.interrupt(fiber)
  })

export const show = (label, e) => console.log(label, JSON.stringify(e, (k, v) => v, 0))
export const cleanup = () => fs.rmSync(dir, { recursive: true, force: true })
