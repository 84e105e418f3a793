/**
 * Level-triggered interrupt lines, the wires between devices and interrupt controllers.
 *
 * A device owns the "output" end and calls {@linkcode IrqLine.set} whenever its interrupt
 * condition is recomputed; the machine connects the other end to an interrupt controller input,
 * and tests connect a listener to watch the level.
 *
 * @module
 */

/** Called with the new level each time an {@linkcode IrqLine} changes level. */
export type IrqListener = (level: boolean) => void;

/**
 * A named level-triggered interrupt line.
 *
 * Listeners are called only when the level changes, so a device may call
 * {@linkcode IrqLine.set} after every register access without flooding the controller.
 *
 * @example Watching a line
 * ```ts
 * import assert from "node:assert/strict";
 * import { IrqLine } from "./irq_line.ts";
 *
 * const line = new IrqLine("com1");
 * const seen: boolean[] = [];
 * line.connect((level) => seen.push(level));
 * line.raise();
 * line.raise(); // no change, no call
 * line.lower();
 * assert.deepEqual(seen, [true, false]);
 * ```
 */
export class IrqLine {
  /** Name used in logs and by the machine when wiring ("com1", "irq4"). */
  readonly name: string;
  #level = false;
  // Replaced rather than mutated, so a listener may connect or disconnect others while the
  // current list is being walked.
  #listeners: readonly IrqListener[] = [];

  /**
   * Create a line, initially low.
   *
   * @param name Name used in logs.
   */
  constructor(name: string) {
    this.name = name;
  }

  /** The current level: `true` when asserted. */
  get level(): boolean {
    return this.#level;
  }

  /**
   * Drive the line to `level`; listeners are told only if the level changed.
   *
   * @param level `true` to assert the line, `false` to deassert it.
   */
  set(level: boolean): void {
    if (level === this.#level) return;
    this.#level = level;
    for (const listener of this.#listeners) listener(level);
  }

  /** Assert the line (same as `set(true)`). */
  raise(): void {
    this.set(true);
  }

  /** Deassert the line (same as `set(false)`). */
  lower(): void {
    this.set(false);
  }

  /**
   * Raise then lower the line, as QEMU's `qemu_irq_pulse` does, for edge-style signals.
   *
   * From low this makes two listener calls (`true`, then `false`). From high only the lowering
   * is a change, so listeners see a single `false` and the line ends low.
   */
  pulse(): void {
    this.set(true);
    this.set(false);
  }

  /**
   * Call `listener` with the new level on every change from now on.
   *
   * The listener is not called with the current level; read {@linkcode IrqLine.level} for it.
   *
   * @param listener Called with the new level after each change.
   * @returns A function that disconnects this listener; calling it again does nothing.
   */
  connect(listener: IrqListener): () => void {
    this.#listeners = [...this.#listeners, listener];
    let connected = true;
    return () => {
      if (!connected) return;
      connected = false;
      // Remove one occurrence only: the same function may be connected twice on purpose.
      const index = this.#listeners.indexOf(listener);
      if (index >= 0) {
        this.#listeners = this.#listeners.filter((_, i) => i !== index);
      }
    };
  }
}
