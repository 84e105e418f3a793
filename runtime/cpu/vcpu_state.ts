import { CR0 } from "./x86.ts";
import { VCPU_FLAG_BITS, VcpuPage } from "./vcpu_page.ts";

const EFER_LMA = 1n << 10n;
const CR4_PAE = 1 << 5;

/** A descriptor-table register (GDTR, IDTR). */
export interface TableRegister {
  base: number;
  limit: number;
}

/**
 * The part of a vCPU that the host CPU cannot hold for a guest running in ring 3: privilege
 * level, the guest's own segment selectors (the host runs flat host selectors in their place),
 * the virtual interrupt flag and IOPL, descriptor-table registers, control, debug and
 * model-specific registers. General registers and arithmetic flags live in the host registers.
 */
export class VcpuState {
  #page = new VcpuPage();

  /**
   * The vCPU page holding the virtual IF, IOPL, CPL and selectors: their only copy. A private page until
   * the machine maps a shared one for the fast form's trampolines ({@link usePage}).
   */
  get page(): VcpuPage {
    return this.#page;
  }

  /**
   * Moves the virtual IF, IOPL, CPL and selectors into `page` (a mapping shared with the guest's
   * trampolines); from now on they are read and written there.
   *
   * @param page the shared page
   */
  usePage(page: VcpuPage): void {
    page.copyFrom(this.#page);
    this.#page = page;
  }

  /** Current privilege level the guest believes it runs at (in the vCPU page). */
  get cpl(): number {
    return this.#page.cpl;
  }
  set cpl(v: number) {
    this.#page.cpl = v;
  }
  /**
   * Guest segment selectors, indexed by SREG (es, cs, ss, ds, fs, gs); kept in the vCPU page,
   * where fast-form trampolines read them.
   */
  get selectors(): Uint32Array {
    return this.#page.selectors;
  }
  /** Virtual EFLAGS.IF: the host's IF is always 1 in a user process. */
  get interruptFlag(): boolean {
    return (this.#page.flags & VCPU_FLAG_BITS.IF) !== 0;
  }
  set interruptFlag(v: boolean) {
    const f = this.#page.flags;
    this.#page.flags = v ? f | VCPU_FLAG_BITS.IF : f & ~VCPU_FLAG_BITS.IF;
  }
  /** Virtual EFLAGS.IOPL. */
  get iopl(): number {
    return (this.#page.flags >>> 12) & 3;
  }
  set iopl(v: number) {
    this.#page.flags = (this.#page.flags & ~VCPU_FLAG_BITS.IOPL) | ((v & 3) << 12);
  }
  /** Set by sti and mov/pop ss: interrupts are held off for one instruction. */
  interruptShadow = false;
  /** Waiting in hlt for an interrupt. */
  halted = false;
  /**
   * Running 64-bit code: long mode is active (EFER.LMA) and CS is a 64-bit code segment (L=1).
   * With LMA and a 32-bit CS the CPU runs compatibility mode.
   */
  code64 = false;
  gdtr: TableRegister = { base: 0, limit: 0xffff };
  idtr: TableRegister = { base: 0, limit: 0x3ff };
  ldtr = 0;
  ldtrBase = 0;
  ldtrLimit = 0;
  tr = 0;
  trBase = 0;
  trLimit = 0;
  cr0 = CR0.PE | CR0.ET;
  cr2 = 0;
  cr3 = 0;
  cr4 = 0;
  /** CR8: the task-priority register as 64-bit mode exposes it. */
  cr8 = 0;
  efer = 0n;
  readonly dr = new Uint32Array(8);
  readonly msrs = new Map<number, bigint>();
  /** Exceptions being delivered, innermost last, for double and triple fault detection. */
  readonly deliveryStack: number[] = [];

  /**
   * Power-on state after a Multiboot loader hands over: 32-bit protected mode, flat segments,
   * interrupts disabled (Multiboot 1 spec, "Machine state").
   */
  resetForMultiboot(): void {
    this.cpl = 0;
    this.selectors.set([0x10, 0x08, 0x10, 0x10, 0x10, 0x10]);
    this.interruptFlag = false;
    this.iopl = 0;
    this.interruptShadow = false;
    this.halted = false;
    this.code64 = false;
    this.gdtr = { base: 0, limit: 0xffff };
    this.idtr = { base: 0, limit: 0x3ff };
    this.ldtr = 0;
    this.ldtrBase = 0;
    this.ldtrLimit = 0;
    this.tr = 0;
    this.trBase = 0;
    this.trLimit = 0;
    this.cr0 = CR0.PE | CR0.ET;
    this.cr2 = 0;
    this.cr3 = 0;
    this.cr4 = 0;
    this.cr8 = 0;
    this.efer = 0n;
    this.dr.fill(0);
    this.dr[6] = 0xffff0ff0;
    this.dr[7] = 0x400;
    this.msrs.clear();
    this.deliveryStack.length = 0;
  }

  /** Whether long mode is active (EFER.LMA). */
  get longMode(): boolean {
    return (this.efer & EFER_LMA) !== 0n;
  }

  /** A one-line description of the mode, for reports: "protected mode, 32-bit, CPL 0". */
  describeMode(): string {
    const paging = this.cr0 & CR0.PG ? (this.cr4 & CR4_PAE ? ", PAE paging" : ", paging") : "";
    const mode = this.longMode
      ? (this.code64 ? "long mode, 64-bit" : "long mode, compatibility (32-bit)")
      : "protected mode, 32-bit";
    return `${mode}, CPL ${this.cpl}${this.longMode ? "" : paging}, IF=${
      this.interruptFlag ? 1 : 0
    }`;
  }
}
