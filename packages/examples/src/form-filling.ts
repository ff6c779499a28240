/**
 * Early termination: a multi-turn form-filling conversation.
 *
 * Each user message runs the pipeline once. The model reads whatever fields the message gives; code merges
 * them into the form and, while a field is missing, stops the run on purpose with the form so far and the
 * question to ask. The next run resumes from that state. Run it with
 * `pnpm --filter @trellis/examples example:form`.
 */
import { NodeRuntime } from "@effect/platform-node"
import { Pipeline, Step } from "@trellis/core"
import { LanguageModel, OfflineModel } from "@trellis/llm"
import { Context, Effect, Schema } from "effect"

/** The form being filled. Empty strings are fields not given yet. */
export interface Form {
  readonly name: string
  readonly email: string
  readonly date: string
}

/** An empty form. */
export const emptyForm: Form = { name: "", email: "", date: "" }

/** One turn: the form so far and the user's new message. */
export class Turn extends Context.Tag("@trellis/examples/Turn")<Turn, { readonly form: Form; readonly message: string }>() {}

const Fields = Schema.Struct({
  name: Schema.String,
  email: Schema.String,
  date: Schema.String
})

const questions: Record<keyof Form, string> = {
  name: "What name should the booking be under?",
  email: "Which email address should the confirmation go to?",
  date: "For which date (YYYY-MM-DD)?"
}

const read = Step.make("read", {
  run: () =>
    Effect.flatMap(Turn, ({ form, message }) =>
      Effect.map(
        LanguageModel.generateObject(Fields, {
          system: "Read the booking details in the message: the person's name, email and date. " +
            "Leave a field empty when the message does not give it.",
          messages: [{ role: "user", content: message }],
          maxTokens: 100
        }),
        // Code decides what the form becomes: new values fill gaps and never erase what was given.
        ({ value }): Form => ({
          name: form.name || value.name.trim(),
          email: form.email || value.email.trim(),
          date: form.date || value.date.trim()
        })
      ))
})

const check = Step.make("check", {
  after: { read },
  run: ({ read }) => {
    const missing = (Object.keys(questions) as Array<keyof Form>).filter((field) => read[field] === "")
    return missing.length === 0
      ? Effect.succeed(read)
      : Pipeline.stop({ form: read, missing, question: questions[missing[0]!] })
  }
})

const confirm = Step.make("confirm", {
  after: { check },
  run: ({ check }) => Effect.succeed(`Booked for ${check.name} on ${check.date}; confirmation sent to ${check.email}.`)
})

/** The form pipeline: it completes with a confirmation, or stops with what is still missing. */
export const pipeline = Pipeline.make("booking", { output: confirm })

/** Runs the conversation over the given user messages, resuming from the state each stop returned. */
export const converse = (messages: ReadonlyArray<string>) =>
  Effect.gen(function*() {
    let form = emptyForm
    const transcript: Array<string> = []
    for (const message of messages) {
      transcript.push(`user: ${message}`)
      const result = yield* Pipeline.run(pipeline).pipe(Effect.provideService(Turn, { form, message }))
      if (result._tag === "Completed") {
        transcript.push(`assistant: ${result.output}`)
        return { done: true, form: result.outputs.check, transcript }
      }
      form = result.data.form
      transcript.push(`assistant: ${result.data.question}`)
    }
    return { done: false, form, transcript }
  })

if (import.meta.url === `file://${process.argv[1]}`) {
  NodeRuntime.runMain(
    converse([
      "Hi, I would like to book a table for Maria Anders.",
      "You can reach me at maria.anders@northwind.example",
      "Let's say 2026-12-18."
    ]).pipe(
      Effect.tap(({ transcript }) => Effect.sync(() => console.log(transcript.join("\n")))),
      Effect.provide(OfflineModel.layer())
    )
  )
}
