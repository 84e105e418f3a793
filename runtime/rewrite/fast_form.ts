/**
 * The fast form of the static rewriter: cli, sti, pushf and popf (and reads of segment registers
 * into registers or onto the stack) become a `jmp rel32` into a
 * per-window trampoline in the stub window ({@link STUB_WINDOW}) that keeps the virtual IF in
 * the vCPU page ({@link VCPU_PAGE}) natively, without a tracer round trip. Only when IF becomes
 * 1 while the runtime has flagged a pending interrupt (or the virtual CPL is not 0) does a
 * trampoline take its slow path: an `int3` whose side-table entry is the original instruction,
 * emulated by the trap-form code, resuming right after the `int3`.
 *
 * The instructions are one byte long, so the 5-byte jump displaces neighbours, E9Patch/Detours
 * style: a *window* of whole instructions on proven boundaries, starting at the site or up to
 * three instructions before it, at least 5 bytes long, no known branch target strictly inside
 * it, made only of instructions that can run elsewhere: plain ones (unclassified, falling
 * through), other fast-form sites, direct jumps and conditional jumps (re-targeted by iced-x86's
 * BlockEncoder), returns, and direct calls, which end a window as `push $next; jmp target`, so
 * the callee sees (and returns to) the original return address. The window's first 5 bytes become the jump, the rest `int3`. The trampoline runs
 * the window's instructions in order, then jumps back to the window's end.
 *
 * A sti keeps its one-instruction interrupt shadow: it is never the last instruction of its
 * window, and the trampoline range from its pending check's jump to the end of the instruction
 * after it is reported as a shadow range, in which the runtime single-steps instead of
 * delivering (so a stop there delivers neither early nor late). `sti; hlt`
 * (the idle loop's race-free wait) stays in trap form.
 *
 * Sequences (P = the vCPU page; arithmetic flags are preserved with pushfl/popfl around anything
 * that clobbers them; docs/design/2026-11-21-fast-form.md):
 *
 * ```text
 * pushf: pushfl; pushfl; push %eax; mov P.flags,%eax; andl $~0x3200,8(%esp); orl %eax,8(%esp);
 *        incl P.fast; pop %eax; popfl
 * popf:  cmpl $0,P.cpl; jne slow; push %eax; mov 4(%esp),%eax; and $0x3200,%eax;
 *        mov %eax,P.flags; incl P.fast; test $0x200,%eax; jz 1f; cmpl $0,P.pending; jne 2f
 *     1: andl $GUEST_OWNED,4(%esp); pop %eax; popfl; jmp done
 *     2: pop %eax; slow: int3 (popfl)
 * mov %sreg,%reg: mov P.sel[sreg],%reg      push %sreg: pushl P.sel[sreg]   (no slow path)
 * cli:   pushfl; cmpl $0,P.cpl; jne 1f; andl $~0x200,P.flags; incl P.fast; popfl; jmp done;
 *     1: popfl; int3 (cli)
 * sti:   pushfl; cmpl $0,P.cpl; jne 1f; cmpl $0,P.pending; jne 1f; orl $0x200,P.flags;
 *        incl P.fast; popfl; jmp done; 1: popfl; int3 (sti)
 * ```
 *
 * @module
 */

import iced from "iced-x86";
import {
  STUB_CODE_ADDRESS,
  VCPU_FLAG_BITS,
  VCPU_PAGE,
  VCPU_PAGE_ADDRESS,
} from "../cpu/vcpu_page.ts";

const { BlockEncoder, BlockEncoderOptions, Decoder, DecoderOptions, FlowControl, OpKind } = iced;

/** The instructions the fast form handles, by their one-byte 32-bit encodings. */
export const FAST_OPCODES: Readonly<Record<number, FastKind>> = Object.freeze({
  0xfa: "cli",
  0xfb: "sti",
  0x9c: "pushf",
  0x9d: "popf",
});

/**
 * An instruction the fast form handles: the IF instructions, and reads of a segment register
 * into a general register or onto the stack (`mov %sreg,%r32`/`%r16`, `push %sreg`), served
 * from the selectors in the vCPU page.
 */
