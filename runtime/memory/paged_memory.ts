import { GuestMemoryError, GuestPageFault, type LinearMemory } from "../cpu/interfaces.ts";
import type { PhysicalMemory } from "./physical_memory.ts";
import { translate, type TranslationControls } from "./translate.ts";
import { LOW_HALF_END } from "./page_walk_long.ts";

/**
 * Linear memory as the emulator's own accesses see it: through the guest's page tables when
 * paging is on, straight to physical memory when it is off. Accesses that cross a page are
 * split, as the CPU splits them.
 */
export class PagedMemory implements LinearMemory {
  /**
   * @param physical guest RAM
   * @param controls current paging state; `enabled()` false means linear = physical
   * @param userMode whether accesses are made at CPL 3 (implicit supervisor accesses such as
   *   descriptor-table reads pass `supervisor: true` through {@link supervisor})
   */
  constructor(
    private readonly physical: PhysicalMemory,
    private readonly controls: () => TranslationControls & { enabled: boolean },
    private readonly userMode: () => boolean,
  ) {}

  #supervisorDepth = 0;

  /**
   * Runs `fn` with accesses checked as supervisor accesses (the CPU reading the GDT, IDT or
   * TSS, or pushing an interrupt frame on a ring-0 stack).
   */
  supervisor<T>(fn: () => T): T {
    this.#supervisorDepth++;
    try {
      return fn();
    } finally {
      this.#supervisorDepth--;
    }
  }

  /** Linear addresses wrap at 4 GiB except under 4-level paging (low half only there). */
  #wrap(linear: number): number {
    const c = this.controls();
    return c.enabled && c.mode === "4-level" ? linear : linear >>> 0;
  }

  #translate(linear: number, write: boolean, fetch = false): number {
    const c = this.controls();
    if (!c.enabled) return linear >>> 0;
    const la = c.mode === "4-level" ? linear : linear >>> 0;
    if (!(la >= 0 && la < LOW_HALF_END)) throw new GuestMemoryError(la, 1, write);
    const user = this.#supervisorDepth === 0 && this.userMode();
    const t = translate(this.physical, c, la, { write, user, fetch });
    if ("fault" in t) throw new GuestPageFault(la, t.fault);
    return t.physical;
  }

  #bytes(linear: number, size: number, write: boolean): number[] {
    const addrs: number[] = [];
    for (let i = 0; i < size; i++) {
      const la = this.#wrap(linear + i);
      if (i === 0 || (la & 0xfff) === 0) addrs.push(this.#translate(la, write));
      else addrs.push(addrs[addrs.length - 1] + 1);
    }
    return addrs;
  }

  #read(linear: number, size: number): number {
    if (((linear & 0xfff) + size) <= 0x1000) {
      const p = this.#translate(linear, false);
      return size === 1
        ? this.physical.read8(p)
        : size === 2
        ? this.physical.read16(p)
        : this.physical.read32(p);
    }
    let v = 0;
    this.#bytes(linear, size, false).forEach((p, i) => v += this.physical.read8(p) * 2 ** (8 * i));
    return v >>> 0;
  }

  #write(linear: number, size: number, value: number): void {
    if (((linear & 0xfff) + size) <= 0x1000) {
      const p = this.#translate(linear, true);
      if (size === 1) this.physical.write8(p, value);
      else if (size === 2) this.physical.write16(p, value);
      else this.physical.write32(p, value);
      return;
    }
    // Translate every page first: a fault must leave memory unchanged.
    const addrs = this.#bytes(linear, size, true);
    addrs.forEach((p, i) => this.physical.write8(p, (value >>> (8 * i)) & 0xff));
  }

  read8(addr: number): number {
    return this.#read(addr, 1);
  }
  read16(addr: number): number {
    return this.#read(addr, 2);
  }
  read32(addr: number): number {
    return this.#read(addr, 4);
  }
  write8(addr: number, value: number): void {
    this.#write(addr, 1, value);
  }
  write16(addr: number, value: number): void {
    this.#write(addr, 2, value);
  }
  write32(addr: number, value: number): void {
    this.#write(addr, 4, value);
  }
  fetch(addr: number, into: Uint8Array): number {
    if (!this.controls().enabled) return this.physical.fetch(addr, into);
    let n = 0;
    try {
      let p = 0;
      for (; n < into.length; n++) {
        const la = this.#wrap(addr + n);
        if (n === 0 || (la & 0xfff) === 0) p = this.#translate(la, false, true);
        else p++;
        into[n] = this.physical.read8(p);
      }
    } catch (e) {
      if (n === 0) throw e;
      if (!(e instanceof GuestPageFault) && !(e instanceof GuestMemoryError)) throw e;
    }
    return n;
  }
}
