/**
 * A durable conversation: the booking form, filled by asking one question at a time and waiting for each answer.
 *
 * Each answer is a waiting step (`Durable.await`): the run suspends there, in its store, until the answer is
 * delivered with `Durable.signal`, by this process or another, minutes or days later, across restarts. The model
 * reads each answer; code decides what the form becomes and when it is complete. Run it with
 * `pnpm --filter @trellis/examples example:booking`, or answer the questions one command at a time with
 * `trellis-demo book --store booking.db --run-id <id>` and `trellis-demo signal <id> <question> <answer>`.
 */
import { NodeRuntime } from "@effect/platform-node"
import { Pipeline, Step } from "@trellis/core"
import { Durable, Runs, Store } from "@trellis/durable"
import { LanguageModel, OfflineModel } from "@trellis/llm"
import { Effect, Layer, Schema } from "effect"
import * as fs from "node:fs"
import * as os from "node:os"
import * as path from "node:path"

/** The form's fields, in the order they are asked for. */
export const fields = ["name", "email", "date"] as const

/** A field of the form. */
export type Field = typeof fields[number]

/** The question each field's waiting step answers. */
export const questions: Record<Field, string> = {
  name: "What name should the booking be under?",
  email: "Which email address should the confirmation go to?",
  date: "For which date (YYYY-MM-DD)?"
}

/** Reads one field from an answer with the model; an answer it finds nothing in is taken as it was given. */
const read = (field: Field, answer: string) =>
  Effect.map(
    LanguageModel.generateObject(Schema.Struct({ [field]: Schema.String }), {
      system: `Read the booking's ${field} in the message. Leave it empty when the message does not give it.`,
      messages: [{ role: "user", content: answer }],
      maxTokens: 60
    }),
    ({ value }) => (value[field] ?? "").trim() || answer.trim()
  )

const name = Durable.await("name", { schema: Schema.String })
const readName = Step.make("readName", { after: { name }, output: Schema.String, run: ({ name }) => read("name", name) })
const email = Durable.await("email", { schema: Schema.String, after: { readName } })
const readEmail = Step.make("readEmail", {
  after: { email },
  output: Schema.String,
  run: ({ email }) => read("email", email)
})
const date = Durable.await("date", { schema: Schema.String, after: { readEmail } })
const readDate = Step.make("readDate", { after: { date }, output: Schema.String, run: ({ date }) => read("date", date) })

const confirm = Step.make("confirm", {
  after: { readName, readEmail, readDate },
  output: Schema.String,
  run: ({ readDate, readEmail, readName }) =>
    Effect.succeed(`Booked for ${readName} on ${readDate}; confirmation sent to ${readEmail}.`)
})

/** The booking conversation, ready to run durably. */
export const booking = Durable.make(Pipeline.make("booking_conversation", { output: confirm }))

/** The question a waiting run asks next: the first field whose answer has not been delivered. */
export const nextQuestion = (run: Runs.Run): Field | undefined => fields.find((field) => !run.steps.includes(field))

/** The layer that runs conversations on a SQLite file. */
export const layer = (filename: string) =>
  Durable.layer(booking).pipe(Layer.provideMerge(Store.layerSqlite({ filename })))

/** Waits until the run waits for an answer or is finished. */
export const settled = (id: string) =>
  Durable.status(booking, { id }).pipe(
    Effect.delay("50 millis"),
    Effect.repeat({ until: (status) => status._tag !== "Pending" })
  )

/**
 * Holds a whole conversation under `id`, answering each question with the next of `answers`: returns the transcript
 * and the run's result.
 */
export const converse = (id: string, answers: ReadonlyArray<string>) =>
  Effect.gen(function*() {
    const transcript: Array<string> = []
    yield* Durable.start(booking, { id })
    for (const [i, field] of fields.entries()) {
      yield* settled(id)
      transcript.push(`assistant: ${questions[field]}`)
      const answer = answers[i] ?? ""
      transcript.push(`user: ${answer}`)
      yield* Durable.signal(booking, { id, step: field, value: answer })
    }
    const result = yield* Durable.run(booking, { id })
    transcript.push(`assistant: ${result.output}`)
    return { transcript, result }
  })

if (import.meta.url === `file://${process.argv[1]}`) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), "trellis-booking-"))
  NodeRuntime.runMain(
    converse("booking-1", ["Maria Anders, please.", "maria.anders@northwind.example", "Let's say 2026-12-18."]).pipe(
      Effect.tap(({ transcript }) => Effect.sync(() => console.log(transcript.join("\n")))),
      Effect.provide(layer(path.join(dir, "booking.db"))),
      Effect.provide(OfflineModel.layer()),
      Effect.ensuring(Effect.sync(() => fs.rmSync(dir, { recursive: true, force: true })))
    )
  )
}
