/**
 * x86 architectural constants the partial emulator needs, in one place (Intel SDM vol. 3,
 * AMD APM vol. 2).
 *
 * @module
 */

/** CR0 bits. */
export const CR0 = {
  PE: 1 << 0,
  MP: 1 << 1,
  EM: 1 << 2,
  TS: 1 << 3,
  ET: 1 << 4,
  NE: 1 << 5,
  WP: 1 << 16,
  AM: 1 << 18,
  NW: 1 << 29,
  CD: 1 << 30,
  PG: 1 << 31,
} as const;

/** Exception vectors. */
export const VECTOR = {
  DE: 0,
  DB: 1,
  NMI: 2,
  BP: 3,
  OF: 4,
  BR: 5,
  UD: 6,
  NM: 7,
  DF: 8,
  TS: 10,
  NP: 11,
  SS: 12,
  GP: 13,
  PF: 14,
  MF: 16,
  AC: 17,
  MC: 18,
  XM: 19,
} as const;

/** Mnemonic names of the exception vectors, for reports. */
export const VECTOR_NAMES: Readonly<Record<number, string>> = {
  0: "#DE divide error",
  1: "#DB debug",
  2: "NMI",
  3: "#BP breakpoint",
  4: "#OF overflow",
  5: "#BR bound range",
  6: "#UD invalid opcode",
  7: "#NM device not available",
  8: "#DF double fault",
  10: "#TS invalid TSS",
  11: "#NP segment not present",
  12: "#SS stack fault",
  13: "#GP general protection",
  14: "#PF page fault",
  16: "#MF x87 error",
  17: "#AC alignment check",
  18: "#MC machine check",
  19: "#XM SIMD error",
};

/** Whether exception `vector` pushes an error code (SDM vol. 3, table 6-1). */
export function hasErrorCode(vector: number): boolean {
  return vector === 8 || (vector >= 10 && vector <= 14) || vector === 17 || vector === 21 ||
    vector === 29 || vector === 30;
}

/** Whether `vector` is a contributory exception for double-fault purposes (SDM table 6-4). */
export function isContributory(vector: number): boolean {
  return vector === 0 || (vector >= 10 && vector <= 13);
}

/** Model-specific registers ring3's virtual CPU implements. */
export const MSR = {
  TSC: 0x10,
  APIC_BASE: 0x1b,
  SYSENTER_CS: 0x174,
  SYSENTER_ESP: 0x175,
  SYSENTER_EIP: 0x176,
  MISC_ENABLE: 0x1a0,
  PAT: 0x277,
  EFER: 0xc0000080,
  STAR: 0xc0000081,
  LSTAR: 0xc0000082,
  CSTAR: 0xc0000083,
  FMASK: 0xc0000084,
  FS_BASE: 0xc0000100,
  GS_BASE: 0xc0000101,
  KERNEL_GS_BASE: 0xc0000102,
} as const;

/** Segment register numbers in the encoding order (ModRM reg field of mov Sreg). */
export const SREG = { ES: 0, CS: 1, SS: 2, DS: 3, FS: 4, GS: 5 } as const;
/** Names of the segment registers by number. */
export const SREG_NAMES = ["es", "cs", "ss", "ds", "fs", "gs"] as const;

/** Descriptor type values for system descriptors (S = 0) in 32-bit mode. */
export const SYSTEM_TYPE = {
  LDT: 0x2,
  TASK_GATE: 0x5,
  TSS32_AVAILABLE: 0x9,
  TSS32_BUSY: 0xb,
  CALL_GATE32: 0xc,
  INTERRUPT_GATE32: 0xe,
  TRAP_GATE32: 0xf,
} as const;
