/**
 * 4-level paging of long mode (SDM vol. 3, 4.5): PML4, PDPT (1 GiB pages with PS), page
 * directory (2 MiB pages), page table; 48-bit linear addresses; XD with EFER.NXE.
 *
 * ring3 runs 64-bit guests in the low half of the address space (the host kernel owns the
 * high half), so linear addresses here are non-negative numbers below 2^47; a canonical
 * high-half address never reaches the walker (the caller refuses it).
 *
 * @module
 */
import type { Access, PhysicalAccess, Translation } from "./page_walk.ts";
import { walkEntries, type WalkLevel } from "./page_walk_entries.ts";

const LONG_LEVELS: readonly WalkLevel[] = [
  { shift: 39, entries: 512, largePages: false, rights: true },
  { shift: 30, entries: 512, largePages: true, rights: true },
  { shift: 21, entries: 512, largePages: true, rights: true },
  { shift: 12, entries: 512, largePages: false, rights: true },
];

/** The highest linear address a 64-bit guest may use, plus one: the low canonical half. */
export const LOW_HALF_END = 2 ** 47;

/** The paging controls a 4-level walk depends on. */
export interface LongControls {
  /** CR3 (bits 12..51 locate the PML4). */
  cr3: number;
  writeProtect: boolean;
  /** EFER.NXE. */
  nxe: boolean;
  /** MAXPHYADDR. */
  physBits: number;
}

/**
 * Translates a low-half 64-bit linear address through 4-level page tables, setting accessed
 * and dirty bits.
 *
 * @param mem guest physical memory
 * @param c paging controls
 * @param linear the linear address, 0 ≤ linear < 2^47
 * @param access kind of access
 * @returns the translation, or the #PF error code
 */
export function walkLong(
  mem: PhysicalAccess,
  c: LongControls,
  linear: number,
  access: Access,
): Translation | { fault: number } {
  if (!(linear >= 0 && linear < LOW_HALF_END)) {
    throw new RangeError(`linear address ${linear} is outside the low canonical half`);
  }
  const table = c.cr3 - (c.cr3 % 0x1000);
  return walkEntries(
    mem,
    { table, writeProtect: c.writeProtect, nxe: c.nxe, physBits: c.physBits },
    LONG_LEVELS,
    linear,
    access,
  );
}
