/**
 * The local APIC of ring3's single virtual CPU, in xAPIC (memory-mapped) mode.
 *
 * Register and bit names follow the Intel SDM vol. 3A, chapter 11 "Advanced Programmable
 * Interrupt Controller (APIC)" (chapter 10 in editions before 2023). Where the SDM leaves a
 * choice, QEMU's hw/intc/apic.c and apic_common.c are the reference for what kernels expect;
 * each such place says so.
 *
 * @module
 */

import type { DeviceClock } from "./device_clock.ts";
import type { IrqLine } from "./irq_line.ts";
import type { MmioDevice } from "./mmio_device.ts";
import type { AccessSize } from "./port_device.ts";

// ---------------------------------------------------------------------------------------------
// Register map (offsets from the APIC base; SDM 11.4.1, Table 11-1 "Local APIC Register Address
// Map"). Every register is 32 bits wide on a 16-byte boundary.
// ---------------------------------------------------------------------------------------------

/** Register offsets from the local APIC's base. */
export const LAPIC_REG = {
  /** Local APIC ID Register (APIC ID in bits 24-31). */
  ID: 0x020,
  /** Local APIC Version Register (read-only). */
  VERSION: 0x030,
  /** Task Priority Register. */
  TPR: 0x080,
  /** Arbitration Priority Register (read-only, derived; SDM 11.6.2.4). */
  APR: 0x090,
  /** Processor Priority Register (read-only, derived; SDM 11.8.3.1). */
  PPR: 0x0a0,
  /** EOI Register (write-only). */
  EOI: 0x0b0,
  /** Logical Destination Register (logical APIC ID in bits 24-31). */
  LDR: 0x0d0,
  /** Destination Format Register (model in bits 28-31, the rest reads as ones). */
  DFR: 0x0e0,
  /** Spurious Interrupt Vector Register. */
  SVR: 0x0f0,
  /** In-Service Register, bits 0-31 (then 32-63 at +0x10, ... 224-255 at +0x70). */
  ISR: 0x100,
  /** Trigger Mode Register, bits 0-31 (eight registers like ISR). */
  TMR: 0x180,
  /** Interrupt Request Register, bits 0-31 (eight registers like ISR). */
  IRR: 0x200,
  /** Error Status Register. */
  ESR: 0x280,
  /** Interrupt Command Register bits 0-31; writing it sends the IPI. */
  ICR_LOW: 0x300,
  /** Interrupt Command Register bits 32-63 (destination in bits 56-63). */
  ICR_HIGH: 0x310,
  /** LVT Timer Register. */
  LVT_TIMER: 0x320,
  /** LVT Thermal Sensor Register. */
  LVT_THERMAL: 0x330,
  /** LVT Performance Monitoring Counters Register. */
  LVT_PERF: 0x340,
  /** LVT LINT0 Register. */
  LVT_LINT0: 0x350,
  /** LVT LINT1 Register. */
  LVT_LINT1: 0x360,
  /** LVT Error Register. */
  LVT_ERROR: 0x370,
  /** Initial Count Register (for the timer). */
  TIMER_INITIAL_COUNT: 0x380,
  /** Current Count Register (for the timer; read-only, derived from guest time). */
  TIMER_CURRENT_COUNT: 0x390,
  /** Divide Configuration Register (for the timer). */
  TIMER_DIVIDE: 0x3e0,
} as const;

/** Bytes the local APIC decodes from its base (one 4 KiB page). */
export const LOCAL_APIC_MMIO_SIZE = 0x1000;

/** The architectural default base (IA32_APIC_BASE after reset); the board does the mapping. */
export const LOCAL_APIC_DEFAULT_BASE = 0xfee00000;

/**
 * Version Register value: version 0x14 in bits 0-7 (an integrated APIC, SDM 11.4.8) and Max LVT
 * Entry 5 in bits 16-23 (six LVT entries). QEMU's default "version" property is 0x14 and its
 * `APIC_LVT_NB` is 6. Bit 24 (EOI-broadcast suppression) is clear: it is not supported.
 */
export const LOCAL_APIC_VERSION = 0x00050014;

/**
 * Default APIC bus (timer input) frequency: 1 GHz, one timer tick per guest nanosecond before
 * the divider. QEMU's timer also counts guest nanoseconds (`count_shift` applies to ns).
 */
export const LOCAL_APIC_DEFAULT_BUS_HZ = 1_000_000_000;

/** Spurious Interrupt Vector Register bits (SDM 11.9, Figure 11-23). */
export const SVR = {
  /** Bits 0-7: the vector returned for a spurious INTA. */
  VECTOR_MASK: 0x0ff,
  /** Bit 8: APIC Software Enable/Disable (1 = enabled). */
  APIC_ENABLED: 0x100,
} as const;

