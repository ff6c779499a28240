/**
 * The diamond's steps' own work (extract, classify, two fetches, combine), shared by every variant of the diamond
 * scenarios, in memory and durable, so that they differ only in how the steps are run.
 */

/** The document every diamond run reads. */
export const text = "Acme buys Globex for 3M"
export const words = (t: string) => t.split(" ")
export const kind = (ws: ReadonlyArray<string>) => (ws.length > 3 ? "complex" : "simple")
export const market = (k: string) => ({ segment: k, price: 42 })
export const user = (_k: string) => ({ name: "Ada" })
export const combine = (m: { segment: string; price: number }, u: { name: string }) =>
  `${u.name}: ${m.segment} at ${m.price}`
