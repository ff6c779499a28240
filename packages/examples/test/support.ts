import { NodeContext } from "@effect/platform-node"
import { Effect } from "effect"
import { type Io, run } from "../src/cli/demo.js"

/**
 * Runs the demo in this process with `args`, as the CLI would, capturing what it writes: its exit code, stdout,
 * stderr, and the JSON object on stdout's last line (for `--json`).
 */
export const demo = (args: ReadonlyArray<string>, io: Partial<Io> = {}) =>
  Effect.gen(function*() {
    let stdout = ""
    let stderr = ""
    const code = yield* run(args, {
      stdout: (text) => void (stdout += text),
      stderr: (text) => void (stderr += text),
      live: false,
      env: {},
      ...io
    })
    const lines = stdout.trim().split("\n")
    return { code, stdout, stderr, json: () => JSON.parse(lines[lines.length - 1]!) }
  }).pipe(Effect.provide(NodeContext.layer))
