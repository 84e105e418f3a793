/**
 * The 256-word IDENTIFY DEVICE block of an ATA disk, filled as ATA/ATAPI-6 (T13 1410D) lays it
 * out and as a PIO-only drive reports itself: LBA28 and LBA48 capacities, a default CHS
 * geometry, PIO modes 3 and 4, no DMA, READ/WRITE MULTIPLE up to {@link MAX_MULTIPLE_SECTORS},
 * FLUSH CACHE (EXT) and the integrity word.
 *
 * @module
 */

/** Largest block of SET MULTIPLE MODE (word 47), as QEMU's IDE disks offer. */
export const MAX_MULTIPLE_SECTORS = 16;

/** Largest LBA28 sector count a drive reports in words 60-61. */
export const LBA28_LIMIT = 0x0fffffff;

/** A CHS geometry. */
export interface Geometry {
  cylinders: number;
  heads: number;
  sectorsPerTrack: number;
}

/**
 * The default geometry of a disk of `sectors`: 16 heads, 63 sectors per track, as many
 * cylinders as fit (at most 16383, as ATA caps word 1), at least one.
 *
 * @param sectors capacity
 * @returns the geometry
 */
export function defaultGeometry(sectors: number): Geometry {
  const heads = 16, sectorsPerTrack = 63;
  const cylinders = Math.max(1, Math.min(16383, Math.floor(sectors / (heads * sectorsPerTrack))));
  return { cylinders, heads, sectorsPerTrack };
}

/** What goes into an IDENTIFY block. */
export interface IdentifyOptions {
  /** Capacity in sectors. */
  sectors: number;
  /** Model number, up to 40 ASCII characters. */
  model: string;
  /** Serial number, up to 20 ASCII characters. */
  serial: string;
  /** Firmware revision, up to 8 ASCII characters. */
  firmware: string;
  /** The geometry in use (INITIALIZE DEVICE PARAMETERS may change heads and sectors). */
  current: Geometry;
  /** The SET MULTIPLE MODE block size in effect, 0 when none. */
  multiple: number;
}

/**
 * Builds the IDENTIFY DEVICE data.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { defaultGeometry, identifyDevice } from "./ata_identify.ts";
 *
 * const w = identifyDevice({
 *   sectors: 2048, model: "RING3 HARDDISK", serial: "R3D00001", firmware: "1.0",
 *   current: defaultGeometry(2048), multiple: 0,
 * });
 * assert.equal(w[60] | (w[61] << 16), 2048);
 * ```
 *
 * @param o capacity, strings and current settings
 * @returns 256 words, in the order the data port returns them
 */
export function identifyDevice(o: IdentifyOptions): Uint16Array {
  const w = new Uint16Array(256);
  const dflt = defaultGeometry(o.sectors);
  w[0] = 0x0040; // fixed device, not removable
  w[1] = dflt.cylinders;
  w[3] = dflt.heads;
  w[6] = dflt.sectorsPerTrack;
  putString(w, 10, 20, o.serial);
  putString(w, 23, 8, o.firmware);
  putString(w, 27, 40, o.model);
  w[47] = 0x8000 | MAX_MULTIPLE_SECTORS;
  w[49] = 1 << 11 | 1 << 9; // IORDY supported, LBA supported (no DMA)
  w[50] = 0x4000;
  w[51] = 0x0200; // PIO timing mode 2 (obsolete word, still read by old drivers)
  w[53] = 0x0003; // words 54-58 and 64-70 are valid
  const cur = o.current;
  const curCapacity = Math.min(cur.cylinders * cur.heads * cur.sectorsPerTrack, o.sectors);
  w[54] = cur.cylinders;
  w[55] = cur.heads;
  w[56] = cur.sectorsPerTrack;
  w[57] = curCapacity & 0xffff;
  w[58] = curCapacity >>> 16;
  w[59] = o.multiple ? 0x0100 | o.multiple : 0;
  const lba28 = Math.min(o.sectors, LBA28_LIMIT);
  w[60] = lba28 & 0xffff;
  w[61] = lba28 >>> 16;
  w[64] = 0x0003; // PIO modes 3 and 4
  w[65] =
    w[66] =
    w[67] =
    w[68] =
      120; // cycle times, ns
  w[80] = 0x007e; // ATA-1 to ATA-6
  w[82] = 1 << 14; // NOP command set (NOP itself aborts, as ATA-6 says it does)
  w[83] = 0x4000 | 1 << 13 | 1 << 12 | 1 << 10; // FLUSH CACHE EXT, FLUSH CACHE, 48-bit address
  w[84] = 0x4000;
  w[85] = w[82];
  w[86] = w[83] & ~0x4000;
  w[87] = 0x4000;
  const big = BigInt(o.sectors);
  for (let i = 0; i < 4; i++) w[100 + i] = Number((big >> BigInt(16 * i)) & 0xffffn);
  // Word 255: signature A5h and a checksum making all 512 bytes sum to 0 (mod 256).
  w[255] = 0x00a5;
  let sum = 0;
  for (let i = 0; i < 255; i++) sum += (w[i] & 0xff) + (w[i] >> 8);
  sum += 0xa5;
  w[255] |= ((256 - (sum & 0xff)) & 0xff) << 8;
  return w;
}

/** ATA strings: two characters per word, the first in the high byte, padded with spaces. */
function putString(w: Uint16Array, word: number, length: number, text: string): void {
  const s = text.padEnd(length, " ").slice(0, length);
  for (let i = 0; i < length; i += 2) {
    w[word + i / 2] = (s.charCodeAt(i) & 0x7f) << 8 | (s.charCodeAt(i + 1) & 0x7f);
  }
}

/**
 * Reads an ATA string back from IDENTIFY data (for tests and logs).
 *
 * @param w the words
 * @param word first word
 * @param length characters
 * @returns the string without trailing spaces
 */
export function identifyString(w: Uint16Array, word: number, length: number): string {
  let s = "";
  for (let i = 0; i < length / 2; i++) {
    s += String.fromCharCode(w[word + i] >> 8, w[word + i] & 0xff);
  }
  return s.trimEnd();
}