/** Local Vector Table entry bits (SDM 11.5.1, Figure 11-8). */
export const LVT = {
  /** Bits 0-7: Vector. */
  VECTOR_MASK: 0xff,
  /** Bits 8-10: Delivery Mode (thermal, perf, LINT0, LINT1 only). */
  DELIVERY_MODE_MASK: 0x700,
  /** Bit 12: Delivery Status (read-only; always idle here). */
  DELIVERY_STATUS: 0x1000,
  /** Bit 13: Interrupt Input Pin Polarity (LINT0, LINT1 only). */
  INPUT_POLARITY: 0x2000,
  /** Bit 14: Remote IRR (read-only; LINT0, LINT1 only). */
  REMOTE_IRR: 0x4000,
  /** Bit 15: Trigger Mode, 1 = level (LINT0, LINT1 only). */
  LEVEL_TRIGGERED: 0x8000,
  /** Bit 16: Mask, 1 = inhibits reception of the interrupt. */
  MASKED: 0x10000,
  /** Bits 17-18 of LVT Timer: Timer Mode. */
  TIMER_MODE_MASK: 0x60000,
  /** Timer Mode 00b: one-shot. */
  TIMER_ONE_SHOT: 0x00000,
  /** Timer Mode 01b: periodic. */
  TIMER_PERIODIC: 0x20000,
  /** Timer Mode 10b: TSC-deadline (not supported here; see {@linkcode LocalApic}). */
  TIMER_TSC_DEADLINE: 0x40000,
} as const;

/** Interrupt Command Register (low dword) bits (SDM 11.6.1, Figure 11-12). */
export const ICR = {
  /** Bits 0-7: Vector. */
  VECTOR_MASK: 0xff,
  /** Bits 8-10: Delivery Mode (see {@linkcode DELIVERY_MODE}). */
  DELIVERY_MODE_MASK: 0x700,
  /** Bit 11: Destination Mode, 1 = logical. */
  DESTINATION_LOGICAL: 0x800,
  /** Bit 12: Delivery Status (read-only; always idle: sending is instantaneous). */
  DELIVERY_STATUS: 0x1000,
  /** Bit 14: Level, 0 = de-assert (only meaningful for INIT). */
  LEVEL_ASSERT: 0x4000,
  /** Bit 15: Trigger Mode, 1 = level. */
  LEVEL_TRIGGERED: 0x8000,
  /** Bits 18-19: Destination Shorthand. */
  SHORTHAND_MASK: 0xc0000,
  /** Shorthand 00b: use the destination field. */
  SHORTHAND_NONE: 0x00000,
  /** Shorthand 01b: self. */
  SHORTHAND_SELF: 0x40000,
  /** Shorthand 10b: all including self. */
  SHORTHAND_ALL_INCLUDING_SELF: 0x80000,
  /** Shorthand 11b: all excluding self. */
  SHORTHAND_ALL_EXCLUDING_SELF: 0xc0000,
} as const;

/** Delivery Mode values, in ICR and LVT bits 8-10 (SDM 11.6.1). */
export const DELIVERY_MODE = {
  /** 000b: Fixed. */
  FIXED: 0,
  /** 001b: Lowest Priority. */
  LOWEST_PRIORITY: 1,
  /** 010b: SMI. */
  SMI: 2,
  /** 100b: NMI. */
  NMI: 4,
  /** 101b: INIT (or INIT level de-assert). */
  INIT: 5,
  /** 110b: Start-Up. */
  STARTUP: 6,
  /** 111b: ExtINT. */
  EXTINT: 7,
} as const;

/** Destination Format Register models, bits 28-31 (SDM 11.6.2.2). */
export const DFR_MODEL = {
  /** 1111b: flat model (LDR bits 24-31 are a bit mask). */
  FLAT: 0xf,
  /** 0000b: cluster model (LDR bits 28-31 cluster, 24-27 bit mask within the cluster). */
  CLUSTER: 0x0,
} as const;

/** Error Status Register bits (SDM 11.5.3, Figure 11-9). */
export const ESR = {
  /** Bit 5: Send Illegal Vector (an IPI with a vector below 16). */
  SEND_ILLEGAL_VECTOR: 0x20,
  /** Bit 6: Receive Illegal Vector (an interrupt with a vector below 16). */
  RECEIVE_ILLEGAL_VECTOR: 0x40,
  /** Bit 7: Illegal Register Address (a reserved offset was accessed; P6 family). */
  ILLEGAL_REGISTER_ADDRESS: 0x80,
} as const;

// LVT entries in register order, indices into LocalApicState.lvt.
const LVT_TIMER = 0;
const LVT_ERROR = 5;
const LVT_COUNT = 6;

// Writable bits of each LVT entry, from SDM Figure 11-8 (the bits each entry has). The timer's
// bit 18 is left out: TSC-deadline mode is not supported. KVM masks LVT writes the same way.
const LVT_WRITABLE: readonly number[] = [
  LVT.VECTOR_MASK | LVT.MASKED | LVT.TIMER_PERIODIC,
  LVT.VECTOR_MASK | LVT.DELIVERY_MODE_MASK | LVT.MASKED,
  LVT.VECTOR_MASK | LVT.DELIVERY_MODE_MASK | LVT.MASKED,
  LVT.VECTOR_MASK | LVT.DELIVERY_MODE_MASK | LVT.INPUT_POLARITY | LVT.LEVEL_TRIGGERED |
  LVT.MASKED,
  LVT.VECTOR_MASK | LVT.DELIVERY_MODE_MASK | LVT.INPUT_POLARITY | LVT.LEVEL_TRIGGERED |
  LVT.MASKED,
  LVT.VECTOR_MASK | LVT.MASKED,
];

// ICR low bits that hold what was written; bit 12 (delivery status) and 13, 16-17, 20-31 are
// reserved or read-only.
const ICR_LOW_WRITABLE = ICR.VECTOR_MASK | ICR.DELIVERY_MODE_MASK | ICR.DESTINATION_LOGICAL |
  ICR.LEVEL_ASSERT | ICR.LEVEL_TRIGGERED | ICR.SHORTHAND_MASK;
