import { REG, USER_REGS_SIZE } from "../host/layouts.ts";

/** Names of the 32-bit general registers in ModRM order, as the emulator indexes them. */
export const GPR32 = ["eax", "ecx", "edx", "ebx", "esp", "ebp", "esi", "edi"] as const;
const SREG_SLOT = [REG.es, REG.cs, REG.ss, REG.ds, REG.fs, REG.gs];
const GPR_SLOT = [
  REG.rax,
  REG.rcx,
  REG.rdx,
  REG.rbx,
  REG.rsp,
  REG.rbp,
  REG.rsi,
  REG.rdi,
  REG.r8,
  REG.r9,
  REG.r10,
  REG.r11,
  REG.r12,
  REG.r13,
  REG.r14,
  REG.r15,
];

/**
 * The guest process's registers as the host kernel sees them (struct user_regs_struct), in a
 * buffer that GETREGS/SETREGS read and write directly. Accessors work on 32-bit halves so the
 * trap path never allocates a BigInt.
 */
export class RegisterFile {
  /** The raw struct, shared with the kernel through {@link pointer}. */
  readonly raw = new Uint8Array(USER_REGS_SIZE);
  /** 32-bit halves: register r's low half is u32[2*r], its high half u32[2*r+1]. */
  readonly u32 = new Uint32Array(this.raw.buffer);
  /** Pointer to {@link raw} for FFI, made once. */
  readonly pointer: Deno.PointerObject = Deno.UnsafePointer.of(this.raw)!;
  /** Set when a value changed since the last SETREGS. */
  dirty = false;

  /** Low 32 bits of register slot `r` (an index from REG). */
  get32(r: number): number {
    return this.u32[2 * r];
  }

  /** Sets register slot `r` to a zero-extended 32-bit value. */
  set32(r: number, value: number): void {
    this.u32[2 * r] = value >>> 0;
    this.u32[2 * r + 1] = 0;
    this.dirty = true;
  }

  /** A register slot as a 64-bit BigInt (for reports and the 64-bit paths). */
  get64(r: number): bigint {
    return (BigInt(this.u32[2 * r + 1]) << 32n) | BigInt(this.u32[2 * r]);
  }

  /** Sets a register slot from a 64-bit BigInt. */
  set64(r: number, value: bigint): void {
    const v = BigInt.asUintN(64, value);
    this.u32[2 * r] = Number(v & 0xffffffffn);
    this.u32[2 * r + 1] = Number(v >> 32n);
    this.dirty = true;
  }

  /** General register `n` (0 = eax … 7 = edi, ModRM order), low 32 bits. */
  gpr(n: number): number {
    return this.u32[2 * GPR_SLOT[n]];
  }

  /** Writes general register `n` (ModRM order) with a zero-extended 32-bit value. */
  setGpr(n: number, value: number): void {
    this.set32(GPR_SLOT[n], value);
  }

  /** High 32 bits of general register `n` (ModRM order, 0..15). */
  gprHigh(n: number): number {
    return this.u32[2 * GPR_SLOT[n] + 1];
  }

  /** Writes both halves of general register `n`. */
  setGpr64(n: number, low: number, high: number): void {
    const r = GPR_SLOT[n];
    this.u32[2 * r] = low >>> 0;
    this.u32[2 * r + 1] = high >>> 0;
    this.dirty = true;
  }

  /** The high half of rip (zero for code below 4 GiB). */
  get ripHigh(): number {
    return this.u32[2 * REG.rip + 1];
  }
  set ripHigh(v: number) {
    this.u32[2 * REG.rip + 1] = v >>> 0;
    this.dirty = true;
  }

  /** Sets the host fs or gs base (sreg 4 or 5), which 64-bit guest code uses natively. */
  setSegmentBase(sreg: number, low: number, high: number): void {
    const r = sreg === 4 ? REG.fs_base : REG.gs_base;
    this.u32[2 * r] = low >>> 0;
    this.u32[2 * r + 1] = high >>> 0;
    this.dirty = true;
  }

  /** Copies all registers from another file. */
  copyFrom(other: RegisterFile): void {
    this.raw.set(other.raw);
    this.dirty = true;
  }

  /** The instruction pointer (low 32 bits; a 32-bit guest never has a high half). */
  get eip(): number {
    return this.u32[2 * REG.rip];
  }
  set eip(v: number) {
    this.set32(REG.rip, v);
  }
  /** Host EFLAGS (low 32 bits). */
  get eflags(): number {
    return this.u32[2 * REG.eflags];
  }
  set eflags(v: number) {
    this.set32(REG.eflags, v);
  }

  /** Sets the host selector of segment register `sreg` (0 = es, 1 = cs, 2 = ss, 3 = ds, 4 = fs, 5 = gs). */
  setHostSelector(sreg: number, selector: number): void {
    this.set32(SREG_SLOT[sreg], selector);
  }

  /** The host selector in segment register `sreg` (same numbering as setHostSelector). */
  hostSelector(sreg: number): number {
    return this.u32[2 * SREG_SLOT[sreg]] & 0xffff;
  }

  /** Whether rip lies above 4 GiB (host code such as the stub or the vDSO). */
  get ripAbove4G(): boolean {
    return this.u32[2 * REG.rip + 1] !== 0;
  }
}