export type FastKind = "cli" | "sti" | "pushf" | "popf" | "mov-sreg" | "push-sreg";

/** The normalised mnemonics (classify.ts) whose sites may take the fast form. */
export const FAST_MNEMONICS: ReadonlySet<string> = new Set([
  "cli",
  "sti",
  "pushf",
  "popf",
  "mov %sreg,r/m",
  "push %sreg",
]);

/** One-byte pushes of a segment register, 32-bit operand size: opcode → SREG index. */
const PUSH_SREG_1: Readonly<Record<number, number>> = { 0x06: 0, 0x0e: 1, 0x16: 2, 0x1e: 3 };
/** `0f xx` pushes of fs and gs. */
const PUSH_SREG_0F: Readonly<Record<number, number>> = { 0xa0: 4, 0xa8: 5 };

/**
 * The fast kind of a 32-bit instruction's bytes, or undefined when the trampolines do not
 * implement that encoding (it stays in trap form).
 *
 * @param bytes the whole instruction
 * @returns its kind
 */
export function fastKindOf(bytes: Uint8Array): FastKind | undefined {
  if (bytes.length === 1) {
    if (bytes[0] in FAST_OPCODES) return FAST_OPCODES[bytes[0]];
    if (bytes[0] in PUSH_SREG_1) return "push-sreg";
    return undefined;
  }
  if (bytes.length === 2 && bytes[0] === 0x0f && bytes[1] in PUSH_SREG_0F) return "push-sreg";
  const m = bytes.length === 2 && bytes[0] === 0x8c
    ? bytes[1]
    : bytes.length === 3 && bytes[0] === 0x66 && bytes[1] === 0x8c
    ? bytes[2]
    : -1;
  // Register destination only, and a real segment register (6 and 7 are invalid).
  if (m >= 0xc0 && ((m >> 3) & 7) <= 5) return "mov-sreg";
  return undefined;
}

/** Bytes of the jump patched over a window. */
export const JUMP_BYTES = 5;
/** How many instructions before a site a window may start. */
const MAX_BACK = 3;
const JMP_REL32 = 0xe9;
const INT3 = 0xcc;
/** EFLAGS bits a guest popf may set natively in the host (the emulator's GUEST_OWNED_FLAGS). */
const GUEST_OWNED_FLAGS = 0x1 | 0x4 | 0x10 | 0x40 | 0x80 | 0x400 | 0x800 | 0x40000;

/** One instruction of a swept, proven region, as the planner sees it. */
export interface WindowInstruction {
  vaddr: number;
  length: number;
  /** The fast kind when it is a fast-form site. */
  fast?: FastKind;
}

/** A planned window: whole instructions from `start` to `end`. */
export interface PlannedWindow {
  start: number;
  end: number;
  instructions: WindowInstruction[];
}

/** What the planner needs to know about the code around a site. */
export interface PlanContext {
  /** Instruction starts of the region, ascending. */
  starts: number[];
  /** Their lengths. */
  lengths: number[];
  /** Up to 15 original bytes at an address of the region. */
  bytesAt(vaddr: number, n: number): Uint8Array;
  /** The fast kind of the site at an address, if it is a fast-form site of this policy. */
  fastAt(vaddr: number): FastKind | undefined;
  /** The kind of a classified instruction at an address that is not a fast-form site. */
  classifiedAt(vaddr: number): string | undefined;
  /** Why the instruction at an address is not on a proven boundary, or undefined when it is. */
  unproven(vaddr: number, length: number): string | undefined;
  /** Whether a known branch target lies in `[from, to)`. */
  targetIn(from: number, to: number): boolean;
  /** Whether an address is already inside a planned window. */
  taken(vaddr: number): boolean;
}

type Role = "fast" | "plain" | "branch" | "end" | { refuse: string };

const hex = (n: number) => `0x${n.toString(16)}`;

/** Decides how an instruction can be displaced. Holds a reusable decoder instruction. */
class Roles {
  readonly #instr = new iced.Instruction();
  constructor(private readonly ctx: PlanContext) {}

