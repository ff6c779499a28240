/**
 * The store a durable run is kept in, from `--store`: the layer that opens it, and how messages name it.
 */
import { Store } from "@trellis/durable"
import { type Layer, Redacted } from "effect"
import type { StoreLocation } from "./args.js"
import { printable, quoted } from "./text.js"

/** A store opened by a command, whichever way it was opened. */
export type Opened = Layer.Layer<
  Store.Services,
  Layer.Layer.Error<
    ReturnType<typeof Store.layerPg> | ReturnType<typeof Store.layerPgClient> | ReturnType<typeof Store.layerSqlite>
  >
>

/** Opens the store: this process becomes its runner. */
export const storeLayer = (location: StoreLocation): Opened =>
  location._tag === "Postgres"
    ? Store.layerPg({ url: Redacted.make(location.url) })
    : Store.layerSqlite({ filename: location.filename })

/**
 * Opens a store that must exist, to list its runs: a PostgreSQL store as a client only, so that listing never takes
 * runs from the runners working on it; a SQLite file as its runner, as only one process may have it open, and never
 * made anew: a mistyped path is an error naming it, not an empty store.
 */
export const readerLayer = (location: StoreLocation): Opened =>
  location._tag === "Postgres"
    ? Store.layerPgClient({ url: Redacted.make(location.url) })
    : Store.layerSqlite({ filename: location.filename, create: false })

/** Opens a store that must exist, as its runner: for a command that signals or cancels a run kept in it. */
export const existingLayer = (location: StoreLocation): Opened =>
  location._tag === "Postgres" ? storeLayer(location) : Store.layerSqlite({ filename: location.filename, create: false })

/** The errors a store can fail to open with. */
export type OpenError = Layer.Layer.Error<Opened>

/**
 * Says that the store could not be opened: one line on stderr (the error's own message when it names the store, as
 * `StoreInUse` and `StoreUnavailable` do), and with `--json` a JSON object on stdout too, so that a program reading
 * stdout is told rather than handed nothing. Gives the exit code, 1.
 */
export const storeFailed = (
  io: { readonly stdout: (text: string) => void; readonly stderr: (text: string) => void },
  location: StoreLocation,
  json: boolean,
  error: OpenError
): number => {
  const message = error._tag === "StoreInUse" || error._tag === "StoreUnavailable"
    ? error.message
    : `cannot open ${storeName(location)}: ${error.message}`
  io.stderr(`trellis-demo: ${printable(message)}\n`)
  if (json) {
    const reason = error._tag === "StoreUnavailable" ? { reason: error.reason } : {}
    io.stdout(printable(JSON.stringify({ status: "failed", error: { tag: error._tag, ...reason, step: null, message } })) + "\n")
  }
  return 1
}

/** The store, as messages name it (never with a PostgreSQL URL's password). */
export const storeName = (location: StoreLocation) =>
  location._tag === "Postgres" ? "the PostgreSQL store" : `the store ${quoted(location.filename)}`
