/**
 * The fast form's stub window in a running machine: one memfd holding the vCPU page and the
 * trampoline code, mapped into this process (so the runtime reads and writes the virtual IF
 * with no system call) and into the guest's kernel-mode host process at the window's address
 * (STUB_WINDOW in cpu/vcpu_page.ts). The guest's user-mode process never maps it.
 *
 * @module
 */
import type { LibcSymbols } from "./host/libc.ts";
import { createSharedMemory, type SharedMemory } from "./host/memfd.ts";
import { HostError } from "./host/host_error.ts";
import { MMAP, SYSCALL } from "./host/layouts.ts";
import type { PtraceProcess } from "./tracer/ptrace_process.ts";
import { STUB_WINDOW, VCPU_PAGE, VcpuPage } from "./cpu/vcpu_page.ts";
import type { LinearMemory } from "./cpu/interfaces.ts";
import type { PagingMode } from "./memory/translate.ts";

/** The descriptor number of the stub memfd inside the guest's kernel-mode process. */
export const GUEST_STUB_FD = 4;

/** What a machine needs to map a rewritten image's trampolines (from its sidecar). */
export interface StubConfig {
  /** Window base (must be {@link STUB_WINDOW}.base: the code's addresses are absolute). */
  base: number;
  /** Window size. */
  size: number;
  /** Where `code` goes. */
  codeBase: number;
  /** The trampolines. */
  code: Uint8Array;
  /** `[from, to)` ranges after a fast sti's IF store in which an interrupt must wait. */
  shadows: [number, number][];
}

/** Why a machine cannot use a stub window. */
export class StubWindowError extends Error {
  override name = "StubWindowError";
}

/** The stub window of one machine. */
export class StubArea {
  readonly page: VcpuPage;
  readonly #mem: SharedMemory;
  readonly #shadowFrom: Int32Array;
  readonly #shadowTo: Int32Array;

  private constructor(readonly config: StubConfig, mem: SharedMemory) {
    this.#mem = mem;
    this.page = new VcpuPage(mem.bytes.subarray(0, VCPU_PAGE.SIZE));
    const sorted = [...config.shadows].sort((a, b) => a[0] - b[0]);
    this.#shadowFrom = Int32Array.from(sorted, (r) => r[0] | 0);
    this.#shadowTo = Int32Array.from(sorted, (r) => r[1] | 0);
  }

  /**
   * Creates the memfd for `config`, with the code written into it.
   *
   * @param libc bound symbols
   * @param config the sidecar's stub description
   * @param ramBytes guest RAM size: RAM must end below the window
   * @returns the area, not yet mapped in any guest process
   * @throws {StubWindowError} when the window is not where this runtime reserves it, the code
   *   does not fit, or guest RAM overlaps it
   */
  static create(libc: LibcSymbols, config: StubConfig, ramBytes: number): StubArea {
    if (config.base !== STUB_WINDOW.base || config.size !== STUB_WINDOW.size) {
      throw new StubWindowError(
        `the image's fast-form trampolines expect a stub window at 0x${config.base.toString(16)} ` +
          `(+0x${config.size.toString(16)}), but this runtime reserves 0x${
            STUB_WINDOW.base.toString(16)
          } (+0x${STUB_WINDOW.size.toString(16)}): rewrite the image again`,
      );
    }
    const codeOffset = config.codeBase - config.base;
    if (codeOffset < VCPU_PAGE.SIZE || codeOffset + config.code.length > config.size) {
      throw new StubWindowError("the fast-form trampolines do not fit the stub window");
    }
    if (ramBytes > config.base) {
      throw new StubWindowError(
        `guest RAM (${ramBytes} bytes) overlaps the fast-form stub window at 0x${
          config.base.toString(16)
        }: give the machine less memory or boot with rewrite: "trap"`,
      );
    }
    const size = roundPage(codeOffset + config.code.length);
    const mem = createSharedMemory(libc, "ring3-stub", size);
    mem.bytes.set(config.code, codeOffset);
    return new StubArea(config, mem);
  }

  /** The descriptor to pass to the guest's kernel-mode process as {@link GUEST_STUB_FD}. */
  get fd(): number {
    return this.#mem.fd;
  }

  /**
   * Maps the window into a guest process that holds the memfd as {@link GUEST_STUB_FD}: the
   * vCPU page read-write, the code read-execute (a guest write to it faults).
   *
   * @param proc the kernel-mode process
   * @throws {HostError} when the host refuses a mapping
   */
  mapInto(proc: PtraceProcess): void {
    const c = this.config;
    const map = (addr: number, length: number, prot: number, offset: number, what: string) => {
      const r = proc.inject(
        SYSCALL.mmap,
        addr,
        length,
        prot,
        MMAP.MAP_SHARED | MMAP.MAP_FIXED,
        GUEST_STUB_FD,
        offset,
      );
      if (r !== BigInt(addr)) throw new HostError("mmap (in guest process)", Number(-r), what);
    };
    map(c.base, VCPU_PAGE.SIZE, MMAP.PROT_READ | MMAP.PROT_WRITE, 0, "vCPU page");
    const codeOffset = c.codeBase - c.base;
    map(
      c.codeBase,
      this.#mem.size - codeOffset,
      MMAP.PROT_READ | MMAP.PROT_EXEC,
      codeOffset,
      "fast-form trampolines",
    );
  }

