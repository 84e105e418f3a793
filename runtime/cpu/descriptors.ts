/** A segment or gate descriptor, decoded (SDM vol. 3, 3.4.5 and 6.11). */
export interface Descriptor {
  /** The 8 raw bytes as two dwords. */
  low: number;
  high: number;
  base: number;
  /** Limit in bytes minus one, with granularity applied. */
  limit: number;
  /** Type field (bits 8..11 of the high dword). */
  type: number;
  /** S: 1 for code/data, 0 for system descriptors and gates. */
  codeOrData: boolean;
  dpl: number;
  present: boolean;
  /** D/B: 32-bit default operand size. */
  big: boolean;
  /** L: 64-bit code segment. */
  long: boolean;
}

/**
 * Decodes a descriptor from its two dwords.
 *
 * @param low bytes 0..3
 * @param high bytes 4..7
 * @returns the fields
 */
export function decodeDescriptor(low: number, high: number): Descriptor {
  const base = ((low >>> 16) | ((high & 0xff) << 16) | (high & 0xff000000)) >>> 0;
  let limit = (low & 0xffff) | (high & 0x000f0000);
  if (high & (1 << 23)) limit = ((limit << 12) | 0xfff) >>> 0;
  return {
    low: low >>> 0,
    high: high >>> 0,
    base,
    limit,
    type: (high >>> 8) & 0xf,
    codeOrData: (high & (1 << 12)) !== 0,
    dpl: (high >>> 13) & 3,
    present: (high & (1 << 15)) !== 0,
    big: (high & (1 << 22)) !== 0,
    long: (high & (1 << 21)) !== 0,
  };
}

/** Whether a code/data descriptor is a code segment. */
export function isCode(d: Descriptor): boolean {
  return d.codeOrData && (d.type & 0x8) !== 0;
}

/** Whether a code/data descriptor can be read through a data segment register. */
export function isReadable(d: Descriptor): boolean {
  return d.codeOrData && (!(d.type & 0x8) || (d.type & 0x2) !== 0);
}

/** Whether a data descriptor is writable (required for SS). */
export function isWritableData(d: Descriptor): boolean {
  return d.codeOrData && !(d.type & 0x8) && (d.type & 0x2) !== 0;
}

/** Whether the segment covers the whole 4 GiB from 0, so host flat segments can stand in for it. */
export function isFlat(d: Descriptor): boolean {
  return d.base === 0 && d.limit === 0xffffffff;
}

/** A 32-bit interrupt, trap or task gate, decoded. */
export interface Gate {
  selector: number;
  offset: number;
  type: number;
  dpl: number;
  present: boolean;
}

/**
 * Decodes an IDT gate (32-bit layout).
 *
 * @param low bytes 0..3
 * @param high bytes 4..7
 * @returns the fields
 */
export function decodeGate(low: number, high: number): Gate {
  return {
    selector: low >>> 16,
    offset: ((high & 0xffff0000) | (low & 0xffff)) >>> 0,
    type: (high >>> 8) & 0x1f,
    dpl: (high >>> 13) & 3,
    present: (high & (1 << 15)) !== 0,
  };
}
