/**
 * What the demo prints of text it did not write itself (an id, a path, a value read from a store) reaches a terminal
 * with its control characters escaped: an ESC or a C1 code in a run id would otherwise move the cursor, clear the
 * screen or retitle the window of whoever lists the runs.
 */

/** The text with each control character but the line break written as a `\u` escape (`\u001b` for ESC). */
export const printable = (text: string): string =>
  text.replaceAll(/[^\P{Cc}\n]/gu, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`)

/** The text in double quotes, as JSON writes a string, with every control character escaped. */
export const quoted = (text: string): string => printable(JSON.stringify(text))
