/**
 * The `disks` boot option, shared by both backends: which host file sits at which ATA
 * position, and whether the guest writes to it.
 *
 * @module
 */
import { SECTOR_SIZE } from "../devices/block_backend.ts";
import { type DiskFile, MAX_DISKS } from "./disk_io_protocol.ts";
import { type DiskFaultSpec, parseDiskFault } from "./disk_faults.ts";

/** One disk: a path (overlay, next free position) or the full form. */
export type DiskOption = string | {
  /** The host file (a raw image). */
  path: string;
  /** Write to the file instead of a throw-away overlay (default false). */
  writeThrough?: boolean;
  /** ATA position 0..3 (QEMU's `-drive index=`); default the next free one. */
  index?: number;
  /**
   * Faults armed from power-on, as `{ kind: "disk" }` events would arm them. The QEMU backend
   * turns fail-read and fail-write into blkdebug rules; it skips the others, visibly.
   */
  faults?: DiskFaultSpec[];
};

/**
 * Assigns positions and checks that every file exists and holds at least one sector.
 *
 * @param disks as given in the boot options
 * @returns the disks with their positions
 * @throws {Error} naming the disk that cannot be used
 */
export async function resolveDisks(disks: DiskOption[]): Promise<DiskFile[]> {
  const out: DiskFile[] = [];
  const used = new Set<number>();
  for (const d of disks) {
    const o = typeof d === "string" ? { path: d } : d;
    if (o.index !== undefined) {
      if (!Number.isInteger(o.index) || o.index < 0 || o.index >= MAX_DISKS) {
        throw new RangeError(`disk ${o.path}: index must be 0..${MAX_DISKS - 1}, got ${o.index}`);
      }
      if (used.has(o.index)) throw new RangeError(`disk ${o.path}: index ${o.index} is taken`);
      used.add(o.index);
    }
  }
  for (const d of disks) {
    const o = typeof d === "string" ? { path: d } : d;
    let index = o.index;
    if (index === undefined) {
      index = [0, 1, 2, 3].find((i) => !used.has(i));
      if (index === undefined) throw new RangeError(`more than ${MAX_DISKS} disks`);
      used.add(index);
    }
    let size: number;
    try {
      const st = await Deno.stat(o.path);
      if (!st.isFile) throw new Error("not a regular file");
      size = st.size;
    } catch (e) {
      throw new Error(`cannot use disk image ${o.path}: ${(e as Error).message}`, { cause: e });
    }
    if (size < SECTOR_SIZE) {
      throw new Error(`disk image ${o.path} is smaller than one sector (${size} bytes)`);
    }
    for (const f of o.faults ?? []) parseDiskFault(f as unknown as Record<string, unknown>);
    out.push({
      index,
      path: o.path,
      writeThrough: o.writeThrough ?? false,
      ...(o.faults?.length ? { faults: o.faults } : {}),
    });
  }
  return out;
}
