/**
 * The PIIX3 Reset Control Register at port 0xCF9, which the FADT names as the ACPI reset
 * register (value 0x06: "system reset" plus "reset CPU"). Bit 2 (RCPU) going to 1 resets;
 * bit 1 selects a hard reset, which ring3 treats the same way.
 *
 * On a real board 0xCF9 sits inside the PCI configuration address port's dword (0xCF8..0xCFB);
 * a PCI host bridge attached at 0xCF8 must forward byte accesses at 0xCF9 here.
 *
 * @module
 */

import type { AccessSize, PortDevice } from "./port_device.ts";

/** Reset Control bits. */
export const RCR = { SYS_RST: 0x02, RST_CPU: 0x04 } as const;

/** The register; `onReset` is called when the guest asks for a reset. */
export class ResetControl implements PortDevice {
  readonly name = "reset-control@0xcf9";
  #value = 0;
  /** @param onReset called with a description of the request */
  constructor(private readonly onReset: (reason: string) => void) {}
  read(): number {
    return this.#value;
  }
  write(_offset: number, value: number, _size: AccessSize): void {
    this.#value = value & RCR.SYS_RST;
    if (value & RCR.RST_CPU) {
      this.onReset(`0x${value.toString(16)} to the reset control register 0xcf9`);
    }
  }
  reset(): void {
    this.#value = 0;
  }
}
