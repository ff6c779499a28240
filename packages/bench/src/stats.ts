/**
 * The benchmark's pure arithmetic, kept apart from the harness (which exposes the garbage collector as it loads)
 * so that tests can import it.
 */

export const median = (xs: ReadonlyArray<number>): number => {
  const sorted = [...xs].sort((a, b) => a - b)
  const mid = sorted.length >> 1
  return sorted.length % 2 === 1 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2
}

/** Rounds a figure to three significant digits, for tables and JSON alike. */
export const round3 = (x: number): number => {
  if (x === 0 || !Number.isFinite(x)) return x
  const digits = Math.max(0, 2 - Math.floor(Math.log10(Math.abs(x))))
  return Number(x.toFixed(Math.min(digits, 6)))
}
