/**
 * The fibers of a run: the only place that forks, and the one that interrupts what was forked.
 *
 * Steps are forked as daemons, kept here, and interrupted by the run, never by the fiber that happened to fork
 * them: a fiber that finished a step and forks the steps it made ready must be able to end while they go on.
 * Each fiber inherits the forking fiber's `FiberRef`s (its supervisor, tracer and context among them).
 */
import * as Effect from "effect/Effect"
import * as Fiber from "effect/Fiber"

export class Launcher {
  private readonly fibers: Array<Fiber.RuntimeFiber<void>> = []
  /** Set once the run is over: nothing more is forked. */
  private closed = false

  /** Forks each effect in a fiber of its own. */
  fork(effects: ReadonlyArray<Effect.Effect<void>>): Effect.Effect<void> {
    return Effect.forEach(effects, (effect) =>
      Effect.suspend(() => {
        if (this.closed) return Effect.void
        return Effect.map(Effect.forkDaemon(effect), (fiber) => {
          this.fibers.push(fiber)
        })
      }), { discard: true })
  }

  /** Interrupts every fiber forked, and waits for their finalizers; forks nothing after. */
  get interruptAll(): Effect.Effect<void> {
    return Effect.suspend(() => {
      this.closed = true
      return this.fibers.length === 0 ? Effect.void : Fiber.interruptAll(this.fibers)
    })
  }
}
