/**
 * The guest's page tables, walked as the MMU walks them (SDM vol. 3, 4.3 "32-bit paging"):
 * two levels, 4 KiB pages, 4 MiB pages with CR4.PSE, U/S and R/W checked at both levels,
 * CR0.WP for supervisor writes, accessed and dirty bits set as the walk goes.
 *
 * PAE and 4-level paging are walked by page_walk_pae.ts and page_walk_long.ts; translate.ts
 * picks the walker for the guest's paging mode.
 *
 * @module
 */

/** Page-table entry bits. */
export const PTE = {
  P: 1 << 0,
  RW: 1 << 1,
  US: 1 << 2,
  PWT: 1 << 3,
  PCD: 1 << 4,
  A: 1 << 5,
  D: 1 << 6,
  PS: 1 << 7,
  G: 1 << 8,
} as const;

/** #PF error code bits. */
export const PF_ERROR = { P: 1, W: 2, U: 4, RSVD: 8, I: 16 } as const;

/** What kind of access is being translated. */
export interface Access {
  write: boolean;
  /** A user-mode access (CPL 3 and not an implicit supervisor access such as reading the GDT). */
  user: boolean;
  fetch?: boolean;
}

/** A successful translation. */
export interface Translation {
  /** Physical address of the byte. */
  physical: number;
  /** Physical address of the 4 KiB frame holding it. */
  frame: number;
  /** Whether writes are allowed for this kind of access (user or supervisor). */
  writable: boolean;
  /** Whether user mode may access the page. */
  user: boolean;
  /** Whether user mode may write the page (whatever kind of access this walk was). */
  userWritable: boolean;
  /** Whether the page's dirty bit is set (after this walk). */
  dirty: boolean;
  /** Whether instructions may be fetched from the page (false only with XD under EFER.NXE). */
  executable: boolean;
}

/** Physical memory as the walker needs it. */
export interface PhysicalAccess {
  read32(addr: number): number;
  write32(addr: number, value: number): void;
  readonly size: number;
}

/** The paging controls the walk depends on. */
export interface PagingControls {
  cr3: number;
  /** CR0.WP: supervisor writes honour read-only pages. */
  writeProtect: boolean;
  /** CR4.PSE: 4 MiB pages. */
  pse: boolean;
}

/**
 * Translates a linear address, setting accessed (and for writes, dirty) bits.
 *
 * @param mem guest physical memory
 * @param c paging controls
 * @param linear the linear address
 * @param access kind of access
 * @returns the translation, or the #PF error code when the access faults
 */
export function walk32(
  mem: PhysicalAccess,
  c: PagingControls,
  linear: number,
  access: Access,
): Translation | { fault: number } {
  const la = linear >>> 0;
  const errBase = (access.write ? PF_ERROR.W : 0) | (access.user ? PF_ERROR.U : 0) |
    (access.fetch ? PF_ERROR.I : 0);
  const pdeAddr = ((c.cr3 & 0xfffff000) + ((la >>> 22) << 2)) >>> 0;
  if (pdeAddr + 4 > mem.size) return { fault: errBase };
  const pde = mem.read32(pdeAddr);
  if (!(pde & PTE.P)) return { fault: errBase };
  if (c.pse && (pde & PTE.PS)) {
    const userOk = (pde & PTE.US) !== 0;
    const writeOk = (pde & PTE.RW) !== 0;
    if (access.user && !userOk) return { fault: errBase | PF_ERROR.P };
    if (access.write && !writeOk && (access.user || c.writeProtect)) {
      return { fault: errBase | PF_ERROR.P };
    }
    const set = PTE.A | (access.write ? PTE.D : 0);
    if ((pde & set) !== set) mem.write32(pdeAddr, (pde | set) >>> 0);
    const base = (pde & 0xffc00000) >>> 0;
    const physical = (base + (la & 0x3fffff)) >>> 0;
    return {
      physical,
      frame: (physical & ~0xfff) >>> 0,
      writable: writeOk || (!access.user && !c.writeProtect),
      user: userOk,
      userWritable: userOk && writeOk,
      dirty: ((pde | set) & PTE.D) !== 0,
      executable: true,
    };
  }
  const pteAddr = ((pde & 0xfffff000) + (((la >>> 12) & 0x3ff) << 2)) >>> 0;
  if (pteAddr + 4 > mem.size) return { fault: errBase };
  const pte = mem.read32(pteAddr);
  if (!(pte & PTE.P)) return { fault: errBase };
  const userOk = (pde & PTE.US) !== 0 && (pte & PTE.US) !== 0;
  const writeOk = (pde & PTE.RW) !== 0 && (pte & PTE.RW) !== 0;
  if (access.user && !userOk) return { fault: errBase | PF_ERROR.P };
  if (access.write && !writeOk && (access.user || c.writeProtect)) {
    return { fault: errBase | PF_ERROR.P };
  }
  if (!(pde & PTE.A)) mem.write32(pdeAddr, (pde | PTE.A) >>> 0);
  const set = PTE.A | (access.write ? PTE.D : 0);
  if ((pte & set) !== set) mem.write32(pteAddr, (pte | set) >>> 0);
  const frame = (pte & 0xfffff000) >>> 0;
  return {
    physical: (frame + (la & 0xfff)) >>> 0,
    frame,
    writable: writeOk || (!access.user && !c.writeProtect),
    user: userOk,
    userWritable: userOk && writeOk,
    dirty: ((pte | set) & PTE.D) !== 0,
    executable: true,
  };
}
