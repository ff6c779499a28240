/**
 * Connecting to a PostgreSQL store: the driver's refusal told as what it is. The client fails every refusal with the
 * same "Failed to connect", whether the server is down, the password wrong or the database missing: the driver's
 * code under it tells them apart.
 */
import type { SqlClient } from "@effect/sql/SqlClient"
import type { SqlError } from "@effect/sql/SqlError"
import { PgClient } from "@effect/sql-pg"
import type * as ConfigError from "effect/ConfigError"
import * as Layer from "effect/Layer"
import * as Redacted from "effect/Redacted"
import { type Reason, StoreUnavailable } from "./unavailable.js"

/** The store's URL as a message may show it: without its password. */
export const displayUrl = (url: Redacted.Redacted<string>): string => {
  try {
    const parsed = new URL(Redacted.value(url))
    parsed.password = ""
    return parsed.toString()
  } catch {
    return "(a URL that cannot be read)"
  }
}

/** The operating system's codes for a server that cannot be reached. */
const unreachable = new Set(["ECONNREFUSED", "ENOTFOUND", "EHOSTUNREACH", "ENETUNREACH", "ETIMEDOUT", "EAI_AGAIN"])

/**
 * Why a connection was refused, from the driver's error: SQLSTATE class 28 (invalid authorization: a wrong password,
 * an unknown user), 3D000 (no such database), or a network code.
 */
export const reasonOf = (error: SqlError): Reason | undefined => {
  const code = (error.cause as { readonly code?: unknown } | undefined)?.code
  if (typeof code !== "string") return undefined
  if (code.startsWith("28")) return "AuthenticationFailed"
  if (code === "3D000") return "NoDatabase"
  return unreachable.has(code) ? "Refused" : undefined
}

const messageOf = (cause: unknown): string => cause instanceof Error ? cause.message : String(cause)

/** The SQL client on the database, a refused connection failing with `StoreUnavailable` that says why. */
export const client = (
  url: Redacted.Redacted<string>,
  applicationName?: string
): Layer.Layer<SqlClient, SqlError | StoreUnavailable | ConfigError.ConfigError> =>
  Layer.mapError(
    PgClient.layer({ url, ...(applicationName === undefined ? {} : { applicationName }) }),
    (error) => {
      const reason = error._tag === "SqlError" ? reasonOf(error) : undefined
      return reason === undefined
        ? error
        : new StoreUnavailable({ store: displayUrl(url), reason, detail: messageOf((error as SqlError).cause) })
    }
  )
