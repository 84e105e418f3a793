/**
 * Time as devices see it: guest time in nanoseconds, and callbacks at guest times. Devices
 * never read host time; the machine implements this over its virtual clock, and tests use
 * {@link ManualClock}.
 *
 * @module
 */

/** Guest time and timers for device models. */
export interface DeviceClock {
  /** Guest time in nanoseconds since power-on. */
  now(): number;
  /**
   * Calls `fn` once guest time reaches `atNs` (at the machine's next opportunity, never
   * early). Returns a function that cancels the callback if it has not run yet.
   */
  schedule(atNs: number, fn: () => void): () => void;
}

/**
 * A clock that moves only when told to: for device tests.
 *
 * @example
 * ```ts
 * import { ManualClock } from "./device_clock.ts";
 * const clock = new ManualClock();
 * let fired = 0;
 * clock.schedule(1000, () => fired++);
 * clock.advance(999);
 * if (fired !== 0) throw new Error("early");
 * clock.advance(1);
 * if (fired !== 1) throw new Error("late");
 * ```
 */
export class ManualClock implements DeviceClock {
  #now = 0;
  #timers: { at: number; seq: number; fn: () => void; live: boolean }[] = [];
  #seq = 0;

  now(): number {
    return this.#now;
  }

  schedule(atNs: number, fn: () => void): () => void {
    const t = { at: atNs, seq: this.#seq++, fn, live: true };
    this.#timers.push(t);
    return () => void (t.live = false);
  }

  /** Callbacks scheduled and neither run nor cancelled: lets tests check a device leaks no timers. */
  get pending(): number {
    return this.#timers.filter((t) => t.live).length;
  }

  /** Moves time forward by `ns`, running due callbacks in time order. */
  advance(ns: number): void {
    this.advanceTo(this.#now + ns);
  }

  /** Moves time to `atNs`, running due callbacks in time order (each sees its own due time). */
  advanceTo(atNs: number): void {
    for (;;) {
      const due = this.#timers.filter((t) => t.live && t.at <= atNs)
        .sort((a, b) => a.at - b.at || a.seq - b.seq)[0];
      if (!due) break;
      due.live = false;
      this.#timers = this.#timers.filter((t) => t.live);
      this.#now = Math.max(this.#now, due.at);
      due.fn();
    }
    this.#now = Math.max(this.#now, atNs);
  }
}
