/**
 * Guest time. It advances with the CPU time the guest process consumes (user and system, so
 * trap handling in the guest's kernel context counts too), never with host wall time, and it
 * jumps ahead when the guest idles: a slow or loaded host makes a run slower, not different.
 * See docs/design/2026-11-21-virtual-clock.md.
 *
 * @module
 */

/** A one-shot deadline on the guest timeline. */
interface Deadline {
  id: number;
  at: number;
}

/** The virtual clock of one machine, with the deadlines waiting on it. */
export class VirtualClock {
  #idleNs = 0;
  #deadlines: Deadline[] = [];

  /**
   * @param cpuTimeNs reads the guest process's CPU time in nanoseconds
   */
  constructor(private readonly cpuTimeNs: () => number) {}

  /** Guest nanoseconds since boot. */
  now(): number {
    return this.cpuTimeNs() + this.#idleNs;
  }

  /**
   * Adds a deadline `afterNs` from now.
   *
   * @param id caller's identifier, returned by {@link due}
   * @param afterNs guest nanoseconds from now
   */
  addDeadline(id: number, afterNs: number): void {
    this.#deadlines.push({ id, at: this.now() + afterNs });
    this.#deadlines.sort((a, b) => a.at - b.at);
  }

  /** Removes a deadline (no-op when it already fired). */
  cancel(id: number): void {
    this.#deadlines = this.#deadlines.filter((d) => d.id !== id);
  }

  /**
   * Removes and returns the deadlines that have passed.
   *
   * @returns their ids, earliest first
   */
  due(): number[] {
    if (this.#deadlines.length === 0) return [];
    const now = this.now();
    const fired: number[] = [];
    while (this.#deadlines.length > 0 && this.#deadlines[0].at <= now) {
      fired.push(this.#deadlines.shift()!.id);
    }
    return fired;
  }

  /**
   * The guest is idle with nothing to wake it before the next deadline: move time there.
   *
   * @returns whether there was a deadline to jump to
   */
  skipToNextDeadline(): boolean {
    if (this.#deadlines.length === 0) return false;
    const gap = this.#deadlines[0].at - this.now();
    if (gap > 0) this.#idleNs += gap;
    return true;
  }
}
