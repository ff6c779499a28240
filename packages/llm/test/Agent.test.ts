import { describe, expect, expectTypeOf, it } from "@effect/vitest"
import { Pipeline, Step } from "@trellis/core"
import { Effect, Fiber, Schema, TestClock } from "effect"
import { Agent, Prompt, ScriptedModel, Tool } from "../src/index.js"
import { parentName, recordingTracer, withTracer } from "./support.js"

const call = (name: string, args: unknown, id = `call_${name}`): Prompt.ToolCall => ({
  id,
  name,
  arguments: JSON.stringify(args)
})

const toolMessages = (request: Prompt.ResolvedRequest) =>
  request.messages.flatMap((m) => (m.role === "tool" ? [m.content] : []))

const add = Tool.make("add", {
  description: "Adds two numbers",
  parameters: Schema.Struct({ a: Schema.Number, b: Schema.Number }),
  run: ({ a, b }) => Effect.succeed(a + b)
})

describe("Agent", () => {
  it("types its output from the schema, and its errors and requirements from its tools", () => {
    expectTypeOf(Agent.make({ instructions: "" })).toEqualTypeOf<Agent.Agent<string, never, never>>()
    expectTypeOf(Agent.make({ instructions: "", output: Schema.Number, tools: [add] })).toEqualTypeOf<
      Agent.Agent<number, never, never>
    >()
    const failing = Tool.make("f", { description: "", parameters: Schema.Struct({}), run: () => Effect.fail("x" as const) })
    expectTypeOf(Agent.make({ instructions: "", tools: [failing, add] })).toEqualTypeOf<Agent.Agent<string, "x", never>>()
  })

  it.effect("runs the tool loop: the model's tool calls are decoded, run, and answered, then it replies", () => {
    const model = ScriptedModel.make({
      reply: (request, index) =>
        index === 0
          ? { toolCalls: [call("add", { a: 2, b: 3 }, "c1"), call("add", { a: 10, b: 1 }, "c2")] }
          : `The sums are ${toolMessages(request).join(" and ")}.`
    })
    const agent = Agent.make({ instructions: "You add numbers.", tools: [add], maxTokens: 200 })
    return Effect.gen(function*() {
      const result = yield* agent.run("What are 2+3 and 10+1?")
      expect(result.output).toBe("The sums are 5 and 11.")
      expect(result.turns).toBe(2)
      expect(result.usage.requests).toBe(2)
      const [first, second] = model.calls
      expect(first!.messages[0]).toEqual({ role: "system", content: "You add numbers." })
      expect(first!.tools.map((t) => t.name)).toEqual(["add"])
      expect(first!.tools[0]!.parameters).toMatchObject({ required: ["a", "b"] })
      expect(first!.maxTokens).toBe(200)
      expect(second!.messages.filter((m) => m.role === "tool")).toEqual([
        { role: "tool", toolCallId: "c1", content: "5" },
        { role: "tool", toolCallId: "c2", content: "11" }
      ])
    }).pipe(Effect.provide(model.layer))
  })

  it.effect("runs each tool in an `execute_tool {name}` span under the agent's, naming a failure in error.type", () => {
    const broken = Tool.make("broken", {
      description: "Always fails",
      parameters: Schema.Struct({}),
      run: () => Effect.fail("out of order")
    })
    const model = ScriptedModel.make({
      reply: (_, index) => (index === 0 ? { toolCalls: [call("add", { a: 1, b: 2 }, "c1")] } : { toolCalls: [call("broken", {}, "c2")] })
    })
    const recorder = recordingTracer()
    const agent = Agent.make({ name: "calc", instructions: "Add.", tools: [add, broken] })
    return Effect.gen(function*() {
      const error = yield* Effect.flip(agent.run("1+2, then break"))
      expect(error).toBeInstanceOf(Tool.ToolFailed)
      const [run] = recorder.named("invoke_agent calc")
      expect(Object.fromEntries(run!.attributes)).toEqual({ "gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "calc" })
      const [added] = recorder.named("execute_tool add")
      const [failed] = recorder.named("execute_tool broken")
      expect([added, failed].map((span) => [span!.kind, parentName(span!)])).toEqual([
        ["internal", "invoke_agent calc"],
        ["internal", "invoke_agent calc"]
      ])
      expect(Object.fromEntries(added!.attributes)).toEqual({
        "gen_ai.operation.name": "execute_tool",
        "gen_ai.tool.name": "add",
        "gen_ai.tool.description": "Adds two numbers",
        "gen_ai.tool.call.id": "c1",
        "gen_ai.tool.type": "function"
      })
      expect(failed!.attributes.get("error.type")).toBe("ToolFailed")
      expect(added!.attributes.has("error.type")).toBe(false)
    }).pipe(Effect.provide(model.layer), withTracer(recorder.tracer))
  })

  it.effect("tells the model about arguments that do not decode, and about unknown tools", () => {
    const model = ScriptedModel.make({
      reply: (request, index) =>
        index === 0 ? { toolCalls: [call("add", { a: "two" }), call("divide", {})] } : toolMessages(request).join("|")
    })
    return Effect.gen(function*() {
      const result = yield* Agent.make({ instructions: "", tools: [add] }).run("go")
      expect(result.output).toMatch(/^Error: the arguments of add are not valid:[\s\S]*\|Error: there is no tool named divide$/)
    }).pipe(Effect.provide(model.layer))
  })

  it.effect("answers the model with a message when a safe tool fails, throws or times out", () => {
    const flaky = Tool.make("flaky", {
      description: "Fails",
      parameters: Schema.Struct({}),
      safe: true,
      run: () => Effect.fail("service unavailable")
    })
    const broken = Tool.make("broken", {
      description: "Throws",
      parameters: Schema.Struct({}),
      safe: true,
      run: () => Effect.sync((): number => { throw new Error("bug in tool") })
    })
    const slow = Tool.make("slow", {
      description: "Slow",
      parameters: Schema.Struct({}),
      safe: true,
      timeout: "1 second",
      run: () => Effect.as(Effect.sleep("1 hour"), "late")
    })
    const model = ScriptedModel.make({
      reply: (request, index) =>
        index === 0 ? { toolCalls: [call("flaky", {}), call("broken", {}), call("slow", {})] } : toolMessages(request).join("|")
    })
    return Effect.gen(function*() {
      const fiber = yield* Effect.fork(Agent.make({ instructions: "", tools: [flaky, broken, slow] }).run("go"))
      yield* TestClock.adjust("1 second")
      const result = yield* Fiber.join(fiber)
      expect(result.output).toBe(
        "Error: flaky failed: service unavailable|Error: broken failed: bug in tool|Error: slow failed: timed out after 1s"
      )
    }).pipe(Effect.provide(model.layer))
  })

  it.effect("fails the run with ToolFailed when a tool that is not safe fails", () => {
    const strict = Tool.make("strict", {
      description: "Fails",
      parameters: Schema.Struct({}),
      run: () => Effect.fail(new Error("database down"))
    })
    const model = ScriptedModel.make({ reply: () => ({ toolCalls: [call("strict", {})] }) })
    return Effect.gen(function*() {
      const error = yield* Effect.flip(Agent.make({ instructions: "", tools: [strict] }).run("go"))
      expect(error).toBeInstanceOf(Tool.ToolFailed)
      expect(error.message).toBe(`Tool "strict" failed: database down`)
    }).pipe(Effect.provide(model.layer))
  })

  it.effect("bounds the tool loop", () => {
    const model = ScriptedModel.make({ reply: () => ({ toolCalls: [call("add", { a: 1, b: 1 })] }) })
    return Effect.gen(function*() {
      const error = yield* Effect.flip(Agent.make({ name: "looper", instructions: "", tools: [add], maxTurns: 3 }).run("go"))
      expect(error).toBeInstanceOf(Agent.TurnLimitReached)
      expect(error.message).toBe(`Agent "looper" was still calling tools after 3 turns`)
      expect(model.calls).toHaveLength(3)
    }).pipe(Effect.provide(model.layer))
  })

  it.effect("decodes a structured output, after the tool loop when there are tools", () => {
    const Sum = Schema.Struct({ total: Schema.Number })
    const model = ScriptedModel.make({
      reply: (request, index) =>
        index === 0 ? { toolCalls: [call("add", { a: 4, b: 5 })] } : request.json ? `{"total":9}` : "It is 9."
    })
    return Effect.gen(function*() {
      const result = yield* Agent.make({ instructions: "", tools: [add], output: Sum }).run("4+5?")
      expect(result.output).toEqual({ total: 9 })
      expect(model.calls).toHaveLength(3)
      expect(model.calls[2]!.json).toBeDefined()
      expect(model.calls[2]!.tools).toEqual([])
    }).pipe(Effect.provide(model.layer))
  })

  it.effect("runs as a pipeline step, prompted from its dependencies' outputs", () => {
    const model = ScriptedModel.make({ reply: (request) => `Summary of: ${request.messages.at(-1)!.content}` })
    const source = Step.make("source", { run: () => Effect.succeed("the report") })
    const summarise = Agent.step("summarise", Agent.make({ instructions: "Summarise." }), {
      after: { source },
      prompt: ({ source }) => `Summarise ${source}`
    })
    return Effect.gen(function*() {
      const result = yield* Pipeline.run(Pipeline.make("summary", { output: summarise }))
      expect(result.output).toBe("Summary of: Summarise the report")
      expect(result.usage.byStep["summarise"]?.requests).toBe(1)
    }).pipe(Effect.provide(model.layer))
  })
})
