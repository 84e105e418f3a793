/** A duration: a number of milliseconds, or a string such as "5s", "250ms", "2m", "100us". */
export type Duration = number | string;

const UNITS: Record<string, number> = { ns: 1, us: 1e3, ms: 1e6, s: 1e9, m: 60e9, h: 3600e9 };

/**
 * Converts a duration to nanoseconds.
 *
 * @example
 * ```ts
 * import { durationNs } from "./duration.ts";
 * if (durationNs("1.5s") !== 1.5e9 || durationNs(20) !== 20e6) throw new Error();
 * ```
 * @param d the duration
 * @returns nanoseconds
 * @throws {RangeError} for text that is not a duration
 */
export function durationNs(d: Duration): number {
  if (typeof d === "number") {
    if (!(d >= 0)) throw new RangeError(`duration must be a non-negative number of ms, got ${d}`);
    return d * 1e6;
  }
  const m = /^\s*(\d+(?:\.\d+)?)\s*(ns|us|ms|s|m|h)\s*$/.exec(d);
  if (!m) throw new RangeError(`not a duration: "${d}" (use e.g. "5s", "250ms")`);
  return Number(m[1]) * UNITS[m[2]];
}

/**
 * Parses a memory size: bytes as a number, or "64M", "1G", "512K".
 *
 * @param s the size
 * @returns bytes
 * @throws {RangeError} for text that is not a size
 */
export function memoryBytes(s: number | string): number {
  if (typeof s === "number") return s;
  const m = /^\s*(\d+)\s*([KMG])i?B?\s*$/i.exec(s);
  if (!m) throw new RangeError(`not a memory size: "${s}" (use e.g. "64M")`);
  return Number(m[1]) * { K: 1024, M: 1024 ** 2, G: 1024 ** 3 }[m[2].toUpperCase() as "K"];
}
