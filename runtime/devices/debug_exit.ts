/**
 * QEMU's `isa-debug-exit` device: a port a test kernel writes to in order to end the run with
 * a status.
 *
 * Kernels written for QEMU (`-device isa-debug-exit,iobase=0xf4,iosize=0x04`) report success
 * or failure this way, so ring3 offers the same port with the same arithmetic.
 *
 * @module
 */

import type { AccessSize, PortDevice } from "./port_device.ts";

/** QEMU's default `iobase` property for isa-debug-exit. */
export const DEBUG_EXIT_DEFAULT_BASE = 0x501;

/** QEMU's default `iosize` property for isa-debug-exit. */
export const DEBUG_EXIT_DEFAULT_LENGTH = 2;

/** Options for {@linkcode DebugExit}. */
export interface DebugExitOptions {
  /**
   * Name used in logs.
   *
   * @default {"isa-debug-exit"}
   */
  name?: string;
  /**
   * Called on every write with `value * 2 + 1`, the full code QEMU passes to `exit()`. Use
   * {@linkcode debugExitStatus} for the 8-bit status a process would actually report.
   */
  onExit: (code: number) => void;
}

/**
 * The process exit status QEMU ends with after the guest writes `value` to isa-debug-exit.
 *
 * QEMU calls `exit((value << 1) | 1)`, and only the low 8 bits of an exit code survive as a
 * process status; the result is always odd, so 0 (success) cannot be reported this way.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { debugExitStatus } from "./debug_exit.ts";
 *
 * assert.equal(debugExitStatus(0x10), 0x21);
 * assert.equal(debugExitStatus(0x80), 0x01);
 * ```
 *
 * @param value The value the guest wrote.
 * @returns `((value << 1) | 1) & 0xff`.
 */
export function debugExitStatus(value: number): number {
  return ((value << 1) | 1) & 0xff;
}

/**
 * QEMU's isa-debug-exit: any write, of any size at any offset in its range, reports
 * `value * 2 + 1` through `onExit`.
 *
 * The device does not stop anything itself: the caller decides whether to end the run, and
 * with which status (see {@linkcode debugExitStatus}). Reads return 0: QEMU's
 * hw/misc/debugexit.c gained a `debug_exit_read` that returns 0 (before that the region had no
 * read callback at all).
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { DebugExit } from "./debug_exit.ts";
 *
 * const codes: number[] = [];
 * const device = new DebugExit({ onExit: (code) => codes.push(code) });
 * device.write(0, 0x31, 1);
 * assert.deepEqual(codes, [0x63]);
 * ```
 */
export class DebugExit implements PortDevice {
  /** Name used in logs. */
  readonly name: string;
  readonly #onExit: (code: number) => void;

  /**
   * Create the device.
   *
   * @param options See {@linkcode DebugExitOptions}.
   */
  constructor(options: DebugExitOptions) {
    this.name = options.name ?? "isa-debug-exit";
    this.#onExit = options.onExit;
  }

  /** Always 0, as in current QEMU. */
  read(_offset: number, _size: AccessSize): number {
    return 0;
  }

  /**
   * Report `value * 2 + 1` through `onExit`, whatever the offset and size.
   *
   * Arithmetic rather than `(value << 1) | 1` keeps a 32-bit write exact (up to 0x1ffffffff)
   * instead of wrapping to a negative 32-bit integer; QEMU computes it in 64 bits too.
   */
  write(_offset: number, value: number, _size: AccessSize): void {
    this.#onExit(value * 2 + 1);
  }

  /** Nothing to reset: the device has no state. */
  reset(): void {}
}
