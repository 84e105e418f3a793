import type { AccessSize } from "./port_device.ts";

/**
 * A memory-mapped device: the machine decodes a guest access that faulted on the device's
 * range and calls these with the offset from the device's base. Same shape as PortDevice, a
 * separate type so a board cannot put one on the wrong bus by accident.
 */
export interface MmioDevice {
  /** Name used in logs ("ioapic@0xfec00000"). */
  readonly name: string;
  /** Bytes the device decodes from its base. */
  readonly size: number;
  /** Read `size` bytes at `offset`. */
  read(offset: number, size: AccessSize): number;
  /** Write `value` (masked to size) at `offset`. */
  write(offset: number, value: number, size: AccessSize): void;
  /** Return to power-on state. */
  reset(): void;
}
