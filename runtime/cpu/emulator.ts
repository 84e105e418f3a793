/**
 * The partial emulator: guest code runs natively; this handles only what trapped.
 *
 * On a trap the instruction at EIP is decoded (iced-x86) and either emulated against the
 * virtual CPU state, after which the guest resumes after it, or turned into the exception a
 * ring-0 CPU would raise and delivered through the guest's own IDT. What it cannot emulate ends
 * the run with a {@link Fatal} naming the instruction, so a run never hangs on the unknown.
 *
 * @module
 */
import iced from "iced-x86";
import {
  type DecodedInstruction,
  DecodeError,
  hexBytes,
  InstructionDecoder,
  Mnemonic,
  OpKind,
  type RegisterInfo,
  registerInfo,
} from "./decoder.ts";
import {
  decodeDescriptor,
  decodeGate,
  type Descriptor,
  isCode,
  isFlat,
  isReadable,
  isWritableData,
} from "./descriptors.ts";
import {
  type CpuRegisters,
  GuestMemoryError,
  GuestPageFault,
  type LinearMemory,
  type MmioAccess,
  type PortIo,
} from "./interfaces.ts";
import type { VcpuState } from "./vcpu_state.ts";
import { cpuid, type CpuModel, RING3_CPU } from "./cpu_model.ts";
import {
  CR4,
  decodeGate64,
  EFER,
  EFER_WRITABLE,
  isLowHalf,
  join64,
  split64,
  SYSTEM_TYPE64,
  tss64StackOffset,
} from "./long_mode.ts";
import {
  CR0,
  hasErrorCode,
  isContributory,
  MSR,
  SREG,
  SREG_NAMES,
  SYSTEM_TYPE,
  VECTOR,
  VECTOR_NAMES,
} from "./x86.ts";

const { Code } = iced;

/** What the machine does after the emulator handled a trap. */
export const Exit = {
  /** Resume the guest. */
  Resume: 0,
  /** The guest executed hlt: wait for an interrupt. */
  Halt: 1,
  /** The run cannot go on; see {@link Emulator.fatal}. */
  Fatal: 2,
} as const;
/** One of {@link Exit}'s values. */
export type Exit = typeof Exit[keyof typeof Exit];

/** Classes of run-ending conditions the emulator detects. */
export type FatalKind =
  | "unsupported-instruction"
  | "invalid-instruction"
  | "unsupported-mode"
  | "triple-fault"
  | "exception-storm"
  | "unmapped-memory"
  | "host-syscall";

/** A condition that ends the run, with what is known about the instruction behind it. */
export class Fatal extends Error {
  override name = "Fatal";
  /**
   * @param kind the class of failure
   * @param message what happened, concretely
   * @param instruction the instruction involved, if any
   */
  constructor(
    readonly kind: FatalKind,
    message: string,
    readonly instruction?: { bytes: string; text: string },
  ) {
    super(message);
  }
}

/** An exception the guest CPU raises, to be delivered through the guest IDT. */
class GuestException {
  constructor(readonly vector: number, readonly errorCode: number | null) {}
}

const EFLAGS_IF = 1 << 9;
const EFLAGS_IOPL = 3 << 12;
const EFLAGS_TF = 1 << 8;
const EFLAGS_NT = 1 << 14;
const EFLAGS_RF = 1 << 16;
const EFLAGS_VM = 1 << 17;
// Flags a user process may set through ptrace (arch/x86/kernel/ptrace.c FLAG_MASK) that the
// guest owns outright. TF is left out: single-stepping the host would need #DB emulation.
const GUEST_OWNED_FLAGS = 0x1 | 0x4 | 0x10 | 0x40 | 0x80 | 0x400 | 0x800 | 0x40000;

/** Host signals the emulator interprets (numbers as in Linux). */
const SIGNAL = { ILL: 4, TRAP: 5, BUS: 7, FPE: 8, SEGV: 11 } as const;
const SI_KERNEL = 0x80;

/** The parts of siginfo the emulator may need for a fault. */
export interface FaultInfo {
  code: number;
  /** si_addr, low 32 bits. */
  addr: number;
  addrAbove4G: boolean;
}

// Instructions that raise #GP at CPL 3 before any memory access of theirs.
const PRIVILEGED = new Set<number>([
  Mnemonic.In,
  Mnemonic.Out,
  Mnemonic.Insb,
  Mnemonic.Insw,
  Mnemonic.Insd,
  Mnemonic.Outsb,
  Mnemonic.Outsw,
  Mnemonic.Outsd,
  Mnemonic.Cli,
  Mnemonic.Sti,
  Mnemonic.Hlt,
  Mnemonic.Lgdt,
  Mnemonic.Lidt,
  Mnemonic.Lldt,
  Mnemonic.Ltr,
  Mnemonic.Clts,
  Mnemonic.Lmsw,
  Mnemonic.Invlpg,
  Mnemonic.Wbinvd,
  Mnemonic.Invd,
  Mnemonic.Rdmsr,
  Mnemonic.Wrmsr,
  Mnemonic.Sysret,
  Mnemonic.Sysretq,
  Mnemonic.Sysexit,
  Mnemonic.Sysexitq,
]);

/** Where the machine is told to put a host selector standing in for a guest one. */
export interface HostSegments {
  /** Sets the host selector for segment register `sreg` (SREG numbering). */
  setHostSelector(sreg: number, selector: number): void;
  /** The host selector in segment register `sreg`. */
  hostSelector(sreg: number): number;
  /** Sets the host fs (4) or gs (5) base, which 64-bit guest code uses natively. */
  setSegmentBase(sreg: number, low: number, high: number): void;
}

/** An instruction the static rewriter replaced with int3 (the trap form). */
export interface PatchSite {
  /** The original instruction's bytes. */
  bytes: Uint8Array;
  /** 16, 32 or 64. */
  bitness: number;
}

/** Options of an {@link Emulator}. */
export interface EmulatorOptions {
  /** The smallest guest-physical address the host lets the guest process map (vm.mmap_min_addr). */
  lowestMappedAddress?: number;
  /** Guest time in nanoseconds, for the virtual TSC. Default: always 0. */
  guestTimeNs?: () => number;
  /** The CPU model CPUID reports. Default {@link RING3_CPU}. */
  cpuModel?: CpuModel;
  /** Rewritten sites, keyed by the address the guest executes them at. */
  patches?: ReadonlyMap<number, PatchSite>;
  /** Called when the virtual CPL changes (the machine switches host address spaces on it). */
  onPrivilegeChange?: (cpl: number) => void;
  /**
   * Whether the machine mirrors guest paging (CR0.PG) into host mappings. Without it, enabling
   * paging ends the run as unsupported.
   */
  paging?: boolean;
  /**
   * Called when guest translations may have changed: CR3 or paging control bits written (drop
   * all shadow mappings), or invlpg (drop one page). The TLB contract: the guest must do one of
   * these after changing a page-table entry, and ring3's shadow mappings rely on it.
   */
  onTranslationChange?: (linear: number | null) => void;
  /** Device memory: accesses that fault on a claimed physical address are emulated. */
  mmio?: MmioAccess;
  /**
   * Identical consecutive exceptions (same vector, same instruction) that end the run as an
   * exception storm. Default {@link EXCEPTION_STORM_LIMIT}.
   */
  exceptionStormLimit?: number;
}

/** The partial emulator of one vCPU. */
export class Emulator {
  /** Why the run must end, after an {@link Exit.Fatal}. */
  fatal: Fatal | null = null;
  /** Traps handled, by cause ("out", "in", "#UD", "int 0x80", …). */
  readonly trapCounts = new Map<string, number>();
  readonly decoder = new InstructionDecoder();
  #regs!: CpuRegisters & HostSegments;
  readonly #fetch: (addr: number, into: Uint8Array) => number;
  readonly #lowest: number;
  readonly #guestTimeNs: () => number;
  readonly #model: CpuModel;
  readonly #patches: ReadonlyMap<number, PatchSite>;
  readonly #onPrivilegeChange: (cpl: number) => void;
  readonly #paging: boolean;
  readonly #onTranslationChange: (linear: number | null) => void;
  readonly #mmio: MmioAccess | null;

  /**
   * @param state virtual CPU state
   * @param memory guest linear memory
   * @param io port I/O
   * @param options host facts
   */
  constructor(
    readonly state: VcpuState,
    private readonly memory: LinearMemory,
    private readonly io: PortIo,
    options: EmulatorOptions = {},
  ) {
    this.#fetch = (addr, into) => memory.fetch(addr, into);
    this.#lowest = options.lowestMappedAddress ?? 0;
    this.#guestTimeNs = options.guestTimeNs ?? (() => 0);
    this.#model = options.cpuModel ?? RING3_CPU;
    this.#patches = options.patches ?? new Map();
    this.#onPrivilegeChange = options.onPrivilegeChange ?? (() => {});
    this.#paging = options.paging ?? false;
    this.#onTranslationChange = options.onTranslationChange ?? (() => {});
    this.#mmio = options.mmio ?? null;
    this.#stormLimit = options.exceptionStormLimit ?? EXCEPTION_STORM_LIMIT;
  }