  of(vaddr: number, length: number): Role {
    if (this.ctx.fastAt(vaddr) !== undefined) return "fast";
    const kind = this.ctx.classifiedAt(vaddr);
    if (kind !== undefined) return { refuse: `${kind} at ${hex(vaddr)} stays where it is` };
    const bytes = this.ctx.bytesAt(vaddr, length);
    const d = new Decoder(32, bytes, DecoderOptions.None);
    try {
      d.ip = BigInt(vaddr);
      d.decodeOut(this.#instr);
    } finally {
      d.free();
    }
    const i = this.#instr;
    if (i.isInvalid || i.length !== length) return { refuse: `no instruction at ${hex(vaddr)}` };
    const flow = i.flowControl;
    const near = i.op0Kind === OpKind.NearBranch32 || i.op0Kind === OpKind.NearBranch16;
    if (flow === FlowControl.Next) {
      return "plain";
    }
    if (flow === FlowControl.ConditionalBranch && near) return "branch";
    if (flow === FlowControl.UnconditionalBranch && near) return "end";
    if (flow === FlowControl.Return) return "end";
    // A direct call moves as `push $next; jmp target`: the callee sees the original return
    // address and returns to the original code after the window.
    if (flow === FlowControl.Call && i.op0Kind === OpKind.NearBranch32) return "end";
    return { refuse: `${flowName(flow)} at ${hex(vaddr)} cannot be displaced` };
  }

  free(): void {
    this.#instr.free();
  }
}

function flowName(flow: number): string {
  return ({
    [FlowControl.Call]: "a call",
    [FlowControl.IndirectCall]: "an indirect call",
    [FlowControl.IndirectBranch]: "an indirect jump",
    [FlowControl.Interrupt]: "an interrupt instruction",
    [FlowControl.XbeginXabortXend]: "a transaction instruction",
  } as Record<number, string>)[flow] ?? "a control transfer";
}

/**
 * Plans the window for the fast-form site at `ctx.starts[index]`.
 *
 * @returns the window, or why there is none (the site then stays in trap form)
 */
export function planWindow(
  ctx: PlanContext,
  index: number,
): { window: PlannedWindow } | { reason: string; detail: string } {
  const roles = new Roles(ctx);
  try {
    const site = ctx.starts[index];
    let firstRefusal: { reason: string; detail: string } | undefined;
    for (let back = 0; back <= MAX_BACK && index - back >= 0; back++) {
      const from = index - back;
      if (back > 0) {
        // Each step back must be contiguous and an instruction that may start a window.
        const a = ctx.starts[from];
        if (a + ctx.lengths[from] !== ctx.starts[from + 1] || ctx.taken(a)) break;
        const role = roles.of(a, ctx.lengths[from]);
        if (role !== "plain" && role !== "fast") break;
      }
      const r = tryWindow(ctx, roles, from, site);
      if ("window" in r) return r;
      firstRefusal ??= r;
    }
    return firstRefusal!;
  } finally {
    roles.free();
  }
}

function tryWindow(
  ctx: PlanContext,
  roles: Roles,
  from: number,
  site: number,
): { window: PlannedWindow } | { reason: string; detail: string } {
  const start = ctx.starts[from];
  const out: WindowInstruction[] = [];
  let end = start;
  let needAfterSti = false;
  for (let j = from;; j++) {
    if (end - start >= JUMP_BYTES && end > site && !needAfterSti) break;
    if (j >= ctx.starts.length || ctx.starts[j] !== end) {
      return { reason: "too-short", detail: `the code after ${hex(start)} ends before 5 bytes` };
    }
    const vaddr = ctx.starts[j];
    const length = ctx.lengths[j];
    if (ctx.taken(vaddr)) {
      return { reason: "overlap", detail: `${hex(vaddr)} is already in another window` };
    }
    const why = ctx.unproven(vaddr, length);
    if (why !== undefined) return { reason: "unproven-neighbour", detail: why };
    if (vaddr !== start && ctx.targetIn(vaddr, vaddr + 1)) {
      return {
        reason: "branch-target-inside",
        detail: `${hex(vaddr)}, inside the 5 bytes a jump at ${
          hex(start)
        } needs, is a branch target`,
      };
    }
    const role = roles.of(vaddr, length);
    if (typeof role === "object") {
      return {
        reason: needAfterSti ? "sti-shadow" : "not-displaceable",
        detail: needAfterSti
          ? `the instruction after sti must move with it (its interrupt shadow): ${role.refuse}`
          : role.refuse,
      };
    }
    const fast = ctx.fastAt(vaddr);
    out.push(fast === undefined ? { vaddr, length } : { vaddr, length, fast });
    end = vaddr + length;
    needAfterSti = fast === "sti";
    if (role === "end") {
      if (needAfterSti || end - start < JUMP_BYTES || end <= site) {
        return {
          reason: "too-short",
          detail: `the jump or return at ${hex(vaddr)} ends the window before 5 bytes`,
        };
      }
      break;
    }
  }
  return { window: { start, end, instructions: out } };
}

/** A slow path in the trampoline area: an int3 standing for a site's original instruction. */
export interface SlowPath {
  /** Address of the int3. */
  vaddr: number;
  /** The original instruction's address in the image. */
  site: number;
  /** Its kind. */
  kind: FastKind;
  /** Its byte (the original instruction). */
  byte: number;
}

/** A window's trampoline, as emitted. */
export interface BuiltTrampoline {
  /** Address of the trampoline's first byte. */
  address: number;
  /** The bytes to put over the window: the jump, then int3s. */
  patch: Uint8Array;
}

/** The stub area for a set of windows. */
export interface StubArea {
  /** Trampoline code, to be mapped at {@link STUB_CODE_ADDRESS}. */
  code: Uint8Array;
  trampolines: BuiltTrampoline[];
  slowPaths: SlowPath[];
  /** `[from, to)` ranges after a sti's IF store where an interrupt must wait (the shadow). */
  shadows: [number, number][];
}

/** A little assembler with rel8 labels, for the fixed sequences. */
class Asm {
  readonly bytes: number[] = [];
  readonly #fixups: { at: number; label: string }[] = [];
  readonly #labels = new Map<string, number>();
  constructor(readonly base: number) {}
  get here(): number {
    return this.base + this.bytes.length;
  }
  emit(...b: number[]): this {
    this.bytes.push(...b);
    return this;
  }
  u32(v: number): this {
    return this.emit(v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, (v >>> 24) & 0xff);
  }
  label(name: string): this {
    this.#labels.set(name, this.bytes.length);
    return this;
  }
  /** A short jump (opcode 0x70-0x7f or 0xeb) to a label. */
  jump8(opcode: number, label: string): this {
    this.emit(opcode, 0);
    this.#fixups.push({ at: this.bytes.length - 1, label });
    return this;
  }
  resolve(): void {
    for (const f of this.#fixups) {
      const to = this.#labels.get(f.label);
      if (to === undefined) throw new Error(`fast form: label ${f.label} undefined`);
      const rel = to - (f.at + 1);
      if (rel < -128 || rel > 127) throw new Error(`fast form: label ${f.label} out of rel8 reach`);
      this.bytes[f.at] = rel & 0xff;
    }
    this.#fixups.length = 0;
  }
}

const P_FLAGS = VCPU_PAGE_ADDRESS + VCPU_PAGE.FLAGS;
const P_PENDING = VCPU_PAGE_ADDRESS + VCPU_PAGE.PENDING;
const P_CPL = VCPU_PAGE_ADDRESS + VCPU_PAGE.CPL;
const P_FAST = VCPU_PAGE_ADDRESS + VCPU_PAGE.FAST_RUNS;
const P_SELECTORS = VCPU_PAGE_ADDRESS + VCPU_PAGE.SELECTORS;
const IF = VCPU_FLAG_BITS.IF;
const IF_IOPL = VCPU_FLAG_BITS.IF | VCPU_FLAG_BITS.IOPL;

const PUSHFL = 0x9c;
const POPFL = 0x9d;
const JNE8 = 0x75;
const JZ8 = 0x74;
const JMP8 = 0xeb;

function cmpZero(a: Asm, addr: number): void {
  a.emit(0x83, 0x3d).u32(addr).emit(0); // cmpl $0, addr
}
function incFast(a: Asm): void {
  a.emit(0xff, 0x05).u32(P_FAST); // incl P.fast
}

/**
 * Emits the sequence of one fast site. Returns the int3's address (if the kind has a slow
 * path) and, for sti, where its shadow starts. The sequence ends at label "done", which the
 * caller places after it.
 */
function emitSequence(
  a: Asm,
  kind: FastKind,
  bytes: Uint8Array,
): { int3?: number; shadowFrom?: number } {
  switch (kind) {
    case "push-sreg": {
      const sreg = bytes.length === 1 ? PUSH_SREG_1[bytes[0]] : PUSH_SREG_0F[bytes[1]];
      a.emit(0xff, 0x35).u32(P_SELECTORS + 4 * sreg); // pushl P.selectors[sreg]
      return {};
    }
    case "mov-sreg": {
      const m = bytes[bytes.length - 1];
      const sreg = (m >> 3) & 7;
      if (bytes.length === 3) a.emit(0x66); // 16-bit destination: only its low half is written
      a.emit(0x8b, 0x05 | ((m & 7) << 3)).u32(P_SELECTORS + 4 * sreg); // mov P.sel, %reg
      return {};
    }
    case "pushf":
      a.emit(PUSHFL, PUSHFL, 0x50); // result slot; saved flags; push %eax
      a.emit(0xa1).u32(P_FLAGS); // mov P.flags, %eax
      a.emit(0x81, 0x64, 0x24, 0x08).u32(~IF_IOPL >>> 0); // andl $~(IF|IOPL), 8(%esp)
      a.emit(0x09, 0x44, 0x24, 0x08); // orl %eax, 8(%esp)
      incFast(a);
      a.emit(0x58, POPFL); // pop %eax; popfl
      return {};
    case "popf": {
      cmpZero(a, P_CPL);
      a.jump8(JNE8, "slow");
      a.emit(0x50); // push %eax
      a.emit(0x8b, 0x44, 0x24, 0x04); // mov 4(%esp), %eax
      a.emit(0x25).u32(IF_IOPL); // and $0x3200, %eax
      a.emit(0xa3).u32(P_FLAGS); // mov %eax, P.flags
      incFast(a);
      a.emit(0xa9).u32(IF); // test $0x200, %eax
      a.jump8(JZ8, "native");
      cmpZero(a, P_PENDING);
      a.jump8(JNE8, "slowpop");
      a.label("native");
      a.emit(0x81, 0x64, 0x24, 0x04).u32(GUEST_OWNED_FLAGS | 2); // andl $owned, 4(%esp)
      a.emit(0x58, POPFL); // pop %eax; popfl
      a.jump8(JMP8, "done");
      a.label("slowpop").emit(0x58); // pop %eax
      a.label("slow");
      const int3 = a.here;
      a.emit(INT3);
      return { int3 };
    }
    case "cli": {
      a.emit(PUSHFL);
      cmpZero(a, P_CPL);
      a.jump8(JNE8, "slow");
      a.emit(0x81, 0x25).u32(P_FLAGS).u32(~IF >>> 0); // andl $~IF, P.flags
      incFast(a);
      a.emit(POPFL);
      a.jump8(JMP8, "done");
      a.label("slow").emit(POPFL);
      const int3 = a.here;
      a.emit(INT3);
      return { int3 };
    }
    case "sti": {
      a.emit(PUSHFL);
      cmpZero(a, P_CPL);
      a.jump8(JNE8, "slow");
      cmpZero(a, P_PENDING);
      // From the jne on, a pending flag the runtime sets would no longer be seen: a stop there
      // steps on through the instruction after sti (the shadow range) before delivering.
      const shadowFrom = a.here;
      a.jump8(JNE8, "slow");
      a.emit(0x81, 0x0d).u32(P_FLAGS).u32(IF); // orl $IF, P.flags
      incFast(a);
      a.emit(POPFL);
      a.jump8(JMP8, "done");
      a.label("slow").emit(POPFL);
      const int3 = a.here;
      a.emit(INT3);
      return { int3, shadowFrom };
    }
  }
}

/**
 * Emits the trampolines of `windows` (ascending, not overlapping) into one stub area.
 *
 * @param windows planned windows
 * @param bytesAt the original bytes at an image address
 * @param codeBase where the code will be mapped (default {@link STUB_CODE_ADDRESS})
 * @returns the code, each window's patch, the slow paths and the sti shadow ranges
 * @throws {Error} when iced-x86 cannot relocate an instruction (a bug: planning admits only
 *   relocatable ones)
 */
export function buildStubArea(
  windows: PlannedWindow[],
  bytesAt: (vaddr: number, n: number) => Uint8Array,
  codeBase = STUB_CODE_ADDRESS,
): StubArea {
  const code: number[] = [];
  const trampolines: BuiltTrampoline[] = [];
  const slowPaths: SlowPath[] = [];
  const shadows: [number, number][] = [];
  const instr = new iced.Instruction();
  try {
    for (const w of windows) {
      // Trampolines start 16-byte aligned, for readable addresses in reports.
      while (code.length % 16 !== 0) code.push(INT3);
      const address = codeBase + code.length;
      let openShadow: number | undefined;
      let terminated = false;
      for (const ins of w.instructions) {
        const at = codeBase + code.length;
        if (ins.fast !== undefined) {
          const a = new Asm(at);
          const r = emitSequence(a, ins.fast, bytesAt(ins.vaddr, ins.length));
          a.label("done");
          a.resolve();
          code.push(...a.bytes);
          if (r.int3 !== undefined) {
            slowPaths.push({
              vaddr: r.int3,
              site: ins.vaddr,
              kind: ins.fast,
              byte: bytesAt(ins.vaddr, 1)[0],
            });
          }
          if (openShadow !== undefined) shadows.push([openShadow, codeBase + code.length]);
          openShadow = r.shadowFrom;
          continue;
        }
        const bytes = bytesAt(ins.vaddr, ins.length);
        const d = new Decoder(32, bytes, DecoderOptions.None);
        try {
          d.ip = BigInt(ins.vaddr);
          d.decodeOut(instr);
        } finally {
          d.free();
        }
        if (instr.flowControl === FlowControl.Call) {
          // push $return; jmp target (the planner puts a call last in its window).
          const next = ins.vaddr + ins.length;
          const target = Number(instr.nearBranchTarget);
          code.push(0x68, ...le32(next >>> 0));
          code.push(JMP_REL32, ...le32((target - (at + 5 + JUMP_BYTES)) >>> 0));
          terminated = true;
        } else {
          const be = new BlockEncoder(32, BlockEncoderOptions.None);
          let out: Uint8Array;
          try {
            be.add(instr);
            out = be.encode(BigInt(at));
          } finally {
            be.free();
          }
          code.push(...out);
          terminated = instr.flowControl === FlowControl.Return ||
            instr.flowControl === FlowControl.UnconditionalBranch;
        }
        if (openShadow !== undefined) shadows.push([openShadow, codeBase + code.length]);
        openShadow = undefined;
      }
      if (openShadow !== undefined) throw new Error("fast form: sti ends its window");
      if (!terminated) {
        const at = codeBase + code.length;
        code.push(JMP_REL32, ...le32((w.end - (at + JUMP_BYTES)) >>> 0));
      }
      const patch = new Uint8Array(w.end - w.start).fill(INT3);
      patch.set([JMP_REL32, ...le32((address - (w.start + JUMP_BYTES)) >>> 0)]);
      trampolines.push({ address, patch });
    }
  } finally {
    instr.free();
  }
  return { code: Uint8Array.from(code), trampolines, slowPaths, shadows };
}

function le32(v: number): number[] {
  return [v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, (v >>> 24) & 0xff];
}
