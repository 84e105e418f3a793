/**
 * The part of a page walk that PAE paging and 4-level paging share (SDM vol. 3, 4.4 and 4.5):
 * 8-byte entries, U/S and R/W ANDed over every level, XD ORed, accessed bits set at every
 * level and the dirty bit at the leaf, large pages at the levels that allow them, and #PF.RSVD
 * for reserved bits. The two walkers (page_walk_pae.ts, page_walk_long.ts) only describe their
 * levels.
 *
 * @module
 */
import { type Access, PF_ERROR, type PhysicalAccess, PTE, type Translation } from "./page_walk.ts";

/** XD (execute disable), bit 63 of an entry: bit 31 of its high dword. */
const XD_HIGH = 0x80000000;

/** One level of the walk, outermost first. */
export interface WalkLevel {
  /** Bit position of the linear-address field that indexes this level's table. */
  shift: number;
  /** Number of entries in the table (512, or 4 for the PAE PDPT). */
  entries: number;
  /** Whether PS=1 here maps a large page (its size is 2^shift). */
  largePages: boolean;
  /** Whether U/S, R/W and A are meaningful here (not in the PAE PDPT, where they are reserved). */
  rights: boolean;
}

/** What the shared walk needs besides the levels. */
export interface EntryWalkControls {
  /** Physical address of the outermost table. */
  table: number;
  /** CR0.WP. */
  writeProtect: boolean;
  /** EFER.NXE: XD is honoured (else it is a reserved bit). */
  nxe: boolean;
  /** MAXPHYADDR of the virtual CPU. */
  physBits: number;
}

/**
 * Walks 8-byte-entry page tables.
 *
 * @param mem guest physical memory
 * @param c controls
 * @param levels the levels, outermost first
 * @param linear the linear address (a non-negative number below 2^53)
 * @param access kind of access
 * @returns the translation, or the #PF error code
 */
export function walkEntries(
  mem: PhysicalAccess,
  c: EntryWalkControls,
  levels: readonly WalkLevel[],
  linear: number,
  access: Access,
): Translation | { fault: number } {
  const errBase = (access.write ? PF_ERROR.W : 0) | (access.user ? PF_ERROR.U : 0) |
    (access.fetch && c.nxe ? PF_ERROR.I : 0);
  // Address bits 32..51 of an entry that MAXPHYADDR allows; the rest up to bit 51 are reserved.
  const highAddrMask = c.physBits >= 52 ? 0xfffff : (2 ** (c.physBits - 32)) - 1;
  const highReserved = (0xfffff & ~highAddrMask) | (c.nxe ? 0 : XD_HIGH);
  let table = c.table;
  let userOk = true;
  let writeOk = true;
  let execOk = true;
  const touched: number[] = [];
  for (let i = 0; i < levels.length; i++) {
    const level = levels[i];
    const index = Math.floor(linear / 2 ** level.shift) % level.entries;
    const at = table + index * 8;
    if (at + 8 > mem.size) return { fault: errBase };
    const lo = mem.read32(at);
    const hi = mem.read32(at + 4);
    if (!(lo & PTE.P)) return { fault: errBase };
    const leafLarge = level.largePages && (lo & PTE.PS) !== 0;
    const last = i === levels.length - 1;
    let reserved = (hi & highReserved) !== 0;
    if (!level.rights) reserved ||= (lo & 0x1e6) !== 0 || (hi & XD_HIGH) !== 0;
    else if (!level.largePages && !last && (lo & PTE.PS)) reserved = true;
    // A large page's frame is aligned to its size: the bits between 12 (PAT) and it are zero.
    if (leafLarge) reserved ||= (lo & ((2 ** level.shift - 1) & ~0x1fff)) !== 0;
    if (reserved) return { fault: errBase | PF_ERROR.P | PF_ERROR.RSVD };
    if (level.rights) {
      userOk &&= (lo & PTE.US) !== 0;
      writeOk &&= (lo & PTE.RW) !== 0;
      touched.push(at);
    }
    if (hi & XD_HIGH) execOk = false;
    const highAddr = (hi & highAddrMask) * 0x100000000;
    if (leafLarge || last) {
      if (access.user && !userOk) return { fault: errBase | PF_ERROR.P };
      if (access.write && !writeOk && (access.user || c.writeProtect)) {
        return { fault: errBase | PF_ERROR.P };
      }
      if (access.fetch && c.nxe && !execOk) return { fault: errBase | PF_ERROR.P };
      for (const t of touched) {
        const e = mem.read32(t);
        const set = t === at ? PTE.A | (access.write ? PTE.D : 0) : PTE.A;
        if ((e & set) !== set) mem.write32(t, (e | set) >>> 0);
      }
      const size = leafLarge ? 2 ** level.shift : 0x1000;
      const base = highAddr + ((lo & ~(size - 1) & 0xfffff000) >>> 0);
      const physical = base + (linear % size);
      const dirty = (mem.read32(at) & PTE.D) !== 0;
      return {
        physical,
        frame: physical - (physical % 0x1000),
        writable: writeOk || (!access.user && !c.writeProtect),
        user: userOk,
        userWritable: userOk && writeOk,
        dirty,
        executable: execOk || !c.nxe,
      };
    }
    table = highAddr + ((lo & 0xfffff000) >>> 0);
  }
  throw new Error("unreachable: the last level always returns");
}
