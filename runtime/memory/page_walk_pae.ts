/**
 * PAE paging for 32-bit guests (SDM vol. 3, 4.4): CR3 points to a 4-entry page-directory
 * pointer table, then a page directory of 512 8-byte entries (2 MiB pages with PS) and page
 * tables of 512 entries; XD with EFER.NXE.
 *
 * Hardware loads the four PDPTEs into registers when CR3 is written; ring3 reads them on every
 * walk instead. The difference is visible only to a guest that edits its PDPT without reloading
 * CR3, which the SDM calls undefined.
 *
 * @module
 */
import type { Access, PhysicalAccess, Translation } from "./page_walk.ts";
import { walkEntries, type WalkLevel } from "./page_walk_entries.ts";

const PAE_LEVELS: readonly WalkLevel[] = [
  { shift: 30, entries: 4, largePages: false, rights: false },
  { shift: 21, entries: 512, largePages: true, rights: true },
  { shift: 12, entries: 512, largePages: false, rights: true },
];

/** The paging controls a PAE walk depends on. */
export interface PaeControls {
  cr3: number;
  writeProtect: boolean;
  /** EFER.NXE. */
  nxe: boolean;
  /** MAXPHYADDR. */
  physBits: number;
}

/**
 * Translates a 32-bit linear address through PAE page tables, setting accessed and dirty bits.
 *
 * @param mem guest physical memory
 * @param c paging controls
 * @param linear the linear address
 * @param access kind of access
 * @returns the translation, or the #PF error code
 */
export function walkPae(
  mem: PhysicalAccess,
  c: PaeControls,
  linear: number,
  access: Access,
): Translation | { fault: number } {
  return walkEntries(
    mem,
    {
      table: (c.cr3 & 0xffffffe0) >>> 0,
      writeProtect: c.writeProtect,
      nxe: c.nxe,
      physBits: c.physBits,
    },
    PAE_LEVELS,
    linear >>> 0,
    access,
  );
}
