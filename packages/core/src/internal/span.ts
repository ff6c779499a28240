import * as Context from "effect/Context"
import * as DefaultServices from "effect/DefaultServices"
import * as Exit from "effect/Exit"
import * as HashMap from "effect/HashMap"
import * as Option from "effect/Option"
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

/** What a span makes only when something asks for it. */
interface Extra {
  spanId?: string
  traceId?: string
  attributes?: Map<string, unknown>
  events?: Array<[name: string, startTime: bigint, attributes: Record<string, unknown>]>
  links?: Array<Tracer.SpanLink>
  status?: Tracer.SpanStatus
}

/**
 * A span equal to the one Effect's native tracer makes, for runs under that tracer: same fields, same
 * behaviour. It differs only in when it does its work: the random ids, the attribute map, the event list and the
 * status are made the first time something reads them, not when the span opens or ends. A run opens a span per
 * step, and with no exporter installed nothing ever reads most of them.
 */
export class LazySpan implements Tracer.Span {
  declare readonly _tag: "Span"
  declare readonly sampled: boolean
  declare readonly context: Context.Context<never>
  private endTime: bigint | undefined = undefined
  /** How the span ended: an exit, or the success value of one not made yet. */
  private exit: Exit.Exit<unknown, unknown> | undefined = undefined
  private value: unknown = undefined
  private extra: Extra | undefined = undefined

  constructor(
    readonly name: string,
    readonly parent: Option.Option<Tracer.AnySpan>,
    private readonly startTime: bigint,
    readonly kind: Tracer.SpanKind,
    /** The attributes set before anything read them: the span's own object, turned into the map when first read. */
    private readonly initial: Record<string, unknown>
  ) {}

  private get more(): Extra {
    return (this.extra ??= {})
  }

  get status(): Tracer.SpanStatus {
    if (this.endTime === undefined) return this.extra?.status ?? { _tag: "Started", startTime: this.startTime }
    return this.more.status ??= {
      _tag: "Ended",
      startTime: this.startTime,
      endTime: this.endTime,
      exit: this.exit ?? Exit.succeed(this.value)
    }
  }

  get spanId(): string {
    return (this.more.spanId ??= randomHex(16))
  }

  get traceId(): string {
    return this.more.traceId ??= this.parent._tag === "Some" ? this.parent.value.traceId : randomHex(32)
  }

  get attributes(): Map<string, unknown> {
    return this.more.attributes ??= new Map<string, unknown>(Object.entries(this.initial))
  }

  get events(): Array<[name: string, startTime: bigint, attributes: Record<string, unknown>]> {
    return (this.more.events ??= [])
  }

  get links(): ReadonlyArray<Tracer.SpanLink> {
    return this.extra?.links ?? noLinks
  }

  /** Sets the links of the run, if it has any. */
  withLinks(links: ReadonlyArray<Tracer.SpanLink>): this {
    if (links.length > 0) this.more.links = links.slice()
    return this
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
    const attributes = this.extra?.attributes
    if (attributes === undefined) this.initial[key] = value
    else attributes.set(key, value)
  }

  event(name: string, startTime: bigint, attributes?: Record<string, unknown>): void {
    this.events.push([name, startTime, attributes ?? {}])
  }

  addLinks(links: ReadonlyArray<Tracer.SpanLink>): void {
    ;(this.more.links ??= []).push(...links)
  }
}

// The fields every span has the same value for live on the prototype.
Object.defineProperties(LazySpan.prototype, {
  _tag: { value: "Span" },
  sampled: { value: true },
  context: { value: Context.empty() }
})

/**
 * Opens a span as `Effect.makeSpan` would (same tracer, parent, links, annotations, attributes), without a stack
 * capture; under Effect's native tracer it is a {@link LazySpan}. `attributes` becomes the span's own.
 */
export const open = (
  tracer: Tracer.Tracer,
  name: string,
  parent: Option.Option<Tracer.AnySpan>,
  kind: Tracer.SpanKind,
  attributes: Record<string, unknown>,
  links: ReadonlyArray<Tracer.SpanLink>,
  annotations: HashMap.HashMap<string, unknown> | undefined,
  startTime: bigint
): Tracer.Span => {
  // As with `Effect.makeSpan`, an attribute given for the span wins over an annotation of the same name.
  if (tracer === nativeTracer) {
    const span = new LazySpan(name, parent, startTime, kind, attributes).withLinks(links)
    if (annotations !== undefined) {
      HashMap.forEach(annotations, (value, key) => {
        if (!Object.hasOwn(attributes, key)) span.attribute(key, value)
      })
    }
    return span
  }
  const span = tracer.span(name, parent, Context.empty(), links, startTime, kind)
  if (annotations !== undefined) HashMap.forEach(annotations, (value, key) => span.attribute(key, value))
  for (const key in attributes) span.attribute(key, attributes[key])
  return span
}

/** The span a new span hangs under: the given one, skipping spans that asked not to propagate, as Effect does. */
export const parentOf = (span: Tracer.AnySpan | undefined): Option.Option<Tracer.AnySpan> => {
  while (span !== undefined && Context.get(span.context, Tracer.DisablePropagation)) {
    span = span._tag === "Span" ? Option.getOrUndefined(span.parent) : undefined
  }
  return Option.fromNullable(span)
}
