#!/usr/bin/env node
/**
 * The `trellis-demo` executable. Ctrl-C interrupts the run: in-flight calls are aborted, the usage so far is
 * printed, and the process exits with 130.
 */
import { NodeContext, NodeRuntime } from "@effect/platform-node"
import { Effect, Exit } from "effect"
import { run } from "./demo.js"

// `pnpm demo -- --json` passes the `--` along: it only separates pnpm's flags from the demo's.
const args = process.argv.slice(2)
const program = run(args[0] === "--" ? args.slice(1) : args, {
  stdout: (text) => process.stdout.write(text),
  stderr: (text) => process.stderr.write(text),
  live: process.stdout.isTTY === true && !process.env["CI"],
  terminal: process.stdin.isTTY === true && process.stdout.isTTY === true,
  env: process.env,
  // The offline model answers at once; a short wait per call makes the progress something to watch.
  offlineLatency: "300 millis"
}).pipe(Effect.provide(NodeContext.layer))

NodeRuntime.runMain(program, {
  disableErrorReporting: true,
  // The demo logs to stderr through its own logger, in place of Effect's default one, which writes to stdout.
  disablePrettyLogger: true,
  teardown: (exit, onExit) =>
    onExit(Exit.isSuccess(exit) ? Number(exit.value) : Exit.isInterrupted(exit) ? 130 : 1)
})
