/**
 * The virtual CPU a guest sees through CPUID, defined in one place. It advertises only what the
 * partial emulator supports or what the host runs natively at ring 3 anyway (x87, MMX, SSE,
 * SSE2, SSE3). Notably absent:
 * - VME and v8086 mode;
 * - SYSCALL outside 64-bit mode, which cannot be returned from in compat mode
 *   (ARCHITECTURE.md). Intel CPUs report the SYSCALL bit of leaf 0x80000001 only in 64-bit
 *   mode, so the model does too;
 * - MTRR, MCE, APIC x2 and TSC-deadline.
 *
 * Long mode (LM), NX and PAE are advertised: the emulator walks PAE and 4-level tables and
 * runs 64-bit code natively with the host's 64-bit code selector.
 *
 * @module
 */

/** Feature bits of CPUID leaf 1 EDX. */
export const CPUID1_EDX = {
  FPU: 1 << 0,
  DE: 1 << 2,
  PSE: 1 << 3,
  TSC: 1 << 4,
  MSR: 1 << 5,
  PAE: 1 << 6,
  CX8: 1 << 8,
  APIC: 1 << 9,
  SEP: 1 << 11,
  PGE: 1 << 13,
  CMOV: 1 << 15,
  PAT: 1 << 16,
  CLFSH: 1 << 19,
  MMX: 1 << 23,
  FXSR: 1 << 24,
  SSE: 1 << 25,
  SSE2: 1 << 26,
} as const;

/** Feature bits of CPUID leaf 0x80000001 EDX. */
export const CPUID_EXT_EDX = {
  SYSCALL: 1 << 11,
  NX: 1 << 20,
  LM: 1 << 29,
} as const;

/** Feature bits of CPUID leaf 1 ECX. */
export const CPUID1_ECX = { SSE3: 1 << 0 } as const;

/** What CPUID returns for one leaf. */
export interface CpuidResult {
  eax: number;
  ebx: number;
  ecx: number;
  edx: number;
}

/** The virtual CPU's identity and features. */
export interface CpuModel {
  vendor: string;
  brand: string;
  family: number;
  model: number;
  stepping: number;
  /** Leaf 1 EDX and ECX feature words. */
  features1Edx: number;
  features1Ecx: number;
  /** Leaf 0x80000001 EDX and ECX. */
  extFeaturesEdx: number;
  extFeaturesEcx: number;
  /** TSC rate: guest TSC ticks per guest second. */
  tscHz: number;
  /** Physical and linear address bits (leaf 0x80000008). */
  physBits: number;
  linearBits: number;
  /** Long mode: EFER.LME and the long-mode MSRs exist. Must agree with CPUID_EXT_EDX.LM. */
  longMode: boolean;
}

/**
 * ring3's default virtual CPU: a P6-family CPU with PAE, PSE, PGE, SEP, a local APIC, NX and
 * long mode.
 */
export const RING3_CPU: Readonly<CpuModel> = Object.freeze({
  vendor: "GenuineIntel",
  brand: "ring3 virtual CPU",
  family: 6,
  model: 13,
  stepping: 0,
  features1Edx: CPUID1_EDX.FPU | CPUID1_EDX.DE | CPUID1_EDX.PSE | CPUID1_EDX.TSC |
    CPUID1_EDX.MSR | CPUID1_EDX.PAE | CPUID1_EDX.CX8 | CPUID1_EDX.APIC | CPUID1_EDX.SEP |
    CPUID1_EDX.PGE | CPUID1_EDX.CMOV | CPUID1_EDX.PAT | CPUID1_EDX.MMX | CPUID1_EDX.FXSR |
    CPUID1_EDX.SSE | CPUID1_EDX.SSE2,
  features1Ecx: CPUID1_ECX.SSE3,
  extFeaturesEdx: CPUID_EXT_EDX.SYSCALL | CPUID_EXT_EDX.NX | CPUID_EXT_EDX.LM,
  extFeaturesEcx: 0,
  tscHz: 1_000_000_000,
  physBits: 36,
  linearBits: 48,
  longMode: true,
});

function str4(s: string, at: number): number {
  let v = 0;
  for (let i = 3; i >= 0; i--) v = (v << 8) | (s.charCodeAt(at + i) || 0);
  return v >>> 0;
}

/**
 * Answers CPUID for the model.
 *
 * @param model the virtual CPU
 * @param leaf EAX
 * @param subleaf ECX
 * @param code64 whether the asking code runs in 64-bit mode (SYSCALL is reported only there)
 * @returns the four registers
 */
export function cpuid(
  model: CpuModel,
  leaf: number,
  subleaf: number,
  code64 = false,
): CpuidResult {
  const zero = { eax: 0, ebx: 0, ecx: 0, edx: 0 };
  void subleaf;
  const vendor = model.vendor.padEnd(12, " ");
  switch (leaf >>> 0) {
    case 0:
      return { eax: 1, ebx: str4(vendor, 0), edx: str4(vendor, 4), ecx: str4(vendor, 8) };
    case 1:
      return {
        eax: (model.stepping & 0xf) | ((model.model & 0xf) << 4) | ((model.family & 0xf) << 8) |
          (((model.model >> 4) & 0xf) << 16),
        // CLFLUSH line size 8 (x8 = 64 bytes), one logical processor, initial APIC ID 0.
        ebx: (8 << 8) | (1 << 16),
        ecx: model.features1Ecx >>> 0,
        edx: model.features1Edx >>> 0,
      };
    case 0x80000000:
      return { eax: 0x80000008, ebx: 0, ecx: 0, edx: 0 };
    case 0x80000001:
      return {
        eax: 0,
        ebx: 0,
        ecx: model.extFeaturesEcx >>> 0,
        edx: (model.extFeaturesEdx & (code64 ? ~0 : ~CPUID_EXT_EDX.SYSCALL)) >>> 0,
      };
    case 0x80000002:
    case 0x80000003:
    case 0x80000004: {
      const brand = model.brand.padEnd(48, "\0");
      const at = (leaf - 0x80000002) * 16;
      return {
        eax: str4(brand, at),
        ebx: str4(brand, at + 4),
        ecx: str4(brand, at + 8),
        edx: str4(brand, at + 12),
      };
    }
    case 0x80000008:
      return { eax: model.physBits | (model.linearBits << 8), ebx: 0, ecx: 0, edx: 0 };
    default:
      // Intel answers an out-of-range basic leaf with the highest basic leaf's data; a leaf past
      // the extended range likewise. Zeros are what a guest probing gently expects here.
      return zero;
  }
}
