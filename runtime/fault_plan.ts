/**
 * Fault plans: faults a scenario declares to exercise the partial emulator and the runtime,
 * driven by a seed so that a run can be repeated exactly. The machine consults the plan at the
 * points where each fault can happen; every fault it applies goes into the run's event log.
 *
 * @module
 */
import { seededRandom } from "./seeded_random.ts";
import { type Duration, durationNs } from "./duration.ts";

/** How many due interrupts a `drop-interrupt` fault without `nth` picks among by default. */
export const DROP_WINDOW = 20;

/** One fault and when it strikes. Counts are occurrences of the fault's trigger, from 1. */
export type Fault =
  /** Reads of `port` return seeded random values for `count` reads (default all) from `after`. */
  | { fault: "port-garbage"; port: number; after?: number; count?: number }
  /**
   * The guest process is killed (SIGKILL) while the tracer handles trap number `afterTraps`,
   * or at guest time `at` (on QEMU only `at` applies: the QEMU process is killed).
   */
  | { fault: "kill-guest"; afterTraps?: number; at?: Duration }
  /** Host mappings made for the guest (shadow paging) fail from the `after`-th on. */
  | { fault: "fail-host-mmap"; after?: number }
  /** The `nth` external interrupt (default the first) is delivered twice. */
  | { fault: "duplicate-interrupt"; nth?: number }
  /**
   * The `nth` due external interrupt is lost before the CPU takes it (its request is cleared
   * at the controller, so no EOI is owed). Without `nth` the seed picks it among the first
   * `within` (default {@link DROP_WINDOW}). `count` (default 1) consecutive ones are dropped.
   */
  | { fault: "drop-interrupt"; nth?: number; within?: number; count?: number }
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
  #due = 0;
  readonly #delaysLogged = new Set<Fault>();
  /** The due-interrupt numbers each drop-interrupt fault starts at, chosen at construction. */
  readonly #dropAt: { from: number; count: number; within: number | null }[] = [];

  /**
   * @param plan the faults
   * @param seed drives every random choice
   * @param record called with a description of each fault applied
   */
  constructor(plan: FaultPlan, seed: number, private readonly record: (detail: string) => void) {
    for (const f of plan) validate(f);
    this.#plan = plan;
    this.#random = seededRandom(seed);
    // Choices are made up front, in plan order, so they depend on the seed alone and not on
    // how many garbage port reads happened first.
    for (const f of plan) {
      if (f.fault !== "drop-interrupt") continue;
      const within = f.within ?? DROP_WINDOW;
      const from = f.nth ?? 1 + Math.floor(this.#random() * within);
      this.#dropAt.push({ from, count: f.count ?? 1, within: f.nth === undefined ? within : null });
    }
  }

  /** Guest times (ns) at which the plan kills the guest: the machine schedules them. */
  get killTimes(): number[] {
    return this.#plan.flatMap((f) =>
      f.fault === "kill-guest" && f.at !== undefined ? [durationNs(f.at)] : []
    );
  }

  /** An interrupt is due (the CPU would take it now); true when it must be lost instead. */
  drop(): boolean {
    const n = ++this.#due;
    return this.#dropAt.some((d) => n >= d.from && n < d.from + d.count);
  }

  /**
   * Records a dropped interrupt.
   *
   * @param vector the vector lost, or null when the controller had nothing after all
   */
  dropped(vector: number | null): void {
    const d = this.#dropAt.find((d) => this.#due >= d.from && this.#due < d.from + d.count)!;
    const why = d.within !== null ? ` (picked by the seed among the first ${d.within})` : "";
    this.record(
      `drop-interrupt: due interrupt ${this.#due}${why}, ${
        vector === null ? "nothing pending" : `vector 0x${vector.toString(16)}`
      }, lost before the CPU took it`,
    );
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
      if (f.fault === "kill-guest" && f.afterTraps !== undefined && f.afterTraps === this.#traps) {
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

  /** Whether interrupts are held back at guest time `nowNs` (logged once per fault). */
  interruptsHeld(nowNs: number): boolean {
    const f = this.#plan.find((f) =>
      f.fault === "delay-interrupts" && nowNs >= f.fromNs && nowNs < f.fromNs + f.forNs
    );
    if (f === undefined || f.fault !== "delay-interrupts") return false;
    if (!this.#delaysLogged.has(f)) {
      this.#delaysLogged.add(f);
      this.record(
        `delay-interrupts: external interrupts held back from ${f.fromNs / 1e6} ms for ${
          f.forNs / 1e6
        } ms of guest time`,
      );
    }
    return true;
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

/** Every fault kind. */
export const FAULT_KINDS: readonly Fault["fault"][] = [
  "port-garbage",
  "kill-guest",
  "fail-host-mmap",
  "duplicate-interrupt",
  "drop-interrupt",
  "delay-interrupts",
];

function validate(f: Fault): void {
  if (!FAULT_KINDS.includes(f.fault)) {
    throw new RangeError(`unknown fault "${f.fault}" (faults: ${FAULT_KINDS.join(", ")})`);
  }
  if (f.fault === "kill-guest" && f.afterTraps === undefined && f.at === undefined) {
    throw new RangeError("kill-guest needs afterTraps or at");
  }
  if (f.fault === "kill-guest" && f.at !== undefined) durationNs(f.at);
}