  /**
   * Guest memory as the emulator sees it, with instruction fetches from the window served from
   * the trampoline code: an instruction displaced into a trampoline that traps (an MMIO access,
   * a fault) is decoded there, though the guest's page tables do not map the window.
   *
   * @param memory guest linear memory
   * @returns the same memory, fetching from the window too
   */
  withTrampolineFetch(memory: LinearMemory): LinearMemory {
    const bytes = this.#mem.bytes;
    const base = this.config.base;
    const end = base + bytes.length;
    return {
      read8: (a) => memory.read8(a),
      read16: (a) => memory.read16(a),
      read32: (a) => memory.read32(a),
      write8: (a, v) => memory.write8(a, v),
      write16: (a, v) => memory.write16(a, v),
      write32: (a, v) => memory.write32(a, v),
      fetch(addr, into) {
        const a = addr >>> 0;
        if (a < base || a >= end) return memory.fetch(addr, into);
        const n = Math.min(into.length, end - a);
        into.set(bytes.subarray(a - base, a - base + n));
        return n;
      },
      ...(memory.supervisor === undefined
        ? {}
        : { supervisor: <T>(fn: () => T): T => memory.supervisor!(fn) }),
    };
  }

  /** Whether `linear` lies in the window. */
  contains(linear: number): boolean {
    return linear >>> 0 >= this.config.base && linear >>> 0 < this.config.base + this.config.size;
  }

  /** Whether `eip` is between a fast sti's IF store and the end of the instruction after it. */
  inStiShadow(eip: number): boolean {
    const from = this.#shadowFrom;
    const e = eip | 0;
    for (let i = 0; i < from.length && from[i] <= e; i++) {
      if (e < this.#shadowTo[i]) return true;
    }
    return false;
  }

  /**
   * Checks that the guest's page tables do not map the window, since the kernel process would
   * then reach our page instead of the guest's memory. The window is one PDE in 32-bit paging
   * (index 1023) and two 2 MiB PDEs in PAE and 4-level paging (PDPTE 3, PDEs 510 and 511, under
   * PML4E 0), so this is a handful of reads at each CR3 load or invlpg.
   *
   * @param readPhys32 reads guest physical memory (throws outside RAM)
   * @param cr3 the guest's CR3
   * @param mode the guest's paging mode
   * @returns why the guest cannot run with the fast form, or undefined
   */
  pageTableConflict(
    readPhys32: (addr: number) => number,
    cr3: number,
    mode: PagingMode = "32-bit",
  ): string | undefined {
    const base = this.config.base;
    const found = windowEntry(readPhys32, cr3, mode, base);
    if (found === undefined) return undefined;
    return `the guest's page tables (${mode}, CR3 0x${(cr3 >>> 0).toString(16)}) map 0x${
      base.toString(16)
    }-0xffffffff, the window ring3 reserves for fast-form trampolines (${found}); boot this kernel with rewrite: "trap"`;
  }

  /** Unmaps and closes the memfd here (the guest process's mappings die with it). */
  close(): void {
    this.#mem.close();
  }
}

/** The present paging-structure entry that maps part of the window, named, or undefined. */
function windowEntry(
  read32: (addr: number) => number,
  cr3: number,
  mode: PagingMode,
  base: number,
): string | undefined {
  // An entry whose table lies outside RAM is left to the walk that uses it, which reports it.
  const read = (addr: number): number | undefined => {
    try {
      return read32(addr) >>> 0;
    } catch {
      return undefined;
    }
  };
  const hex = (v: number) => `0x${v.toString(16)}`;
  const table = (entry: number) => (entry & ~0xfff) >>> 0;
  const PRESENT = 1;
  const LARGE = 0x80;
  if (mode === "32-bit") {
    const index = base >>> 22;
    const pde = read(table(cr3) + index * 4);
    return pde !== undefined && (pde & PRESENT) ? `PDE ${index} = ${hex(pde)}` : undefined;
  }
  // Entries are 64-bit. Guest RAM lies below 4 GiB, so a table address with any of bits 32-51
  // set is not RAM (bit 63 is NX, bits 52-62 are the guest's own).
  const aboveRam = (entry: number) => ((read(entry + 4) ?? 0) & 0xfffff) !== 0;
  let pdpt: number;
  let path = "";
  if (mode === "4-level") {
    const pml4 = table(cr3);
    const pml4e = read(pml4);
    if (pml4e === undefined || (pml4e & PRESENT) === 0 || aboveRam(pml4)) return undefined;
    pdpt = table(pml4e);
    path = `PML4E 0 = ${hex(pml4e)}, `;
  } else {
    pdpt = (cr3 & ~0x1f) >>> 0;
  }
  const pdptIndex = Math.floor(base / 2 ** 30);
  const pdpte = read(pdpt + pdptIndex * 8);
  if (pdpte === undefined || (pdpte & PRESENT) === 0) return undefined;
  path += `PDPTE ${pdptIndex} = ${hex(pdpte)}`;
  if (mode === "4-level" && (pdpte & LARGE)) return path;
  if (aboveRam(pdpt + pdptIndex * 8)) return undefined;
  const pd = table(pdpte);
  for (let i = (base >>> 21) & 0x1ff; i < 512; i++) {
    const pde = read(pd + i * 8);
    if (pde !== undefined && (pde & PRESENT)) return `${path}, PDE ${i} = ${hex(pde)}`;
  }
  return undefined;
}

function roundPage(n: number): number {
  return Math.ceil(n / 0x1000) * 0x1000;
}