// SVR bits kept: vector and software enable, as QEMU (`val & 0x1ff`). Focus processor checking
// (bit 9) means nothing with one CPU, and EOI-broadcast suppression (bit 12) is not offered.
const SVR_WRITABLE = SVR.VECTOR_MASK | SVR.APIC_ENABLED;
// Divide Configuration Register bits 0, 1 and 3 (SDM 11.5.4, Figure 11-10).
const DIVIDE_WRITABLE = 0xb;
// Vectors 0-15 are illegal for the APIC (SDM 11.5.2 "Valid Interrupt Vectors").
const FIRST_LEGAL_VECTOR = 16;
const BROADCAST = 0xff;
const NS_PER_SECOND = 1_000_000_000;

/**
 * The timer divisor selected by a Divide Configuration Register value (SDM Figure 11-10): bits
 * 0, 1 and 3 form a 3-bit code; 000b divides by 2, 001b by 4, ... 110b by 128 and 111b by 1.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { timerDivisor } from "./local_apic.ts";
 *
 * assert.equal(timerDivisor(0x0), 2);
 * assert.equal(timerDivisor(0xb), 1);
 * assert.equal(timerDivisor(0xa), 128);
 * ```
 *
 * @param divideConfiguration The register value (other bits are ignored).
 * @returns 1, 2, 4, 8, 16, 32, 64 or 128.
 */
export function timerDivisor(divideConfiguration: number): number {
  const code = (divideConfiguration & 3) | ((divideConfiguration >> 1) & 4);
  return 1 << ((code + 1) & 7);
}

/** Options for {@linkcode LocalApic}. */
export interface LocalApicOptions {
  /**
   * Name used in logs.
   *
   * @default {"local-apic"}
   */
  name?: string;
  /** Guest time, which drives the timer. */
  clock: DeviceClock;
  /**
   * The APIC ID after reset (ID Register bits 24-31), 0..254; 255 is the broadcast address.
   *
   * @default {0}
   */
  id?: number;
  /**
   * Frequency in Hz of the clock the timer counts before the divider (the processor's bus or
   * core crystal clock on real hardware). Kernels measure it against another timer, so any
   * value works; the default makes one tick one guest nanosecond, as in QEMU.
   *
   * @default {1_000_000_000}
   */
  busFrequencyHz?: number;
  /** The CPU's interrupt input: high while {@linkcode LocalApic.hasInterrupt} is true. */
  intr: IrqLine;
  /**
   * Called with the vector when an EOI retires a level-triggered interrupt (its TMR bit is
   * set), so the I/O APIC can clear Remote IRR (the board wires it to
   * {@linkcode ./ioapic.ts IoApic.endOfInterrupt}). QEMU's equivalent is
   * `ioapic_eoi_broadcast`.
   *
   * @default {undefined}
   */
  onLevelEoi?: (vector: number) => void;
  /**
   * Where unsupported features and ignored writes are reported, each once.
   *
   * @default {(message) => console.warn(`${name}: ${message}`)}
   */
  log?: (message: string) => void;
}

// Everything reset() sets, as one plain object so a later snapshot can name its fields.
interface LocalApicState {
  /** APIC ID (ID Register bits 24-31). */
  id: number;
  /** Task Priority Register (bits 0-7). */
  tpr: number;
  /** Logical Destination Register (bits 24-31 kept in place). */
  ldr: number;
  /** Destination Format Register model (bits 28-31, shifted down). */
  dfrModel: number;
  /** Spurious Interrupt Vector Register. */
  svr: number;
  /** In-Service Register, eight 32-bit words, vector v at word v >> 5, bit v & 31. */
  isr: Uint32Array;
  /** Trigger Mode Register (same layout): 1 = the vector was accepted level-triggered. */
  tmr: Uint32Array;
  /** Interrupt Request Register (same layout). */
  irr: Uint32Array;
  /** ESR as last latched by an ESR write. */
  esr: number;
  /** Errors detected since the last ESR write, not yet visible in ESR. */
  esrPending: number;
  /** ICR bits 0-31 (delivery status always 0). */
  icrLow: number;
  /** ICR bits 32-63 (destination in bits 24-31). */
  icrHigh: number;
  /** LVT entries: timer, thermal, perf, LINT0, LINT1, error. */
  lvt: Uint32Array;
  /** Timer Initial Count Register; 0 means the timer is stopped. */
  initialCount: number;
  /** Divide Configuration Register (bits 0, 1, 3). */
  divideConfiguration: number;
  /** Guest time (ns) at which the count last started from the initial count. */
  timerStartNs: number;
}

