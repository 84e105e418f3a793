/**
 * What the scenarios read from minios's shell (fixtures/kernels/minios/irqstat.c): the clock as
 * the guest sees it and its interrupt counters. A helper module, not a scenario (the `_` prefix).
 *
 * @module
 */
import type { ScenarioVm } from "../mod.ts";

/** The minios kernel image. */
export const MINIOS = "fixtures/build/minios.elf";

/** minios's timer rate: one tick is 10 ms of guest time. */
export const TICK_MS = 10;

/** The guest's clock: timer ticks counted by its IRQ0 handler, and rdtsc in milliseconds. */
export interface GuestClock {
  ticks: number;
  ms: number;
}

/** minios's interrupt counters. */
export interface GuestIrqs {
  timer: number;
  com1: number;
  /** COM1 interrupts that found no received byte. */
  com1Stray: number;
  spurious7: number;
  spurious15: number;
}

/**
 * Reads the `clock` command's line (the command must have been typed already, or `type` it).
 *
 * @param vm the machine
 * @param send whether to type the command first (default true)
 * @returns the guest's clock
 */
export async function guestClock(vm: ScenarioVm, send = true): Promise<GuestClock> {
  if (send) vm.console.send("clock\r");
  const m = await vm.console.expect(/clock: ticks=(\d+) tsc-ms=(\d+)\n/);
  return { ticks: Number(m[1]), ms: Number(m[2]) };
}

/**
 * Types `irqs` and reads its line.
 *
 * @param vm the machine
 * @returns the counters
 */
export async function guestIrqs(vm: ScenarioVm): Promise<GuestIrqs> {
  vm.console.send("irqs\r");
  const m = await vm.console.expect(
    /irqs: timer=(\d+) com1=(\d+) com1-stray=(\d+) spurious7=(\d+) spurious15=(\d+)\n/,
  );
  const [timer, com1, com1Stray, spurious7, spurious15] = m.slice(1).map(Number);
  return { timer, com1, com1Stray, spurious7, spurious15 };
}

/**
 * Timer ticks the guest missed between two clock readings: guest time elapsed, less the time
 * its ticks account for.
 *
 * @param a the earlier reading
 * @param b the later one
 * @returns milliseconds of guest time without ticks
 */
export function missedMs(a: GuestClock, b: GuestClock): number {
  return (b.ms - a.ms) - (b.ticks - a.ticks) * TICK_MS;
}
