/**
 * The error a store fails with when it cannot be opened or stops being usable, each reason its own: a person (or a
 * supervisor) reading it knows what to fix, and a program can match on `reason`.
 */
import * as Data from "effect/Data"

/**
 * Why a store cannot be used. A SQLite file: `NotFound` (missing, and the store may not create it), `NoDirectory`
 * (its folder is missing), `NotAFile` (the path is a folder or another kind of file), `Corrupt` (not a SQLite
 * database, or its pages are damaged), `CannotOpen` (anything else the operating system refused, such as
 * permissions). A PostgreSQL database: `Refused` (nothing answered at its host and port), `AuthenticationFailed`
 * (the user or password was refused), `NoDatabase` (the server has no database of that name), `Lost` (the runner
 * lost the database while running and it did not come back in time).
 */
export type Reason =
  | "NotFound"
  | "NoDirectory"
  | "NotAFile"
  | "Corrupt"
  | "CannotOpen"
  | "Refused"
  | "AuthenticationFailed"
  | "NoDatabase"
  | "Lost"

const sqlite: ReadonlySet<Reason> = new Set(["NotFound", "NoDirectory", "NotAFile", "Corrupt", "CannotOpen"])

const why: Record<Reason, string> = {
  NotFound: "it does not exist",
  NoDirectory: "its folder does not exist",
  NotAFile: "it is not a file",
  Corrupt: "it is not a SQLite database, or it is damaged",
  CannotOpen: "it cannot be opened",
  Refused: "nothing answered at its host and port (is the server running there?)",
  AuthenticationFailed: "the server refused the user name or password",
  NoDatabase: "the server has no database of that name",
  Lost: "it stopped answering while this process ran on it, so the runs it had in flight are left to their journal " +
    "(a new process resumes them)"
}

/**
 * A store cannot be opened, or stopped being usable. `store` names it: a SQLite file's path as given, or a
 * PostgreSQL URL without its password. `detail` is what the driver said.
 *
 * @since 0.2.0
 */
export class StoreUnavailable extends Data.TaggedError("StoreUnavailable")<{
  readonly store: string
  readonly reason: Reason
  readonly detail: string
}> {
  override get message(): string {
    const what = sqlite.has(this.reason) ? `the SQLite file "${this.store}"` : `the PostgreSQL database ${this.store}`
    const verb = this.reason === "Lost" ? "Lost" : "Cannot open"
    return `${verb} ${what}: ${why[this.reason]}${this.detail === "" ? "" : ` (${this.detail})`}`
  }
}
