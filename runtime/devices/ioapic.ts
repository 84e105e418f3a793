/**
 * An I/O APIC with 24 interrupt inputs, as kernels find it at 0xfec00000 on a PC.
 *
 * Register and bit names follow the Intel 82093AA I/O Advanced Programmable Interrupt
 * Controller (IOAPIC) datasheet. The version (0x20) is that of the I/O xAPIC in later chipsets,
 * which is what QEMU's hw/intc/ioapic.c presents by default; QEMU is the reference for what
 * kernels expect, and each place that follows it says so.
 *
 * @module
 */

import { IrqLine } from "./irq_line.ts";
import type { MmioDevice } from "./mmio_device.ts";
import { accessMask, type AccessSize } from "./port_device.ts";

// ---------------------------------------------------------------------------------------------
// Register map (datasheet section 3, "Register Description"). Two registers are memory-mapped;
// the rest are reached indirectly: write an index to IOREGSEL, then access IOWIN.
// ---------------------------------------------------------------------------------------------

/** Memory-mapped register offsets from the I/O APIC's base. */
export const IOAPIC_REG = {
  /** I/O Register Select (index of the register IOWIN reaches, bits 0-7). */
  IOREGSEL: 0x00,
  /** I/O Window (data of the selected register; 32-bit accesses only). */
  IOWIN: 0x10,
} as const;

/** Indices of the indirectly accessed registers (datasheet 3.2.1-3.2.4). */
export const IOAPIC_INDEX = {
  /** IOAPICID: IOAPIC Identification (ID in bits 24-27). */
  ID: 0x00,
  /** IOAPICVER: IOAPIC Version (read-only). */
  VERSION: 0x01,
  /** IOAPICARB: IOAPIC Arbitration ID (read-only, bits 24-27). */
  ARBITRATION: 0x02,
  /** IOREDTBL0 low dword; entry n is at 0x10 + 2n (low) and 0x11 + 2n (high). */
  REDIRECTION_TABLE: 0x10,
} as const;

/** Bytes the I/O APIC decodes from its base: IOREGSEL and IOWIN. */
export const IOAPIC_MMIO_SIZE = 0x20;

/** The conventional base address on PCs (MP and ACPI tables tell the guest). */
export const IOAPIC_DEFAULT_BASE = 0xfec00000;

/** Interrupt inputs (INTIN0-INTIN23) and redirection table entries. */
export const IOAPIC_PIN_COUNT = 24;

/**
 * IOAPICVER value: version 0x20 in bits 0-7 and Maximum Redirection Entry 23 in bits 16-23,
 * QEMU's default (`IOAPIC_VER_DEF`). The 82093AA itself reports 0x11.
 */
export const IOAPIC_VERSION = 0x00170020;

/** Redirection table entry bits, low dword (datasheet 3.2.4, IOREDTBL[23:0]). */
export const REDIRECTION = {
  /** Bits 0-7: Interrupt Vector (INTVEC). */
  VECTOR_MASK: 0xff,
  /** Bits 8-10: Delivery Mode (DELMOD; see {@linkcode IOAPIC_DELIVERY_MODE}). */
  DELIVERY_MODE_MASK: 0x700,
  /** Bit 11: Destination Mode (DESTMOD), 1 = logical. */
  DESTINATION_LOGICAL: 0x800,
  /** Bit 12: Delivery Status (DELIVS; read-only, always idle here). */
  DELIVERY_STATUS: 0x1000,
  /** Bit 13: Interrupt Input Pin Polarity (INTPOL), 1 = low active. */
  POLARITY_LOW: 0x2000,
  /** Bit 14: Remote IRR (read-only): a level-triggered interrupt awaits its EOI. */
  REMOTE_IRR: 0x4000,
  /** Bit 15: Trigger Mode, 1 = level. */
  LEVEL_TRIGGERED: 0x8000,
  /** Bit 16: Interrupt Mask. */
  MASKED: 0x10000,
} as const;

