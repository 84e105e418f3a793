/**
 * Watches a console for the two things that end a run early, on either backend: a line that
 * matches a failure pattern (a panic message), and a console flood (more bytes in a window of
 * guest time than anyone will read: a guest stuck in a print loop).
 *
 * @module
 */
import { type Duration, durationNs } from "./duration.ts";

/**
 * Console lines that end a run at once with a "panic" failure, unless a scenario passes its own
 * `failOn`: Linux's panic line, BSD-style and minios-style `panic:` lines at the start of a line.
 */
export const DEFAULT_FAIL_ON: readonly RegExp[] = [/Kernel panic - not syncing/, /^panic: /m];

/**
 * The default flood limit: 128 KiB of console output within 8 s of guest time, 16 KiB/s kept up
 * for 8 s: more than a 115200-baud serial line can carry (11.5 KB/s), and twice a whole Linux
 * boot log (about 60 KiB), which therefore never trips it. Under ring3 a console byte costs one
 * or two traps, and the guest time a trap costs varies with host load: a tight print loop
 * measured 22-70 KB per guest second on 2026-11-21 (idle and loaded host). A shorter window
 * (96 KiB per 2 s) missed the slow end of that range. QEMU prints much faster.
 */
export const DEFAULT_CONSOLE_FLOOD: { bytes: number; window: Duration } = {
  bytes: 128 * 1024,
  window: "8s",
};

/** What ends a run early, as {@link ConsoleWatch} takes it (plain data: crosses to a Worker). */
export interface ConsoleLimits {
  /** Failure patterns; an empty list checks none. */
  failOn: (string | RegExp)[];
  /** Bytes allowed per window of guest time, or null for no limit. */
  flood: { bytes: number; windowNs: number } | null;
}

/**
 * The limits of a run from boot options.
 *
 * @param failOn patterns, or false for none; default {@link DEFAULT_FAIL_ON}
 * @param flood the flood limit, or false for none; default {@link DEFAULT_CONSOLE_FLOOD}
 * @returns the limits
 * @throws {RangeError} for a limit that is not a positive byte count or a duration
 */
export function consoleLimits(
  failOn: (string | RegExp)[] | false | undefined,
  flood: { bytes: number; window: Duration } | false | undefined,
): ConsoleLimits {
  const f = flood === undefined ? DEFAULT_CONSOLE_FLOOD : flood;
  if (f !== false && !(Number.isInteger(f.bytes) && f.bytes > 0)) {
    throw new RangeError(`consoleFlood.bytes must be a positive integer, got ${f.bytes}`);
  }
  return {
    failOn: failOn === false ? [] : [...(failOn ?? DEFAULT_FAIL_ON)],
    flood: f === false ? null : { bytes: f.bytes, windowNs: durationNs(f.window) },
  };
}

/** Why the console ends a run. */
export interface ConsoleVerdict {
  kind: "panic" | "console-flood";
  message: string;
}

/** Longest partial line kept between chunks for pattern matching. */
const CARRY_CHARS = 4096;

/** One console's watch. */
export class ConsoleWatch {
  #carry = "";
  #windowStart = 0;
  #windowBytes = 0;

  /** @param limits what to watch for */
  constructor(readonly limits: ConsoleLimits) {}

  /**
   * Counts output bytes at a guest time.
   *
   * @param n bytes
   * @param guestNs when they were printed
   * @returns a flood verdict when the window's limit is passed
   */
  count(n: number, guestNs: number): ConsoleVerdict | null {
    const f = this.limits.flood;
    if (f === null) return null;
    if (guestNs - this.#windowStart >= f.windowNs) {
      this.#windowStart = guestNs;
      this.#windowBytes = 0;
    }
    this.#windowBytes += n;
    if (this.#windowBytes <= f.bytes) return null;
    return {
      kind: "console-flood",
      message: `the guest printed more than ${f.bytes} bytes of console output within ${
        f.windowNs / 1e6
      } ms of guest time (from ${(this.#windowStart / 1e6).toFixed(1)} ms): a console flood`,
    };
  }

  /**
   * Checks new console text against the failure patterns. Lines are matched whole: text after
   * the last newline is kept for the next chunk.
   *
   * @param text the new output
   * @returns a panic verdict naming the pattern and the line
   */
  scan(text: string): ConsoleVerdict | null {
    if (this.limits.failOn.length === 0) return null;
    const all = this.#carry + text;
    const cut = all.lastIndexOf("\n") + 1;
    const complete = all.slice(0, cut);
    this.#carry = all.slice(cut).slice(-CARRY_CHARS);
    // A partial line is matched too (a panic message without a newline before the machine
    // halts), but it is kept for the next chunk, so a pattern is found as soon as it is printed.
    for (const where of [complete, this.#carry]) {
      for (const p of this.limits.failOn) {
        const at = typeof p === "string" ? where.indexOf(p) : where.search(p);
        if (at < 0) continue;
        const start = where.lastIndexOf("\n", at) + 1;
        const end = where.indexOf("\n", at);
        const line = where.slice(start, end < 0 ? undefined : end);
        const partial = where === this.#carry ? " (the line so far)" : "";
        this.#carry = "";
        return {
          kind: "panic",
          message: `the console printed ${JSON.stringify(line)}${partial}, which matches the ` +
            `failure pattern ${typeof p === "string" ? JSON.stringify(p) : String(p)}`,
        };
      }
    }
    return null;
  }
}
