/**
 * Fault plans: faults a scenario declares to exercise the partial emulator and the runtime,
 * driven by a seed so that a run can be repeated exactly. The machine consults the plan at the
 * points where each fault can happen; every fault it applies goes into the run's event log.
 *
 * @module
 */
import { seededRandom } from "./seeded_random.ts";

/** One fault and when it strikes. Counts are occurrences of the fault's trigger, from 1. */
export type Fault =
  /** Reads of `port` return seeded random values for `count` reads (default all) from `after`. */
  | { fault: "port-garbage"; port: number; after?: number; count?: number }
  /** The guest process is killed (SIGKILL) while the tracer handles trap number `afterTraps`. */
  | { fault: "kill-guest"; afterTraps: number }
  /** Host mappings made for the guest (shadow paging) fail from the `after`-th on. */
  | { fault: "fail-host-mmap"; after?: number }
  /** The `nth` external interrupt (default the first) is delivered twice. */
  | { fault: "duplicate-interrupt"; nth?: number }
  /** No external interrupt is delivered from guest time `fromNs` for `forNs` nanoseconds. */
  | { fault: "delay-interrupts"; fromNs: number; forNs: number };

/** A list of faults. */
export type FaultPlan = Fault[];

/** The plan as the machine consults it. */
export class FaultInjector {
  readonly #plan: FaultPlan;
  readonly #random: () => number;
  readonly #portReads = new Map<number, number>();
  #traps = 0;
  #mmaps = 0;
  #interrupts = 0;

  /**
   * @param plan the faults
   * @param seed drives every random choice
   * @param record called with a description of each fault applied
   */
  constructor(plan: FaultPlan, seed: number, private readonly record: (detail: string) => void) {
    for (const f of plan) validate(f);
    this.#plan = plan;
    this.#random = seededRandom(seed);
  }

  /** Whether the plan has anything at all (the machine skips every hook when not). */
  get active(): boolean {
    return this.#plan.length > 0;
  }

  /** A port read happened with `value`; returns the value the guest gets. */
  portRead(port: number, size: 1 | 2 | 4, value: number): number {
    const n = (this.#portReads.get(port) ?? 0) + 1;
    this.#portReads.set(port, n);
    for (const f of this.#plan) {
      if (f.fault !== "port-garbage" || f.port !== port) continue;
      const from = f.after ?? 1;
      if (n < from || (f.count !== undefined && n >= from + f.count)) continue;
      const mask = size === 4 ? 0xffffffff : size === 2 ? 0xffff : 0xff;
      const garbage = Math.floor(this.#random() * 0x100000000) & mask;
      this.record(
        `port-garbage: read ${n} of port 0x${port.toString(16)} gave 0x${
          (garbage >>> 0).toString(16)
        } instead of 0x${(value >>> 0).toString(16)}`,
      );
      return garbage >>> 0;
    }
    return value;
  }

  /** A trap is being handled; true when the guest process must be killed now. */
  killNow(): boolean {
    this.#traps++;
    for (const f of this.#plan) {
      if (f.fault === "kill-guest" && f.afterTraps === this.#traps) {
        this.record(`kill-guest: SIGKILL while handling trap ${this.#traps}`);
        return true;
      }
    }
    return false;
  }

  /** A host mapping is about to be made; true when it must fail. */
  failMmap(): boolean {
    this.#mmaps++;
    for (const f of this.#plan) {
      if (f.fault === "fail-host-mmap" && this.#mmaps >= (f.after ?? 1)) {
        this.record(`fail-host-mmap: host mapping ${this.#mmaps} refused (ENOMEM)`);
        return true;
      }
    }
    return false;
  }

  /** Whether interrupts are held back at guest time `nowNs`. */
  interruptsHeld(nowNs: number): boolean {
    return this.#plan.some((f) =>
      f.fault === "delay-interrupts" && nowNs >= f.fromNs && nowNs < f.fromNs + f.forNs
    );
  }

  /** An interrupt is delivered; true when it must be delivered a second time. */
  duplicate(vector: number): boolean {
    this.#interrupts++;
    for (const f of this.#plan) {
      if (f.fault === "duplicate-interrupt" && (f.nth ?? 1) === this.#interrupts) {
        this.record(`duplicate-interrupt: vector 0x${vector.toString(16)} delivered twice`);
        return true;
      }
    }
    return false;
  }
}

function validate(f: Fault): void {
  const known = [
    "port-garbage",
    "kill-guest",
    "fail-host-mmap",
    "duplicate-interrupt",
    "delay-interrupts",
  ];
  if (!known.includes(f.fault)) {
    throw new RangeError(`unknown fault "${f.fault}" (faults: ${known.join(", ")})`);
  }
}
