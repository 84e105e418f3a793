/**
 * The vCPU page and the stub window: the one place that fixes their addresses and layout.
 *
 * The fast form of the static rewriter (docs/design/2026-11-21-fast-form.md) sends cli, sti,
 * pushf and popf into trampolines that run natively in the guest's kernel-mode host process and
 * keep the virtual IF in a page shared with the runtime, as Xen PV keeps evtchn_upcall_mask:
 * no tracer round trip unless an interrupt is pending when IF becomes 1.
 *
 * The window is a guest-linear range inside the 32-bit space (the guest kernel runs in compat
 * mode, so its code reaches only the low 4 GiB), above the IOAPIC (0xFEC00000) and the local
 * APIC (0xFEE00000), and exactly one 32-bit page-directory entry (index 1023; PDEs 510-511 under
 * PDPTE 3 with PAE or 4-level paging), so checking that the guest does not map it takes a few
 * reads. Its first page is the vCPU page (read-write), the
 * trampolines follow (read-execute). It is mapped only in the kernel-mode host process: guest
 * user mode runs in a second process and never runs kernel code.
 *
 * @module
 */

/** The reserved guest-linear window: vCPU page, then trampoline code. */
export const STUB_WINDOW = Object.freeze({
  /** First byte; 4 MiB aligned (one 32-bit PDE). */
  base: 0xffc00000,
  /** Bytes reserved (up to the top of the 32-bit space). */
  size: 0x400000,
});

/** Guest-linear address of the vCPU page. */
export const VCPU_PAGE_ADDRESS = STUB_WINDOW.base;
/** Guest-linear address where trampoline code starts. */
export const STUB_CODE_ADDRESS = STUB_WINDOW.base + 0x1000;
/** Largest trampoline area that fits the window. */
export const STUB_CODE_MAX = STUB_WINDOW.size - 0x1000;

/**
 * Byte offsets of the vCPU page's fields, each a little-endian u32. The runtime only writes the
 * page while the guest is stopped (one vCPU), and the trampolines only while it runs, so no
 * field needs atomic access.
 */
export const VCPU_PAGE = Object.freeze({
  /** Virtual EFLAGS.IF (bit 9) and IOPL (bits 12-13) at their EFLAGS positions; other bits 0. */
  FLAGS: 0,
  /** Nonzero when an interrupt is pending at the controller (set before every resume). */
  PENDING: 4,
  /** The virtual CPL: the trampolines take the slow path unless it is 0. */
  CPL: 8,
  /** Fast sequences entered, counted by the trampolines (wraps at 2^32). */
  FAST_RUNS: 12,
  /**
   * The guest's segment selectors, one u32 each (zero-extended) in SREG order: es, cs, ss, ds,
   * fs, gs. Trampolines serve `mov %sreg,%reg` and `push %sreg` from here.
   */
  SELECTORS: 16,
  /** Bytes of the page. */
  SIZE: 0x1000,
});

/** Bytes of the page in use. */
const USED_BYTES = VCPU_PAGE.SELECTORS + 6 * 4;

/** EFLAGS bits the vCPU page holds. */
export const VCPU_FLAG_BITS = Object.freeze({ IF: 1 << 9, IOPL: 3 << 12 });

/**
 * A typed view of a vCPU page. The runtime's virtual IF, IOPL and CPL live here and only here
 * (VcpuState reads and writes through it), so the trampolines and the emulator never disagree.
 */
export class VcpuPage {
  readonly #u32: Uint32Array;
  /** The guest's segment selectors (SREG order), as {@link VCPU_PAGE}.SELECTORS lays them out. */
  readonly selectors: Uint32Array;

  /**
   * @param bytes the page's bytes: a shared mapping, or plain memory when no trampolines run
   *   (default: a fresh private page)
   */
  constructor(bytes: Uint8Array = new Uint8Array(VCPU_PAGE.SIZE)) {
    if (bytes.byteLength < USED_BYTES || bytes.byteOffset % 4 !== 0) {
      throw new RangeError(`a vCPU page needs at least ${USED_BYTES} bytes, 4-byte aligned`);
    }
    this.#u32 = new Uint32Array(bytes.buffer, bytes.byteOffset, USED_BYTES / 4);
    this.selectors = this.#u32.subarray(VCPU_PAGE.SELECTORS / 4, VCPU_PAGE.SELECTORS / 4 + 6);
  }

  /** The FLAGS field (IF and IOPL bits only). */
  get flags(): number {
    return this.#u32[VCPU_PAGE.FLAGS >> 2];
  }
  set flags(v: number) {
    this.#u32[VCPU_PAGE.FLAGS >> 2] = v & (VCPU_FLAG_BITS.IF | VCPU_FLAG_BITS.IOPL);
  }

  /** Whether an interrupt is pending at the controller. */
  get pending(): boolean {
    return this.#u32[VCPU_PAGE.PENDING >> 2] !== 0;
  }
  set pending(v: boolean) {
    this.#u32[VCPU_PAGE.PENDING >> 2] = v ? 1 : 0;
  }

  /** The virtual CPL. */
  get cpl(): number {
    return this.#u32[VCPU_PAGE.CPL >> 2];
  }
  set cpl(v: number) {
    this.#u32[VCPU_PAGE.CPL >> 2] = v & 3;
  }

  /** Fast sequences the trampolines entered. */
  get fastRuns(): number {
    return this.#u32[VCPU_PAGE.FAST_RUNS >> 2];
  }

  /** Copies every field from another page (when a shared page replaces a private one). */
  copyFrom(other: VcpuPage): void {
    this.#u32.set(other.#u32);
  }
}
