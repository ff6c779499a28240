/**
 * Reading `--input`: a regular file of UTF-8 text, no larger than a limit, found from the directory the user ran
 * the command in. Anything else is refused with one line rather than read (`/dev/zero` would never end).
 */
import { FileSystem, Path } from "@effect/platform"
import { Effect } from "effect"
import { InputError } from "./args.js"

const kinds: Record<FileSystem.File.Type, string> = {
  File: "a file",
  Directory: "a directory",
  SymbolicLink: "a symbolic link",
  BlockDevice: "a block device",
  CharacterDevice: "a character device",
  FIFO: "a named pipe",
  Socket: "a socket",
  Unknown: "not a regular file"
}

/**
 * The directory a relative `--input` is read from: where the user ran the command. `pnpm --filter ... demo`
 * runs the script in the package's directory, and says where it was run from in `INIT_CWD`.
 */
export const baseDirectory = (env: Readonly<Record<string, string | undefined>>, cwd: string): string =>
  env["INIT_CWD"] || cwd

/** Reads the document at `path` (as given on the command line), relative to `base`, of at most `maxBytes`. */
export const readDocument = (path: string, options: { readonly base: string; readonly maxBytes: number }) =>
  Effect.gen(function*() {
    const fs = yield* FileSystem.FileSystem
    const full = (yield* Path.Path).resolve(options.base, path)
    const refuse = (why: string) => new InputError({ message: `--input ${path} ${why}` })
    const tooLarge = (size: number) =>
      refuse(`is ${size} bytes, more than the ${options.maxBytes} allowed (raise it with --max-input-bytes)`)

    const info = yield* fs.stat(full).pipe(
      Effect.mapError((error) => new InputError({ message: `cannot read --input ${path}: ${firstLine(error.message)}` }))
    )
    if (info.type !== "File") return yield* refuse(`is not a regular file: it is ${kinds[info.type]}`)
    if (Number(info.size) > options.maxBytes) return yield* tooLarge(Number(info.size))

    const bytes = yield* fs.readFile(full).pipe(
      Effect.mapError((error) => new InputError({ message: `cannot read --input ${path}: ${firstLine(error.message)}` }))
    )
    // It may have grown since it was looked at.
    if (bytes.length > options.maxBytes) return yield* tooLarge(bytes.length)
    if (bytes.includes(0)) return yield* refuse("is binary, not text")
    const text = yield* Effect.try({
      try: () => new TextDecoder("utf-8", { fatal: true, ignoreBOM: false }).decode(bytes),
      catch: () => refuse("is not UTF-8 text")
    })
    if (text.trim().length === 0) return yield* refuse("is empty")
    return text
  })

const firstLine = (text: string) => text.split("\n")[0]