  #count(cause: string): void {
    this.trapCounts.set(cause, (this.trapCounts.get(cause) ?? 0) + 1);
  }

  /**
   * Handles a synchronous host signal raised by guest code.
   *
   * @param regs the guest registers at the stop
   * @param signal host signal number
   * @param siginfo reads the signal's si_code and si_addr; called only when needed, because a
   *   privileged instruction's #GP (the common trap) is recognised from the instruction alone
   * @returns what to do next
   */
  handleFault(
    regs: CpuRegisters & HostSegments,
    signal: number,
    siginfo: () => FaultInfo,
  ): Exit {
    this.#regs = regs;
    this.fatal = null;
    try {
      return this.#dispatchFault(signal, siginfo);
    } catch (e) {
      return this.#fail(e);
    }
  }

  /**
   * Handles a system call instruction annulled by SYSEMU. Only `int $0x80` can be returned
   * from (the host kernel reports the address after it); `syscall` and `sysenter` in compat
   * mode leave the return address in the host vDSO, so they end the run.
   *
   * @param regs guest registers (eax already holds -ENOSYS)
   * @param origEax the guest's eax when it made the call
   * @param ripAbove4G whether the host reported a return address outside the guest
   * @param origHigh high half of the guest's rax (64-bit mode)
   * @returns what to do next
   */
  handleSyscall(
    regs: CpuRegisters & HostSegments,
    origEax: number,
    ripAbove4G: boolean,
    origHigh = 0,
  ): Exit {
    this.#regs = regs;
    this.fatal = null;
    try {
      const eip = this.#rip();
      if (!ripAbove4G && eip >= 2 && this.#tryRead16(eip - 2) === 0x80cd) {
        this.#count("int 0x80");
        regs.setGpr64(0, origEax, origHigh);
        this.#raise(0x80, null, eip, true);
        return Exit.Resume;
      }
      if (this.state.code64 && isLowHalf(eip) && this.#tryRead16(eip - 2) === 0x050f) {
        // In 64-bit mode the host reports the address after the instruction, as the CPU
        // leaves it in rcx: the guest kernel's entry can return there.
        this.#count("syscall");
        regs.setGpr64(0, origEax, origHigh);
        this.#syscall64(eip);
        return Exit.Resume;
      }
      throw new Fatal(
        "host-syscall",
        `guest code executed a host system call instruction (syscall or sysenter, eax=${origEax}); ` +
          `ring3 annulled it (the host never ran it), but the return address is lost in compat ` +
          `mode, so the guest cannot continue. Rewrite the instruction or use int $0x80.`,
      );
    } catch (e) {
      return this.#fail(e);
    }
  }

  /**
   * Delivers a page fault the machine found while mirroring guest page tables (a host fault
   * on an address the guest's tables do not allow).
   *
   * @param regs guest registers
   * @param linear faulting linear address (CR2)
   * @param errorCode #PF error code
   * @returns what to do next
   */
  raisePageFault(regs: CpuRegisters & HostSegments, linear: number, errorCode: number): Exit {
    this.#regs = regs;
    this.fatal = null;
    try {
      this.#count("#PF");
      this.state.cr2 = linear;
      this.#raise(VECTOR.PF, errorCode, this.#rip(), false);
      return Exit.Resume;
    } catch (e) {
      return this.#fail(e);
    }
  }

  /**
   * Emulates a guest access to device memory that faulted (the machine found that the guest's
   * translation of the address leads to a device).
   *
   * @param regs guest registers
   * @param physical the device address accessed
   * @returns what to do next
   */
  emulateMmio(regs: CpuRegisters & HostSegments, physical: number): Exit {
    this.#regs = regs;
    this.fatal = null;
    try {
      return this.#emulateMmio(this.#rip(), physical);
    } catch (e) {
      return this.#fail(e);
    }
  }

  /**
   * One load or store to a device register: mov in its register, immediate and zero- or
   * sign-extending forms, which is what drivers' readl/writel compile to. Anything else on
   * device memory (a read-modify-write, a string instruction) ends the run with the
   * instruction named.
   */
  #emulateMmio(eip: number, physical: number): Exit {
    const d = this.decoder.decode(eip, this.#bits(), this.#fetch);
    const mmio = this.#mmio!;
    const next = this.#advance(eip, d.length);
    const size = MMIO_SIZE.get(d.code);
    if (size === undefined) {
      this.#unsupported(
        d,
        `this instruction on device memory at 0x${hex(physical)} is not emulated`,
      );
    }
    if (d.op0Kind === OpKind.Memory) {
      const value = d.op1Kind === OpKind.Register
        ? this.#readReg(registerInfo(d.op1Register))
        : d.immediate;
      this.#count("mmio write");
      mmio.write(physical, value & (size === 4 ? 0xffffffff : size === 2 ? 0xffff : 0xff), size);
    } else {
      this.#count("mmio read");
      let v = mmio.read(physical, size);
      if (d.mnemonic === Mnemonic.Movsx) v = size === 1 ? (v << 24) >> 24 : (v << 16) >> 16;
      this.#writeReg(registerInfo(d.op0Register), v >>> 0);
    }
    this.#setRip(next);
    return Exit.Resume;
  }

  /**
   * Whether the instruction at `eip` writes memory (ptrace does not say whether a host page
   * fault was a read or a write).
   *
   * @param eip instruction address
   * @returns true for a write, false for a read or when it cannot be decoded
   */
  writesMemoryAt(eip: number): boolean {
    return this.#tryDecode(eip)?.writesMemory ?? false;
  }

  /**
   * Delivers an external interrupt (from a virtual interrupt controller) now. The caller
   * checks that the virtual IF is set and there is no interrupt shadow.
   *
   * @param regs guest registers
   * @param vector interrupt vector
   * @returns what to do next
   */
  deliverExternal(regs: CpuRegisters & HostSegments, vector: number): Exit {
    this.#regs = regs;
    this.fatal = null;
    try {
      this.state.halted = false;
      this.#raise(vector, null, this.#rip(), false);
      return Exit.Resume;
    } catch (e) {
      return this.#fail(e);
    }
  }

  // ---- the instruction pointer and the stack pointer at the current width ----

  /** 64 in 64-bit mode, else 32 (compatibility and protected mode). */
  #bits(): 32 | 64 {
    return this.state.code64 ? 64 : 32;
  }

  /** The guest's instruction pointer (rip in 64-bit mode). */
  #rip(): number {
    const regs = this.#regs;
    return this.state.code64 ? join64(regs.eip, regs.ripHigh) : regs.eip;
  }

  #setRip(v: number): void {
    const regs = this.#regs;
    if (!this.state.code64) {
      regs.eip = v >>> 0;
      return;
    }
    const [lo, hi] = split64(v);
    regs.eip = lo;
    regs.ripHigh = hi;
  }

  #advance(ip: number, length: number): number {
    return this.state.code64 ? ip + length : (ip + length) >>> 0;
  }

  #sp(): number {
    const regs = this.#regs;
    return this.state.code64 ? join64(regs.gpr(4), regs.gprHigh(4)) : regs.gpr(4);
  }

  #setSp(v: number): void {
    if (!this.state.code64) {
      this.#regs.setGpr(4, v >>> 0);
      return;
    }
    const [lo, hi] = split64(v);
    this.#regs.setGpr64(4, lo, hi);
  }

  /** Reads 8 bytes as a number (exact for low-half addresses and small values). */
  #read64(addr: number): number {
    return join64(this.memory.read32(addr), this.memory.read32(addr + 4));
  }

  #write64(addr: number, v: number): void {
    const [lo, hi] = split64(v);
    // Both halves are translated before either is written, so a fault leaves memory unchanged.
    this.memory.read32(addr + 4);
    this.memory.write32(addr, lo);
    this.memory.write32(addr + 4, hi);
  }

  #push64(v: number): void {
    const sp = this.#sp() - 8;
    this.#write64(sp, v);
    this.#setSp(sp);
  }

  /** Pushes a return slot at the operand size of the code (8 bytes in 64-bit mode). */
  #pushSlot(v: number): void {
    if (this.state.code64) this.#push64(v);
    else this.#push32(v);
  }

  /** A page fault from an emulator access becomes the guest's #PF, with CR2 set. */
  #asGuestException(e: unknown): unknown {
    if (!(e instanceof GuestPageFault)) return e;
    this.state.cr2 = e.linear;
    return new GuestException(VECTOR.PF, e.errorCode);
  }

  /** Runs `fn` with memory accesses checked as supervisor accesses. */
  #supervisor<T>(fn: () => T): T {
    return this.memory.supervisor ? this.memory.supervisor(fn) : fn();
  }

  #fail(e0: unknown): Exit {
    const e = this.#asGuestException(e0);
    if (e instanceof GuestException) {
      // A fault outside any instruction's emulation (fetching the instruction itself).
      try {
        this.#raise(e.vector, e.errorCode, this.#rip(), false);
        return Exit.Resume;
      } catch (e2) {
        return this.#fail(e2);
      }
    }
    if (e instanceof Fatal) {
      this.fatal = e;
      return Exit.Fatal;
    }
    if (e instanceof GuestMemoryError) {
      this.fatal = new Fatal("unmapped-memory", `the emulator's ${e.message}`);
      return Exit.Fatal;
    }
    if (e instanceof DecodeError) {
      this.fatal = new Fatal("invalid-instruction", e.message, {
        bytes: hexBytes(e.bytes),
        text: "(invalid)",
      });
      return Exit.Fatal;
    }
    throw e;
  }

  #tryRead16(addr: number): number {
    try {
      return this.memory.read16(addr);
    } catch {
      return -1;
    }
  }

  #dispatchFault(signal: number, siginfo: () => FaultInfo): Exit {
    const eip = this.#rip();
    switch (signal) {
      case SIGNAL.SEGV: {
        // A privileged instruction faults (#GP) before it touches memory, so when one sits at
        // eip, the SIGSEGV is its #GP: no siginfo needed.
        const d = this.#tryDecode(eip);
        if (d !== null && PRIVILEGED.has(d.mnemonic)) return this.#emulateDecoded(d, eip);
        const { code, addr, addrAbove4G } = siginfo();
        if (code === SI_KERNEL) {
          if (this.#repairHostCodeSelectors()) return Exit.Resume;
          return this.#emulateAt(eip);
        }
        if (!addrAbove4G && this.#mmio?.claims(addr)) return this.#emulateMmio(eip, addr);
        this.#count("memory fault");
        if (addrAbove4G) {
          throw new Fatal(
            "unmapped-memory",
            `guest touched host address above 4 GiB at eip 0x${hex(eip)}`,
          );
        }
        if (addr < this.#lowest) {
          throw new Fatal(
            "unmapped-memory",
            `guest touched physical page 0x${hex(addr & ~0xfff)}, which this host does not let a ` +
              `process map (vm.mmap_min_addr=${this.#lowest}); run ring3 as root (CAP_SYS_RAWIO) or ` +
              `lower vm.mmap_min_addr`,
            this.#describeAt(eip),
          );
        }
        throw new Fatal(
          "unmapped-memory",
          `guest touched physical address 0x${hex(addr)}, which is not backed by RAM or a device`,
          this.#describeAt(eip),
        );
      }
      case SIGNAL.ILL:
        return this.#onInvalidOpcode(eip);
      case SIGNAL.FPE:
        this.#count("#DE");
        this.#raise(VECTOR.DE, null, eip, false);
        return Exit.Resume;
      case SIGNAL.TRAP: {
        // int3 stops after itself. At a rewritten site it stands for the original instruction.
        const site = (eip - 1) >>> 0;
        const patch = this.#patches.get(site);
        if (patch !== undefined) return this.#emulatePatched(site, patch);
        // The guest's own int3 or `int $3`: a #BP, returning after the instruction.
        this.#count("#BP");
        this.#raise(VECTOR.BP, null, eip, true);
        return Exit.Resume;
      }
      case SIGNAL.BUS:
        throw new Fatal(
          "unmapped-memory",
          `bus error at 0x${hex(siginfo().addr)}`,
          this.#describeAt(eip),
        );
      default:
        throw new Fatal(
          "unsupported-instruction",
          `unexpected host signal ${signal} at 0x${hex(eip)}`,
        );
    }
  }

  #describeAt(eip: number): { bytes: string; text: string } | undefined {
    try {
      const d = this.decoder.decode(eip, this.#bits(), this.#fetch);
      return { bytes: hexBytes(d.bytes), text: d.text };
    } catch {
      return undefined;
    }
  }

  #onInvalidOpcode(eip: number): Exit {
    let d: DecodedInstruction;
    try {
      d = this.decoder.decode(eip, this.#bits(), this.#fetch);
    } catch (e) {
      if (!(e instanceof DecodeError)) throw e;
      this.#count("#UD");
      this.#raise(VECTOR.UD, null, eip, false);
      return Exit.Resume;
    }
    if (d.mnemonic === Mnemonic.Sysenter) {
      // AMD raises #UD for sysenter in compat mode; the guest's CPU model decides instead.
      return this.#emulateDecoded(d, eip);
    }
    if (d.mnemonic === Mnemonic.Swapgs) return this.#emulateDecoded(d, eip);
    this.#count("#UD");
    this.#raise(VECTOR.UD, null, eip, false);
    return Exit.Resume;
  }

  #emulatePatched(site: number, patch: PatchSite): Exit {
    const bytes = patch.bytes;
    const d = this.decoder.decode(site, patch.bitness, (_addr, into) => {
      into.set(bytes.subarray(0, Math.min(bytes.length, into.length)));
      return bytes.length;
    });
    return this.#emulateDecoded(d, site);
  }

  /**
   * A guest load of selector 0x23 into a data segment register does not trap: on a Linux host
   * 0x23 is the host's own 32-bit code segment, so the load succeeds natively and the first
   * write through that register raises #GP. Here, on that #GP, the guest's own descriptor for
   * the selector is checked and the flat host data selector takes its place; the instruction
   * is then retried.
   *
   * @returns whether a register was repaired (resume without advancing)
   */
  #repairHostCodeSelectors(): boolean {
    const regs = this.#regs;
    let repaired = false;
    for (const sreg of [SREG.DS, SREG.ES, SREG.FS, SREG.GS]) {
      if (regs.hostSelector(sreg) !== HOST_CODE32_SELECTOR) continue;
      this.#count("lazy selector repair");
      try {
        this.#loadDataSegment(sreg, HOST_CODE32_SELECTOR);
      } catch (e) {
        if (!(e instanceof GuestException)) throw e;
        // The load itself should have faulted; the nearest honest point is here.
        this.#raise(e.vector, e.errorCode, this.#rip(), false);
      }
      repaired = true;
    }
    return repaired;
  }

  #tryDecode(eip: number): DecodedInstruction | null {
    try {
      return this.decoder.decode(eip, this.#bits(), this.#fetch);
    } catch {
      return null;
    }
  }

  /** Emulates the privileged instruction at eip that raised #GP in the host. */
  #emulateAt(eip: number): Exit {
    return this.#emulateDecoded(this.decoder.decode(eip, this.#bits(), this.#fetch), eip);
  }

  #emulateDecoded(d: DecodedInstruction, eip: number): Exit {
    try {
      return this.#emulate(d, eip);
    } catch (e0) {
      const e = this.#asGuestException(e0);
      if (e instanceof GuestException) {
        this.#raise(e.vector, e.errorCode, eip, false);
        return Exit.Resume;
      }
      if (e instanceof Fatal && !e.instruction) {
        throw new Fatal(e.kind, e.message, { bytes: hexBytes(d.bytes), text: d.text });
      }
      throw e;
    }
  }

  #unsupported(d: DecodedInstruction, why = "not emulated"): never {
    throw new Fatal(
      "unsupported-instruction",
      `${d.text} at 0x${hex(this.#rip())}: ${why}`,
      { bytes: hexBytes(d.bytes), text: d.text },
    );
  }

  #emulate(d: DecodedInstruction, eip: number): Exit {
    const regs = this.#regs;
    const state = this.state;
    const next = this.#advance(eip, d.length);
    switch (d.mnemonic) {
      case Mnemonic.Out: {
        this.#count("out");
        this.#checkIo();
        const port = d.op0Kind === OpKind.Immediate8 ? d.immediate : regs.gpr(2) & 0xffff;
        const r = registerInfo(d.op1Register);
        this.io.write(port, this.#readReg(r), r.size as 1 | 2 | 4);
        this.#setRip(next);
        return Exit.Resume;
      }
      case Mnemonic.In: {
        this.#count("in");
        this.#checkIo();
        const port = d.op1Kind === OpKind.Immediate8 ? d.immediate : regs.gpr(2) & 0xffff;
        const r = registerInfo(d.op0Register);
        this.#writeReg(r, this.io.read(port, r.size as 1 | 2 | 4));
        this.#setRip(next);
        return Exit.Resume;
      }
      case Mnemonic.Outsb:
      case Mnemonic.Outsw:
      case Mnemonic.Outsd:
      case Mnemonic.Insb:
      case Mnemonic.Insw:
      case Mnemonic.Insd:
        this.#count(Mnemonic[d.mnemonic].toLowerCase());
        this.#checkIo();
        this.#stringIo(d);
        this.#setRip(next);
        return Exit.Resume;
      case Mnemonic.Cli:
        this.#count("cli");
        this.#checkIopl();
        state.interruptFlag = false;
        this.#setRip(next);
        return Exit.Resume;
      case Mnemonic.Sti:
        this.#count("sti");
        this.#checkIopl();
        if (!state.interruptFlag) state.interruptShadow = true;
        state.interruptFlag = true;
        this.#setRip(next);
        return Exit.Resume;
      case Mnemonic.Hlt:
        this.#count("hlt");
        this.#checkCpl0();
        state.halted = true;
        this.#setRip(next);
        return Exit.Halt;
      case Mnemonic.Lgdt:
      case Mnemonic.Lidt: {
        this.#count(d.mnemonic === Mnemonic.Lgdt ? "lgdt" : "lidt");
        this.#checkCpl0();
        const ea = this.#effectiveAddress(d);
        // In 64-bit mode the base is 8 bytes.
        const table = {
          limit: this.memory.read16(ea),
          base: state.code64 ? this.#read64(ea + 2) : this.memory.read32(ea + 2) >>> 0,
        };
        if (d.mnemonic === Mnemonic.Lgdt) state.gdtr = table;
        else state.idtr = table;
        this.#setRip(next);
        return Exit.Resume;
      }
      case Mnemonic.Lldt:
      case Mnemonic.Ltr: {
        this.#count(d.mnemonic === Mnemonic.Lldt ? "lldt" : "ltr");
        this.#checkCpl0();
        const sel = this.#readOperand16(d);
        if (d.mnemonic === Mnemonic.Lldt) this.#loadLdt(sel);
        else this.#loadTr(sel);
        this.#setRip(next);
        return Exit.Resume;
      }
      case Mnemonic.Mov:
        return this.#emulateMov(d, next);
      case Mnemonic.Pop: {
        const r = registerInfo(d.op0Register);
        if (r.kind !== "sreg") this.#unsupported(d);
        this.#count(`pop ${SREG_NAMES[r.index]}`);
        const sp = this.#sp();
        const sel = this.memory.read16(sp);
        this.#loadDataSegment(r.index, sel);
        const word = d.code === Code.Popw_DS || d.code === Code.Popw_ES ||
          d.code === Code.Popw_FS || d.code === Code.Popw_GS;
        this.#setSp(sp + (word ? 2 : state.code64 ? 8 : 4));
        this.#setRip(next);
        return Exit.Resume;
      }
      case Mnemonic.Lds:
      case Mnemonic.Les:
      case Mnemonic.Lss:
      case Mnemonic.Lfs:
      case Mnemonic.Lgs: {
        const sreg = {
          [Mnemonic.Lds]: SREG.DS,
          [Mnemonic.Les]: SREG.ES,
          [Mnemonic.Lss]: SREG.SS,
          [Mnemonic.Lfs]: SREG.FS,
          [Mnemonic.Lgs]: SREG.GS,
        }[d.mnemonic]!;
        this.#count(`l${SREG_NAMES[sreg]}`);
        const ea = this.#effectiveAddress(d);
        const dst = registerInfo(d.op0Register);
        const offset = dst.size === 4 ? this.memory.read32(ea) : this.memory.read16(ea);
        const sel = this.memory.read16(ea + dst.size);
        this.#loadDataSegment(sreg, sel);
        this.#writeReg(dst, offset);
        this.#setRip(next);
        return Exit.Resume;
      }
      case Mnemonic.Jmp:
      case Mnemonic.Call: {
        const wide = d.code === Code.Jmp_m1664 || d.code === Code.Call_m1664;
        const far = d.op0Kind === OpKind.FarBranch32 || d.code === Code.Jmp_m1632 ||
          d.code === Code.Call_m1632 || wide;
        if (!far) this.#unsupported(d);
        const isCall = d.mnemonic === Mnemonic.Call;
        this.#count(isCall ? "far call" : "far jmp");
        let sel: number, off: number;
        if (d.op0Kind === OpKind.FarBranch32) {
          sel = d.farSelector;
          off = d.farOffset;
        } else {
          const ea = this.#effectiveAddress(d);
          off = wide ? this.#read64(ea) : this.memory.read32(ea);
          sel = this.memory.read16(ea + (wide ? 8 : 4));
        }
        const oldCs = state.selectors[SREG.CS];
        if (isCall) {
          // Pushed at the caller's operand size, before the new mode takes effect.
          if (wide) {
            this.#push64(oldCs);
            this.#push64(next);
          } else {
            this.#push32(oldCs);
            this.#push32(next);
          }
        }
        this.#loadCodeSegment(sel, d);
        this.#setRip(off);
        return Exit.Resume;
      }
      case Mnemonic.Retf: {
        this.#count("far ret");
        const q = d.code === Code.Retfq || d.code === Code.Retfq_imm16;
        const slot = q ? 8 : 4;
        const sp = this.#sp();
        const off = q ? this.#read64(sp) : this.memory.read32(sp);
        const sel = this.memory.read16(sp + slot);
        if ((sel & 3) > state.cpl) this.#unsupported(d, "far return to an outer privilege level");
        const wasCode64 = state.code64;
        this.#loadCodeSegment(sel, d);
        const after = sp + 2 * slot + (d.opCount > 0 ? d.immediate : 0);
        if (wasCode64) {
          const [lo, hi] = split64(after);
          regs.setGpr64(4, lo, hi);
        } else regs.setGpr(4, after >>> 0);
        this.#setRip(off);
        return Exit.Resume;
      }
      case Mnemonic.Iretd:
      case Mnemonic.Iretq:
        this.#count("iret");
        if (state.longMode) this.#iret64(d);
        else this.#iret(d);
        return Exit.Resume;
      case Mnemonic.Swapgs:
        this.#count("swapgs");
        if (!state.code64) throw new GuestException(VECTOR.UD, null);
        this.#checkCpl0();
        this.#swapgs();
        this.#setRip(next);
        return Exit.Resume;
      case Mnemonic.Int: {
        const vector = d.immediate & 0xff;
        this.#count(`int 0x${hex(vector)}`);
        this.#raise(vector, null, next, true);
        return Exit.Resume;
      }
      case Mnemonic.Int1:
        this.#count("int1");
        this.#raise(VECTOR.DB, null, next, false);
        return Exit.Resume;
      case Mnemonic.Into:
        this.#count("into");
        this.#raise(VECTOR.OF, null, next, true);
        return Exit.Resume;
      case Mnemonic.Clts:
        this.#count("clts");
        this.#checkCpl0();
        state.cr0 &= ~CR0.TS;
        this.#setRip(next);
        return Exit.Resume;
      case Mnemonic.Lmsw: {
        this.#count("lmsw");
        this.#checkCpl0();
        // lmsw sets PE but never clears it, and touches only the low four bits.
        const v = this.#readOperand16(d) & 0xf;
        this.#writeCr0(((state.cr0 & ~0xe) | v | (state.cr0 & CR0.PE)) >>> 0, d);
        this.#setRip(next);
        return Exit.Resume;
      }
      case Mnemonic.Invlpg:
        this.#count("invlpg");
        this.#checkCpl0();
        this.#onTranslationChange(this.#effectiveAddress(d) & ~0xfff);
        this.#setRip(next);
        return Exit.Resume;
      case Mnemonic.Wbinvd:
      case Mnemonic.Invd:
        // No caches to model.
        this.#count(Mnemonic[d.mnemonic].toLowerCase());
        this.#checkCpl0();
        this.#setRip(next);
        return Exit.Resume;
      case Mnemonic.Rdmsr: {
        this.#count("rdmsr");
        this.#checkCpl0();
        const v = BigInt.asUintN(64, this.#readMsr(regs.gpr(1)));
        regs.setGpr(0, Number(v & 0xffffffffn));
        regs.setGpr(2, Number((v >> 32n) & 0xffffffffn));
        this.#setRip(next);
        return Exit.Resume;
      }
      case Mnemonic.Wrmsr: {
        this.#count("wrmsr");
        this.#checkCpl0();
        this.#writeMsr(regs.gpr(1), (BigInt(regs.gpr(2)) << 32n) | BigInt(regs.gpr(0)));
        this.#setRip(next);
        return Exit.Resume;
      }
      case Mnemonic.Pushf:
      case Mnemonic.Pushfd:
      case Mnemonic.Pushfq: {
        this.#count("pushf");
        const f = this.guestEflags() & ~(EFLAGS_RF | EFLAGS_VM);
        if (d.mnemonic === Mnemonic.Pushf) this.#push16(f & 0xffff);
        else if (d.mnemonic === Mnemonic.Pushfq) this.#push64(f);
        else this.#push32(f);
        this.#setRip(next);
        return Exit.Resume;
      }
      case Mnemonic.Popf:
      case Mnemonic.Popfd:
      case Mnemonic.Popfq: {
        this.#count("popf");
        const esp = regs.gpr(4);
        if (d.mnemonic === Mnemonic.Popfq) {
          const sp = this.#sp();
          this.#setGuestEflags(this.memory.read32(sp));
          this.#setSp(sp + 8);
        } else if (d.mnemonic === Mnemonic.Popf) {
          const v = this.memory.read16(esp);
          this.#setGuestEflags((this.guestEflags() & 0xffff0000) | v);
          regs.setGpr(4, esp + 2);
        } else {
          this.#setGuestEflags(this.memory.read32(esp));
          regs.setGpr(4, esp + 4);
        }
        this.#setRip(next);
        return Exit.Resume;
      }
      case Mnemonic.Push: {
        const r = registerInfo(d.op0Register);
        if (r.kind !== "sreg") this.#unsupported(d);
        this.#count(`push ${SREG_NAMES[r.index]}`);
        // Zero-extended to the operand size, as QEMU does (Intel also allows a 16-bit store).
        if (PUSHW_SREG.has(d.code)) this.#push16(state.selectors[r.index]);
        else this.#pushSlot(state.selectors[r.index]);
        this.#setRip(next);
        return Exit.Resume;
      }
      case Mnemonic.Cpuid: {
        this.#count("cpuid");
        const r = cpuid(this.#model, regs.gpr(0), regs.gpr(1), state.code64);
        regs.setGpr(0, r.eax);
        regs.setGpr(3, r.ebx);
        regs.setGpr(1, r.ecx);
        regs.setGpr(2, r.edx);
        this.#setRip(next);
        return Exit.Resume;
      }
      case Mnemonic.Rdtsc:
      case Mnemonic.Rdtscp: {
        this.#count("rdtsc");
        if ((state.cr4 & CR4_TSD) && state.cpl !== 0) throw new GuestException(VECTOR.GP, 0);
        const tsc = BigInt(Math.floor(this.#guestTimeNs() * (this.#model.tscHz / 1e9)));
        regs.setGpr(0, Number(tsc & 0xffffffffn));
        regs.setGpr(2, Number((tsc >> 32n) & 0xffffffffn));
        if (d.mnemonic === Mnemonic.Rdtscp) {
          regs.setGpr(1, Number(state.msrs.get(MSR_TSC_AUX) ?? 0n));
        }
        this.#setRip(next);
        return Exit.Resume;
      }
      case Mnemonic.Sgdt:
      case Mnemonic.Sidt: {
        this.#count(d.mnemonic === Mnemonic.Sgdt ? "sgdt" : "sidt");
        this.#checkUmip();
        const t = d.mnemonic === Mnemonic.Sgdt ? state.gdtr : state.idtr;
        const ea = this.#effectiveAddress(d);
        this.memory.write16(ea, t.limit);
        if (state.code64) this.#write64(ea + 2, t.base);
        else this.memory.write32(ea + 2, t.base);
        this.#setRip(next);
        return Exit.Resume;
      }
      case Mnemonic.Sldt:
      case Mnemonic.Str:
      case Mnemonic.Smsw: {
        this.#count(Mnemonic[d.mnemonic].toLowerCase());
        this.#checkUmip();
        const v = d.mnemonic === Mnemonic.Sldt
          ? state.ldtr
          : d.mnemonic === Mnemonic.Str
          ? state.tr
          : state.cr0;
        this.#writeOperand(d, v, 2);
        this.#setRip(next);
        return Exit.Resume;
      }
      case Mnemonic.Lar:
      case Mnemonic.Lsl: {
        const isLar = d.mnemonic === Mnemonic.Lar;
        this.#count(isLar ? "lar" : "lsl");
        const sel = d.op1Kind === OpKind.Register
          ? this.#readReg(registerInfo(d.op1Register)) & 0xffff
          : this.memory.read16(this.#effectiveAddress(d));
        const desc = this.#probeDescriptor(sel, isLar ? "lar" : "lsl");
        this.#setZf(desc !== null);
        if (desc !== null) {
          const dst = registerInfo(d.op0Register);
          const v = isLar ? desc.high & 0x00f0ff00 : desc.limit;
          this.#writeReg(dst, dst.size === 2 ? v & 0xffff : v);
        }
        this.#setRip(next);
        return Exit.Resume;
      }
      case Mnemonic.Verr:
      case Mnemonic.Verw: {
        const isVerr = d.mnemonic === Mnemonic.Verr;
        this.#count(isVerr ? "verr" : "verw");
        const desc = this.#probeDescriptor(this.#readOperand16(d), isVerr ? "verr" : "verw");
        this.#setZf(desc !== null);
        this.#setRip(next);
        return Exit.Resume;
      }
      case Mnemonic.Syscall:
        // A rewritten syscall site: its return address is known here, in any mode.
        this.#count("syscall");
        this.#syscall64(next);
        return Exit.Resume;
      case Mnemonic.Sysenter:
        this.#count("sysenter");
        this.#sysenter();
        return Exit.Resume;
      case Mnemonic.Sysret:
      case Mnemonic.Sysretq:
        this.#count("sysret");
        this.#sysret(d);
        return Exit.Resume;
      case Mnemonic.Sysexit:
      case Mnemonic.Sysexitq:
        this.#count("sysexit");
        this.#sysexit(d);
        return Exit.Resume;
      default:
        this.#unsupported(d);
    }
  }

  /** Writes a register or memory destination operand (op0). */
  #writeOperand(d: DecodedInstruction, value: number, memSize: 2 | 4): void {
    if (d.op0Kind === OpKind.Register) {
      const r = registerInfo(d.op0Register);
      // A 32-bit register destination of a selector or MSW read is zero-extended (P6 and later).
      this.#writeReg(r, r.size === 4 ? value & (memSize === 2 ? 0xffff : 0xffffffff) : value);
    } else if (memSize === 2) {
      this.memory.write16(this.#effectiveAddress(d), value & 0xffff);
    } else {
      this.memory.write32(this.#effectiveAddress(d), value);
    }
  }

  #setZf(on: boolean): void {
    const regs = this.#regs;
    regs.eflags = on ? (regs.eflags | EFLAGS_ZF) >>> 0 : (regs.eflags & ~EFLAGS_ZF) >>> 0;
  }

  /**
   * What lar, lsl, verr and verw see: the descriptor if the selector is valid, visible at the
   * current privilege and of a type the instruction accepts, else null (ZF clear).
   */
  #probeDescriptor(sel: number, op: "lar" | "lsl" | "verr" | "verw"): Descriptor | null {
    if ((sel & 0xfffc) === 0) return null;
    let desc: Descriptor;
    try {
      desc = this.#readDescriptor(sel);
    } catch (e) {
      if (e instanceof GuestException) return null;
      throw e;
    }
    const conforming = isCode(desc) && (desc.type & 0x4) !== 0;
    const visible = conforming || (desc.dpl >= this.state.cpl && desc.dpl >= (sel & 3));
    if (!visible) return null;
    if (!desc.codeOrData) {
      // System descriptors: lar accepts LDTs, TSSs and gates; lsl only those with a limit.
      if (op === "lar") return [1, 2, 3, 4, 5, 9, 0xb, 0xc].includes(desc.type) ? desc : null;
      if (op === "lsl") return [1, 2, 3, 9, 0xb].includes(desc.type) ? desc : null;
      return null;
    }
    if (op === "verr") return isReadable(desc) ? desc : null;
    if (op === "verw") return isWritableData(desc) ? desc : null;
    return desc;
  }

  #checkUmip(): void {
    if ((this.state.cr4 & CR4_UMIP) && this.state.cpl !== 0) {
      throw new GuestException(VECTOR.GP, 0);
    }
  }

  #push16(v: number): void {
    const esp = (this.#regs.gpr(4) - 2) >>> 0;
    this.memory.write16(esp, v & 0xffff);
    this.#regs.setGpr(4, esp);
  }

  #emulateMov(d: DecodedInstruction, next: number): Exit {
    const dst = registerInfo(d.op0Register);
    const src = registerInfo(d.op1Register);
    if (dst.kind === "sreg") {
      this.#count(`mov ${SREG_NAMES[dst.index]}`);
      const sel = d.op1Kind === OpKind.Register
        ? this.#readReg(src) & 0xffff
        : this.memory.read16(this.#effectiveAddress(d));
      if (dst.index === SREG.CS) throw new GuestException(VECTOR.UD, null);
      this.#loadDataSegment(dst.index, sel);
      if (dst.index === SREG.SS) this.state.interruptShadow = true;
    } else if (src.kind === "sreg") {
      this.#count(`read ${SREG_NAMES[src.index]}`);
      this.#writeOperand(d, this.state.selectors[src.index], 2);
    } else if (dst.kind === "cr" || src.kind === "cr") {
      this.#checkCpl0();
      if (dst.kind === "cr") {
        this.#count(`mov cr${dst.index}`);
        this.#writeCr(dst.index, this.#readReg(src), d);
      } else {
        this.#count(`read cr${src.index}`);
        this.#writeReg(dst, this.#readCr(src.index));
      }
    } else if (dst.kind === "dr" || src.kind === "dr") {
      this.#checkCpl0();
      if (dst.kind === "dr") {
        this.#count(`mov dr${dst.index}`);
        this.state.dr[dst.index] = this.#readReg(src);
      } else {
        this.#count(`read dr${src.index}`);
        this.#writeReg(dst, this.state.dr[src.index]);
      }
    } else {
      this.#unsupported(d);
    }
    this.#setRip(next);
    return Exit.Resume;
  }

  // ---- registers and operands ----

  #readReg(r: RegisterInfo): number {
    const v = this.#regs.gpr(r.index);
    if (r.size === 8) return join64(v, this.#regs.gprHigh(r.index));
    if (r.size === 4) return v >>> 0;
    if (r.size === 2) return v & 0xffff;
    return r.high ? (v >>> 8) & 0xff : v & 0xff;
  }

  #writeReg(r: RegisterInfo, value: number): void {
    const regs = this.#regs;
    const old = regs.gpr(r.index);
    // 32-bit writes zero the high half; 8- and 16-bit writes keep everything else.
    const high = regs.gprHigh(r.index);
    if (r.size === 8) {
      const [lo, hi] = split64(value);
      regs.setGpr64(r.index, lo, hi);
    } else if (r.size === 4) regs.setGpr(r.index, value);
    else if (r.size === 2) regs.setGpr64(r.index, (old & 0xffff0000) | (value & 0xffff), high);
    else if (r.high) regs.setGpr64(r.index, (old & 0xffff00ff) | ((value & 0xff) << 8), high);
    else regs.setGpr64(r.index, (old & 0xffffff00) | (value & 0xff), high);
  }

  #effectiveAddress(d: DecodedInstruction): number {
    if (d.bitness === 64) return this.#effectiveAddress64(d);
    const ea = d.memDisplacement + this.#baseAndIndex(d, true);
    const base = registerInfo(d.memBase);
    if (base.kind === "gpr" && base.size === 2) return ea & 0xffff;
    return ea >>> 0;
  }

  /** The base register (unless RIP-relative) plus the scaled index of a memory operand. */
  #baseAndIndex(d: DecodedInstruction, withBase: boolean): number {
    let sum = 0;
    if (d.memBase !== 0 && withBase) {
      const b = registerInfo(d.memBase);
      if (b.kind !== "gpr") this.#unsupported(d, "unsupported addressing mode");
      sum += this.#readReg(b);
    }
    if (d.memIndex !== 0) {
      const x = registerInfo(d.memIndex);
      if (x.kind !== "gpr") this.#unsupported(d, "unsupported addressing mode");
      sum += this.#readReg(x) * d.memScale;
    }
    return sum;
  }

  /** A 64-bit mode effective address; only the low canonical half is addressable here. */
  #effectiveAddress64(d: DecodedInstruction): number {
    const rip = d.memBase === iced.Register.RIP;
    const ea = d.memDisplacement64 + this.#baseAndIndex(d, !rip);
    const base = registerInfo(d.memBase);
    if (base.kind === "gpr" && base.size === 4) return ea >>> 0; // an addr32 prefix
    if (!isLowHalf(ea)) {
      throw new Fatal(
        "unsupported-mode",
        `${d.text}: address 0x${BigInt.asUintN(64, BigInt(Math.trunc(ea))).toString(16)} is ` +
          `outside the low canonical half, the only part of the address space a 64-bit guest ` +
          `gets under ring3`,
      );
    }
    return ea;
  }

  #readOperand16(d: DecodedInstruction): number {
    if (d.op0Kind === OpKind.Register) return this.#readReg(registerInfo(d.op0Register)) & 0xffff;
    return this.memory.read16(this.#effectiveAddress(d));
  }

  #push32(v: number): void {
    const esp = (this.#regs.gpr(4) - 4) >>> 0;
    this.memory.write32(esp, v);
    this.#regs.setGpr(4, esp);
  }

  /** EFLAGS as the guest should see them: the host's arithmetic flags, the virtual IF and IOPL. */
  guestEflags(): number {
    const f = this.#regs.eflags & ~(EFLAGS_IF | EFLAGS_IOPL | EFLAGS_RF);
    return (f | 2 | (this.state.interruptFlag ? EFLAGS_IF : 0) | (this.state.iopl << 12)) >>> 0;
  }

  #setGuestEflags(v: number): void {
    const regs = this.#regs;
    regs.eflags = ((regs.eflags & ~GUEST_OWNED_FLAGS) | (v & GUEST_OWNED_FLAGS)) >>> 0;
    if (this.state.cpl <= this.state.iopl) this.state.interruptFlag = (v & EFLAGS_IF) !== 0;
    if (this.state.cpl === 0) this.state.iopl = (v >>> 12) & 3;
  }

  // ---- privilege checks ----

  #checkCpl0(): void {
    if (this.state.cpl !== 0) throw new GuestException(VECTOR.GP, 0);
  }

  #checkIopl(): void {
    if (this.state.cpl > this.state.iopl) throw new GuestException(VECTOR.GP, 0);
  }

  #checkIo(): void {
    // The TSS I/O permission bitmap is consulted only when CPL > IOPL; user-mode port access
    // arrives with the CPU virtualization work.
    if (this.state.cpl > this.state.iopl) throw new GuestException(VECTOR.GP, 0);
  }

  // ---- string I/O ----

  #stringIo(d: DecodedInstruction): void {
    const regs = this.#regs;
    const m = d.mnemonic;
    const size = (m === Mnemonic.Outsb || m === Mnemonic.Insb)
      ? 1
      : (m === Mnemonic.Outsw || m === Mnemonic.Insw)
      ? 2
      : 4;
    const isOut = m === Mnemonic.Outsb || m === Mnemonic.Outsw || m === Mnemonic.Outsd;
    const memKind = isOut ? d.op1Kind : d.op0Kind;
    const addr16 = memKind === OpKind.MemorySegSI || memKind === OpKind.MemoryESDI;
    if (memKind === OpKind.MemorySegRSI || memKind === OpKind.MemoryESRDI) {
      return this.#stringIo64(d, size, isOut);
    }
    const mask = addr16 ? 0xffff : 0xffffffff;
    const ptrReg = isOut ? 6 : 7; // esi : edi
    const step = (regs.eflags & (1 << 10)) ? -size : size;
    const keepHigh = (v: number) => addr16 ? (v & 0xffff0000) : 0;
    this.#stringIoLoop(
      isOut,
      size,
      { ptr: regs.gpr(ptrReg) & mask, count: d.hasRep ? (regs.gpr(1) & mask) >>> 0 : 1 },
      (ptr) => (ptr + step) & mask,
      (ptr, count) => {
        regs.setGpr(ptrReg, (keepHigh(regs.gpr(ptrReg)) | ptr) >>> 0);
        if (d.hasRep) regs.setGpr(1, (keepHigh(regs.gpr(1)) | count) >>> 0);
      },
    );
  }

  /** String I/O with 64-bit addresses (64-bit mode without an address-size prefix). */
  #stringIo64(d: DecodedInstruction, size: 1 | 2 | 4, isOut: boolean): void {
    const regs = this.#regs;
    const wide = (n: number) => join64(regs.gpr(n), regs.gprHigh(n));
    const ptrReg = isOut ? 6 : 7;
    const step = (regs.eflags & (1 << 10)) ? -size : size;
    this.#stringIoLoop(
      isOut,
      size,
      { ptr: wide(ptrReg), count: d.hasRep ? wide(1) : 1 },
      (ptr) => ptr + step,
      (ptr, count) => {
        regs.setGpr64(ptrReg, ...split64(ptr));
        if (d.hasRep) regs.setGpr64(1, ...split64(count));
      },
    );
  }

  /**
   * Moves elements between the port in DX and memory. The registers are written back however
   * the loop ends, so a fault midway leaves them where the CPU would: a rep string instruction
   * restarts with what is left.
   */
  #stringIoLoop(
    isOut: boolean,
    size: 1 | 2 | 4,
    start: { ptr: number; count: number },
    next: (ptr: number) => number,
    writeBack: (ptr: number, count: number) => void,
  ): void {
    const port = this.#regs.gpr(2) & 0xffff;
    const mem = this.memory;
    let { ptr, count } = start;
    try {
      while (count > 0) {
        if (isOut) {
          const v = size === 1 ? mem.read8(ptr) : size === 2 ? mem.read16(ptr) : mem.read32(ptr);
          this.io.write(port, v, size);
        } else {
          const v = this.io.read(port, size);
          if (size === 1) mem.write8(ptr, v);
          else if (size === 2) mem.write16(ptr, v);
          else mem.write32(ptr, v);
        }
        ptr = next(ptr);
        count--;
      }
    } finally {
      writeBack(ptr, count);
    }
  }

  // ---- segments and descriptor tables ----

  #readDescriptor(selector: number, errorVector: number = VECTOR.GP): Descriptor {
    const index = selector & ~7;
    const local = (selector & 4) !== 0;
    const base = local ? this.state.ldtrBase : this.state.gdtr.base;
    const limit = local ? this.state.ldtrLimit : this.state.gdtr.limit;
    if ((local && this.state.ldtr === 0) || index + 7 > limit) {
      throw new GuestException(errorVector, selector & 0xfffc);
    }
    return this.#supervisor(() =>
      decodeDescriptor(this.memory.read32(base + index), this.memory.read32(base + index + 4))
    );
  }

  #loadDataSegment(sreg: number, selector: number): void {
    const state = this.state;
    if ((selector & 0xfffc) === 0) {
      // 64-bit mode allows a null SS below CPL 3.
      if (sreg === SREG.SS && !(state.code64 && state.cpl < 3)) {
        throw new GuestException(VECTOR.GP, 0);
      }
      state.selectors[sreg] = selector;
      // A null selector is legal to load; using it must fault, so the host gets a null too.
      // (A 64-bit null SS is never used for addressing; the host keeps its own.)
      this.#regs.setHostSelector(sreg, sreg === SREG.SS ? HOST_DATA_SELECTOR : 0);
      return;
    }
    const d = this.#readDescriptor(selector);
    const rpl = selector & 3;
    if (sreg === SREG.SS) {
      if (!isWritableData(d) || rpl !== state.cpl || d.dpl !== state.cpl) {
        throw new GuestException(VECTOR.GP, selector & 0xfffc);
      }
      if (!d.present) throw new GuestException(VECTOR.SS, selector & 0xfffc);
    } else {
      if (!isReadable(d)) throw new GuestException(VECTOR.GP, selector & 0xfffc);
      const conformingCode = isCode(d) && (d.type & 0x4) !== 0;
      if (!conformingCode && (rpl > d.dpl || state.cpl > d.dpl)) {
        throw new GuestException(VECTOR.GP, selector & 0xfffc);
      }
      if (!d.present) throw new GuestException(VECTOR.NP, selector & 0xfffc);
    }
    if (!isFlat(d) && !state.longMode) {
      throw new Fatal(
        "unsupported-mode",
        `segment ${SREG_NAMES[sreg]}=0x${hex(selector)} has base 0x${hex(d.base)} and limit ` +
          `0x${hex(d.limit)}; only flat segments (base 0, limit 4 GiB) are supported so far`,
      );
    }
    state.selectors[sreg] = selector;
    this.#regs.setHostSelector(sreg, HOST_DATA_SELECTOR);
  }

  #loadCodeSegment(selector: number, d0: DecodedInstruction): void {
    const state = this.state;
    if ((selector & 0xfffc) === 0) throw new GuestException(VECTOR.GP, 0);
    const d = this.#readDescriptor(selector);
    if (!isCode(d)) throw new GuestException(VECTOR.GP, selector & 0xfffc);
    const conforming = (d.type & 0x4) !== 0;
    if (conforming ? d.dpl > state.cpl : (d.dpl !== state.cpl || (selector & 3) > state.cpl)) {
      throw new GuestException(VECTOR.GP, selector & 0xfffc);
    }
    if (!d.present) throw new GuestException(VECTOR.NP, selector & 0xfffc);
    if (state.longMode && d.long) {
      if (d.big) throw new GuestException(VECTOR.GP, selector & 0xfffc); // L=1 with D=1
      this.#enterCodeSegment(((selector & 0xfffc) | state.cpl) >>> 0, true);
      return;
    }
    if (!d.big) this.#unsupported(d0, "16-bit code segments are not supported");
    if (!isFlat(d)) {
      this.#unsupported(
        d0,
        `code segment base 0x${hex(d.base)} limit 0x${hex(d.limit)} is not flat`,
      );
    }
    this.#enterCodeSegment(((selector & 0xfffc) | state.cpl) >>> 0, false);
  }

  /**
   * Makes `selector` the guest's CS, in 64-bit mode or not. The host runs the guest's 64-bit
   * code with its own 64-bit selector and everything else with its 32-bit one.
   */
  #enterCodeSegment(selector: number, code64: boolean): void {
    this.state.selectors[SREG.CS] = selector;
    if (this.state.code64 !== code64) {
      this.state.code64 = code64;
      this.#regs.setHostSelector(SREG.CS, code64 ? HOST_CODE64_SELECTOR : HOST_CODE32_SELECTOR);
    }
  }

  #setHostBase(sreg: number, v: bigint): void {
    const u = BigInt.asUintN(64, v);
    this.#regs.setSegmentBase(sreg, Number(u & 0xffffffffn), Number(u >> 32n));
  }

  #swapgs(): void {
    const s = this.state;
    const gs = s.msrs.get(MSR.GS_BASE) ?? 0n;
    const kernel = s.msrs.get(MSR.KERNEL_GS_BASE) ?? 0n;
    s.msrs.set(MSR.GS_BASE, kernel);
    s.msrs.set(MSR.KERNEL_GS_BASE, gs);
    this.#setHostBase(SREG.GS, kernel);
  }

  /**
   * syscall (SDM vol. 2): rcx = return address, r11 = rflags, CS and SS from STAR[47:32],
   * rip = LSTAR, rflags &= ~SFMASK, CPL 0. Only 64-bit mode gets here (the host loses the return
   * address of a compat-mode syscall, and the CPU model says so).
   */
  #syscall64(returnRip: number): void {
    const s = this.state;
    if (!(s.efer & EFER.SCE) || !s.longMode) throw new GuestException(VECTOR.UD, null);
    if (!s.code64) {
      throw new Fatal(
        "host-syscall",
        "syscall in compatibility mode: the host loses its return address, so ring3 cannot " +
          "emulate it (the virtual CPU does not advertise SYSCALL outside 64-bit mode)",
      );
    }
    const regs = this.#regs;
    const [lo, hi] = split64(returnRip);
    regs.setGpr64(1, lo, hi);
    regs.setGpr64(11, (this.guestEflags() & ~EFLAGS_RF) >>> 0, 0);
    const star = s.msrs.get(MSR.STAR) ?? 0n;
    const cs = Number((star >> 32n) & 0xfffcn);
    const mask = Number((s.msrs.get(MSR.FMASK) ?? 0n) & 0xffffffffn);
    this.#setGuestEflagsAtCpl0(this.guestEflags() & ~mask & ~EFLAGS_RF);
    s.selectors[SREG.SS] = (cs + 8) & 0xfffc;
    this.#setCpl(0);
    this.#enterCodeSegment(cs, true);
    this.#setRip(join64(...split64(Number(s.msrs.get(MSR.LSTAR) ?? 0n))));
  }

  /** sysret: back to CPL 3 at rcx (64-bit with REX.W, else compatibility mode at ecx). */
  #sysret(d: DecodedInstruction): void {
    const s = this.state;
    if (!(s.efer & EFER.SCE) || !s.code64) throw new GuestException(VECTOR.UD, null);
    this.#checkCpl0();
    const regs = this.#regs;
    const to64 = d.code === Code.Sysretq;
    const base = Number(((s.msrs.get(MSR.STAR) ?? 0n) >> 48n) & 0xfffcn);
    const rip = to64 ? join64(regs.gpr(1), regs.gprHigh(1)) : regs.gpr(1);
    if (to64 && !isLowHalf(rip)) throw new GuestException(VECTOR.GP, 0);
    this.#setGuestEflagsAtCpl0(regs.gpr(11));
    s.selectors[SREG.SS] = (base + 8) | 3;
    this.#setCpl(3);
    this.#enterCodeSegment((to64 ? base + 16 : base) | 3, to64);
    this.#setRip(rip);
  }

  /** sysenter (legacy mode): CS = SYSENTER_CS, SS = CS + 8, CPL 0, IF = 0. */
  #sysenter(): void {
    const s = this.state;
    const cs = Number((s.msrs.get(MSR.SYSENTER_CS) ?? 0n) & 0xfffcn);
    if (cs === 0 || s.longMode) throw new GuestException(VECTOR.GP, 0);
    const regs = this.#regs;
    s.interruptFlag = false;
    regs.eflags = (regs.eflags & ~(EFLAGS_RF | EFLAGS_TF)) >>> 0;
    s.selectors[SREG.SS] = (cs + 8) & 0xfffc;
    this.#setCpl(0);
    this.#enterCodeSegment(cs, false);
    regs.setGpr(4, Number((s.msrs.get(MSR.SYSENTER_ESP) ?? 0n) & 0xffffffffn));
    this.#setRip(Number((s.msrs.get(MSR.SYSENTER_EIP) ?? 0n) & 0xffffffffn));
  }

  /** sysexit (legacy mode): CS = SYSENTER_CS + 16, SS = + 24, both RPL 3; eip = edx, esp = ecx. */
  #sysexit(d: DecodedInstruction): void {
    const s = this.state;
    const cs = Number((s.msrs.get(MSR.SYSENTER_CS) ?? 0n) & 0xfffcn);
    if (cs === 0 || s.cpl !== 0) throw new GuestException(VECTOR.GP, 0);
    if (s.longMode) this.#unsupported(d, "sysexit in long mode");
    const regs = this.#regs;
    s.selectors[SREG.SS] = (cs + 24) | 3;
    this.#setCpl(3);
    this.#enterCodeSegment((cs + 16) | 3, false);
    regs.setGpr(4, regs.gpr(1));
    this.#setRip(regs.gpr(2));
  }

  /** Sets EFLAGS as a CPL-0 instruction does (syscall, sysret): IF and IOPL included. */
  #setGuestEflagsAtCpl0(v: number): void {
    const cpl = this.state.cpl;
    this.state.cpl = 0;
    this.#setGuestEflags(v);
    this.state.cpl = cpl;
  }

  #loadLdt(selector: number): void {
    const state = this.state;
    if ((selector & 0xfffc) === 0) {
      state.ldtr = 0;
      state.ldtrBase = 0;
      state.ldtrLimit = 0;
      return;
    }
    if (selector & 4) throw new GuestException(VECTOR.GP, selector & 0xfffc);
    const d = this.#readDescriptor(selector);
    if (d.codeOrData || d.type !== SYSTEM_TYPE.LDT) {
      throw new GuestException(VECTOR.GP, selector & 0xfffc);
    }
    if (!d.present) throw new GuestException(VECTOR.NP, selector & 0xfffc);
    state.ldtr = selector;
    state.ldtrBase = d.base;
    state.ldtrLimit = d.limit;
  }

  #loadTr(selector: number): void {
    if ((selector & 0xfffc) === 0 || (selector & 4)) {
      throw new GuestException(VECTOR.GP, selector & 0xfffc);
    }
    const d = this.#readDescriptor(selector);
    if (d.codeOrData || d.type !== SYSTEM_TYPE.TSS32_AVAILABLE) {
      throw new GuestException(VECTOR.GP, selector & 0xfffc);
    }
    if (!d.present) throw new GuestException(VECTOR.NP, selector & 0xfffc);
    this.state.tr = selector;
    this.state.trBase = d.base;
    this.state.trLimit = d.limit;
    if (this.state.longMode) {
      // A 16-byte system descriptor: base bits 32..63 follow.
      const high = this.#supervisor(() =>
        this.memory.read32(this.state.gdtr.base + (selector & ~7) + 8)
      );
      this.state.trBase = join64(d.base, high);
    }
    // Mark the TSS busy in the guest's GDT, as ltr does.
    const at = this.state.gdtr.base + (selector & ~7) + 4;
    this.#supervisor(() => this.memory.write32(at, this.memory.read32(at) | (0x2 << 8)));
  }

  #iret(d: DecodedInstruction): void {
    const regs = this.#regs;
    const state = this.state;
    if (this.guestEflags() & EFLAGS_NT) this.#unsupported(d, "task return (iret with NT set)");
    const esp = regs.gpr(4);
    const eip = this.memory.read32(esp);
    const cs = this.memory.read16(esp + 4);
    const eflags = this.memory.read32(esp + 8);
    if (eflags & EFLAGS_VM) this.#unsupported(d, "return to virtual-8086 mode");
    const rpl = cs & 3;
    if (rpl < state.cpl) throw new GuestException(VECTOR.GP, cs & 0xfffc);
    if (rpl === state.cpl) {
      this.#loadCodeSegment(cs, d);
      this.#setGuestEflags(eflags);
      regs.setGpr(4, esp + 12);
      regs.eip = eip;
      return;
    }
    // Return to an outer level (SDM IRET, "RETURN-TO-OUTER-PRIVILEGE-LEVEL").
    const newEsp = this.memory.read32(esp + 12);
    const ss = this.memory.read16(esp + 16);
    const code = this.#readDescriptor(cs);
    const conforming = (code.type & 0x4) !== 0;
    if (!isCode(code) || (conforming ? code.dpl > rpl : code.dpl !== rpl)) {
      throw new GuestException(VECTOR.GP, cs & 0xfffc);
    }
    if (!code.present) throw new GuestException(VECTOR.NP, cs & 0xfffc);
    if (code.long || !code.big || !isFlat(code)) {
      this.#unsupported(d, "return to a code segment that is not flat 32-bit");
    }
    const stack = (ss & 0xfffc) === 0 ? null : this.#readDescriptor(ss);
    if (stack === null || (ss & 3) !== rpl || !isWritableData(stack) || stack.dpl !== rpl) {
      throw new GuestException(VECTOR.GP, ss & 0xfffc);
    }
    if (!stack.present) throw new GuestException(VECTOR.SS, ss & 0xfffc);
    if (!isFlat(stack)) this.#unsupported(d, "return to a stack segment that is not flat");
    this.#setGuestEflags(eflags); // at the old CPL, so IF and IOPL may change
    state.selectors[SREG.CS] = cs;
    state.selectors[SREG.SS] = ss;
    this.#setCpl(rpl);
    // Data segments the new level may not use become null (SDM: "…are loaded with null").
    this.#nullInaccessibleDataSegments(rpl);
    regs.setGpr(4, newEsp);
    regs.eip = eip;
  }

  /**
   * iret in long mode (SDM IRET, "IA-32e-MODE"): iretq pops RIP, CS, RFLAGS, RSP and SS
   * whatever the privilege levels, and may return to 64-bit or compatibility-mode code.
   */
  #iret64(d: DecodedInstruction): void {
    const regs = this.#regs;
    const state = this.state;
    if (!state.code64) this.#unsupported(d, "iret from compatibility mode");
    if (d.mnemonic !== Mnemonic.Iretq) this.#unsupported(d, "32-bit iret in 64-bit mode");
    if (this.guestEflags() & EFLAGS_NT) throw new GuestException(VECTOR.GP, 0);
    const sp = this.#sp();
    const rip = this.#read64(sp);
    const cs = this.memory.read16(sp + 8);
    const rflags = this.memory.read32(sp + 16);
    const rsp = this.#read64(sp + 24);
    const ss = this.memory.read16(sp + 32);
    const rpl = cs & 3;
    if (rpl < state.cpl) throw new GuestException(VECTOR.GP, cs & 0xfffc);
    if ((cs & 0xfffc) === 0) throw new GuestException(VECTOR.GP, 0);
    const code = this.#readDescriptor(cs);
    const conforming = (code.type & 0x4) !== 0;
    if (!isCode(code) || (conforming ? code.dpl > rpl : code.dpl !== rpl)) {
      throw new GuestException(VECTOR.GP, cs & 0xfffc);
    }
    if (!code.present) throw new GuestException(VECTOR.NP, cs & 0xfffc);
    const to64 = code.long && !code.big;
    if (!to64 && (!code.big || !isFlat(code))) {
      this.#unsupported(d, "return to a code segment that is not flat 32-bit");
    }
    if (to64 && !isLowHalf(rip)) throw new GuestException(VECTOR.GP, 0);
    // SS may be null only when returning to 64-bit code below CPL 3.
    if ((ss & 0xfffc) === 0) {
      if (!to64 || rpl === 3) throw new GuestException(VECTOR.GP, 0);
    } else {
      const stack = this.#readDescriptor(ss);
      if ((ss & 3) !== rpl || !isWritableData(stack) || stack.dpl !== rpl) {
        throw new GuestException(VECTOR.GP, ss & 0xfffc);
      }
      if (!stack.present) throw new GuestException(VECTOR.SS, ss & 0xfffc);
    }
    this.#setGuestEflags(rflags); // at the old CPL, so IF and IOPL may change
    state.selectors[SREG.SS] = ss;
    const outer = rpl > state.cpl;
    this.#setCpl(rpl);
    this.#enterCodeSegment(cs, to64);
    if (outer) this.#nullInaccessibleDataSegments(rpl);
    if (to64) {
      const [lo, hi] = split64(rsp);
      regs.setGpr64(4, lo, hi);
    } else regs.setGpr(4, rsp >>> 0);
    this.#setRip(to64 ? rip : rip >>> 0);
  }

  /** After a return to an outer level, data segments it may not use become null (SDM IRET). */
  #nullInaccessibleDataSegments(rpl: number): void {
    const state = this.state;
    for (const sreg of [SREG.ES, SREG.DS, SREG.FS, SREG.GS]) {
      const sel = state.selectors[sreg];
      if ((sel & 0xfffc) === 0) continue;
      let dd: Descriptor | null = null;
      try {
        dd = this.#readDescriptor(sel);
      } catch (e) {
        if (!(e instanceof GuestException)) throw e;
      }
      const dataOrNc = dd !== null && (!isCode(dd) || !(dd.type & 0x4));
      if (dd === null || (dataOrNc && dd.dpl < rpl)) {
        state.selectors[sreg] = 0;
        this.#regs.setHostSelector(sreg, 0);
      }
    }
  }

  /**
   * Delivery in long mode (SDM 6.14): 16-byte gates, a 64-bit handler, the stack from the TSS's
   * RSP0..2 on a privilege change or from an IST entry, aligned to 16 bytes, and SS:RSP always
   * pushed.
   */
  #deliver64(vector: number, errorCode: number | null, returnRip: number, software: boolean) {
    const state = this.state;
    const regs = this.#regs;
    const idt = state.idtr;
    const gateErr = vector * 8 + 2 + (software ? 0 : 1);
    if (vector * 16 + 15 > idt.limit) throw new GuestException(VECTOR.GP, gateErr);
    const at = idt.base + vector * 16;
    const gate = this.#supervisor(() =>
      decodeGate64(this.memory.read32(at), this.memory.read32(at + 4), this.memory.read32(at + 8))
    );
    if (gate.type !== SYSTEM_TYPE64.INTERRUPT_GATE && gate.type !== SYSTEM_TYPE64.TRAP_GATE) {
      throw new GuestException(VECTOR.GP, gateErr);
    }
    if (software && gate.dpl < state.cpl) throw new GuestException(VECTOR.GP, gateErr);
    if (!gate.present) throw new GuestException(VECTOR.NP, gateErr);
    if ((gate.selector & 0xfffc) === 0) throw new GuestException(VECTOR.GP, 0);
    const target = this.#readDescriptor(gate.selector);
    if (!isCode(target) || !target.long || target.big || target.dpl > state.cpl) {
      throw new GuestException(VECTOR.GP, gate.selector & 0xfffc);
    }
    if (!target.present) throw new GuestException(VECTOR.NP, gate.selector & 0xfffc);
    if (!isLowHalf(gate.offset)) {
      throw new Fatal(
        "unsupported-mode",
        `IDT vector ${vector} points to 0x${gate.offset.toString(16)}, outside the low ` +
          `canonical half that ring3 gives a 64-bit guest`,
      );
    }
    const conforming = (target.type & 0x4) !== 0;
    const newCpl = conforming ? state.cpl : target.dpl;
    const flags = this.guestEflags();
    const oldCs = state.selectors[SREG.CS];
    const oldSs = state.selectors[SREG.SS];
    const oldCpl = state.cpl;
    const oldRsp = state.code64 ? this.#sp() : regs.gpr(4);
    let rsp = oldRsp;
    if (gate.ist !== 0 || newCpl < oldCpl) rsp = this.#tss64Stack(newCpl, gate.ist);
    rsp -= rsp % 16;
    const frame = [oldSs, oldRsp, flags, oldCs, returnRip];
    if (errorCode !== null) frame.push(errorCode);
    // The frame is written with the handler's rights, and nothing changes if a write faults.
    state.cpl = newCpl;
    try {
      frame.forEach((v, i) => this.#write64(rsp - 8 * (i + 1), v));
    } finally {
      state.cpl = oldCpl;
    }
    rsp -= 8 * frame.length;
    if (newCpl < oldCpl) state.selectors[SREG.SS] = newCpl; // a null SS with RPL = new CPL
    this.#setCpl(newCpl);
    this.#enterCodeSegment(((gate.selector & 0xfffc) | newCpl) >>> 0, true);
    const [lo, hi] = split64(rsp);
    regs.setGpr64(4, lo, hi);
    if (gate.type === SYSTEM_TYPE64.INTERRUPT_GATE) state.interruptFlag = false;
    regs.eflags = (regs.eflags & ~(EFLAGS_TF | EFLAGS_NT | EFLAGS_RF)) >>> 0;
    this.#setRip(gate.offset);
    state.halted = false;
  }

  /** RSPn or ISTn from the 64-bit TSS. */
  #tss64Stack(cpl: number, ist: number): number {
    const state = this.state;
    const off = tss64StackOffset(cpl, ist);
    if ((state.tr & 0xfffc) === 0 || state.trLimit < off + 7) {
      throw new GuestException(VECTOR.TS, state.tr & 0xfffc);
    }
    const v = this.#supervisor(() => this.#read64(state.trBase + off));
    if (!isLowHalf(v)) {
      throw new Fatal(
        "unsupported-mode",
        `TSS ${ist ? `IST${ist}` : `RSP${cpl}`} is 0x${v.toString(16)}, outside the low ` +
          `canonical half that ring3 gives a 64-bit guest`,
      );
    }
    return v;
  }

  /** The stack for privilege level `cpl` from the current 32-bit TSS. */
  #innerStack(cpl: number): { esp: number; ss: number } {
    const state = this.state;
    if ((state.tr & 0xfffc) === 0 || state.trLimit < 8 * cpl + 9) {
      throw new GuestException(VECTOR.TS, state.tr & 0xfffc);
    }
    const esp = this.#supervisor(() => this.memory.read32(state.trBase + 4 + 8 * cpl));
    const ss = this.#supervisor(() => this.memory.read16(state.trBase + 8 + 8 * cpl));
    const d = (ss & 0xfffc) === 0 ? null : this.#readDescriptor(ss, VECTOR.TS);
    if (d === null || (ss & 3) !== cpl || d.dpl !== cpl || !isWritableData(d)) {
      throw new GuestException(VECTOR.TS, ss & 0xfffc);
    }
    if (!d.present) throw new GuestException(VECTOR.SS, ss & 0xfffc);
    if (!isFlat(d)) {
      throw new Fatal("unsupported-mode", `TSS stack segment 0x${hex(ss)} is not flat`);
    }
    return { esp, ss };
  }

  #setCpl(cpl: number): void {
    if (this.state.cpl === cpl) return;
    this.state.cpl = cpl;
    this.#onPrivilegeChange(cpl);
  }

  // ---- control registers and MSRs ----

  #readCr(n: number): number {
    const s = this.state;
    switch (n) {
      case 0:
        return s.cr0;
      case 2:
        return s.cr2;
      case 3:
        return s.cr3;
      case 4:
        return s.cr4;
      case 8:
        if (!s.code64) throw new GuestException(VECTOR.UD, null);
        return s.cr8;
      default:
        throw new GuestException(VECTOR.UD, null);
    }
  }

  #writeCr(n: number, v: number, d: DecodedInstruction): void {
    const s = this.state;
    switch (n) {
      case 0:
        return this.#writeCr0(v >>> 0, d);
      case 2:
        s.cr2 = v >>> 0;
        return;
      case 3:
        // Guest RAM lies below 4 GiB, so a page-table base above it is never valid here.
        if (v >= 0x100000000) throw new GuestException(VECTOR.GP, 0);
        s.cr3 = v >>> 0;
        this.#onTranslationChange(null);
        return;
      case 4:
        // Long mode cannot leave PAE paging (SDM MOV CR: #GP).
        if (!(v & CR4.PAE) && s.longMode) throw new GuestException(VECTOR.GP, 0);
        if (v >= 0x100000000) throw new GuestException(VECTOR.GP, 0);
        s.cr4 = v >>> 0;
        this.#onTranslationChange(null);
        return;
      case 8:
        if (!s.code64) throw new GuestException(VECTOR.UD, null);
        s.cr8 = v & 0xf;
        return;
      default:
        throw new GuestException(VECTOR.UD, null);
    }
  }

  #writeCr0(v: number, d: DecodedInstruction): void {
    if (!(v & CR0.PE)) this.#unsupported(d, "leaving protected mode (CR0.PE=0) is not supported");
    if ((v & CR0.PG) && !this.#paging) {
      this.#unsupported(d, "paging (CR0.PG=1) is not supported on this machine");
    }
    const s = this.state;
    const old = s.cr0;
    const enabling = (v & CR0.PG) !== 0 && !(old & CR0.PG);
    const disabling = !(v & CR0.PG) && (old & CR0.PG) !== 0;
    if (enabling && (s.efer & EFER.LME)) {
      // Activating long mode (SDM 9.8.5): PAE must be on, and the CPU is still running the
      // 32-bit code that turned paging on, so it enters compatibility mode.
      if (!(s.cr4 & CR4.PAE)) throw new GuestException(VECTOR.GP, 0);
      s.efer |= EFER.LMA;
    }
    if (disabling && s.longMode) {
      // Leaving long mode is allowed only from compatibility mode.
      if (s.code64) throw new GuestException(VECTOR.GP, 0);
      s.efer &= ~EFER.LMA;
    }
    s.cr0 = (v | CR0.ET) >>> 0;
    if (((old ^ this.state.cr0) & (CR0.PG | CR0.WP)) !== 0) this.#onTranslationChange(null);
  }

  #readMsr(msr: number): bigint {
    const s = this.state;
    if (msr === MSR.EFER) return s.efer;
    if (LONG_MODE_MSRS.has(msr) && !this.#model.longMode) throw new GuestException(VECTOR.GP, 0);
    if (KNOWN_MSRS.has(msr)) return s.msrs.get(msr) ?? 0n;
    throw new GuestException(VECTOR.GP, 0);
  }

  #writeMsr(msr: number, v: bigint): void {
    const s = this.state;
    if (msr === MSR.EFER) {
      if (v & ~(EFER_WRITABLE | EFER.LMA)) throw new GuestException(VECTOR.GP, 0);
      if ((v & EFER.LME) && !this.#model.longMode) throw new GuestException(VECTOR.GP, 0);
      // LME cannot change while paging is on; LMA is the CPU's.
      if (((v ^ s.efer) & EFER.LME) && (s.cr0 & CR0.PG)) throw new GuestException(VECTOR.GP, 0);
      const before = s.efer;
      s.efer = (v & EFER_WRITABLE) | (s.efer & EFER.LMA);
      if ((before ^ s.efer) & EFER.NXE) this.#onTranslationChange(null);
      return;
    }
    if (!KNOWN_MSRS.has(msr)) throw new GuestException(VECTOR.GP, 0);
    if (LONG_MODE_MSRS.has(msr) && !this.#model.longMode) throw new GuestException(VECTOR.GP, 0);
    const addressMsr = msr === MSR.FS_BASE || msr === MSR.GS_BASE ||
      msr === MSR.KERNEL_GS_BASE || msr === MSR.LSTAR || msr === MSR.CSTAR;
    if (addressMsr && !isCanonical(v)) throw new GuestException(VECTOR.GP, 0);
    s.msrs.set(msr, v);
    if (msr === MSR.FS_BASE) this.#setHostBase(SREG.FS, v);
    if (msr === MSR.GS_BASE) this.#setHostBase(SREG.GS, v);
  }

  // ---- exception and interrupt delivery ----

  /**
   * Delivers `vector` through the guest IDT as a 32-bit protected-mode CPU does at the same
   * privilege level: push EFLAGS, CS, EIP and the error code, clear IF for interrupt gates.
   * A fault during delivery becomes a double fault; a fault delivering that, a triple fault.
   */
  #raise(vector: number, errorCode: number | null, returnEip: number, software: boolean): void {
    if (vector < 32 && !software) this.#watchStorm(vector, returnEip);
    let v = vector;
    let err = hasErrorCode(vector) && !software ? (errorCode ?? 0) : null;
    let soft = software;
    const chain = [vectorName(vector)];
    for (let depth = 0;; depth++) {
      try {
        this.#deliver(v, err, returnEip, soft);
        return;
      } catch (e0) {
        const e = this.#asGuestException(e0);
        if (!(e instanceof GuestException)) {
          if (e instanceof GuestMemoryError) {
            throw new Fatal(
              "triple-fault",
              `delivering ${vectorName(v)} touched memory outside guest RAM (${e.message}); ` +
                `a real CPU would shut down`,
            );
          }
          throw e;
        }
        chain.push(vectorName(e.vector));
        if (v === VECTOR.DF || depth >= 2) {
          throw new Fatal(
            "triple-fault",
            `triple fault: ${chain.join(" -> ")} at eip 0x${hex(returnEip)} ` +
              `(IDT base 0x${hex(this.state.idtr.base)} limit 0x${hex(this.state.idtr.limit)})`,
            this.#describeAt(returnEip),
          );
        }
        const first = v;
        const second = e.vector;
        const bothSerious = (isContributory(first) || first === VECTOR.PF) &&
          (isContributory(second) || (second === VECTOR.PF && first === VECTOR.PF));
        if (bothSerious) {
          v = VECTOR.DF;
          err = 0;
          chain.push(vectorName(VECTOR.DF));
        } else {
          v = second;
          err = hasErrorCode(second) ? (e.errorCode ?? 0) : null;
        }
        soft = false;
      }
    }
  }

  #stormKey = -1;
  #stormCount = 0;
  readonly #stormLimit: number;

  /**
   * The same exception at the same instruction, over and over with nothing else faulting in
   * between, is a guest that cannot make progress (a handler that returns to the fault without
   * fixing it). Ends the run rather than spending the guest-time limit on it.
   */
  #watchStorm(vector: number, eip: number): void {
    const key = vector * 0x100000000 + (eip >>> 0);
    if (key !== this.#stormKey) {
      this.#stormKey = key;
      this.#stormCount = 1;
      return;
    }
    if (++this.#stormCount >= this.#stormLimit) {
      throw new Fatal(
        "exception-storm",
        `${vectorName(vector)} at eip 0x${hex(eip)} ${this.#stormCount} times in a row: the ` +
          `guest's handler returns to the faulting instruction without fixing its cause`,
      );
    }
  }

  #deliver(vector: number, errorCode: number | null, returnEip: number, software: boolean): void {
    if (this.state.longMode) return this.#deliver64(vector, errorCode, returnEip, software);
    const state = this.state;
    const regs = this.#regs;
    const idt = state.idtr;
    const gateErr = vector * 8 + 2 + (software ? 0 : 1);
    if (vector * 8 + 7 > idt.limit) throw new GuestException(VECTOR.GP, gateErr);
    const gate = this.#supervisor(() =>
      decodeGate(
        this.memory.read32(idt.base + vector * 8),
        this.memory.read32(idt.base + vector * 8 + 4),
      )
    );
    if (gate.type === SYSTEM_TYPE.TASK_GATE) {
      throw new Fatal("unsupported-mode", `task gate in IDT vector ${vector} is not supported`);
    }
    if (gate.type !== SYSTEM_TYPE.INTERRUPT_GATE32 && gate.type !== SYSTEM_TYPE.TRAP_GATE32) {
      throw new GuestException(VECTOR.GP, gateErr);
    }
    if (software && gate.dpl < state.cpl) throw new GuestException(VECTOR.GP, gateErr);
    if (!gate.present) throw new GuestException(VECTOR.NP, gateErr);
    const target = this.#readDescriptor(gate.selector);
    if (!isCode(target) || target.dpl > state.cpl) {
      throw new GuestException(VECTOR.GP, gate.selector & 0xfffc);
    }
    if (!target.present) throw new GuestException(VECTOR.NP, gate.selector & 0xfffc);
    const flags = this.guestEflags();
    const oldCs = state.selectors[SREG.CS];
    if (target.dpl < state.cpl) {
      // Inner-level handler: switch to the stack the TSS holds for that level (SDM 6.12.1).
      const newCpl = target.dpl;
      const { esp, ss } = this.#innerStack(newCpl);
      const oldSs = state.selectors[SREG.SS];
      const oldEsp = regs.gpr(4);
      const oldCpl = state.cpl;
      regs.setGpr(4, esp);
      // The frame goes on the inner stack with the inner level's rights.
      state.cpl = newCpl;
      this.#push32(oldSs);
      this.#push32(oldEsp);
      this.#push32(flags);
      this.#push32(oldCs);
      this.#push32(returnEip);
      if (errorCode !== null) this.#push32(errorCode);
      state.selectors[SREG.SS] = ss;
      state.cpl = oldCpl;
      this.#setCpl(newCpl);
    } else {
      this.#push32(flags);
      this.#push32(oldCs);
      this.#push32(returnEip);
      if (errorCode !== null) this.#push32(errorCode);
    }
    state.selectors[SREG.CS] = ((gate.selector & 0xfffc) | state.cpl) >>> 0;
    if (gate.type === SYSTEM_TYPE.INTERRUPT_GATE32) state.interruptFlag = false;
    regs.eflags = (regs.eflags & ~(EFLAGS_TF | EFLAGS_NT | EFLAGS_RF)) >>> 0;
    regs.eip = gate.offset;
    state.halted = false;
  }
}