/**
 * A local APIC (xAPIC mode) for a single CPU, version 0x14 with six LVT entries.
 *
 * CPU side: interrupts arrive with {@linkcode LocalApic.acceptInterrupt} (from the I/O APIC, a
 * self-IPI or the timer) and wait in IRR; the `intr` line is high while
 * {@linkcode LocalApic.hasInterrupt} says the highest one beats the processor priority; the
 * CPU's INTA cycle is {@linkcode LocalApic.acknowledge}; the guest's EOI write retires the
 * highest in-service vector.
 *
 * Behaviour and choices:
 * - Accesses must be 32-bit and 16-byte aligned (SDM 11.4.1). Smaller accesses read 0 and
 *   writes are dropped, as in QEMU, and logged once. Reserved offsets read 0, ignore writes and
 *   set ESR's Illegal Register Address bit, as in QEMU and the P6 family.
 * - Software disable (SVR bit 8 clear, the reset state): all LVT entries are masked and stay
 *   masked whatever is written (SDM 11.4.7.2); accepted interrupts wait in IRR and `intr` stays
 *   low until the APIC is enabled, as in QEMU (`apic_irq_pending`). KVM drops them instead.
 * - Timer (SDM 11.5.4): the count is derived from guest time; it decrements once per
 *   `divisor / busFrequencyHz` seconds and the interrupt fires when it reaches 0, after
 *   `initial count` ticks. Periodic mode reloads at once, so the count reads initial..1.
 *   (QEMU fires after `initial count + 1` ticks.) The count runs while the LVT entry is masked;
 *   only the interrupt is suppressed. A divide change keeps the elapsed whole ticks and counts
 *   on at the new rate. With a tick length that is not a whole number of nanoseconds the count
 *   is computed in floating point.
 * - TSC-deadline timer mode is not supported: CPUID.01H:ECX[24] is clear in ring3's CPU model
 *   (runtime/cpu/cpu_model.ts), so LVT timer bit 18 is reserved; writes to it are ignored
 *   (logged once) and the timer runs in the mode bit 17 selects.
 * - IPIs (SDM 11.6): sending is instantaneous (delivery status always idle). Fixed and
 *   lowest-priority IPIs reach this APIC through the "self" and "all including self"
 *   shorthands or a matching destination ({@linkcode LocalApic.matchesDestination}). There
 *   are no other CPUs, so IPIs for them, and INIT, Start-Up, NMI, SMI and ExtINT IPIs, are
 *   logged once per kind and dropped. An INIT level de-assert is accepted silently (it only
 *   synchronises arbitration IDs).
 * - Errors (SDM 11.5.3): illegal vectors (0-15) sent or received and reserved register accesses
 *   set bits that the next ESR write makes visible, and raise the LVT error interrupt when
 *   they are new.
 * - Not modelled: LINT0/LINT1 inputs (their LVT entries are storage; the board connects the
 *   8259 to the CPU directly), thermal and performance-counter interrupts, lowest-priority
 *   arbitration between CPUs, x2APIC mode, the IA32_APIC_BASE MSR (the CPU side owns it).
 *
 * @example Accepting, acknowledging and retiring an interrupt
 * ```ts
 * import assert from "node:assert/strict";
 * import { ManualClock } from "./device_clock.ts";
 * import { IrqLine } from "./irq_line.ts";
 * import { LAPIC_REG, LocalApic, SVR } from "./local_apic.ts";
 *
 * const intr = new IrqLine("intr");
 * const apic = new LocalApic({ clock: new ManualClock(), intr });
 * apic.write(LAPIC_REG.SVR, SVR.APIC_ENABLED | 0xff, 4);
 * apic.acceptInterrupt(0x30);
 * assert.equal(intr.level, true);
 * assert.equal(apic.acknowledge(), 0x30);
 * assert.equal(intr.level, false);
 * apic.write(LAPIC_REG.EOI, 0, 4);
 * ```
 */
