/**
 * Which instructions the static rewriter cares about, and why (ARCHITECTURE.md, "Measured host
 * behaviour"): at host CPL 3 a kernel instruction either
 *
 * - traps anyway (#GP, or #UD for sysexit-like ones) and the emulator handles it at run time:
 *   class `"privileged"`, rewritten only on request to make it cheaper later; or
 * - silently does something else (pushf shows IF=1, `mov %cs` shows the host's 0x23, cpuid and
 *   rdtsc report the host, sgdt/sidt/smsw/str/sldt give Linux's UMIP fake values, syscall loses
 *   its return address): class `"sensitive"`, which must be rewritten; or
 * - behaves the same: left alone (undefined here).
 *
 * `int3` and `int $3` stay guest breakpoints and `int $0x80` is delivered as a system call, so
 * neither is classified. Instructions are identified by iced-x86 `Code`, so every encoding
 * (operand sizes, register or memory forms) of an instruction is classified alike.
 *
 * @module
 */

import iced from "iced-x86";

const { Code } = iced;

/** How an instruction misbehaves at host CPL 3 (see the module description). */
export type SiteClass = "privileged" | "sensitive";

/** Every {@link SiteClass}, in report order. */
export const SITE_CLASSES: readonly SiteClass[] = ["sensitive", "privileged"];

/** The class of an instruction and the normalised mnemonic reports group it under. */
export interface Classification {
  /** How it misbehaves at CPL 3. */
  class: SiteClass;
  /** Normalised mnemonic, the same for all encodings: "pushf", "mov %sreg,r/m", "int n", ... */
  kind: string;
}

/**
 * Version of the rewriting policy: bump it whenever what gets patched changes, so that cached
 * rewrites (keyed by image content and this version) are made again.
 */
export const REWRITER_VERSION = 5;

/** [class, kind, pattern over iced-x86 `Code` names]. */
const RULES: readonly [SiteClass, string, RegExp][] = [
  ["sensitive", "pushf", /^Pushf[wdq]$/],
  ["sensitive", "popf", /^Popf[wdq]$/],
  ["sensitive", "mov %sreg,r/m", /^Mov_(rm16|r32m16|r64m16)_Sreg$/],
  ["sensitive", "push %sreg", /^Push[wdq]_(ES|CS|SS|DS|FS|GS)$/],
  ["sensitive", "lar", /^Lar_/],
  ["sensitive", "lsl", /^Lsl_/],
  ["sensitive", "verr", /^Verr_/],
  ["sensitive", "verw", /^Verw_/],
  ["sensitive", "sgdt", /^Sgdt_/],
  ["sensitive", "sidt", /^Sidt_/],
  ["sensitive", "sldt", /^Sldt_/],
  ["sensitive", "str", /^Str_/],
  ["sensitive", "smsw", /^Smsw_/],
  ["sensitive", "cpuid", /^Cpuid$/],
  ["sensitive", "rdtsc", /^Rdtsc$/],
  ["sensitive", "rdtscp", /^Rdtscp$/],
  ["sensitive", "syscall", /^Syscall$/],
  ["sensitive", "sysenter", /^Sysenter$/],
  // Loads of a segment register and far transfers trap at CPL 3 only because the guest's
  // selectors are not valid host selectors. A guest selector equal to a host one (0x23 is the
  // host's 32-bit code, 0x2b its data, 0x33 its 64-bit code) loads natively and silently: a data
  // register then holds a code segment, or `ljmp $0x33` enters host 64-bit mode. Rewriting them
  // costs nothing (they trap either way) and makes every one exact.
  ["sensitive", "iret", /^Iret[wdq]$/],
  ["sensitive", "ljmp", /^Jmp_(ptr1616|ptr1632|m1616|m1632|m1664)$/],
  ["sensitive", "lcall", /^Call_(ptr1616|ptr1632|m1616|m1632|m1664)$/],
  ["sensitive", "lret", /^Retf[wdq](_imm16)?$/],
  ["sensitive", "mov r/m,%sreg", /^Mov_Sreg_/],
  ["sensitive", "pop %sreg", /^Pop[wdq]_(ES|CS|SS|DS|FS|GS)$/],
  ["sensitive", "lds", /^Lds_/],
  ["sensitive", "les", /^Les_/],
  ["sensitive", "lfs", /^Lfs_/],
  ["sensitive", "lgs", /^Lgs_/],
  ["sensitive", "lss", /^Lss_/],

  ["privileged", "in", /^In_/],
  ["privileged", "out", /^Out_/],
  ["privileged", "ins", /^Ins[bwd]_/],
  ["privileged", "outs", /^Outs[bwd]_/],
  ["privileged", "cli", /^Cli$/],
  ["privileged", "sti", /^Sti$/],
  ["privileged", "hlt", /^Hlt$/],
  ["privileged", "lgdt", /^Lgdt_/],
  ["privileged", "lidt", /^Lidt_/],
  ["privileged", "lldt", /^Lldt_/],
  ["privileged", "ltr", /^Ltr_/],
  ["privileged", "mov %crN", /^Mov_(r32_cr|r64_cr|cr_r32|cr_r64)$/],
  ["privileged", "mov %drN", /^Mov_(r32_dr|r64_dr|dr_r32|dr_r64)$/],
  ["privileged", "mov %trN", /^Mov_(r32_tr|tr_r32)$/],
  ["privileged", "clts", /^Clts$/],
  ["privileged", "lmsw", /^Lmsw_/],
  ["privileged", "invlpg", /^Invlpg/],
  ["privileged", "wbinvd", /^Wbinvd$/],
  ["privileged", "wbnoinvd", /^Wbnoinvd$/],
  ["privileged", "invd", /^Invd$/],
  ["privileged", "rdmsr", /^Rdmsr/],
  ["privileged", "wrmsr", /^Wrmsr/],
  ["privileged", "sysexit", /^Sysexit[dq]$/],
  ["privileged", "sysret", /^Sysret[dq]$/],
  ["privileged", "swapgs", /^Swapgs$/],
  ["privileged", "xsetbv", /^Xsetbv$/],
  ["privileged", "invpcid", /^Invpcid_/],
];

