/**
 * The store a durable run is kept in, from `--store`: the layer that opens it, and how messages name it.
 */
import { Store } from "@trellis/durable"
import { Redacted } from "effect"
import type { StoreLocation } from "./args.js"

/** Opens the store: this process becomes its runner. */
export const storeLayer = (location: StoreLocation) =>
  location._tag === "Postgres"
    ? Store.layerPg({ url: Redacted.make(location.url) })
    : Store.layerSqlite({ filename: location.filename })

/** The store, as messages name it (never with a PostgreSQL URL's password). */
export const storeName = (location: StoreLocation) =>
  location._tag === "Postgres" ? "the PostgreSQL store" : `the store ${JSON.stringify(location.filename)}`