export class LocalApic implements MmioDevice {
  /** Name used in logs. */
  readonly name: string;
  /** Bytes decoded from the base: {@linkcode LOCAL_APIC_MMIO_SIZE}. */
  readonly size: number = LOCAL_APIC_MMIO_SIZE;
  readonly #clock: DeviceClock;
  readonly #resetId: number;
  readonly #busHz: number;
  readonly #intr: IrqLine;
  readonly #onLevelEoi: ((vector: number) => void) | undefined;
  readonly #log: (message: string) => void;
  readonly #logged = new Set<string>();
  // The scheduled timer expiry, if any: its guest time, and how to cancel it.
  #timerDeadlineNs: number | undefined;
  #timerCancel: (() => void) | undefined;
  readonly #s: LocalApicState = {
    id: 0,
    tpr: 0,
    ldr: 0,
    dfrModel: DFR_MODEL.FLAT,
    svr: SVR.VECTOR_MASK,
    isr: new Uint32Array(8),
    tmr: new Uint32Array(8),
    irr: new Uint32Array(8),
    esr: 0,
    esrPending: 0,
    icrLow: 0,
    icrHigh: 0,
    lvt: new Uint32Array(LVT_COUNT),
    initialCount: 0,
    divideConfiguration: 0,
    timerStartNs: 0,
  };

  /**
   * Create a local APIC in its power-on state (software-disabled, all LVT entries masked).
   *
   * @param options See {@linkcode LocalApicOptions}.
   * @throws {RangeError} If `id` is not an integer in 0..254 or `busFrequencyHz` is not a
   *   positive finite number.
   */
  constructor(options: LocalApicOptions) {
    this.name = options.name ?? "local-apic";
    const id = options.id ?? 0;
    if (!Number.isInteger(id) || id < 0 || id >= BROADCAST) {
      throw new RangeError(`local APIC id must be an integer in 0..254, got ${id}`);
    }
    const busHz = options.busFrequencyHz ?? LOCAL_APIC_DEFAULT_BUS_HZ;
    if (!Number.isFinite(busHz) || busHz <= 0) {
      throw new RangeError(`busFrequencyHz must be a positive number, got ${busHz}`);
    }
    this.#clock = options.clock;
    this.#resetId = id;
    this.#busHz = busHz;
    this.#intr = options.intr;
    this.#onLevelEoi = options.onLevelEoi;
    const name = this.name;
    this.#log = options.log ?? ((message) => console.warn(`${name}: ${message}`));
    this.reset();
  }

  /**
   * Return to the power-on state of SDM 11.4.7.1, stop the timer and lower `intr`.
   *
   * The APIC ID returns to the constructor's `id`. Messages already logged are not repeated.
   */
  reset(): void {
    const s = this.#s;
    s.id = this.#resetId;
    s.tpr = 0;
    s.ldr = 0;
    // DFR resets to all ones: flat model.
    s.dfrModel = DFR_MODEL.FLAT;
    // SVR resets to 0xff: spurious vector 0xff, software-disabled.
    s.svr = SVR.VECTOR_MASK;
    s.isr.fill(0);
    s.tmr.fill(0);
    s.irr.fill(0);
    s.esr = 0;
    s.esrPending = 0;
    s.icrLow = 0;
    s.icrHigh = 0;
    // Every LVT entry resets to "masked, everything else 0". QEMU additionally programs LINT0
    // as ExtINT on the BSP, which is the BIOS's job; ring3 has no BIOS and no LINT0 input.
    s.lvt.fill(LVT.MASKED);
    s.initialCount = 0;
    s.divideConfiguration = 0;
    s.timerStartNs = this.#clock.now();
    this.#cancelTimer();
    this.#updateIrq();
  }

  /**
   * Read the 32-bit register at `offset`.
   *
   * @returns The register, or 0 for reserved offsets, write-only registers and accesses that
   *   are not 4 bytes wide.
   */
  read(offset: number, size: AccessSize): number {
    if (size !== 4) {
      this.#logOnce(`read-size-${size}`, `${size}-byte read at 0x${hex(offset)} reads 0`);
      return 0;
    }
    const s = this.#s;
    if (offset >= LAPIC_REG.ISR && offset < LAPIC_REG.ESR && (offset & 0xf) === 0) {
      const word = (offset >> 4) & 7;
      if (offset < LAPIC_REG.TMR) return s.isr[word];
      if (offset < LAPIC_REG.IRR) return s.tmr[word];
      return s.irr[word];
    }
    if (offset >= LAPIC_REG.LVT_TIMER && offset <= LAPIC_REG.LVT_ERROR && (offset & 0xf) === 0) {
      return s.lvt[(offset - LAPIC_REG.LVT_TIMER) >> 4];
    }
    switch (offset) {
      case LAPIC_REG.ID:
        return (s.id << 24) >>> 0;
      case LAPIC_REG.VERSION:
        return LOCAL_APIC_VERSION;
      case LAPIC_REG.TPR:
        return s.tpr;
      case LAPIC_REG.APR:
        return this.#apr();
      case LAPIC_REG.PPR:
        return this.#ppr();
      case LAPIC_REG.EOI:
        return 0;
      case LAPIC_REG.LDR:
        return s.ldr;
      case LAPIC_REG.DFR:
        return ((s.dfrModel << 28) | 0x0fffffff) >>> 0;
      case LAPIC_REG.SVR:
        return s.svr;
      case LAPIC_REG.ESR:
        return s.esr;
      case LAPIC_REG.ICR_LOW:
        return s.icrLow;
      case LAPIC_REG.ICR_HIGH:
        return s.icrHigh;
      case LAPIC_REG.TIMER_INITIAL_COUNT:
        return s.initialCount;
      case LAPIC_REG.TIMER_CURRENT_COUNT:
        return this.#currentCount();
      case LAPIC_REG.TIMER_DIVIDE:
        return s.divideConfiguration;
      default:
        this.#signalError(ESR.ILLEGAL_REGISTER_ADDRESS);
        return 0;
    }
  }

  /**
   * Write the 32-bit register at `offset`. Writes that are not 4 bytes wide, and writes to
   * read-only or reserved registers, are ignored (and logged once).
   */
  write(offset: number, value: number, size: AccessSize): void {
    if (size !== 4) {
      this.#logOnce(`write-size-${size}`, `${size}-byte write at 0x${hex(offset)} ignored`);
      return;
    }
    value = value >>> 0;
    const s = this.#s;
    if (offset >= LAPIC_REG.ISR && offset < LAPIC_REG.ESR && (offset & 0xf) === 0) {
      const name = offset < LAPIC_REG.TMR ? "ISR" : offset < LAPIC_REG.IRR ? "TMR" : "IRR";
      this.#readOnly(name);
      return;
    }
    if (offset >= LAPIC_REG.LVT_TIMER && offset <= LAPIC_REG.LVT_ERROR && (offset & 0xf) === 0) {
      this.#writeLvt((offset - LAPIC_REG.LVT_TIMER) >> 4, value);
      return;
    }
    switch (offset) {
      case LAPIC_REG.ID:
        // Writable on the P6 family and in QEMU; SDM 11.4.6 calls it model-specific.
        s.id = value >>> 24;
        return;
      case LAPIC_REG.VERSION:
        return this.#readOnly("version");
      case LAPIC_REG.TPR:
        s.tpr = value & 0xff;
        this.#updateIrq();
        return;
      case LAPIC_REG.APR:
        return this.#readOnly("APR");
      case LAPIC_REG.PPR:
        return this.#readOnly("PPR");
      case LAPIC_REG.EOI:
        // SDM 11.8.5: software writes 0; any value signals the EOI here, as in QEMU.
        this.#endOfInterrupt();
        return;
      case LAPIC_REG.LDR:
        s.ldr = (value & 0xff000000) >>> 0;
        return;
      case LAPIC_REG.DFR:
        s.dfrModel = value >>> 28;
        return;
      case LAPIC_REG.SVR:
        this.#writeSvr(value);
        return;
      case LAPIC_REG.ESR:
        // SDM 11.5.3: a write makes the errors detected since the previous write visible and
        // starts collecting anew; the value written does not matter.
        s.esr = s.esrPending;
        s.esrPending = 0;
        return;
      case LAPIC_REG.ICR_LOW:
        s.icrLow = value & ICR_LOW_WRITABLE;
        this.#sendIpi();
        return;
      case LAPIC_REG.ICR_HIGH:
        s.icrHigh = (value & 0xff000000) >>> 0;
        return;
      case LAPIC_REG.TIMER_INITIAL_COUNT:
        this.#catchUpTimer();
        // SDM 11.5.4: writing the initial count (re)starts the count; 0 stops the timer.
        s.initialCount = value;
        s.timerStartNs = this.#clock.now();
        this.#updateTimer();
        return;
      case LAPIC_REG.TIMER_CURRENT_COUNT:
        return this.#readOnly("current count");
      case LAPIC_REG.TIMER_DIVIDE:
        this.#writeDivide(value & DIVIDE_WRITABLE);
        return;
      default:
        this.#signalError(ESR.ILLEGAL_REGISTER_ADDRESS);
        this.#logOnce(`reserved-${offset}`, `write to reserved offset 0x${hex(offset)} ignored`);
        return;
    }
  }

  /**
   * Queue an interrupt in IRR: from the I/O APIC, a self-IPI or the APIC's own LVT. A vector
   * already pending is not queued twice (SDM 11.8.4). Vectors 0-15 are refused and set ESR's
   * Receive Illegal Vector bit, as the SDM says (11.5.2).
   *
   * @param vector The interrupt vector, 0..255.
   * @param level `true` for a level-triggered interrupt: its TMR bit is set and its EOI is
   *   reported through the `onLevelEoi` option. Default `false` (edge).
   * @throws {RangeError} If `vector` is not an integer in 0..255.
   */
  acceptInterrupt(vector: number, level = false): void {
    if (!Number.isInteger(vector) || vector < 0 || vector > 0xff) {
      throw new RangeError(`interrupt vector must be an integer in 0..255, got ${vector}`);
    }
    this.#accept(vector, level);
  }

  /**
   * Whether an interrupt is deliverable to the CPU: the APIC is software-enabled and the
   * priority class (vector bits 4-7) of the highest IRR vector is above the processor priority
   * class (SDM 11.8.3.1). The `intr` line follows this.
   */
  hasInterrupt(): boolean {
    const s = this.#s;
    if ((s.svr & SVR.APIC_ENABLED) === 0) return false;
    const irrv = highestVector(s.irr);
    return irrv >= 0 && (irrv & 0xf0) > (this.#ppr() & 0xf0);
  }

  /**
   * The CPU's interrupt acknowledge (INTA) cycle: move the highest IRR vector to ISR and return
   * it. If no interrupt is deliverable (for example, TPR was raised after `intr` went high),
   * return the spurious vector from SVR without touching ISR; the guest must not EOI it
   * (SDM 11.9).
   *
   * @returns The vector the CPU should dispatch.
   */
  acknowledge(): number {
    const s = this.#s;
    if (!this.hasInterrupt()) return s.svr & SVR.VECTOR_MASK;
    const vector = highestVector(s.irr);
    clearBit(s.irr, vector);
    setBit(s.isr, vector);
    this.#updateIrq();
    return vector;
  }

  /**
   * Whether an interrupt message for `destination` reaches this APIC (SDM 11.6.2): in physical
   * mode the destination must equal the APIC ID; in logical mode it is matched against LDR in
   * the flat or cluster model DFR selects. 0xff is a broadcast in both modes, as in QEMU and
   * KVM. The board uses this to route I/O APIC messages.
   *
   * @param destination The 8-bit destination field.
   * @param logical `true` for logical destination mode.
   */
  matchesDestination(destination: number, logical: boolean): boolean {
    const s = this.#s;
    destination &= 0xff;
    if (destination === BROADCAST) return true;
    if (!logical) return destination === s.id;
    const ldr = s.ldr >>> 24;
    if (s.dfrModel === DFR_MODEL.FLAT) return (destination & ldr) !== 0;
    if (s.dfrModel === DFR_MODEL.CLUSTER) {
      return (destination >> 4) === (ldr >> 4) && (destination & ldr & 0xf) !== 0;
    }
    // Other DFR models are undefined (SDM 11.6.2.2); nothing matches.
    return false;
  }

  #accept(vector: number, level: boolean): void {
    const s = this.#s;
    if (vector < FIRST_LEGAL_VECTOR) {
      this.#signalError(ESR.RECEIVE_ILLEGAL_VECTOR);
      return;
    }
    setBit(s.irr, vector);
    if (level) setBit(s.tmr, vector);
    else clearBit(s.tmr, vector);
    this.#updateIrq();
  }

  #endOfInterrupt(): void {
    const s = this.#s;
    const vector = highestVector(s.isr);
    if (vector < 0) return;
    clearBit(s.isr, vector);
    // SDM 11.8.5: for a level-triggered vector the EOI is broadcast to the I/O APICs.
    if (testBit(s.tmr, vector)) this.#onLevelEoi?.(vector);
    this.#updateIrq();
  }

  #writeSvr(value: number): void {
    const s = this.#s;
    this.#catchUpTimer();
    s.svr = value & SVR_WRITABLE;
    if ((s.svr & SVR.APIC_ENABLED) === 0) {
      // SDM 11.4.7.2: software disable sets every LVT mask bit; enabling again does not clear
      // them, the guest unmasks the entries it wants.
      for (let i = 0; i < LVT_COUNT; i++) s.lvt[i] |= LVT.MASKED;
    }
    this.#updateTimer();
    this.#updateIrq();
  }

  #writeLvt(index: number, value: number): void {
    const s = this.#s;
    if (index === LVT_TIMER) {
      if ((value & LVT.TIMER_TSC_DEADLINE) !== 0) {
        this.#logOnce(
          "tsc-deadline",
          "TSC-deadline timer mode is not supported (CPUID.01H:ECX[24] is clear); " +
            "LVT timer bit 18 ignored",
        );
      }
      this.#catchUpTimer();
    }
    let lvt = value & LVT_WRITABLE[index];
    // SDM 11.4.7.2: while software-disabled, attempts to clear the mask bits are ignored.
    if ((s.svr & SVR.APIC_ENABLED) === 0) lvt |= LVT.MASKED;
    s.lvt[index] = lvt;
    if (index === LVT_TIMER) this.#updateTimer();
  }

  #writeDivide(divideConfiguration: number): void {
    const s = this.#s;
    this.#catchUpTimer();
    if (s.initialCount !== 0) {
      // Keep the whole ticks already counted and count the rest at the new rate. QEMU instead
      // reinterprets the time since the start at the new rate, so its count jumps.
      const ticks = this.#elapsedTicks(this.#clock.now());
      s.divideConfiguration = divideConfiguration;
      s.timerStartNs = this.#clock.now() - ticks * this.#tickNs();
    } else {
      s.divideConfiguration = divideConfiguration;
    }
    this.#updateTimer();
  }

  #sendIpi(): void {
    const s = this.#s;
    const low = s.icrLow;
    const vector = low & ICR.VECTOR_MASK;
    const mode = (low & ICR.DELIVERY_MODE_MASK) >> 8;
    const shorthand = low & ICR.SHORTHAND_MASK;
    const destination = s.icrHigh >>> 24;
    const logical = (low & ICR.DESTINATION_LOGICAL) !== 0;
    const toSelf = shorthand === ICR.SHORTHAND_SELF ||
      shorthand === ICR.SHORTHAND_ALL_INCLUDING_SELF ||
      (shorthand === ICR.SHORTHAND_NONE && this.matchesDestination(destination, logical));
    const target = describeTarget(shorthand, destination, logical);

    if (mode === DELIVERY_MODE.FIXED || mode === DELIVERY_MODE.LOWEST_PRIORITY) {
      if (vector < FIRST_LEGAL_VECTOR) {
        this.#signalError(ESR.SEND_ILLEGAL_VECTOR);
        return;
      }
      if (toSelf) {
        this.#accept(vector, (low & ICR.LEVEL_TRIGGERED) !== 0);
      } else {
        this.#logOnce(
          `ipi-other-${target}`,
          `IPI vector 0x${hex(vector)} to ${target} dropped: ring3 has one CPU`,
        );
      }
      return;
    }
    if (
      mode === DELIVERY_MODE.INIT && (low & ICR.LEVEL_ASSERT) === 0 &&
      (low & ICR.LEVEL_TRIGGERED) !== 0
    ) {
      // INIT level de-assert only resynchronises arbitration IDs; nothing to do.
      return;
    }
    this.#logOnce(
      `ipi-mode-${mode}`,
      `${deliveryModeName(mode)} IPI to ${target} is not supported; dropped`,
    );
  }

  // Record an error (SDM 11.5.3) and raise the LVT error interrupt when the error is new. An
  // error already pending raises nothing, which also ends the loop an illegal error vector
  // would otherwise start.
  #signalError(bit: number): void {
    const s = this.#s;
    if ((s.esrPending & bit) !== 0) return;
    s.esrPending |= bit;
    this.#deliverLocal(LVT_ERROR);
  }

  // Deliver the interrupt of an LVT entry that has no delivery mode field (timer, error):
  // fixed, edge-triggered, unless masked.
  #deliverLocal(index: number): void {
    const lvt = this.#s.lvt[index];
    if ((lvt & LVT.MASKED) !== 0) return;
    this.#accept(lvt & LVT.VECTOR_MASK, false);
  }

  // -- timer ---------------------------------------------------------------------------------

  #tickNs(): number {
    return (timerDivisor(this.#s.divideConfiguration) * NS_PER_SECOND) / this.#busHz;
  }

  #elapsedTicks(now: number): number {
    return Math.max(0, Math.floor((now - this.#s.timerStartNs) / this.#tickNs()));
  }

  #periodic(): boolean {
    return (this.#s.lvt[LVT_TIMER] & LVT.TIMER_PERIODIC) !== 0;
  }

  #currentCount(): number {
    const s = this.#s;
    if (s.initialCount === 0) return 0;
    const ticks = this.#elapsedTicks(this.#clock.now());
    if (this.#periodic()) return s.initialCount - (ticks % s.initialCount);
    return ticks >= s.initialCount ? 0 : s.initialCount - ticks;
  }

  // If the scheduled expiry is due but the machine has not run its callback yet, deliver it
  // now, before a register write changes what the timer would do: the expiry happened first
  // in guest time.
  #catchUpTimer(): void {
    const deadline = this.#timerDeadlineNs;
    if (deadline === undefined || this.#clock.now() < deadline) return;
    this.#cancelTimer();
    this.#deliverLocal(LVT_TIMER);
  }

  #cancelTimer(): void {
    this.#timerCancel?.();
    this.#timerCancel = undefined;
    this.#timerDeadlineNs = undefined;
  }

  // Recompute the timer's next expiry from state. Must run after every change that can affect
  // it (initial count, divide, LVT timer, SVR), like QEMU's apic_timer_update. Nothing is
  // scheduled while the entry is masked: the count is derived from time anyway.
  #updateTimer(): void {
    const s = this.#s;
    this.#cancelTimer();
    if (s.initialCount === 0 || (s.lvt[LVT_TIMER] & LVT.MASKED) !== 0) return;
    const now = this.#clock.now();
    const period = s.initialCount * this.#tickNs();
    let deadline: number;
    if (this.#periodic()) {
      let k = Math.floor((now - s.timerStartNs) / period) + 1;
      while (Math.ceil(s.timerStartNs + k * period) <= now) k++;
      deadline = Math.ceil(s.timerStartNs + k * period);
    } else {
      deadline = Math.ceil(s.timerStartNs + period);
      if (deadline <= now) return;
    }
    this.#timerDeadlineNs = deadline;
    this.#timerCancel = this.#clock.schedule(deadline, () => {
      this.#timerCancel = undefined;
      this.#timerDeadlineNs = undefined;
      this.#deliverLocal(LVT_TIMER);
      this.#updateTimer();
    });
  }

  // -- priorities ----------------------------------------------------------------------------

  // SDM 11.8.3.1: PPR is TPR if its class is at least that of the highest in-service vector,
  // otherwise that vector's class.
  #ppr(): number {
    const s = this.#s;
    const isrv = Math.max(0, highestVector(s.isr));
    return (s.tpr & 0xf0) >= (isrv & 0xf0) ? s.tpr : isrv & 0xf0;
  }

  // SDM 11.6.2.4 (P6 family): APR is TPR if TPR's class is at least the highest IRR class and
  // above the highest ISR class; otherwise max(TPR class AND ISR class, IRR class), with the
  // bitwise AND exactly as the SDM writes it. QEMU returns 0.
  #apr(): number {
    const s = this.#s;
    const tpr = s.tpr >> 4;
    const isrv = Math.max(0, highestVector(s.isr)) >> 4;
    const irrv = Math.max(0, highestVector(s.irr)) >> 4;
    if (tpr >= irrv && tpr > isrv) return s.tpr;
    return Math.max(tpr & isrv, irrv) << 4;
  }

  // Recompute the INTR output from state. Must run after every change that can affect it
  // (IRR, ISR, TPR, SVR), like QEMU's apic_update_irq.
  #updateIrq(): void {
    this.#intr.set(this.hasInterrupt());
  }

  #readOnly(register: string): void {
    this.#logOnce(`read-only-${register}`, `write to read-only ${register} register ignored`);
  }

  #logOnce(key: string, message: string): void {
    if (this.#logged.has(key)) return;
    this.#logged.add(key);
    this.#log(message);
  }
}

