/**
 * Picks the page walker for the guest's paging mode: 32-bit (page_walk.ts), PAE
 * (page_walk_pae.ts) or 4-level (page_walk_long.ts), as CR4.PAE and EFER.LMA select.
 *
 * @module
 */
import {
  type Access,
  type PagingControls,
  type PhysicalAccess,
  type Translation,
  walk32,
} from "./page_walk.ts";
import { walkPae } from "./page_walk_pae.ts";
import { walkLong } from "./page_walk_long.ts";

/** Which page-table format the guest uses. */
export type PagingMode = "32-bit" | "pae" | "4-level";

/** Everything any of the walkers depends on. */
export interface TranslationControls extends PagingControls {
  mode: PagingMode;
  /** EFER.NXE. */
  nxe: boolean;
  /** MAXPHYADDR of the virtual CPU. */
  physBits: number;
}

/**
 * Translates a linear address with the walker for `c.mode`.
 *
 * @param mem guest physical memory
 * @param c paging controls
 * @param linear the linear address (below 2^32, or below 2^47 in 4-level mode)
 * @param access kind of access
 * @returns the translation, or the #PF error code
 */
export function translate(
  mem: PhysicalAccess,
  c: TranslationControls,
  linear: number,
  access: Access,
): Translation | { fault: number } {
  if (c.mode === "4-level") return walkLong(mem, c, linear, access);
  if (c.mode === "pae") return walkPae(mem, c, linear, access);
  return walk32(mem, c, linear, access);
}
