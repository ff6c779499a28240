/**
 * A tool an agent may call: a name, a description for the model, parameters declared with Schema, and an Effect.
 *
 * @since 0.1.0
 */
import * as Data from "effect/Data"
import * as Duration from "effect/Duration"
import * as Effect from "effect/Effect"
import * as JSONSchema from "effect/JSONSchema"
import * as ParseResult from "effect/ParseResult"
import * as Schema from "effect/Schema"
import { ATTR_ERROR, toolAttributes, toolSpanName } from "./internal/genai.js"
import type { ToolCall, ToolDefinition } from "./Prompt.js"

/**
 * A tool failed (or timed out) and was not marked safe, so the agent's run fails with it.
 *
 * @since 0.1.0
 */
export class ToolFailed extends Data.TaggedError("ToolFailed")<{
  readonly tool: string
  readonly detail: string
  readonly cause: unknown
}> {
  override get message(): string {
    return `Tool "${this.tool}" failed: ${this.detail}`
  }
}

/**
 * A tool.
 *
 * @since 0.1.0
 */
export interface Tool<in out P, out A, out E, out R> {
  readonly name: string
  readonly description: string
  readonly parameters: Schema.Schema<P, any>
  readonly run: (params: P) => Effect.Effect<A, E, R>
  /** A safe tool's failure or timeout is told to the model as text instead of failing the run. */
  readonly safe: boolean
  readonly timeout: Duration.Duration | undefined
}

/**
 * Any tool.
 *
 * @since 0.1.0
 */
export interface Any extends Tool<any, any, any, any> {}

/**
 * Makes a tool.
 *
 * @since 0.1.0
 */
export const make = <P, A, E = never, R = never>(
  name: string,
  options: {
    readonly description: string
    readonly parameters: Schema.Schema<P, any>
    readonly run: (params: P) => Effect.Effect<A, E, R>
    readonly safe?: boolean | undefined
    readonly timeout?: Duration.DurationInput | undefined
  }
): Tool<P, A, E, R> => ({
  name,
  description: options.description,
  parameters: options.parameters,
  run: options.run,
  safe: options.safe ?? false,
  timeout: options.timeout === undefined ? undefined : Duration.decode(options.timeout)
})

/**
 * The definition of a tool as a model sees it.
 *
 * @since 0.1.0
 */
export const definition = (tool: Any): ToolDefinition => ({
  name: tool.name,
  description: tool.description,
  parameters: JSONSchema.make(tool.parameters)
})

/**
 * Answers one tool call with the text sent back to the model.
 *
 * Arguments that do not decode are the model's mistake, so they are always told back to it. A failure or timeout
 * of a safe tool is told back too; one of an unsafe tool fails with `ToolFailed`. The call runs in an
 * `execute_tool {name}` span with the GenAI attributes of a tool execution.
 *
 * @since 0.1.0
 */
export const call = <P, A, E, R>(tool: Tool<P, A, E, R>, toolCall: ToolCall): Effect.Effect<string, ToolFailed, R> =>
  Effect.suspend(() => {
    const decoded = Schema.decodeUnknownEither(Schema.parseJson(tool.parameters))(toolCall.arguments)
    if (decoded._tag === "Left") {
      const detail = ParseResult.TreeFormatter.formatErrorSync(decoded.left)
      return Effect.succeed(`Error: the arguments of ${tool.name} are not valid:\n${detail}`)
    }
    type Failure = { readonly detail: string; readonly cause: unknown }
    const failed = (cause: unknown): Failure => ({ detail: describe(cause), cause })
    // A safe tool is trusted with nothing: even a thrown exception becomes a message to the model.
    const run: Effect.Effect<A, Failure, R> = tool.safe
      ? Effect.catchAllDefect(Effect.mapError(tool.run(decoded.right), failed), (defect) => Effect.fail(failed(defect)))
      : Effect.mapError(tool.run(decoded.right), failed)
    const timed = tool.timeout === undefined ? run : Effect.timeoutFail(run, {
      duration: tool.timeout,
      onTimeout: (): Failure => ({ detail: `timed out after ${Duration.format(tool.timeout!)}`, cause: undefined })
    })
    return timed.pipe(
      Effect.map((result) => (typeof result === "string" ? result : JSON.stringify(result) ?? "null")),
      Effect.catchAll(({ cause, detail }) =>
        tool.safe
          ? Effect.succeed(`Error: ${tool.name} failed: ${detail}`)
          : Effect.fail(new ToolFailed({ tool: tool.name, detail, cause }))
      ),
      Effect.tapError((error) => Effect.annotateCurrentSpan(ATTR_ERROR, error._tag))
    )
  }).pipe((effect) =>
    Effect.withSpan(effect, toolSpanName(tool.name), {
      kind: "internal",
      attributes: toolAttributes(tool, toolCall.id),
      captureStackTrace: false
    })
  )

const describe = (error: unknown): string =>
  error instanceof Error ? error.message : typeof error === "string" ? error : JSON.stringify(error) ?? String(error)
