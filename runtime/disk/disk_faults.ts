/**
 * Disk faults on the scenario timeline: a layer in front of a {@link BlockBackend} that fails,
 * delays or tears the requests touching a sector range, once, a number of times, or always.
 * Each fault that fires is written to the machine's event log.
 *
 * A torn write models a drive losing power with data in its volatile cache: the command
 * reports success, and only the first `keep` sectors of the request reach the backing.
 *
 * @module
 */
import type { BlockBackend, BlockResult } from "../devices/block_backend.ts";
import { SECTOR_SIZE } from "../devices/block_backend.ts";
import type { DeviceClock } from "../devices/device_clock.ts";
import { type Duration, durationNs } from "../duration.ts";

/** What a rule does to a matching request. */
export type DiskFaultAction =
  | "fail-read"
  | "fail-write"
  | "delay-read"
  | "delay-write"
  | "tear-write";

/** The actions, for validation and messages. */
export const DISK_FAULT_ACTIONS: readonly DiskFaultAction[] = [
  "fail-read",
  "fail-write",
  "delay-read",
  "delay-write",
  "tear-write",
];

/** A fault as a scenario writes it (a `disk` event's parameters, or a disk's boot `faults`). */
export interface DiskFaultSpec {
  action: DiskFaultAction;
  /** First sector of the range. */
  sector: number;
  /** Sectors in the range (default 1). */
  count?: number;
  /** Requests it applies to (default 1), or "always". */
  times?: number | "always";
  /** delay-read / delay-write: guest time added (default "1ms"). */
  delay?: Duration;
  /** tear-write: sectors of the request that reach the backing (default half). */
  keep?: number;
}

/**
 * Checks a fault's parameters and makes the rule.
 *
 * @param e the parameters (of a timeline event, or a {@link DiskFaultSpec})
 * @returns the rule
 * @throws {RangeError} naming the bad parameter
 */
export function parseDiskFault(e: Record<string, unknown>): DiskFaultRule {
  const action = String(e.action);
  if (!DISK_FAULT_ACTIONS.includes(action as DiskFaultAction)) {
    throw new RangeError(`disk action must be one of ${DISK_FAULT_ACTIONS.join(", ")} or clear`);
  }
  const sector = Number(e.sector);
  const count = Number(e.count ?? 1);
  if (!Number.isInteger(sector) || sector < 0 || !Number.isInteger(count) || count < 1) {
    throw new RangeError(`disk fault needs sector >= 0 and count >= 1`);
  }
  const times = e.times === "always" ? Infinity : Number(e.times ?? 1);
  if (!(times >= 1)) throw new RangeError(`times must be a positive number or "always"`);
  const delayNs = action.startsWith("delay") ? durationNs((e.delay ?? "1ms") as Duration) : 0;
  const keep = e.keep === undefined ? undefined : Number(e.keep);
  if (keep !== undefined && !(Number.isInteger(keep) && keep >= 0)) {
    throw new RangeError(`keep must be a whole number of sectors`);
  }
  return { action: action as DiskFaultAction, sector, count, times, delayNs, keep };
}

/**
 * A rule in words, for the event log.
 *
 * @param r the rule
 * @returns e.g. "fail-read sectors 8+1 1x"
 */
export function describeRule(r: DiskFaultRule): string {
  return `${r.action} sectors ${r.sector}+${r.count} ${
    r.times === Infinity ? "always" : `${r.times}x`
  }${r.delayNs ? ` by ${r.delayNs / 1e6} ms` : ""}${r.keep !== undefined ? ` keep ${r.keep}` : ""}`;
}

/** One fault rule. */
export interface DiskFaultRule {
  action: DiskFaultAction;
  /** First sector of the range. */
  sector: number;
  /** Sectors in the range (default 1). */
  count: number;
  /** Requests it still applies to (Infinity: always). */
  times: number;
  /** delay-*: guest nanoseconds added before the request completes. */
  delayNs: number;
  /** tear-write: sectors of the request that reach the backing (default: half, rounded down). */
  keep?: number;
}