// -- 256-bit vector sets ---------------------------------------------------------------------

function setBit(words: Uint32Array, vector: number): void {
  words[vector >> 5] |= 1 << (vector & 31);
}

function clearBit(words: Uint32Array, vector: number): void {
  words[vector >> 5] &= ~(1 << (vector & 31));
}

function testBit(words: Uint32Array, vector: number): boolean {
  return (words[vector >> 5] & (1 << (vector & 31))) !== 0;
}

// The highest set vector, or -1 if none.
function highestVector(words: Uint32Array): number {
  for (let i = 7; i >= 0; i--) {
    const word = words[i];
    if (word !== 0) return i * 32 + 31 - Math.clz32(word);
  }
  return -1;
}

function describeTarget(shorthand: number, destination: number, logical: boolean): string {
  switch (shorthand) {
    case ICR.SHORTHAND_SELF:
      return "self";
    case ICR.SHORTHAND_ALL_INCLUDING_SELF:
      return "all including self";
    case ICR.SHORTHAND_ALL_EXCLUDING_SELF:
      return "all excluding self";
    default:
      return `${logical ? "logical" : "physical"} destination 0x${hex(destination)}`;
  }
}

function deliveryModeName(mode: number): string {
  switch (mode) {
    case DELIVERY_MODE.SMI:
      return "SMI";
    case DELIVERY_MODE.NMI:
      return "NMI";
    case DELIVERY_MODE.INIT:
      return "INIT";
    case DELIVERY_MODE.STARTUP:
      return "Start-Up";
    case DELIVERY_MODE.EXTINT:
      return "ExtINT";
    default:
      return `reserved delivery mode ${mode}`;
  }
}

function hex(value: number): string {
  return (value >>> 0).toString(16);
}
