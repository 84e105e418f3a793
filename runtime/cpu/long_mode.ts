/**
 * Long-mode structures the partial emulator reads (SDM vol. 3, 2.2.1 "Extended feature enable
 * register", 6.14 "Exception and interrupt handling in 64-bit mode", 7.7 "Task management in
 * 64-bit mode"): EFER bits, 16-byte IDT gates, the 64-bit TSS, and the way ring3 holds 64-bit
 * numbers (addresses of the low canonical half fit a JS number exactly).
 *
 * @module
 */

/** EFER bits. */
export const EFER = {
  /** System-call extensions: syscall and sysret. */
  SCE: 1n << 0n,
  /** Long mode enable. */
  LME: 1n << 8n,
  /** Long mode active (read-only: CR0.PG with LME sets it). */
  LMA: 1n << 10n,
  /** Execute-disable bit in page-table entries. */
  NXE: 1n << 11n,
} as const;

/** EFER bits a guest may write (LMA is kept by the CPU). */
export const EFER_WRITABLE = EFER.SCE | EFER.LME | EFER.NXE;

/** CR4 bits the emulator looks at. */
export const CR4 = {
  TSD: 1 << 2,
  PSE: 1 << 4,
  PAE: 1 << 5,
  PGE: 1 << 7,
  UMIP: 1 << 11,
} as const;

/** System descriptor types in long mode (S = 0). */
export const SYSTEM_TYPE64 = {
  LDT: 0x2,
  TSS_AVAILABLE: 0x9,
  TSS_BUSY: 0xb,
  CALL_GATE: 0xc,
  INTERRUPT_GATE: 0xe,
  TRAP_GATE: 0xf,
} as const;

/** The first linear address a 64-bit guest cannot use: the end of the low canonical half. */
export const LOW_HALF_END = 2 ** 47;

/** A 64-bit IDT gate, decoded. */
export interface Gate64 {
  selector: number;
  /** Handler address (a low-half address; see {@link LOW_HALF_END}). */
  offset: number;
  /** Interrupt stack table index, 0 for none. */
  ist: number;
  type: number;
  dpl: number;
  present: boolean;
}

/**
 * Decodes a 16-byte IDT gate from its four dwords.
 *
 * @param d0 bytes 0..3
 * @param d1 bytes 4..7
 * @param d2 bytes 8..11 (offset bits 32..63)
 * @returns the fields
 */
export function decodeGate64(d0: number, d1: number, d2: number): Gate64 {
  return {
    selector: d0 >>> 16,
    offset: join64(((d1 & 0xffff0000) | (d0 & 0xffff)) >>> 0, d2),
    ist: d1 & 7,
    type: (d1 >>> 8) & 0x1f,
    dpl: (d1 >>> 13) & 3,
    present: (d1 & (1 << 15)) !== 0,
  };
}

/**
 * Offset in the 64-bit TSS of the stack pointer for privilege level `cpl` (RSP0..RSP2) or, with
 * `ist` 1..7, of that interrupt stack table entry.
 */
export function tss64StackOffset(cpl: number, ist: number): number {
  return ist !== 0 ? 0x24 + 8 * (ist - 1) : 4 + 8 * cpl;
}

/**
 * Joins two 32-bit halves into a number. Exact below 2^53, which holds for every low-half
 * address; for a high-half value the result is only approximate, so callers that need an
 * address check {@link isLowHalf} first.
 */
export function join64(low: number, high: number): number {
  return (high >>> 0) * 0x100000000 + (low >>> 0);
}

/** Splits a non-negative number below 2^64 into 32-bit halves. */
export function split64(v: number): [number, number] {
  if (v < 0) {
    const b = BigInt.asUintN(64, BigInt(Math.trunc(v)));
    return [Number(b & 0xffffffffn), Number(b >> 32n)];
  }
  return [v % 0x100000000 >>> 0, Math.floor(v / 0x100000000) >>> 0];
}

/** Whether `v` is an address in the low canonical half, the part a 64-bit guest may use. */
export function isLowHalf(v: number): boolean {
  return v >= 0 && v < LOW_HALF_END;
}
