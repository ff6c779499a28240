/**
 * Tracing example: the document pipeline exporting its spans through `@effect/opentelemetry`.
 *
 * Run it with `pnpm --filter @trellis/examples example:tracing`: every span (`router` > `pipeline document` >
 * `step extract` > `chat gpt-4o-mini`...) is printed by OpenTelemetry's console exporter as it ends, children
 * first and the root `router` last, with the GenAI attributes and the cost.
 */
import * as OtelResource from "@effect/opentelemetry/Resource"
import * as OtelTracer from "@effect/opentelemetry/Tracer"
import { NodeRuntime } from "@effect/platform-node"
import {
  BasicTracerProvider,
  ConsoleSpanExporter,
  SimpleSpanProcessor,
  type SpanExporter
} from "@opentelemetry/sdk-trace-base"
import { resourceFromAttributes } from "@opentelemetry/resources"
import { Router } from "@trellis/core"
import { OfflineModel } from "@trellis/llm"
import { Effect, Layer } from "effect"
import { Document, router } from "./document/pipeline.js"
import { quarterlyReport } from "./document/samples.js"

/** Spans of everything run under this layer go to `exporter`, one by one as they end. */
export const tracing = (exporter: SpanExporter, serviceName = "trellis-examples") =>
  OtelTracer.layer.pipe(
    Layer.provide(Layer.scoped(
      OtelTracer.OtelTracerProvider,
      Effect.acquireRelease(
        Effect.sync(() =>
          new BasicTracerProvider({
            resource: resourceFromAttributes({ "service.name": serviceName }),
            spanProcessors: [new SimpleSpanProcessor(exporter)]
          })
        ),
        (provider) => Effect.promise(() => provider.shutdown())
      )
    )),
    Layer.provide(OtelResource.layer({ serviceName }))
  )

/** The document pipeline on the bundled report, traced. */
export const program = Router.run(router()).pipe(
  Effect.provideService(Document, { text: quarterlyReport }),
  Effect.provide(OfflineModel.layer())
)

if (import.meta.url === `file://${process.argv[1]}`) {
  NodeRuntime.runMain(program.pipe(Effect.provide(tracing(new ConsoleSpanExporter()))))
}
