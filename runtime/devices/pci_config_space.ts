/**
 * One PCI function's 256-byte configuration space (a type 0 header), as a device declares it.
 *
 * The device states its identity, class, BARs and interrupt pin; this module enforces which
 * bits software may write (read-only IDs, BAR size masks, write-1-to-clear status) so that a
 * kernel sizing BARs or assigning interrupt lines sees what real hardware shows. The bus
 * (pci_bus.ts) only routes configuration cycles here; it knows no device types.
 *
 * @module
 */

/** Offsets of the type 0 header registers (PCI Local Bus Specification 3.0, 6.1). */
export const PCI_CFG = {
  VENDOR_ID: 0x00,
  DEVICE_ID: 0x02,
  COMMAND: 0x04,
  STATUS: 0x06,
  REVISION_ID: 0x08,
  PROG_IF: 0x09,
  SUBCLASS: 0x0a,
  CLASS: 0x0b,
  CACHE_LINE_SIZE: 0x0c,
  LATENCY_TIMER: 0x0d,
  HEADER_TYPE: 0x0e,
  BAR0: 0x10,
  SUBSYSTEM_VENDOR_ID: 0x2c,
  SUBSYSTEM_ID: 0x2e,
  INTERRUPT_LINE: 0x3c,
  INTERRUPT_PIN: 0x3d,
} as const;

/** COMMAND register bits. */
export const PCI_COMMAND = {
  /** I/O space decoding on. */
  IO: 0x1,
  /** Memory space decoding on. */
  MEMORY: 0x2,
  /** Bus master. */
  MASTER: 0x4,
  /** INTx# disabled (PCI 2.3). */
  INTX_DISABLE: 0x400,
} as const;

/** Bit 7 of HEADER_TYPE: the device has more than one function. */
export const PCI_HEADER_MULTI_FUNCTION = 0x80;

/** A base address register a device decodes. */
export interface PciBarDeclaration {
  /** BAR number 0..5. */
  index: number;
  /** I/O ports or 32-bit memory. */
  kind: "io" | "memory";
  /** Bytes decoded: a power of two (at least 4 for I/O, 16 for memory). */
  size: number;
}

/** What a device states about itself. */
export interface PciHeaderDeclaration {
  vendorId: number;
  deviceId: number;
  /** Base class, subclass and programming interface. */
  classCode: number;
  subclass: number;
  progIf?: number;
  revision?: number;
  subsystemVendorId?: number;
  subsystemId?: number;
  /** Set on function 0 of a multi-function device. */
  multiFunction?: boolean;
  bars?: PciBarDeclaration[];
  /** 0 none, 1..4 INTA#..INTD#. */
  interruptPin?: number;
}

/**
 * The configuration space of one function.
 *
 * @example BAR sizing, as a kernel does it
 * ```ts
 * import assert from "node:assert/strict";
 * import { PciConfigSpace } from "./pci_config_space.ts";
 *
 * const cfg = new PciConfigSpace({
 *   vendorId: 0x10ec, deviceId: 0x8029, classCode: 2, subclass: 0,
 *   bars: [{ index: 0, kind: "io", size: 0x100 }], interruptPin: 1,
 * });
 * cfg.write(0x10, 0xffffffff, 4);
 * assert.equal(cfg.read(0x10, 4), 0xffffff01); // 256 ports, I/O space
 * ```
 */
export class PciConfigSpace {
  readonly #bytes = new Uint8Array(256);
  /** Per byte: the bits software may set. */
  readonly #writable = new Uint8Array(256);
  readonly #bars: (PciBarDeclaration | undefined)[] = new Array(6).fill(undefined);
  readonly #declaration: PciHeaderDeclaration;
  #listeners: (() => void)[] = [];

  /** @param declaration the device's identity, class, BARs and interrupt pin */
  constructor(declaration: PciHeaderDeclaration) {
    for (const bar of declaration.bars ?? []) {
      const min = bar.kind === "io" ? 4 : 16;
      if (
        !Number.isInteger(bar.index) || bar.index < 0 || bar.index > 5 ||
        bar.size < min || (bar.size & (bar.size - 1)) !== 0
      ) {
        throw new RangeError(
          `BAR ${bar.index}: size must be a power of two of at least ${min} bytes, got ${bar.size}`,
        );
      }
      this.#bars[bar.index] = bar;
    }
    this.#declaration = declaration;
    this.reset();
  }