const INT_N: Classification = Object.freeze({ class: "privileged", kind: "int n" });

/** Classification by `Code` value, built once from {@link RULES}. */
const BY_CODE: ReadonlyMap<number, Classification> = (() => {
  const map = new Map<number, Classification>();
  for (const [name, value] of Object.entries(Code)) {
    if (typeof value !== "number") continue;
    const rule = RULES.find(([, , pattern]) => pattern.test(name));
    if (rule !== undefined) map.set(value, Object.freeze({ class: rule[0], kind: rule[1] }));
  }
  return map;
})();

/** Software interrupt vectors that are not emulated as privileged: breakpoint and system call. */
const PASS_THROUGH_VECTORS: ReadonlySet<number> = new Set([3, 0x80]);

/**
 * Classifies one decoded instruction.
 *
 * @param code the instruction's iced-x86 `Code`
 * @param immediate8 its 8-bit immediate (only read for `int n`)
 * @returns the class and normalised mnemonic, or undefined for an instruction that behaves the
 *   same at CPL 3
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import iced from "iced-x86";
 * import { classifyCode } from "./classify.ts";
 * assert.deepEqual(classifyCode(iced.Code.Pushfd), { class: "sensitive", kind: "pushf" });
 * assert.equal(classifyCode(iced.Code.Int_imm8, 0x80), undefined);
 * ```
 */
export function classifyCode(code: number, immediate8 = 0): Classification | undefined {
  if (code === Code.Int_imm8) return PASS_THROUGH_VECTORS.has(immediate8) ? undefined : INT_N;
  return BY_CODE.get(code);
}

/**
 * Whether {@link classifyCode} can return something for `code` (so a sweep reads the
 * immediate only when it matters).
 *
 * @param code an iced-x86 `Code`
 * @returns true for every classified code, and for `int imm8`
 */
export function isCandidateCode(code: number): boolean {
  return code === Code.Int_imm8 || BY_CODE.has(code);
}
