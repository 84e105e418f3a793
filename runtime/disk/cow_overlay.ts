/**
 * A copy-on-write overlay of a disk image: sectors the guest wrote, kept in memory and keyed
 * by sector number, in front of a base image that is only ever read. Dropping the overlay
 * drops every change, which is how a crashed or killed guest leaves the base image as it was.
 *
 * @module
 */
import { SECTOR_SIZE } from "../devices/block_backend.ts";

/** A run of consecutive sectors: `[first, first + count)`. */
export interface SectorRun {
  first: number;
  count: number;
}

/** Written sectors by number; everything else reads from the base. */
export class CowOverlay {
  readonly #sectors = new Map<number, Uint8Array>();

  /** Sectors held (each costs {@link SECTOR_SIZE} bytes of host memory). */
  get size(): number {
    return this.#sectors.size;
  }

  /**
   * Keeps a copy of whole sectors written at `lba`.
   *
   * @param lba first sector
   * @param data a multiple of {@link SECTOR_SIZE} bytes
   */
  write(lba: number, data: Uint8Array): void {
    for (let i = 0; i * SECTOR_SIZE < data.length; i++) {
      this.#sectors.set(lba + i, data.slice(i * SECTOR_SIZE, (i + 1) * SECTOR_SIZE));
    }
  }

  /**
   * The runs of `[lba, lba + count)` that the overlay does not hold: what must come from the
   * base image.
   *
   * @example
   * ```ts
   * import assert from "node:assert/strict";
   * import { CowOverlay } from "./cow_overlay.ts";
   *
   * const o = new CowOverlay();
   * o.write(2, new Uint8Array(512));
   * assert.deepEqual(o.missing(0, 4), [{ first: 0, count: 2 }, { first: 3, count: 1 }]);
   * ```
   *
   * @param lba first sector
   * @param count sectors
   * @returns runs in ascending order
   */
  missing(lba: number, count: number): SectorRun[] {
    const runs: SectorRun[] = [];
    for (let s = lba; s < lba + count; s++) {
      if (this.#sectors.has(s)) continue;
      const last = runs.at(-1);
      if (last && last.first + last.count === s) last.count++;
      else runs.push({ first: s, count: 1 });
    }
    return runs;
  }

  /**
   * Copies the overlay's sectors of `[lba, lba + count)` over `into` (which holds the base's).
   *
   * @param lba first sector
   * @param count sectors
   * @param into `count` sectors of data, changed in place
   */
  apply(lba: number, count: number, into: Uint8Array): void {
    if (this.#sectors.size === 0) return;
    for (let i = 0; i < count; i++) {
      const s = this.#sectors.get(lba + i);
      if (s) into.set(s, i * SECTOR_SIZE);
    }
  }
}
