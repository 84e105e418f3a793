/**
 * Shadow mappings: one host address space mirroring what the guest's page tables allow, filled
 * lazily from host page faults like a TLB and flushed when the guest says its translations
 * changed (CR3 write, invlpg, paging controls).
 *
 * A clean page is mapped read-only even when the guest allows writes, so the first write
 * faults and sets the guest's dirty bit (ptrace cannot say whether a fault was a write; a
 * fault on a page mapped read-only can only be one). See
 * docs/design/2026-11-21-shadow-paging.md.
 *
 * @module
 */
import type { PhysicalAccess } from "./page_walk.ts";
import { translate, type TranslationControls } from "./translate.ts";

/** Host memory protection bits (mmap). */
export const PROT = { READ: 1, WRITE: 2, EXEC: 4 } as const;

/** How a shadow space changes the host mappings of its process. */
export interface HostMapper {
  /** Maps `length` bytes of guest RAM at file offset `physical` to host address `linear`. */
  map(linear: number, length: number, prot: number, physical: number): void;
  /** Changes the protection of mapped pages. */
  protect(linear: number, length: number, prot: number): void;
  /** Removes mappings. */
  unmap(linear: number, length: number): void;
}

/** What {@link ShadowSpace.fill} did. */
export type FillResult =
  | { kind: "mapped" }
  /** The guest's tables forbid the access: deliver #PF with this error code. */
  | { kind: "guest-fault"; errorCode: number }
  /** The translation leads outside guest RAM (a device, or nothing). */
  | { kind: "outside-ram"; physical: number }
  /**
   * The guest's tables allow the access, but the host cannot map that linear address in the
   * guest process (the tracer stub or the host kernel lives there).
   */
  | { kind: "unmappable"; linear: number; limit: number };

/** One host address space's shadow of the guest's page tables. */
export class ShadowSpace {
  /** Mapped page (linear address) → host protection. */
  readonly #mapped = new Map<number, number>();
  /** Mapped pages user mode may not touch at all. */
  readonly #supervisorOnly = new Set<number>();
  /** Mapped pages user mode may only read (a supervisor write may have mapped them writable). */
  readonly #userReadOnly = new Set<number>();
  /**
   * Whether walks are made for user-mode (CPL 3) accesses. A space of its own for user mode
   * keeps this true; the single-process protection design flips it on privilege switches.
   */
  userMode: boolean;
  /** Host mapping calls made, for the bench's counts. */
  hostCalls = 0;
  /** Lowest and highest-plus-one mapped linear address since the last full flush. */
  #low = Infinity;
  #high = 0;

  /**
   * @param mapper changes the host process's mappings
   * @param userOnly whether this space starts out running guest user mode (CPL 3), and so
   *   holding only U pages
   * @param limit the first linear address the host process cannot give to the guest (its own
   *   stub, then the host kernel's half); a 64-bit guest's shadow mappings stay below it
   * @param reserved a linear range where the runtime keeps mappings of its own (the fast
   *   form's stub window): never filled, and a flush leaves it alone
   */
  constructor(
    private readonly mapper: HostMapper,
    userOnly: boolean,
    readonly limit: number = 2 ** 47,
    readonly reserved?: { base: number; end: number },
  ) {
    this.userMode = userOnly;
  }

  /** Number of pages mapped now. */
  get size(): number {
    return this.#mapped.size;
  }

