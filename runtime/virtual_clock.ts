/**
 * Guest time. It advances with the CPU time the guest process consumes (user and system, so
 * trap handling in the guest's kernel context counts too), never with host wall time, and it
 * jumps ahead when the guest idles: a slow or loaded host makes a run slower, not different.
 * See docs/design/2026-11-21-virtual-clock.md.
 *
 * Two kinds of events wait on it: device timers (a PIT period, an APIC one-shot) and scenario
 * deadlines (an expect's timeout, the run's limit), which the machine reports outward.
 *
 * @module
 */
import type { DeviceClock } from "./devices/device_clock.ts";

interface Deadline {
  id: number;
  at: number;
}

interface Timer {
  at: number;
  seq: number;
  fn: () => void;
  live: boolean;
  /** A device timer (held back by {@link VirtualClock.holdTimers}); timeline events are not. */
  holdable: boolean;
}

/** The virtual clock of one machine, with the deadlines and timers waiting on it. */
export class VirtualClock implements DeviceClock {
  #idleNs = 0;
  #deadlines: Deadline[] = [];
  #timers: Timer[] = [];
  #seq = 0;
  /** Device timers due before this guest time run at it (a "timer hold" event). */
  #heldUntil = 0;

  /**
   * @param cpuTimeNs reads the guest process's CPU time in nanoseconds
   */
  constructor(private readonly cpuTimeNs: () => number) {}

  /** Guest nanoseconds since boot. */
  now(): number {
    return this.cpuTimeNs() + this.#idleNs;
  }

  /**
   * Adds a scenario deadline `afterNs` from now.
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

  /** Device timer: calls `fn` once guest time reaches `atNs`. */
  schedule(atNs: number, fn: () => void): () => void {
    return this.#add(atNs, fn, true);
  }

  /**
   * Timeline event: calls `fn` once guest time reaches `atNs`. Unlike a device timer it is
   * not held back by {@link holdTimers}.
   */
  scheduleEvent(atNs: number, fn: () => void): () => void {
    return this.#add(atNs, fn, false);
  }

  /**
   * Holds every device timer (PIT, local APIC timer, RTC) until guest time `untilNs`: timers
   * due meanwhile run then, as on a host that did not schedule the guest for a while. A
   * periodic timer then fires once, not once per missed period (the devices coalesce).
   *
   * @param untilNs guest nanoseconds
   */
  holdTimers(untilNs: number): void {
    this.#heldUntil = Math.max(this.#heldUntil, untilNs);
  }

  /** Guest time until which device timers are held (0 when never held). */
  get timersHeldUntil(): number {
    return this.#heldUntil;
  }

  /**
   * Moves guest time forward by `ns` at once, as a VM sees after its host suspended it:
   * device timers that became due run at the next look, coalesced.
   *
   * @param ns guest nanoseconds
   */
  advance(ns: number): void {
    if (ns > 0) this.#idleNs += ns;
  }

  #add(atNs: number, fn: () => void, holdable: boolean): () => void {
    const t: Timer = { at: atNs, seq: this.#seq++, fn, live: true, holdable };
    this.#timers.push(t);
    this.#timers.sort((a, b) => a.at - b.at || a.seq - b.seq);
    return () => {
      t.live = false;
    };
  }

  /** Whether a device timer is due (cheap enough to call often: one clock read if any exist). */
  timerDue(): boolean {
    this.#dropDead();
    if (this.#timers.length === 0) return false;
    const now = this.now();
    if (now >= this.#heldUntil) return this.#timers[0].at <= now;
    return this.#timers.some((t) => t.live && !t.holdable && t.at <= now);
  }

  #runnable(t: Timer, now: number): boolean {
    return t.live && t.at <= now && (!t.holdable || now >= this.#heldUntil);
  }

  /**
   * Runs the device timers that are due, in time order.
   *
   * @returns how many ran
   */
  runDueTimers(): number {
    let ran = 0;
    const now = this.now();
    for (;;) {
      this.#dropDead();
      const i = this.#timers.findIndex((t) => t.at > now || this.#runnable(t, now));
      const t = i < 0 ? undefined : this.#timers[i];
      if (t === undefined || t.at > now) return ran;
      this.#timers.splice(i, 1);
      t.live = false;
      t.fn();
      ran++;
    }
  }

  #dropDead(): void {
    while (this.#timers.length > 0 && !this.#timers[0].live) this.#timers.shift();
  }

  /**
   * The guest time of the next event: the first device timer, or a scenario deadline. The
   * deadline with id `excludeId` (the run's limit) counts only when `includeExcluded` is set.
   *
   * @returns guest nanoseconds, or null when nothing waits
   */
  nextEventAt(excludeId: number, includeExcluded: boolean): number | null {
    this.#dropDead();
    let next: number | null = null;
    for (const t of this.#timers) {
      if (!t.live) continue;
      const at = t.holdable ? Math.max(t.at, this.#heldUntil) : t.at;
      if (next === null || at < next) next = at;
    }
    for (const d of this.#deadlines) {
      if (d.id === excludeId && !includeExcluded) continue;
      if (next === null || d.at < next) next = d.at;
      break;
    }
    const limit = this.#deadlines.find((d) => d.id === excludeId);
    if (includeExcluded && limit && (next === null || limit.at < next)) next = limit.at;
    return next;
  }

  /**
   * The guest is idle until `atNs`: move time there (never backwards).
   *
   * @param atNs guest nanoseconds
   */
  skipTo(atNs: number): void {
    const gap = atNs - this.now();
    if (gap > 0) this.#idleNs += gap;
  }
}