/** The fault layer of one disk. */
export class DiskFaults {
  #rules: DiskFaultRule[] = [];

  /**
   * @param name "disk 0", for the log
   * @param clock guest time (delays, and completions that must not happen inside the call)
   * @param log where fired faults are reported
   */
  constructor(
    readonly name: string,
    private readonly clock: DeviceClock,
    private readonly log: (detail: string) => void,
  ) {}

  /** Adds a rule. */
  add(rule: DiskFaultRule): void {
    this.#rules.push(rule);
  }

  /** Removes every rule. */
  clear(): void {
    this.#rules = [];
  }

  /** Rules still armed. */
  get rules(): readonly DiskFaultRule[] {
    return this.#rules;
  }

  /**
   * The backend with this layer in front.
   *
   * @param inner the real backend
   * @returns a backend that applies the rules
   */
  wrap(inner: BlockBackend): BlockBackend {
    const later = (done: (r: BlockResult) => void, r: BlockResult, atNs = this.clock.now()) =>
      void this.clock.schedule(atNs, () => done(r));
    const delayed = (delayNs: number, done: (r: BlockResult) => void) => {
      if (delayNs === 0) return done;
      const due = this.clock.now() + delayNs;
      return (r: BlockResult) => later(done, r, Math.max(due, this.clock.now()));
    };
    return {
      sectorCount: inner.sectorCount,
      read: (lba, count, done) => {
        const fail = this.#take("fail-read", lba, count);
        if (fail) {
          const at = Math.max(lba, fail.sector);
          this.log(`${this.name}: read ${lba}+${count} failed at sector ${at}${left(fail)}`);
          return later(done, { ok: false, sector: at, message: "injected read error" });
        }
        const delay = this.#take("delay-read", lba, count);
        if (delay) {
          this.log(`${this.name}: read ${lba}+${count} delayed ${ms(delay)}${left(delay)}`);
        }
        inner.read(lba, count, delayed(delay?.delayNs ?? 0, done));
      },
      write: (lba, data, done) => {
        const count = data.length / SECTOR_SIZE;
        const fail = this.#take("fail-write", lba, count);
        if (fail) {
          // The sectors before the bad one were written, as a drive writes in order.
          const at = Math.max(lba, fail.sector);
          this.log(`${this.name}: write ${lba}+${count} failed at sector ${at}${left(fail)}`);
          const r: BlockResult = { ok: false, sector: at, message: "injected write error" };
          if (at === lba) return later(done, r);
          return inner.write(lba, data.subarray(0, (at - lba) * SECTOR_SIZE), () => done(r));
        }
        const tear = this.#take("tear-write", lba, count);
        if (tear) {
          const keep = Math.min(count, tear.keep ?? Math.floor(count / 2));
          this.log(
            `${this.name}: write ${lba}+${count} torn: ${keep} of ${count} sectors kept${
              left(tear)
            }`,
          );
          if (keep === 0) return later(done, { ok: true });
          return inner.write(lba, data.subarray(0, keep * SECTOR_SIZE), done);
        }
        const delay = this.#take("delay-write", lba, count);
        if (delay) {
          this.log(`${this.name}: write ${lba}+${count} delayed ${ms(delay)}${left(delay)}`);
        }
        inner.write(lba, data, delayed(delay?.delayNs ?? 0, done));
      },
      flush: (done) => inner.flush(done),
    };
  }

  /** The first armed rule of `action` overlapping the request; counts it down. */
  #take(action: DiskFaultAction, lba: number, count: number): DiskFaultRule | null {
    const rule = this.#rules.find((r) =>
      r.action === action && r.sector < lba + count && lba < r.sector + r.count
    );
    if (!rule) return null;
    rule.times--;
    if (rule.times <= 0) this.#rules = this.#rules.filter((r) => r !== rule);
    return rule;
  }
}

function left(r: DiskFaultRule): string {
  return r.times === Infinity ? " (always)" : r.times > 0 ? ` (${r.times} more)` : "";
}

function ms(r: DiskFaultRule): string {
  return `${r.delayNs / 1e6} ms`;
}
