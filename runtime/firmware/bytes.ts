/**
 * Little-endian table writing and the 8-bit checksums ACPI and the MP specification use (the
 * bytes of a structure sum to 0 modulo 256).
 *
 * @module
 */

/** Writes little-endian fields into a fixed-size table. */
export class TableBytes {
  readonly bytes: Uint8Array;
  readonly #view: DataView;
  /** @param length table size in bytes */
  constructor(length: number) {
    this.bytes = new Uint8Array(length);
    this.#view = new DataView(this.bytes.buffer);
  }
  u8(at: number, v: number): this {
    this.bytes[at] = v & 0xff;
    return this;
  }
  u16(at: number, v: number): this {
    this.#view.setUint16(at, v, true);
    return this;
  }
  u32(at: number, v: number): this {
    this.#view.setUint32(at, v >>> 0, true);
    return this;
  }
  u64(at: number, v: number): this {
    this.#view.setBigUint64(at, BigInt(v), true);
    return this;
  }
  /** ASCII, padded with spaces to `width` (or exactly as long as `s` when no width). */
  ascii(at: number, s: string, width = s.length): this {
    for (let i = 0; i < width; i++) this.bytes[at + i] = i < s.length ? s.charCodeAt(i) : 0x20;
    return this;
  }
  bytesAt(at: number, b: Uint8Array): this {
    this.bytes.set(b, at);
    return this;
  }
  /** Sets byte `at` so that bytes [from, to) sum to 0. */
  checksum(at: number, from = 0, to = this.bytes.length): this {
    this.bytes[at] = 0;
    this.bytes[at] = (256 - sum8(this.bytes.subarray(from, to))) & 0xff;
    return this;
  }
}

/** The 8-bit sum of some bytes: 0 for a structure with a correct checksum. */
export function sum8(b: Uint8Array): number {
  let s = 0;
  for (const x of b) s = (s + x) & 0xff;
  return s;
}