const HOST_DATA_SELECTOR = 0x2b;
const HOST_CODE64_SELECTOR = 0x33;
/** Identical consecutive exceptions that make an exception storm, unless the machine says. */
export const EXCEPTION_STORM_LIMIT = 1000;
/** The access size of each mov form emulated on device memory. */
const MMIO_SIZE = new Map<number, 1 | 2 | 4>([
  [Code.Mov_rm8_r8, 1],
  [Code.Mov_rm16_r16, 2],
  [Code.Mov_rm32_r32, 4],
  [Code.Mov_r8_rm8, 1],
  [Code.Mov_r16_rm16, 2],
  [Code.Mov_r32_rm32, 4],
  [Code.Mov_rm8_imm8, 1],
  [Code.Mov_rm16_imm16, 2],
  [Code.Mov_rm32_imm32, 4],
  [Code.Mov_AL_moffs8, 1],
  [Code.Mov_AX_moffs16, 2],
  [Code.Mov_EAX_moffs32, 4],
  [Code.Mov_moffs8_AL, 1],
  [Code.Mov_moffs16_AX, 2],
  [Code.Mov_moffs32_EAX, 4],
  [Code.Movzx_r16_rm8, 1],
  [Code.Movzx_r32_rm8, 1],
  [Code.Movzx_r32_rm16, 2],
  [Code.Movsx_r16_rm8, 1],
  [Code.Movsx_r32_rm8, 1],
  [Code.Movsx_r32_rm16, 2],
]);
const HOST_CODE32_SELECTOR = 0x23;
const EFLAGS_ZF = 1 << 6;
const CR4_TSD = CR4.TSD;
const CR4_UMIP = CR4.UMIP;
const MSR_TSC_AUX = 0xc0000103;
const PUSHW_SREG = new Set<number>([
  Code.Pushw_CS,
  Code.Pushw_DS,
  Code.Pushw_ES,
  Code.Pushw_SS,
  Code.Pushw_FS,
  Code.Pushw_GS,
]);

