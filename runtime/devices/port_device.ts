/**
 * The contract between the I/O port bus and every port-mapped device.
 *
 * Devices know only offsets from their own base; the machine decides where each device sits by
 * attaching it to an {@linkcode ./io_bus.ts IoBus}.
 *
 * @module
 */

/** Width in bytes of one `in`/`out` access: byte, word or doubleword. */
export type AccessSize = 1 | 2 | 4;

/**
 * A device reached through x86 I/O ports.
 *
 * @example A one-register latch
 * ```ts
 * import assert from "node:assert/strict";
 * import { type AccessSize, accessMask, type PortDevice } from "./port_device.ts";
 *
 * class Latch implements PortDevice {
 *   readonly name = "latch@0x70";
 *   #value = 0;
 *   read(_offset: number, size: AccessSize): number {
 *     return this.#value & accessMask(size);
 *   }
 *   write(_offset: number, value: number, _size: AccessSize): void {
 *     this.#value = value;
 *   }
 *   reset(): void {
 *     this.#value = 0;
 *   }
 * }
 *
 * const latch = new Latch();
 * latch.write(0, 0x1234, 2);
 * assert.equal(latch.read(0, 1), 0x34);
 * ```
 */
export interface PortDevice {
  /** Name used in logs ("uart16550@0x3f8"). */
  readonly name: string;
  /**
   * Read `size` bytes at `offset` from the device's base port.
   *
   * The bus masks the result to `size`, so a device may return extra high bits.
   */
  read(offset: number, size: AccessSize): number;
  /** Write `value` (already masked to size) at `offset`. */
  write(offset: number, value: number, size: AccessSize): void;
  /** Return to power-on state. */
  reset(): void;
}

/**
 * The all-ones value for an access of `size` bytes: 0xff, 0xffff or 0xffffffff.
 *
 * This is both the mask that truncates a value to the access width and what an ISA bus reads
 * when nothing drives it.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { accessMask } from "./port_device.ts";
 *
 * assert.equal(accessMask(2), 0xffff);
 * ```
 *
 * @param size Access width in bytes.
 * @returns The mask for that width.
 * @throws {RangeError} If `size` is not 1, 2 or 4.
 */
export function accessMask(size: AccessSize): number {
  switch (size) {
    case 1:
      return 0xff;
    case 2:
      return 0xffff;
    case 4:
      return 0xffffffff;
    default:
      throw new RangeError(`access size must be 1, 2 or 4 bytes, got ${size}`);
  }
}
