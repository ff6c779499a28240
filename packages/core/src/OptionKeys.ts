/**
 * Checks an options object for keys it does not know. TypeScript catches a misspelled option at compile time; a
 * JavaScript caller (or one who built the object dynamically) would get a pipeline that silently does something
 * else: `steps` in place of `include` runs no extra step, `retries` in place of `retry` retries nothing. Trellis
 * refuses such keys where the options are checked, naming the key and the likely intended one.
 *
 * @since 0.3.0
 */

/**
 * Names people reach for, from other libraries or by habit, and the option each most likely means.
 */
const habits: Readonly<Record<string, string>> = {
  steps: "include",
  extra: "include",
  retries: "retry",
  maxRetries: "retry",
  attempts: "retry",
  deps: "after",
  dependencies: "after",
  dependsOn: "after",
  needs: "after",
  parallelism: "concurrency",
  maxConcurrency: "concurrency",
  handler: "run",
  execute: "run",
  fn: "run",
  timeoutMs: "timeout",
  maxCost: "budget",
  max_tokens: "maxTokens",
  maxOutputTokens: "maxTokens",
  base_url: "baseURL",
  baseUrl: "baseURL",
  api_key: "apiKey"
}

/** Edit distance, bounded: anything past `bound` is reported as `bound + 1`. */
const distance = (a: string, b: string, bound: number): number => {
  if (Math.abs(a.length - b.length) > bound) return bound + 1
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j)
  for (let i = 1; i <= a.length; i++) {
    const current = [i]
    for (let j = 1; j <= b.length; j++) {
      const substitution = previous[j - 1]! + (a[i - 1]!.toLowerCase() === b[j - 1]!.toLowerCase() ? 0 : 1)
      current.push(Math.min(previous[j]! + 1, current[j - 1]! + 1, substitution))
    }
    previous = current
  }
  return Math.min(previous[b.length]!, bound + 1)
}

/**
 * The known key `key` most likely stands for: a habit's name, else the closest known key within two edits (one for
 * short keys), else `undefined`.
 *
 * @since 0.3.0
 * @category checks
 */
export const likely = (key: string, known: ReadonlyArray<string>): string | undefined => {
  const habit = habits[key]
  if (habit !== undefined && known.includes(habit)) return habit
  const bound = key.length <= 4 ? 1 : 2
  let best: string | undefined
  let bestDistance = bound + 1
  for (const candidate of known) {
    const d = distance(key, candidate, bound)
    if (d < bestDistance) {
      best = candidate
      bestDistance = d
    }
  }
  return best
}

/**
 * A key an options object should not have.
 *
 * @since 0.3.0
 * @category models
 */
export interface UnknownKey {
  /** The key with its path (`defaults.retries`). */
  readonly path: string
  readonly value: unknown
  /** The known key it most likely stands for, with its path. */
  readonly meant: string | undefined
  readonly known: ReadonlyArray<string>
}

/**
 * The first own key of `options` not in `known`, with `prefix` before it and the likely intended one; `undefined`
 * when there is none, or `options` is not an object. A key whose value is `undefined` counts too: it is still not
 * what was meant.
 *
 * @since 0.3.0
 * @category checks
 */
export const find = (options: unknown, known: ReadonlyArray<string>, prefix = ""): UnknownKey | undefined => {
  if (typeof options !== "object" || options === null) return undefined
  for (const key of Object.keys(options)) {
    if (known.includes(key)) continue
    const meant = likely(key, known)
    return {
      path: prefix + key,
      value: (options as Record<string, unknown>)[key],
      meant: meant === undefined ? undefined : prefix + meant,
      known
    }
  }
  return undefined
}

/**
 * An unknown key in words: `unknown option "retries" (did you mean "retry"?)`, or the known keys when none is
 * close.
 *
 * @since 0.3.0
 * @category checks
 */
export const describe = (unknownKey: UnknownKey): string =>
  `unknown option ${JSON.stringify(unknownKey.path)}` +
  (unknownKey.meant === undefined
    ? `; known: ${unknownKey.known.join(", ")}`
    : ` (did you mean ${JSON.stringify(unknownKey.meant)}?)`)

/**
 * {@link find} in words, or `undefined`.
 *
 * @since 0.3.0
 * @category checks
 */
export const unknown = (options: unknown, known: ReadonlyArray<string>, prefix = ""): string | undefined => {
  const found = find(options, known, prefix)
  return found === undefined ? undefined : describe(found)
}
