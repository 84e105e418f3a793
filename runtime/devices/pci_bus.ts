/**
 * PCI configuration mechanism #1: the CONFIG_ADDRESS register at 0xCF8 and the CONFIG_DATA
 * window at 0xCFC-0xCFF (PCI Local Bus Specification 3.0, 3.2.2.3.2), for bus 0.
 *
 * The bus routes configuration cycles to the functions registered at a device/function
 * number; it knows nothing about device types. Attach it at 0xCF8 with a length of 8.
 *
 * @module
 */
import type { AccessSize, PortDevice } from "./port_device.ts";
import type { PciConfigSpace } from "./pci_config_space.ts";

/** The port the bus is attached at on a PC. */
export const PCI_CONFIG_PORT = 0xcf8;
/** Ports the bus decodes (CONFIG_ADDRESS and CONFIG_DATA). */
export const PCI_CONFIG_PORT_COUNT = 8;

const ENABLE = 0x80000000;

/** A function on the bus: its configuration space. */
export interface PciFunction {
  /** Name used in logs ("ne2k_pci"). */
  readonly name: string;
  readonly config: PciConfigSpace;
}

/** Where a function sits: device (slot) 0..31, function 0..7. */
export interface PciAddress {
  device: number;
  function: number;
}

/**
 * Bus 0 behind the host bridge, reached through mechanism #1.
 *
 * @example Reading a vendor ID
 * ```ts
 * import assert from "node:assert/strict";
 * import { PciBus } from "./pci_bus.ts";
 * import { PciConfigSpace } from "./pci_config_space.ts";
 *
 * const bus = new PciBus();
 * const config = new PciConfigSpace({ vendorId: 0x8086, deviceId: 0x1237, classCode: 6, subclass: 0 });
 * bus.register({ device: 0, function: 0 }, { name: "i440fx", config });
 * bus.write(0, 0x80000000, 4); // bus 0, device 0, function 0, register 0
 * assert.equal(bus.read(4, 4), 0x12378086);
 * ```
 */
export class PciBus implements PortDevice {
  readonly name = "pci-config@0xcf8";
  #address = 0;
  readonly #functions = new Map<number, PciFunction>();

  /**
   * @param cf9 the device behind byte accesses to 0xCF9, inside the configuration ports: the
   *   PIIX reset control register on a PC (a dword at 0xCF8 is still the address register)
   */
  constructor(private readonly cf9?: PortDevice) {}

  /**
   * Puts a function at a device/function number of bus 0.
   *
   * @throws {RangeError} for a taken or impossible address
   */
  register(at: PciAddress, fn: PciFunction): void {
    if (at.device < 0 || at.device > 31 || at.function < 0 || at.function > 7) {
      throw new RangeError(`no PCI address 00:${at.device}.${at.function}`);
    }
    const key = (at.device << 3) | at.function;
    const taken = this.#functions.get(key);
    if (taken) {
      throw new RangeError(
        `PCI 00:${hex2(at.device)}.${at.function} is taken by ${taken.name}, cannot add ${fn.name}`,
      );
    }
    this.#functions.set(key, fn);
  }

  /** The functions on the bus, by address. */
  functions(): { address: PciAddress; fn: PciFunction }[] {
    return [...this.#functions.entries()].sort((a, b) => a[0] - b[0])
      .map(([k, fn]) => ({ address: { device: k >> 3, function: k & 7 }, fn }));
  }

  read(offset: number, size: AccessSize): number {
    if (offset === 1 && size === 1 && this.cf9) return this.cf9.read(0, 1);
    if (offset < 4) {
      // CONFIG_ADDRESS reads back whole; narrower reads see its bytes.
      return (this.#address >>> (8 * offset)) & (size === 4 ? 0xffffffff : (1 << (8 * size)) - 1);
    }
    const fn = this.#selected();
    const reg = (this.#address & 0xfc) + (offset - 4);
    if (fn === null) return size === 4 ? 0xffffffff : (1 << (8 * size)) - 1;
    return fn.config.read(reg, clampSize(reg, size));
  }

  write(offset: number, value: number, size: AccessSize): void {
    if (offset === 1 && size === 1 && this.cf9) return this.cf9.write(0, value, 1);
    if (offset < 4) {
      // Only a dword write at 0xCF8 is a configuration address (a byte at 0xCF9 is the reset
      // control register, when the board gave one).
      if (offset === 0 && size === 4) this.#address = (value & 0x80fffffc) >>> 0;
      return;
    }
    const fn = this.#selected();
    if (fn === null) return;
    const reg = (this.#address & 0xfc) + (offset - 4);
    fn.config.write(reg, value, clampSize(reg, size));
  }

  reset(): void {
    this.#address = 0;
    for (const fn of this.#functions.values()) fn.config.reset();
  }

  #selected(): PciFunction | null {
    const a = this.#address;
    if ((a & ENABLE) === 0 || ((a >>> 16) & 0xff) !== 0) return null;
    return this.#functions.get((a >>> 8) & 0xff) ?? null;
  }
}

/** An access at 0xCFD-0xCFF is cut at the dword's end, as it is on the bus. */
function clampSize(reg: number, size: AccessSize): 1 | 2 | 4 {
  const room = 4 - (reg & 3);
  return (size <= room ? size : room === 3 ? 2 : room) as 1 | 2 | 4;
}

function hex2(n: number): string {
  return n.toString(16).padStart(2, "0");
}