  /** Power-on values: IDs and class from the declaration, BARs 0, decoding off. */
  reset(): void {
    const d = this.#declaration;
    const b = this.#bytes;
    b.fill(0);
    this.#writable.fill(0);
    this.#set(PCI_CFG.VENDOR_ID, d.vendorId, 2);
    this.#set(PCI_CFG.DEVICE_ID, d.deviceId, 2);
    b[PCI_CFG.REVISION_ID] = d.revision ?? 0;
    b[PCI_CFG.PROG_IF] = d.progIf ?? 0;
    b[PCI_CFG.SUBCLASS] = d.subclass;
    b[PCI_CFG.CLASS] = d.classCode;
    b[PCI_CFG.HEADER_TYPE] = d.multiFunction ? PCI_HEADER_MULTI_FUNCTION : 0;
    this.#set(PCI_CFG.SUBSYSTEM_VENDOR_ID, d.subsystemVendorId ?? 0, 2);
    this.#set(PCI_CFG.SUBSYSTEM_ID, d.subsystemId ?? 0, 2);
    b[PCI_CFG.INTERRUPT_PIN] = d.interruptPin ?? 0;
    // COMMAND: I/O, memory, master, INTx disable.
    this.#writable[PCI_CFG.COMMAND] = 0x07;
    this.#writable[PCI_CFG.COMMAND + 1] = 0x04;
    this.#writable[PCI_CFG.CACHE_LINE_SIZE] = 0xff;
    this.#writable[PCI_CFG.LATENCY_TIMER] = 0xff;
    this.#writable[PCI_CFG.INTERRUPT_LINE] = 0xff;
    for (const bar of this.#bars) {
      if (!bar) continue;
      const mask = (~(bar.size - 1) & (bar.kind === "io" ? 0xfffffffc : 0xfffffff0)) >>> 0;
      const off = PCI_CFG.BAR0 + bar.index * 4;
      for (let i = 0; i < 4; i++) this.#writable[off + i] = (mask >>> (8 * i)) & 0xff;
      if (bar.kind === "io") b[off] = 0x1;
    }
  }

  /** Makes bytes 0x40..0xff writable from `from` to `to` (device-specific registers). */
  allowWrites(from: number, to: number): void {
    this.#writable.fill(0xff, from, to);
  }

  /** Sets a register as firmware or the device would (no write mask applied). */
  poke(offset: number, value: number, size: 1 | 2 | 4): void {
    this.#set(offset, value, size);
    this.#changed();
  }

  /**
   * A configuration read.
   *
   * @param offset register offset (0..255); `size` bytes must fit in one dword
   * @param size 1, 2 or 4
   */
  read(offset: number, size: 1 | 2 | 4): number {
    let v = 0;
    for (let i = size - 1; i >= 0; i--) v = (v << 8) | this.#bytes[(offset + i) & 0xff];
    return v >>> 0;
  }

  /** A configuration write; read-only bits keep their value, status bits are write-1-to-clear. */
  write(offset: number, value: number, size: 1 | 2 | 4): void {
    for (let i = 0; i < size; i++) {
      const at = (offset + i) & 0xff;
      const byte = (value >>> (8 * i)) & 0xff;
      if (at === PCI_CFG.STATUS + 1) {
        this.#bytes[at] &= ~(byte & 0xf9); // error bits: write 1 to clear
        continue;
      }
      const w = this.#writable[at];
      this.#bytes[at] = (this.#bytes[at] & ~w) | (byte & w);
    }
    this.#changed();
  }

  /** The address a BAR decodes at now, or null when decoding is off or the BAR is absent. */
  barAddress(index: number): number | null {
    const bar = this.#bars[index];
    if (!bar) return null;
    const command = this.read(PCI_CFG.COMMAND, 2);
    const on = bar.kind === "io" ? PCI_COMMAND.IO : PCI_COMMAND.MEMORY;
    if ((command & on) === 0) return null;
    const raw = this.read(PCI_CFG.BAR0 + index * 4, 4);
    const addr = bar.kind === "io" ? raw & 0xfffc : (raw & 0xfffffff0) >>> 0;
    // All ones (sizing in progress) or zero: not a usable address.
    if (addr === 0 || addr === ((~(bar.size - 1)) & (bar.kind === "io" ? 0xfffc : 0xfffffff0))) {
      return null;
    }
    return addr >>> 0;
  }

  /** The declared BARs. */
  get bars(): PciBarDeclaration[] {
    return this.#bars.filter((b): b is PciBarDeclaration => b !== undefined);
  }

  /** Calls `fn` after every write (the device re-maps its BARs). */
  onChange(fn: () => void): void {
    this.#listeners = [...this.#listeners, fn];
  }

  #set(offset: number, value: number, size: number): void {
    for (let i = 0; i < size; i++) this.#bytes[offset + i] = (value >>> (8 * i)) & 0xff;
  }

  #changed(): void {
    for (const l of this.#listeners) l();
  }
}