/** MSRs that exist only on a CPU with long mode (#GP on one without, as on a 32-bit CPU). */
const LONG_MODE_MSRS = new Set<number>([
  MSR.LSTAR,
  MSR.CSTAR,
  MSR.FMASK,
  MSR.FS_BASE,
  MSR.GS_BASE,
  MSR.KERNEL_GS_BASE,
]);

/** Every MSR the emulator implements; any other raises #GP. */
const KNOWN_MSRS = new Set<number>([
  MSR.TSC,
  MSR.APIC_BASE,
  MSR.SYSENTER_CS,
  MSR.SYSENTER_ESP,
  MSR.SYSENTER_EIP,
  MSR.MISC_ENABLE,
  MSR.PAT,
  MSR.STAR,
  MSR_TSC_AUX,
  ...LONG_MODE_MSRS,
]);

/** Whether a 64-bit value is a canonical address (bits 63..47 all equal). */
function isCanonical(v: bigint): boolean {
  const top = BigInt.asUintN(64, v) >> 47n;
  return top === 0n || top === 0x1ffffn;
}

function hex(v: number): string {
  return v > 0xffffffff && v < 2 ** 53 ? v.toString(16) : (v >>> 0).toString(16);
}

function vectorName(v: number): string {
  return VECTOR_NAMES[v] ?? `vector ${v}`;
}
