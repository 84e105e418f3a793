import { GuestMemoryError, type LinearMemory } from "../cpu/interfaces.ts";

/**
 * Guest physical memory: the bytes of the memfd that is also mapped into the guest process.
 * With guest paging off, linear addresses are physical addresses, so this is also the
 * emulator's view of linear memory.
 */
export class PhysicalMemory implements LinearMemory {
  readonly #view: DataView;

  /**
   * @param bytes zero-copy view of guest RAM, physical address 0 first
   */
  constructor(readonly bytes: Uint8Array<ArrayBuffer>) {
    this.#view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  /** RAM size in bytes. */
  get size(): number {
    return this.bytes.length;
  }

  #check(addr: number, size: number, write: boolean): number {
    const a = addr >>> 0;
    if (a + size > this.bytes.length) throw new GuestMemoryError(a, size, write);
    return a;
  }

  read8(addr: number): number {
    return this.bytes[this.#check(addr, 1, false)];
  }
  read16(addr: number): number {
    return this.#view.getUint16(this.#check(addr, 2, false), true);
  }
  read32(addr: number): number {
    return this.#view.getUint32(this.#check(addr, 4, false), true);
  }
  write8(addr: number, value: number): void {
    this.bytes[this.#check(addr, 1, true)] = value;
  }
  write16(addr: number, value: number): void {
    this.#view.setUint16(this.#check(addr, 2, true), value, true);
  }
  write32(addr: number, value: number): void {
    this.#view.setUint32(this.#check(addr, 4, true), value >>> 0, true);
  }
  fetch(addr: number, into: Uint8Array): number {
    const a = addr >>> 0;
    if (a >= this.bytes.length) return 0;
    const n = Math.min(into.length, this.bytes.length - a);
    into.set(this.bytes.subarray(a, a + n));
    return n;
  }
}