/** Delivery Mode values, redirection entry bits 8-10. */
export const IOAPIC_DELIVERY_MODE = {
  /** 000b: Fixed. */
  FIXED: 0,
  /** 001b: Lowest Priority. */
  LOWEST_PRIORITY: 1,
  /** 010b: SMI. */
  SMI: 2,
  /** 100b: NMI. */
  NMI: 4,
  /** 101b: INIT. */
  INIT: 5,
  /** 111b: ExtINT. */
  EXTINT: 7,
} as const;

// Low-dword bits that hold what was written: everything the datasheet defines except the
// read-only Delivery Status and Remote IRR. Bits 17-31 are reserved.
const LOW_WRITABLE = REDIRECTION.VECTOR_MASK | REDIRECTION.DELIVERY_MODE_MASK |
  REDIRECTION.DESTINATION_LOGICAL | REDIRECTION.POLARITY_LOW | REDIRECTION.LEVEL_TRIGGERED |
  REDIRECTION.MASKED;
// High dword: only the Destination Field (bits 56-63) is defined; bits 32-55 are reserved.
const HIGH_WRITABLE = 0xff000000;
const LAST_REDIRECTION_INDEX = IOAPIC_INDEX.REDIRECTION_TABLE + 2 * IOAPIC_PIN_COUNT - 1;

/** Options for {@linkcode IoApic}. */
export interface IoApicOptions {
  /**
   * Name used in logs; input lines are named `${name}.intin<pin>`.
   *
   * @default {"ioapic"}
   */
  name?: string;
  /**
   * Sends an interrupt message to the local APIC(s). The board decides which APIC accepts it,
   * normally `apic.matchesDestination(destination, logical)` followed by
   * `apic.acceptInterrupt(vector, level)` on {@linkcode ./local_apic.ts LocalApic}.
   *
   * @param vector The entry's vector.
   * @param level `true` if the entry is level-triggered (the APIC sets TMR and reports the EOI).
   * @param destination The entry's 8-bit Destination Field.
   * @param logical `true` for logical destination mode, `false` for physical.
   */
  deliver: (vector: number, level: boolean, destination: number, logical: boolean) => void;
  /**
   * Where unsupported features and ignored accesses are reported, each once.
   *
   * @default {(message) => console.warn(`${name}: ${message}`)}
   */
  log?: (message: string) => void;
}

// The registers reset() sets, as one plain object so a later snapshot can name its fields.
// The input pins' levels are not here: they belong to the wires, which reset does not touch.
interface IoApicState {
  /** IOAPICID bits 24-27, shifted down. */
  id: number;
  /** IOREGSEL bits 0-7. */
  ioregsel: number;
  /** Redirection entries, low dwords (Remote IRR included). */
  low: Uint32Array;
  /** Redirection entries, high dwords. */
  high: Uint32Array;
}

