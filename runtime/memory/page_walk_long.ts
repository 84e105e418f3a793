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

/**
 * The first present PML4 entry that maps linear addresses at or above `limit` (the part of the
 * address space the host process keeps for itself), as the linear address it starts at, or
 * null. Reads 8 bytes per entry from guest RAM and no host call, so it can run on every CR3
 * load: a guest's native access there would reach host memory without a fault, so ring3 must
 * refuse the mapping before guest code runs with it.
 *
 * @param mem guest physical memory
 * @param cr3 the guest's CR3
 * @param limit first linear address the guest may not use (a multiple of 512 GiB)
 * @returns the start of the first offending 512 GiB slot, or null
 */
export function firstMappedSlotAbove(
  mem: PhysicalAccess,
  cr3: number,
  limit: number,
): number | null {
  const table = cr3 - (cr3 % 0x1000);
  if (table + 0x1000 > mem.size) return null; // the walk itself will fault
  for (let i = Math.floor(limit / 2 ** 39); i < 512; i++) {
    if (mem.read32(table + 8 * i) & 1) return i < 256 ? i * 2 ** 39 : -(512 - i) * 2 ** 39;
  }
  return null;
}