  /**
   * Handles a host fault at `linear`: maps the page if the guest allows the access.
   *
   * @param mem guest physical memory (the walk sets accessed and dirty bits in it)
   * @param c paging controls
   * @param linear faulting address
   * @param write whether the access is known to be a write (a fault on a read-only mapping)
   * @param fetch whether the access is an instruction fetch (the fault address is the rip)
   * @returns what happened
   */
  fill(
    mem: PhysicalAccess,
    c: TranslationControls,
    linear: number,
    write: boolean,
    fetch = false,
  ): FillResult {
    const page = linear - (linear % 0x1000);
    if (page + 0x1000 > this.limit) return { kind: "unmappable", linear, limit: this.limit };
    const r = this.reserved;
    if (r && page < r.end && page + 0x1000 > r.base) {
      return { kind: "unmappable", linear, limit: r.base };
    }
    const t = translate(mem, c, linear, { write, user: this.userMode, fetch });
    if ("fault" in t) return { kind: "guest-fault", errorCode: t.fault };
    if (t.frame + 0x1000 > mem.size) return { kind: "outside-ram", physical: t.physical };
    const prot = PROT.READ | (t.executable ? PROT.EXEC : 0) |
      (t.writable && t.dirty ? PROT.WRITE : 0);
    const had = this.#mapped.get(page);
    this.hostCalls++;
    if (had === undefined) this.mapper.map(page, 0x1000, prot, t.frame);
    else if (had !== prot) this.mapper.protect(page, 0x1000, prot);
    else {
      // Mapped with these rights already, yet it faulted: the host and our records disagree.
      // Map again, which repairs either side.
      this.mapper.map(page, 0x1000, prot, t.frame);
    }
    this.#mapped.set(page, prot);
    if (!t.user) this.#supervisorOnly.add(page);
    else this.#supervisorOnly.delete(page);
    if (t.user && !t.userWritable && (prot & PROT.WRITE)) this.#userReadOnly.add(page);
    else this.#userReadOnly.delete(page);
    if (page < this.#low) this.#low = page;
    if (page + 0x1000 > this.#high) this.#high = page + 0x1000;
    return { kind: "mapped" };
  }

  /** Whether the page holding `linear` is mapped read-only here (so a fault there is a write). */
  mappedReadOnly(linear: number): boolean {
    const prot = this.#mapped.get(linear - (linear % 0x1000));
    return prot !== undefined && (prot & PROT.WRITE) === 0;
  }

  /** Whether the page holding `linear` is mapped here without execute rights (NX). */
  mappedNoExec(linear: number): boolean {
    const prot = this.#mapped.get(linear - (linear % 0x1000));
    return prot !== undefined && (prot & PROT.EXEC) === 0;
  }

  /**
   * Drops every shadow mapping (CR3 or paging controls changed): one munmap of the span that
   * holds everything mapped since the last flush, never more (the span never reaches the stub).
   */
  flushAll(): void {
    if (this.#mapped.size === 0) return;
    this.#mapped.clear();
    this.#supervisorOnly.clear();
    this.#userReadOnly.clear();
    this.hostCalls++;
    // One munmap of the span (two around a reserved window inside it).
    const r = this.reserved;
    if (r && this.#low < r.end && this.#high > r.base) {
      if (this.#low < r.base) this.mapper.unmap(this.#low, r.base - this.#low);
      if (this.#high > r.end) this.mapper.unmap(r.end, this.#high - r.end);
    } else {
      this.mapper.unmap(this.#low, this.#high - this.#low);
    }
    this.#low = Infinity;
    this.#high = 0;
  }

  /** Drops the mapping of one page (invlpg). */
  flushPage(linear: number): void {
    const page = linear - (linear % 0x1000);
    if (!this.#mapped.delete(page)) return;
    this.#supervisorOnly.delete(page);
    this.#userReadOnly.delete(page);
    this.hostCalls++;
    this.mapper.unmap(page, 0x1000);
  }

  /**
   * Before user code runs in this space (the single-process protection design, seed 002
   * §5.1): unmaps every page user mode may not touch and write-protects the ones it may only
   * read, in as few host calls as contiguous runs allow. They come back on the next kernel
   * fault, like any shadow page.
   */
  hideSupervisorPages(): void {
    for (const [start, length] of runs(this.#supervisorOnly)) {
      this.hostCalls++;
      this.mapper.unmap(start, length);
      for (let p = start; p < start + length; p += 0x1000) this.#mapped.delete(p);
    }
    this.#supervisorOnly.clear();
    for (const page of this.#userReadOnly) {
      const prot = this.#mapped.get(page);
      if (prot === undefined || !(prot & PROT.WRITE)) continue;
      this.hostCalls++;
      this.mapper.protect(page, 0x1000, prot & ~PROT.WRITE);
      this.#mapped.set(page, prot & ~PROT.WRITE);
    }
    this.#userReadOnly.clear();
  }
}

/** Sorted runs of contiguous pages, as [start, length]. */
function runs(pages: Iterable<number>): [number, number][] {
  const sorted = [...pages].sort((a, b) => a - b);
  const out: [number, number][] = [];
  for (const p of sorted) {
    const last = out[out.length - 1];
    if (last !== undefined && last[0] + last[1] === p) last[1] += 0x1000;
    else out.push([p, 0x1000]);
  }
  return out;
}