/**
 * A 24-input I/O APIC that sends interrupt messages to a single CPU's local APIC.
 *
 * Behaviour and choices:
 * - Inputs: {@linkcode IoApic.input} returns the line for a pin; a device drives it, the
 *   I/O APIC listens. Levels are logical ("asserted"), so the Polarity bit is stored but does
 *   not invert anything, as in QEMU: the board wires each input the way the firmware tables it
 *   gives the guest describe it. Mapping ISA IRQ 0 to pin 2 is also the board's job.
 * - Edge-triggered entries send one message per rising edge. A rising edge on a masked entry
 *   is forgotten, so unmasking later sends nothing: the datasheet (3.2.4, bit 16) says edges on
 *   a masked pin are "not delivered or held pending", and QEMU does the same.
 * - Level-triggered entries send a message while the line is asserted, unmasked and Remote IRR
 *   is clear, and set Remote IRR (datasheet 3.2.4, bit 14). {@linkcode IoApic.endOfInterrupt}
 *   (the local APIC's EOI for a level-triggered vector) clears Remote IRR for entries with that
 *   vector and sends again if the line is still asserted. Asserting or deasserting a masked
 *   level pin has no side effect, but unmasking an entry whose line is still asserted sends at
 *   once, as in QEMU (the level, unlike an edge, is still there to be seen). Rewriting an entry
 *   as edge-triggered clears Remote IRR, as QEMU does for Linux's "mask, set edge, set level"
 *   way of retiring a stuck level interrupt.
 * - Delivery: fixed and lowest-priority entries are treated alike (one CPU: no arbitration).
 *   SMI, NMI, INIT and ExtINT entries (and the reserved modes) are logged once per pin and mode
 *   and send nothing; they do not set Remote IRR.
 * - Destination: physical or logical mode and the Destination Field are passed to `deliver`;
 *   with one CPU the local APIC accepts the message when the field matches its APIC ID
 *   (physical), its LDR (logical), or is the broadcast 0xff (see
 *   {@linkcode ./local_apic.ts LocalApic.matchesDestination}).
 * - Access: IOREGSEL takes any width; IOWIN only 32-bit accesses (other widths read 0 and drop
 *   writes, as in QEMU). Indices with no register read 0 and ignore writes, as in QEMU.
 *   Reserved entry bits read 0 (QEMU keeps them). Each kind of ignored access is logged once.
 * - Not modelled: the version 0x20 EOI register at offset 0x40 (outside this 0x20-byte
 *   window), the IRQ Pin Assertion register, QEMU's throttling of level interrupt storms, and
 *   more than one CPU.
 *
 * @example An edge-triggered input
 * ```ts
 * import assert from "node:assert/strict";
 * import { IOAPIC_INDEX, IOAPIC_REG, IoApic } from "./ioapic.ts";
 *
 * const sent: number[] = [];
 * const ioapic = new IoApic({ deliver: (vector) => sent.push(vector) });
 * ioapic.write(IOAPIC_REG.IOREGSEL, IOAPIC_INDEX.REDIRECTION_TABLE + 2 * 4, 4);
 * ioapic.write(IOAPIC_REG.IOWIN, 0x24, 4); // pin 4: vector 0x24, fixed, edge, unmasked
 * ioapic.input(4).pulse();
 * assert.deepEqual(sent, [0x24]);
 * ```
 */
