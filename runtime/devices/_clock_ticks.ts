/**
 * Exact conversion between guest nanoseconds and the ticks of a device's crystal, for devices
 * that derive their counters from guest time instead of ticking (the 8254 at 1.193182 MHz, the
 * MC146818's 32.768 kHz divider chain).
 *
 * The naive `ns * hz / 1e9` leaves the range of exact doubles (2^53, about 9e15) after 7.5
 * guest seconds at the PIT's 1.193182 MHz, so both functions split the operand into whole
 * seconds and a remainder; every intermediate stays below 2^53 and the result is exact for
 * integer inputs, as long as the nanoseconds themselves stay below 2^53 (104 guest days).
 *
 * @module
 */

const NS_PER_S = 1_000_000_000;

/**
 * How many whole ticks of a `hz` oscillator elapse in `ns` nanoseconds: floor(ns * hz / 1e9).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { ticksIn } from "./_clock_ticks.ts";
 *
 * assert.equal(ticksIn(1_000_000_000, 32768), 32768);
 * assert.equal(ticksIn(30_517, 32768), 0);
 * assert.equal(ticksIn(30_518, 32768), 1);
 * ```
 *
 * @param ns Elapsed guest time; may be negative (the result is then floored towards -∞).
 * @param hz Oscillator frequency, a positive integer.
 * @returns The tick count.
 */
export function ticksIn(ns: number, hz: number): number {
  const seconds = Math.floor(ns / NS_PER_S);
  const rest = ns - seconds * NS_PER_S;
  // rest < 1e9 and hz < 2^22 keep the product below 2^53; the quotient is below hz, so its
  // rounding error (< 2^-30) cannot cross an integer that the true value misses by >= 1e-9.
  return seconds * hz + Math.floor((rest * hz) / NS_PER_S);
}

/**
 * The shortest whole-nanosecond time in which `ticks` ticks of a `hz` oscillator elapse:
 * ceil(ticks * 1e9 / hz), so that `ticksIn(nsForTicks(k, hz), hz) >= k` and one nanosecond
 * less gives fewer than `k`.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { nsForTicks, ticksIn } from "./_clock_ticks.ts";
 *
 * const ns = nsForTicks(11932, 1193182);
 * assert.equal(ticksIn(ns, 1193182), 11932);
 * assert.equal(ticksIn(ns - 1, 1193182), 11931);
 * ```
 *
 * @param ticks Tick count (an integer).
 * @param hz Oscillator frequency, a positive integer.
 * @returns Nanoseconds.
 */
export function nsForTicks(ticks: number, hz: number): number {
  const seconds = Math.floor(ticks / hz);
  const rest = ticks - seconds * hz;
  return seconds * NS_PER_S + Math.ceil((rest * NS_PER_S) / hz);
}
