import * as Context from "effect/Context"
import * as DefaultServices from "effect/DefaultServices"
import * as Exit from "effect/Exit"
import type * as Option from "effect/Option"
import * as Tracer from "effect/Tracer"

/** The tracer Effect uses when the application installs none (spans kept in memory, exported nowhere). */
export const nativeTracer: Tracer.Tracer = Context.get(DefaultServices.liveServices, Tracer.Tracer)

const hexDigits = "0123456789abcdef"

const randomHex = (length: number): string => {
  let hex = ""
  for (let i = 0; i < length; i++) hex += hexDigits[(Math.random() * 16) | 0]
  return hex
}

const noLinks: ReadonlyArray<Tracer.SpanLink> = []

/**
 * A span equal to the one Effect's native tracer makes, for runs under that tracer: same fields, same
 * behaviour. It differs only in when it does its work: the random ids, the attribute map, the event list and the
 * status are made the first time something reads them, not when the span opens or ends. A run opens a span per
 * step, and with no exporter installed nothing ever reads most of them.
 */
export class LazySpan implements Tracer.Span {
  readonly _tag = "Span"
  readonly sampled = true
  readonly kind = "internal"
  readonly context: Context.Context<never> = Context.empty()
  private statusValue: Tracer.SpanStatus | undefined = undefined
  private endTime: bigint | undefined = undefined
  private exit: Exit.Exit<unknown, unknown> | undefined = undefined
  private value: unknown = undefined
  private spanIdValue: string | undefined = undefined
  private traceIdValue: string | undefined = undefined
  private attributeMap: Map<string, unknown> | undefined = undefined
  private eventList: Array<[name: string, startTime: bigint, attributes: Record<string, unknown>]> | undefined =
    undefined
  private linkList: Array<Tracer.SpanLink> | undefined

  constructor(
    readonly name: string,
    readonly parent: Option.Option<Tracer.AnySpan>,
    links: ReadonlyArray<Tracer.SpanLink>,
    private readonly startTime: bigint,
    /** The one attribute every Trellis span has, kept aside until the map is made. */
    private readonly firstKey: string,
    private readonly firstValue: unknown
  ) {
    this.linkList = links.length === 0 ? undefined : links.slice()
  }

  get status(): Tracer.SpanStatus {
    if (this.statusValue !== undefined) return this.statusValue
    if (this.endTime === undefined) return { _tag: "Started", startTime: this.startTime }
    return this.statusValue = {
      _tag: "Ended",
      startTime: this.startTime,
      endTime: this.endTime,
      exit: this.exit ?? Exit.succeed(this.value)
    }
  }

  get spanId(): string {
    return (this.spanIdValue ??= randomHex(16))
  }

  get traceId(): string {
    return this.traceIdValue ??= this.parent._tag === "Some" ? this.parent.value.traceId : randomHex(32)
  }

  get attributes(): Map<string, unknown> {
    return this.attributeMap ??= new Map<string, unknown>([[this.firstKey, this.firstValue]])
  }

  get events(): Array<[name: string, startTime: bigint, attributes: Record<string, unknown>]> {
    return (this.eventList ??= [])
  }

  get links(): ReadonlyArray<Tracer.SpanLink> {
    return this.linkList ?? noLinks
  }

  end(endTime: bigint, exit: Exit.Exit<unknown, unknown>): void {
    if (this.endTime !== undefined) return
    this.endTime = endTime
    this.exit = exit
  }

  /** Ends the span with a success, the exit made only if something reads the status. */
  succeed(endTime: bigint, value: unknown): void {
    if (this.endTime !== undefined) return
    this.endTime = endTime
    this.value = value
  }

  attribute(key: string, value: unknown): void {
    this.attributes.set(key, value)
  }

  event(name: string, startTime: bigint, attributes?: Record<string, unknown>): void {
    this.events.push([name, startTime, attributes ?? {}])
  }

  addLinks(links: ReadonlyArray<Tracer.SpanLink>): void {
    ;(this.linkList ??= []).push(...links)
  }
}