export class IoApic implements MmioDevice {
  /** Name used in logs. */
  readonly name: string;
  /** Bytes decoded from the base: {@linkcode IOAPIC_MMIO_SIZE}. */
  readonly size: number = IOAPIC_MMIO_SIZE;
  readonly #deliver: IoApicOptions["deliver"];
  readonly #log: (message: string) => void;
  readonly #logged = new Set<string>();
  readonly #inputs: readonly IrqLine[];
  readonly #s: IoApicState = {
    id: 0,
    ioregsel: 0,
    low: new Uint32Array(IOAPIC_PIN_COUNT),
    high: new Uint32Array(IOAPIC_PIN_COUNT),
  };

  /**
   * Create an I/O APIC in its power-on state: every entry masked.
   *
   * @param options See {@linkcode IoApicOptions}.
   */
  constructor(options: IoApicOptions) {
    this.name = options.name ?? "ioapic";
    this.#deliver = options.deliver;
    const name = this.name;
    this.#log = options.log ?? ((message) => console.warn(`${name}: ${message}`));
    this.#inputs = Array.from({ length: IOAPIC_PIN_COUNT }, (_, pin) => {
      const line = new IrqLine(`${name}.intin${pin}`);
      line.connect((level) => this.#inputChanged(pin, level));
      return line;
    });
    this.reset();
  }

  /**
   * Return the registers to their power-on values: ID 0, IOREGSEL 0, every entry masked with
   * all other bits 0 (the datasheet defines only the mask bit after reset; QEMU zeroes the
   * rest). Input lines keep their levels.
   */
  reset(): void {
    const s = this.#s;
    s.id = 0;
    s.ioregsel = 0;
    s.low.fill(REDIRECTION.MASKED);
    s.high.fill(0);
    this.#service();
  }

  /**
   * The interrupt input `pin` (INTIN0..INTIN23). The same line is returned every time.
   *
   * @param pin Input number, 0..23.
   * @returns The line to give the device (or to connect the board's wire to).
   * @throws {RangeError} If `pin` is not an integer in 0..23.
   */
  input(pin: number): IrqLine {
    if (!Number.isInteger(pin) || pin < 0 || pin >= IOAPIC_PIN_COUNT) {
      throw new RangeError(`I/O APIC input must be an integer in 0..23, got ${pin}`);
    }
    return this.#inputs[pin];
  }

  /**
   * The EOI message for a level-triggered `vector`: clears Remote IRR of every level-triggered
   * entry with that vector and sends again for those whose line is still asserted. The board
   * wires the local APIC's `onLevelEoi` here.
   *
   * @param vector The vector the local APIC retired, 0..255.
   * @throws {RangeError} If `vector` is not an integer in 0..255.
   */
  endOfInterrupt(vector: number): void {
    if (!Number.isInteger(vector) || vector < 0 || vector > 0xff) {
      throw new RangeError(`interrupt vector must be an integer in 0..255, got ${vector}`);
    }
    const s = this.#s;
    for (let pin = 0; pin < IOAPIC_PIN_COUNT; pin++) {
      const low = s.low[pin];
      if ((low & REDIRECTION.VECTOR_MASK) !== vector) continue;
      if ((low & REDIRECTION.LEVEL_TRIGGERED) === 0) continue;
      s.low[pin] = low & ~REDIRECTION.REMOTE_IRR;
    }
    this.#service();
  }

  /**
   * Read IOREGSEL (any width) or IOWIN (32-bit only).
   *
   * @returns The register, or 0 for other offsets and non-32-bit IOWIN reads.
   */
  read(offset: number, size: AccessSize): number {
    const s = this.#s;
    switch (offset) {
      case IOAPIC_REG.IOREGSEL:
        return s.ioregsel & accessMask(size);
      case IOAPIC_REG.IOWIN:
        if (size !== 4) {
          this.#logOnce(`iowin-read-${size}`, `${size}-byte IOWIN read reads 0`);
          return 0;
        }
        return this.#readIndexed(s.ioregsel);
      default:
        this.#logOnce(`read-${offset}`, `read of unassigned offset 0x${hex(offset)} reads 0`);
        return 0;
    }
  }

  /** Write IOREGSEL (any width) or IOWIN (32-bit only); other writes are ignored and logged. */
  write(offset: number, value: number, size: AccessSize): void {
    const s = this.#s;
    switch (offset) {
      case IOAPIC_REG.IOREGSEL:
        s.ioregsel = value & 0xff;
        return;
      case IOAPIC_REG.IOWIN:
        if (size !== 4) {
          this.#logOnce(`iowin-write-${size}`, `${size}-byte IOWIN write ignored`);
          return;
        }
        this.#writeIndexed(s.ioregsel, value >>> 0);
        return;
      default:
        this.#logOnce(`write-${offset}`, `write to unassigned offset 0x${hex(offset)} ignored`);
        return;
    }
  }

  #readIndexed(index: number): number {
    const s = this.#s;
    switch (index) {
      case IOAPIC_INDEX.ID:
        return s.id << 24;
      case IOAPIC_INDEX.VERSION:
        return IOAPIC_VERSION;
      case IOAPIC_INDEX.ARBITRATION:
        // The arbitration ID is loaded from the ID (datasheet 3.2.3); with no APIC bus it
        // never rotates, so it reads as the ID, as in QEMU.
        return s.id << 24;
      default:
        if (index >= IOAPIC_INDEX.REDIRECTION_TABLE && index <= LAST_REDIRECTION_INDEX) {
          const pin = (index - IOAPIC_INDEX.REDIRECTION_TABLE) >> 1;
          return (index & 1) === 0 ? s.low[pin] : s.high[pin];
        }
        this.#logOnce(`index-read-${index}`, `read of unassigned register 0x${hex(index)}`);
        return 0;
    }
  }

  #writeIndexed(index: number, value: number): void {
    const s = this.#s;
    switch (index) {
      case IOAPIC_INDEX.ID:
        s.id = (value >>> 24) & 0xf;
        return;
      case IOAPIC_INDEX.VERSION:
        this.#logOnce("read-only-version", "write to read-only IOAPICVER ignored");
        return;
      case IOAPIC_INDEX.ARBITRATION:
        this.#logOnce("read-only-arbitration", "write to read-only IOAPICARB ignored");
        return;
      default:
        if (index >= IOAPIC_INDEX.REDIRECTION_TABLE && index <= LAST_REDIRECTION_INDEX) {
          this.#writeEntry((index - IOAPIC_INDEX.REDIRECTION_TABLE) >> 1, index & 1, value);
          return;
        }
        this.#logOnce(`index-write-${index}`, `write to unassigned register 0x${hex(index)}`);
        return;
    }
  }

  #writeEntry(pin: number, half: number, value: number): void {
    const s = this.#s;
    if (half === 1) {
      s.high[pin] = (value & HIGH_WRITABLE) >>> 0;
    } else {
      let low = (value & LOW_WRITABLE) | (s.low[pin] & REDIRECTION.REMOTE_IRR);
      // An edge-triggered entry has no Remote IRR (QEMU: ioapic_fix_edge_remote_irr).
      if ((low & REDIRECTION.LEVEL_TRIGGERED) === 0) low &= ~REDIRECTION.REMOTE_IRR;
      s.low[pin] = low;
    }
    this.#service();
  }

  #inputChanged(pin: number, level: boolean): void {
    const low = this.#s.low[pin];
    if ((low & REDIRECTION.LEVEL_TRIGGERED) !== 0) {
      this.#service();
    } else if (level && (low & REDIRECTION.MASKED) === 0) {
      this.#send(pin);
    }
  }

  // Send for every level-triggered entry whose line is asserted, unmasked and not awaiting an
  // EOI. Must run after every change that can make one deliverable (input level, entry write,
  // EOI, reset), like QEMU's ioapic_service. Edge entries send from #inputChanged only.
  #service(): void {
    const s = this.#s;
    for (let pin = 0; pin < IOAPIC_PIN_COUNT; pin++) {
      const low = s.low[pin];
      if ((low & REDIRECTION.LEVEL_TRIGGERED) === 0) continue;
      if ((low & (REDIRECTION.MASKED | REDIRECTION.REMOTE_IRR)) !== 0) continue;
      if (!this.#inputs[pin].level) continue;
      this.#send(pin);
    }
  }

  #send(pin: number): void {
    const s = this.#s;
    const low = s.low[pin];
    const mode = (low & REDIRECTION.DELIVERY_MODE_MASK) >> 8;
    if (mode !== IOAPIC_DELIVERY_MODE.FIXED && mode !== IOAPIC_DELIVERY_MODE.LOWEST_PRIORITY) {
      this.#logOnce(
        `mode-${pin}-${mode}`,
        `pin ${pin}: ${deliveryModeName(mode)} delivery is not supported; interrupt dropped`,
      );
      return;
    }
    const level = (low & REDIRECTION.LEVEL_TRIGGERED) !== 0;
    // Set Remote IRR before sending, so an EOI arriving from inside `deliver` finds it set.
    if (level) s.low[pin] = low | REDIRECTION.REMOTE_IRR;
    this.#deliver(
      low & REDIRECTION.VECTOR_MASK,
      level,
      s.high[pin] >>> 24,
      (low & REDIRECTION.DESTINATION_LOGICAL) !== 0,
    );
  }

  #logOnce(key: string, message: string): void {
    if (this.#logged.has(key)) return;
    this.#logged.add(key);
    this.#log(message);
  }
}

function deliveryModeName(mode: number): string {
  switch (mode) {
    case IOAPIC_DELIVERY_MODE.SMI:
      return "SMI";
    case IOAPIC_DELIVERY_MODE.NMI:
      return "NMI";
    case IOAPIC_DELIVERY_MODE.INIT:
      return "INIT";
    case IOAPIC_DELIVERY_MODE.EXTINT:
      return "ExtINT";
    default:
      return `reserved mode ${mode}`;
  }
}

function hex(value: number): string {
  return (value >>> 0).toString(16);
}
