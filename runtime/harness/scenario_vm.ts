/**
 * What a scenario may do with a machine, whichever backend runs it: ring3's {@link Vm} and
 * {@link QemuVm} both implement {@link ScenarioVm}, so one scenario drives either (issue 5).
 *
 * @module
 */
import type { BootOptions, ExpectOptions, TypeOptions } from "../vm.ts";
import type { Duration } from "../duration.ts";
import type { AppliedEvent, MachineEvent } from "../machine_protocol.ts";
import { Vm } from "../vm.ts";
import type { RunResult } from "../run_result.ts";
import type { Keyboard, TextScreen } from "../vm_devices.ts";
import { QemuVm } from "./qemu_vm.ts";

/** Which machine runs a scenario's kernels. */
export type Backend = "ring3" | "qemu";

/** Every backend, in the order `--backend both` runs them. */
export const BACKENDS: readonly Backend[] = ["ring3", "qemu"];

/** A serial console as a scenario sees it: {@link SerialConsole}'s public surface. */
export interface ScenarioConsole {
  /** Everything the guest printed so far. */
  readonly transcript: string;
  /**
   * Waits until the output after the previous match matches `pattern`, within a guest-time limit.
   *
   * @param pattern a string or regular expression
   * @param options guest-time limit (default "10s")
   * @returns the match
   */
  expect(pattern: string | RegExp, options?: ExpectOptions): Promise<RegExpExecArray>;
  /**
   * Types on the guest's receive line.
   *
   * @param text characters (UTF-8) or bytes
   */
  send(text: string | Uint8Array): void;
  /**
   * Types text one character at a time, paced in guest time.
   *
   * @param text characters
   * @param options the guest time between characters (default "10ms")
   */
  type(text: string, options?: TypeOptions): Promise<void>;
  /**
   * Calls `listener` with each chunk of output and the guest time it was seen at.
   *
   * @param listener receives text and guest nanoseconds
   */
  onOutput(listener: (text: string, guestNs: number) => void): void;
}

/** A running machine as a scenario drives it, on any backend. */
export interface ScenarioVm {
  /** COM1. */
  readonly console: ScenarioConsole;
  /** Diagnostics from the machine or the emulator. */
  readonly logs: string[];
  /** The PS/2 keyboard: `type()` and `press()`. */
  readonly keyboard: Keyboard;
  /** The CGA/VGA text screen: `text()`, `expect()`, `save()`. */
  readonly screen: TextScreen;
  /** Slave paths of pty-backed serial lines, by line number (2..4). */
  readonly ptys: Record<number, string>;
  /**
   * A serial line: 1 is the console; others as the backend offers them.
   *
   * @param line 1..4
   */
  serial(line: number): ScenarioConsole;
  /** The host process that runs the guest (0 if it never started). */
  readonly pid: number;
  /** Which backend runs it. */
  readonly backend: Backend;
  /**
   * Waits for the guest to exit through isa-debug-exit.
   *
   * @returns the exit status, (v << 1) | 1
   */
  exit(): Promise<number>;
  /** How the run ended; resolves when it does. */
  result(): Promise<RunResult>;
  /**
   * Puts an event on the timeline at a guest time since boot.
   *
   * @param time guest time since boot
   * @param event the event (see {@link MachineEvent} for the kinds)
   * @returns the event as applied: "applied", "rejected", or "skipped" on a backend that
   *   cannot do it (QEMU cannot inject interrupts or hold timers: reported, never faked)
   */
  at(time: Duration, event: MachineEvent): Promise<AppliedEvent>;
  /**
   * Applies an event now.
   *
   * @param event the event
   * @returns the event as applied (see {@link at})
   */
  inject(event: MachineEvent): Promise<AppliedEvent>;
  /**
   * Ends the run now and waits for the end.
   *
   * @param reason recorded in the report
   */
  stop(reason?: string): Promise<RunResult>;
}

/** {@link BootOptions} plus the backend to boot on. */
export interface ScenarioBootOptions extends BootOptions {
  /**
   * The backend for this machine; default: the run's backend (`runScenario`'s option), else
   * "ring3". A scenario that needs one backend's abilities names it here.
   */
  backend?: Backend;
}

/**
 * Boots a machine on a backend.
 *
 * @param options what to boot; `options.backend` wins over `fallback`
 * @param fallback the run's backend (default "ring3")
 * @returns the running machine
 */
export async function bootScenarioVm(
  options: ScenarioBootOptions,
  fallback: Backend = "ring3",
): Promise<ScenarioVm> {
  const { backend = fallback, ...boot } = options;
  switch (backend) {
    case "ring3":
      return await Vm.start(boot);
    case "qemu":
      return await QemuVm.start(boot);
    default:
      throw new RangeError(`unknown backend "${backend}" (use "ring3" or "qemu")`);
  }
}
