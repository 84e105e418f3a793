/**
 * The PC's pair of Intel 8259A programmable interrupt controllers: the master at ports
 * 0x20-0x21 drives the CPU's INTR pin, the slave at 0xA0-0xA1 cascades into master input 2,
 * and the chipset's edge/level control registers (ELCR, ports 0x4D0-0x4D1) choose the trigger
 * mode of each line.
 *
 * Register and bit names follow the 8259A datasheet. Where it leaves a choice, QEMU's
 * hw/intc/i8259.c is the reference for what kernels expect; each such place says so.
 *
 * @module
 */

import { IrqLine } from "./irq_line.ts";
import type { AccessSize, PortDevice } from "./port_device.ts";

// ---------------------------------------------------------------------------------------------
// Register map (offsets from each controller's base port)
// ---------------------------------------------------------------------------------------------

/** Register offsets from each 8259A's base port. */
export const PIC_REG = {
  /** A0=0. Write ICW1 (bit 4 set), OCW2 (bits 4-3 = 00) or OCW3 (01); read IRR or ISR. */
  COMMAND: 0,
  /** A0=1. Write: ICW2-ICW4 during initialisation, else OCW1 (the IMR). Read: IMR. */
  DATA: 1,
} as const;

/** Number of ports each 8259A decodes. */
export const PIC_PORT_COUNT = 2;

/** Number of ELCR ports (0x4D0 for IRQ0-7, 0x4D1 for IRQ8-15). */
export const ELCR_PORT_COUNT = 2;

/** Where a PC places the master, the slave and the ELCR. */
export const PIC_PC_BASE = {
  /** Master 8259A. */
  MASTER: 0x20,
  /** Slave 8259A. */
  SLAVE: 0xa0,
  /** Edge/Level Control Registers (PIIX/ICH). */
  ELCR: 0x4d0,
} as const;

/** The master input the slave's INT output is wired to on the PC/AT. */
export const PIC_CASCADE_INPUT = 2;

/** Initialization Command Word 1 bits (offset 0, bit 4 set). */
export const ICW1 = {
  /** IC4: ICW4 will follow. */
  IC4: 0x01,
  /** SNGL: single controller, so no ICW3. */
  SNGL: 0x02,
  /** ADI: call address interval (MCS-80/85 only). */
  ADI: 0x04,
  /** LTIM: level triggered mode for every input. */
  LTIM: 0x08,
  /** Marks the byte as ICW1. */
  INIT: 0x10,
} as const;

/** Initialization Command Word 4 bits. */
export const ICW4 = {
  /** µPM: 8086/8088 mode (vectors) rather than MCS-80/85 (CALL instructions). */
  UPM: 0x01,
  /** AEOI: automatic end of interrupt. */
  AEOI: 0x02,
  /** M/S: master (1) or slave (0) in buffered mode. */
  MS: 0x04,
  /** BUF: buffered mode. */
  BUF: 0x08,
  /** SFNM: special fully nested mode. */
  SFNM: 0x10,
} as const;

/** Operation Command Word 2 commands (bits 7-5, R SL EOI) and the level field (bits 2-0). */
export const OCW2 = {
  /** L2-L0: the interrupt level a specific command acts on. */
  LEVEL_MASK: 0x07,
  /** Rotate in automatic EOI mode (clear). */
  ROTATE_AEOI_CLEAR: 0x00,
  /** Non-specific EOI. */
  NON_SPECIFIC_EOI: 0x20,
  /** No operation. */
  NOP: 0x40,
  /** Specific EOI (level in L2-L0). */
  SPECIFIC_EOI: 0x60,
  /** Rotate in automatic EOI mode (set). */
  ROTATE_AEOI_SET: 0x80,
  /** Rotate on non-specific EOI. */
  ROTATE_NON_SPECIFIC_EOI: 0xa0,
  /** Set priority: L2-L0 becomes the lowest priority level. */
  SET_PRIORITY: 0xc0,
  /** Rotate on specific EOI (level in L2-L0 becomes the lowest priority). */
  ROTATE_SPECIFIC_EOI: 0xe0,
} as const;

/** Operation Command Word 3 bits (offset 0, bits 4-3 = 01). */
export const OCW3 = {
  /** RIS: read the ISR (1) or the IRR (0) at offset 0; acts only with RR. */
  RIS: 0x01,
  /** RR: apply RIS. */
  RR: 0x02,
  /** P: poll; the next read returns the poll word and acknowledges. */
  P: 0x04,
  /** Marks the byte as OCW3 (with bit 4 clear). */
  SELECT: 0x08,
  /** SMM: special mask mode on (1) or off (0); acts only with ESMM. */
  SMM: 0x20,
  /** ESMM: apply SMM. */
  ESMM: 0x40,
} as const;

/** Bit 7 of the poll word: an interrupt was pending (bits 2-0 name it). */
export const POLL_INTERRUPT = 0x80;

/**
 * The ELCR bits a guest can set, per register. IRQ0 (timer), IRQ1 (keyboard), IRQ2 (cascade),
 * IRQ8 (RTC) and IRQ13 (FPU) are hard-wired edge-triggered: the PIIX datasheet reserves those
 * bits and QEMU masks writes with 0xf8 and 0xde.
 */
export const ELCR_WRITABLE = [0xf8, 0xde] as const;

// ---------------------------------------------------------------------------------------------
// One 8259A
// ---------------------------------------------------------------------------------------------

// Where the initialisation sequence stands: which word the next data-port write is.
const INIT_READY = 0;
const INIT_ICW2 = 1;
const INIT_ICW3 = 2;
const INIT_ICW4 = 3;

// OCW2 bit 7 (R): the command rotates priorities.
const OCW2_ROTATE = 0x80;

// Returned by #priorityOf when no bit is set: below every real priority (0 highest, 7 lowest).
const NO_PRIORITY = 8;

// One controller's registers. Kept as one plain object so a later snapshot can name its fields.
interface PicState {
  /** Interrupt Request Register. */
  irr: number;
  /** Interrupt Mask Register (OCW1). */
  imr: number;
  /** In-Service Register. */
  isr: number;
  /** Current levels of the eight IR inputs (bit n = IRn), for edge detection. */
  inputs: number;
  /** Edge/level control for this controller's lines (1 = level); lives in the chipset. */
  elcr: number;
  /** The level that currently has the highest priority: 0 until rotation moves it. */
  priorityAdd: number;
  /** T7-T3 from ICW2: vector of IR0. */
  vectorBase: number;
  /** Offset 0 reads the ISR (OCW3 RIS) rather than the IRR. */
  readIsr: boolean;
  /** OCW3 P: the next read is a poll. */
  poll: boolean;
  /** OCW3 special mask mode. */
  specialMask: boolean;
  /** Which initialisation word the data port expects next. */
  initStep: number;
  /** ICW1 IC4. */
  needIcw4: boolean;
  /** ICW1 SNGL. */
  single: boolean;
  /** ICW1 LTIM: every input level-triggered. */
  levelAll: boolean;
  /** ICW3 as written (slave mask on the master, slave ID on the slave). */
  icw3: number;
  /** ICW4 AEOI. */
  autoEoi: boolean;
  /** OCW2 rotate in automatic EOI mode. */
  rotateOnAutoEoi: boolean;
  /** ICW4 SFNM. */
  specialFullyNested: boolean;
}

// One 8259A, reached through its two ports. The pair owns the wiring between controllers.
class Pic8259 implements PortDevice {
  readonly name: string;
  readonly #isMaster: boolean;
  readonly #onOutput: (level: boolean) => void;
  readonly #log: (message: string) => void;
  readonly #s: PicState = {
    irr: 0,
    imr: 0,
    isr: 0,
    inputs: 0,
    elcr: 0,
    priorityAdd: 0,
    vectorBase: 0,
    readIsr: false,
    poll: false,
    specialMask: false,
    initStep: INIT_READY,
    needIcw4: false,
    single: false,
    levelAll: false,
    icw3: 0,
    autoEoi: false,
    rotateOnAutoEoi: false,
    specialFullyNested: false,
  };
  #output = false;

  constructor(
    name: string,
    isMaster: boolean,
    onOutput: (level: boolean) => void,
    log: (message: string) => void,
  ) {
    this.name = name;
    this.#isMaster = isMaster;
    this.#onOutput = onOutput;
    this.#log = log;
  }

  /** ICW2's vector base. */
  get vectorBase(): number {
    return this.#s.vectorBase;
  }

  /** ICW1 SNGL: no cascaded controller. */
  get single(): boolean {
    return this.#s.single;
  }

  /** The ELCR byte for this controller. */
  get elcr(): number {
    return this.#s.elcr;
  }

  /** Power-on state: everything zero, inputs sampled, INT recomputed. ELCR is left alone. */
  reset(): void {
    const s = this.#s;
    this.#initialise(0);
    s.needIcw4 = false;
    s.single = false;
    s.levelAll = false;
    s.initStep = INIT_READY;
    s.vectorBase = 0;
    s.icw3 = 0;
    this.#updateIrq();
  }

  read(offset: number, size: AccessSize): number {
    if (size === 1) return this.#readByte(offset);
    let value = 0;
    for (let i = 0; i < size; i++) value |= this.#readByte(offset + i) << (8 * i);
    return value >>> 0;
  }

  write(offset: number, value: number, size: AccessSize): void {
    for (let i = 0; i < size; i++) this.#writeByte(offset + i, (value >>> (8 * i)) & 0xff);
  }

  /** Drive input `n` (0-7) to `level`: an edge line latches IRR on a rising edge only. */
  setInput(n: number, level: boolean): void {
    const s = this.#s;
    const mask = 1 << n;
    const was = (s.inputs & mask) !== 0;
    if (level === was) return;
    s.inputs ^= mask;
    if (this.#isLevel(mask)) {
      s.irr = level ? s.irr | mask : s.irr & ~mask;
    } else if (level) {
      s.irr |= mask;
    }
    // An edge line's falling edge leaves IRR set: QEMU keeps the latch (so a pulse is never
    // lost), where the datasheet asks the line to stay high until INTA or become IR7.
    this.#updateIrq();
  }

  /** Set the ELCR byte (already masked to the writable bits). */
  setElcr(value: number): void {
    const s = this.#s;
    s.elcr = value;
    // A line that becomes level-triggered reports its level at once.
    const level = this.#levelMask();
    s.irr = (s.irr & ~level) | (s.inputs & level);
    this.#updateIrq();
  }

  /** The line INTA would pick now (0-7), or -1 when INT is low. QEMU: pic_get_irq. */
  pendingIrq(): number {
    const s = this.#s;
    const priority = this.#priorityOf(s.irr & ~s.imr);
    if (priority === NO_PRIORITY) return -1;
    let inService = s.isr;
    // Special mask mode: a masked level in service no longer blocks lower levels.
    if (s.specialMask) inService &= ~s.imr;
    // Special fully nested mode: the cascade input in service does not block a higher request
    // from the same slave.
    if (s.specialFullyNested && this.#isMaster) inService &= ~(1 << PIC_CASCADE_INPUT);
    return priority < this.#priorityOf(inService) ? (priority + s.priorityAdd) & 7 : -1;
  }

  /** The INTA cycle's effect on this controller for `irq`: set ISR, clear an edge IRR bit. */
  acknowledge(irq: number): void {
    const s = this.#s;
    const mask = 1 << irq;
    if (!s.autoEoi) {
      s.isr |= mask;
    } else if (s.rotateOnAutoEoi) {
      s.priorityAdd = (irq + 1) & 7;
    }
    // A level line's request stays while the line is high; only the edge latch is consumed.
    if (!this.#isLevel(mask)) s.irr &= ~mask;
    this.#updateIrq();
  }

  /**
   * The request on `irq` is lost before INTA (a "drop a due interrupt" fault): an edge line's
   * IRR latch is cleared without setting ISR. A level line's request stays while the line is
   * high, as it would on hardware.
   */
  forget(irq: number): void {
    const mask = 1 << irq;
    if (!this.#isLevel(mask)) this.#s.irr &= ~mask;
    this.#updateIrq();
  }

  #readByte(offset: number): number {
    const s = this.#s;
    if (offset > PIC_REG.DATA) return 0xff;
    if (s.poll) {
      // Poll mode: either port returns the poll word, and the read acts as INTA.
      s.poll = false;
      const irq = this.pendingIrq();
      if (irq < 0) return 0;
      this.acknowledge(irq);
      return POLL_INTERRUPT | irq;
    }
    if (offset === PIC_REG.DATA) return s.imr;
    return s.readIsr ? s.isr : s.irr;
  }

  #writeByte(offset: number, value: number): void {
    if (offset === PIC_REG.COMMAND) {
      if ((value & ICW1.INIT) !== 0) {
        this.#writeIcw1(value);
      } else if ((value & OCW3.SELECT) !== 0) {
        this.#writeOcw3(value);
      } else {
        this.#writeOcw2(value);
      }
    } else if (offset === PIC_REG.DATA) {
      this.#writeData(value);
    }
  }

  #writeIcw1(value: number): void {
    const s = this.#s;
    this.#initialise(value & ICW1.LTIM);
    s.needIcw4 = (value & ICW1.IC4) !== 0;
    s.single = (value & ICW1.SNGL) !== 0;
    s.initStep = INIT_ICW2;
    if (!s.needIcw4) {
      this.#log(
        `${this.name}: ICW1 without IC4 selects MCS-80/85 mode, which is not modelled; ` +
          `interrupts are delivered as 8086 vectors`,
      );
    }
    this.#updateIrq();
  }

  // What ICW1 resets (datasheet: edge sense reset, IMR cleared, IR7 lowest priority, special
  // mask mode off, status read set to IRR, ICW4 functions zero). QEMU also clears ISR and a
  // pending poll, and so do we.
  #initialise(ltim: number): void {
    const s = this.#s;
    s.levelAll = ltim !== 0;
    s.imr = 0;
    s.isr = 0;
    // The edge sense circuit is reset: an input that is high now must go low and high again
    // to request. Level-triggered inputs request for as long as they are high.
    s.irr = s.inputs & this.#levelMask();
    s.priorityAdd = 0;
    s.readIsr = false;
    s.poll = false;
    s.specialMask = false;
    s.autoEoi = false;
    s.rotateOnAutoEoi = false;
    s.specialFullyNested = false;
  }

  #writeData(value: number): void {
    const s = this.#s;
    switch (s.initStep) {
      case INIT_READY:
        s.imr = value;
        this.#updateIrq();
        return;
      case INIT_ICW2:
        // 8086 mode: T7-T3 give the vector, the controller supplies the low three bits.
        s.vectorBase = value & 0xf8;
        s.initStep = !s.single ? INIT_ICW3 : s.needIcw4 ? INIT_ICW4 : INIT_READY;
        return;
      case INIT_ICW3: {
        s.icw3 = value;
        const expected = this.#isMaster ? 1 << PIC_CASCADE_INPUT : PIC_CASCADE_INPUT;
        if (value !== expected) {
          this.#log(
            `${this.name}: ICW3 0x${value.toString(16)} ignored; the PC wires the slave to ` +
              `master input ${PIC_CASCADE_INPUT}`,
          );
        }
        s.initStep = s.needIcw4 ? INIT_ICW4 : INIT_READY;
        return;
      }
      default:
        if ((value & ICW4.UPM) === 0) {
          this.#log(
            `${this.name}: ICW4 selects MCS-80/85 mode, which is not modelled; ` +
              `interrupts are delivered as 8086 vectors`,
          );
        }
        s.autoEoi = (value & ICW4.AEOI) !== 0;
        s.specialFullyNested = (value & ICW4.SFNM) !== 0;
        // BUF and M/S only steer the SP/EN pin's buffer enable; nothing to model.
        s.initStep = INIT_READY;
        this.#updateIrq();
        return;
    }
  }

  #writeOcw2(value: number): void {
    const s = this.#s;
    const level = value & OCW2.LEVEL_MASK;
    switch (value & ~OCW2.LEVEL_MASK) {
      case OCW2.ROTATE_AEOI_CLEAR:
        s.rotateOnAutoEoi = false;
        return;
      case OCW2.ROTATE_AEOI_SET:
        s.rotateOnAutoEoi = true;
        return;
      case OCW2.NON_SPECIFIC_EOI:
      case OCW2.ROTATE_NON_SPECIFIC_EOI: {
        // Datasheet: in special mask mode an in-service level that is masked is not cleared
        // by a non-specific EOI (QEMU clears the highest one regardless).
        const candidates = s.specialMask ? s.isr & ~s.imr : s.isr;
        const priority = this.#priorityOf(candidates);
        if (priority === NO_PRIORITY) return;
        const irq = (priority + s.priorityAdd) & 7;
        s.isr &= ~(1 << irq);
        if ((value & OCW2_ROTATE) !== 0) s.priorityAdd = (irq + 1) & 7;
        break;
      }
      case OCW2.SPECIFIC_EOI:
        s.isr &= ~(1 << level);
        break;
      case OCW2.ROTATE_SPECIFIC_EOI:
        s.isr &= ~(1 << level);
        s.priorityAdd = (level + 1) & 7;
        break;
      case OCW2.SET_PRIORITY:
        // L2-L0 names the lowest priority level, so the one after it becomes the highest.
        s.priorityAdd = (level + 1) & 7;
        break;
      default: // OCW2.NOP
        return;
    }
    this.#updateIrq();
  }

  #writeOcw3(value: number): void {
    const s = this.#s;
    if ((value & OCW3.P) !== 0) s.poll = true;
    if ((value & OCW3.RR) !== 0) s.readIsr = (value & OCW3.RIS) !== 0;
    if ((value & OCW3.ESMM) !== 0) {
      s.specialMask = (value & OCW3.SMM) !== 0;
      // Special mask mode changes which in-service levels block; QEMU forgets to recompute.
      this.#updateIrq();
    }
  }

  #isLevel(mask: number): boolean {
    return (this.#levelMask() & mask) !== 0;
  }

  #levelMask(): number {
    return this.#s.levelAll ? 0xff : this.#s.elcr;
  }

  // The priority (0 highest) of the highest-priority bit set in `mask`, after rotation.
  #priorityOf(mask: number): number {
    if (mask === 0) return NO_PRIORITY;
    let priority = 0;
    while ((mask & (1 << ((priority + this.#s.priorityAdd) & 7))) === 0) priority++;
    return priority;
  }

  // Recompute INT from state. Must run after every change that can affect it (QEMU:
  // pic_update_irq, "must be called every time the output may have changed").
  #updateIrq(): void {
    const level = this.pendingIrq() >= 0;
    if (level === this.#output) return;
    this.#output = level;
    this.#onOutput(level);
  }
}

// ---------------------------------------------------------------------------------------------
// The pair, as wired on the PC/AT
// ---------------------------------------------------------------------------------------------

// The chipset's two ELCR bytes, one per controller.
class Elcr implements PortDevice {
  readonly name = "elcr";
  readonly #pics: readonly [Pic8259, Pic8259];

  constructor(pics: readonly [Pic8259, Pic8259]) {
    this.#pics = pics;
  }

  read(offset: number, size: AccessSize): number {
    let value = 0;
    for (let i = 0; i < size; i++) {
      const pic = this.#pics[offset + i];
      value |= (pic === undefined ? 0xff : pic.elcr) << (8 * i);
    }
    return value >>> 0;
  }

  write(offset: number, value: number, size: AccessSize): void {
    for (let i = 0; i < size; i++) {
      const index = offset + i;
      if (index >= ELCR_PORT_COUNT) continue;
      this.#pics[index].setElcr((value >>> (8 * i)) & ELCR_WRITABLE[index]);
    }
  }

  /** Power-on: every line edge-triggered. */
  reset(): void {
    for (const pic of this.#pics) pic.setElcr(0);
  }
}

/** Options for {@linkcode Pic8259Pair}. */
export interface Pic8259PairOptions {
  /** The CPU's INTR pin: raised while the master has an interrupt for the CPU. */
  intr: IrqLine;
  /**
   * Where to report guest programming that the model does not implement (MCS-80/85 mode,
   * unusual cascade wiring). Each distinct message is reported once.
   *
   * @default {(message) => console.warn(`i8259: ${message}`)}
   */
  log?: (message: string) => void;
}

/**
 * The PC/AT's cascaded 8259A pair with its ELCR.
 *
 * Wiring: inputs 0-7 go to the master, 8-15 to the slave, the slave's INT drives master input
 * 2, and the master's INT drives `intr`. The board attaches {@linkcode Pic8259Pair.master},
 * {@linkcode Pic8259Pair.slave} and {@linkcode Pic8259Pair.elcr} at the bases in
 * {@linkcode PIC_PC_BASE} and calls {@linkcode Pic8259Pair.acknowledge} for each INTA cycle.
 *
 * Behaviour:
 * - Initialisation: ICW1-ICW4 as in the datasheet, in 8086 mode. MCS-80/85 mode (no IC4, or
 *   µPM clear) is logged and otherwise treated as 8086 mode. ICW3 is stored but the cascade
 *   is always the slave on master input 2; a master initialised in single mode (SNGL) treats
 *   input 2 as an ordinary line.
 * - Triggering: an edge-triggered input sets its IRR bit on a rising edge and the bit stays
 *   set until INTA, even if the line falls first (as in QEMU; the datasheet asks the line to
 *   stay high and otherwise delivers IR7). A level-triggered input (ELCR bit or ICW1 LTIM)
 *   has IRR follow the line, so one that drops before INTA yields the spurious vector.
 * - Priority: fully nested with rotation (OCW2 rotate on non-specific/specific EOI, set
 *   priority, rotate in automatic EOI mode), special mask mode, automatic EOI, poll mode,
 *   special fully nested mode on the master (the slave's in-service request no longer blocks
 *   a higher one from the same slave), all as in QEMU.
 * - Not modelled: buffered mode (BUF, M/S only steer a bus transceiver on real boards), the
 *   ICW1 ADI and A7-A5 fields (MCS-80/85 only), and the one-INTA-per-byte bus protocol: the
 *   whole acknowledge is one call.
 *
 * @example Delivering IRQ1 after the usual Linux initialisation
 * ```ts
 * import assert from "node:assert/strict";
 * import { IrqLine } from "./irq_line.ts";
 * import { Pic8259Pair } from "./i8259.ts";
 *
 * const intr = new IrqLine("intr");
 * const pic = new Pic8259Pair({ intr });
 * pic.master.write(0, 0x11, 1); // ICW1: edge-triggered, cascaded, ICW4 follows
 * pic.master.write(1, 0x20, 1); // ICW2: vectors 0x20-0x27
 * pic.master.write(1, 0x04, 1); // ICW3: a slave on input 2
 * pic.master.write(1, 0x01, 1); // ICW4: 8086 mode
 * pic.input(1).raise();
 * assert.equal(intr.level, true);
 * assert.equal(pic.acknowledge(), 0x21);
 * assert.equal(intr.level, false);
 * ```
 */
export class Pic8259Pair {
  /** The master 8259A (two ports, conventionally at 0x20). */
  readonly master: PortDevice;
  /** The slave 8259A (two ports, conventionally at 0xA0). */
  readonly slave: PortDevice;
  /** The ELCR (two ports, conventionally at 0x4D0): bit n set makes line n level-triggered. */
  readonly elcr: PortDevice;
  readonly #master: Pic8259;
  readonly #slave: Pic8259;
  readonly #inputs: readonly IrqLine[];
  readonly #intr: IrqLine;
  #slaveOutput = false;
  #masterOutput = false;
  /** A request that vanished before INTA keeps INT high until the CPU acknowledges. */
  #glitch = false;
  /** Drives the slave's INT for the length of a glitch on its side. */
  #slaveGlitch = false;

  /**
   * Create the pair in its power-on state, with `intr` low.
   *
   * @param options See {@linkcode Pic8259PairOptions}.
   */
  constructor(options: Pic8259PairOptions) {
    this.#intr = options.intr;
    const sink = options.log ?? ((message: string) => console.warn(`i8259: ${message}`));
    const logged = new Set<string>();
    const log = (message: string) => {
      if (logged.has(message)) return;
      logged.add(message);
      sink(message);
    };
    this.#master = new Pic8259("i8259-master", true, (level) => {
      this.#masterOutput = level;
      this.#intr.set(level || this.#glitch);
    }, log);
    this.#slave = new Pic8259("i8259-slave", false, (level) => {
      this.#slaveOutput = level;
      this.#driveCascade();
    }, log);
    this.master = this.#master;
    this.slave = this.#slave;
    this.elcr = new Elcr([this.#master, this.#slave]);
    this.#inputs = Array.from({ length: 16 }, (_, n) => {
      const line = new IrqLine(`irq${n}`);
      if (n === PIC_CASCADE_INPUT) {
        line.connect(() => this.#driveCascade());
      } else {
        const pic = n < 8 ? this.#master : this.#slave;
        line.connect((level) => pic.setInput(n & 7, level));
      }
      return line;
    });
    this.reset();
  }

  /**
   * The interrupt request line for ISA IRQ `n`, for the board or a device to raise and lower.
   *
   * Input 2 is the cascade: the master sees the OR of this line and the slave's INT, so a
   * device driving it shares the input as on QEMU's ISA bus (PC/AT boards route the ISA IRQ2
   * pin to IRQ9 instead).
   *
   * @param n IRQ number, 0-15.
   * @returns The same line object on every call.
   * @throws {RangeError} If `n` is not an integer from 0 to 15.
   */
  input(n: number): IrqLine {
    const line = Number.isInteger(n) ? this.#inputs[n] : undefined;
    if (line === undefined) throw new RangeError(`IRQ number must be 0..15, got ${n}`);
    return line;
  }

  /**
   * The INTA cycle: pick the highest-priority request, mark it in service and return its
   * vector (ICW2 base + line).
   *
   * A request on the cascade input is passed to the slave, which supplies the vector. With
   * nothing to deliver the controller answers with its IR7 vector and sets no ISR bit: the
   * master's when it has no request (spurious IRQ7), the slave's when the master saw the
   * cascade request but the slave no longer has one (spurious IRQ15; the master's ISR bit 2
   * is set, as on real hardware, so the guest must EOI the master).
   *
   * @returns The interrupt vector, 0-255.
   */
  acknowledge(): number {
    const master = this.#master;
    if (this.#glitch) {
      this.#glitch = false;
      this.#intr.set(this.#masterOutput);
    }
    const irq = master.pendingIrq();
    if (irq < 0) return master.vectorBase + 7;
    if (!this.#cascades(irq)) {
      master.acknowledge(irq);
      return master.vectorBase + irq;
    }
    // QEMU's order: the slave acknowledges first, then the master consumes its cascade bit.
    const slave = this.#slave;
    const slaveIrq = slave.pendingIrq();
    if (slaveIrq >= 0) slave.acknowledge(slaveIrq);
    master.acknowledge(irq);
    return slave.vectorBase + (slaveIrq >= 0 ? slaveIrq : 7);
  }

  /**
   * A spurious interrupt as hardware produces it: a request that goes away before the CPU's
   * INTA cycle (electrical noise, a device that deasserts early). `irq` 7: the master raises
   * INT with nothing behind it, so INTA answers with its IR7 vector and sets no ISR bit. `irq`
   * 15: the slave signals the master on the cascade input and then has nothing, so the master
   * sets ISR bit 2 and the slave answers with its IR7 vector (the guest must EOI the master
   * only). The master's mask of input 2 applies, as on hardware: masked, nothing reaches the CPU.
   *
   * @param irq 7 or 15
   * @returns what happened, for the event log
   * @throws {RangeError} for another IRQ
   */
  spurious(irq: number): string {
    if (irq === 7) {
      this.#glitch = true;
      this.#intr.set(true);
      return "the master 8259 raised INT with no request: INTA gives its IR7 vector";
    }
    if (irq !== 15) throw new RangeError(`spurious interrupts are IRQ 7 or 15, not ${irq}`);
    this.#slaveGlitch = true;
    this.#driveCascade();
    this.#slaveGlitch = false;
    this.#driveCascade();
    return this.#intr.level
      ? "the slave 8259 signalled the cascade and withdrew: INTA gives its IR7 vector"
      : "the slave 8259 signalled the cascade and withdrew; the CPU's INTR stays low (the " +
        "master masks input 2, or a higher interrupt is in service)";
  }

  /**
   * The pending request is lost on its way to the CPU (a "drop a due interrupt" fault): its
   * IRR latch is cleared without an INTA, so nothing goes in service and no EOI is owed.
   *
   * @returns the vector that was lost, or null when nothing was pending
   */
  discard(): number | null {
    const master = this.#master;
    if (this.#glitch) {
      this.#glitch = false;
      this.#intr.set(this.#masterOutput);
    }
    const irq = master.pendingIrq();
    if (irq < 0) return null;
    if (!this.#cascades(irq)) {
      master.forget(irq);
      return master.vectorBase + irq;
    }
    const slave = this.#slave;
    const slaveIrq = slave.pendingIrq();
    if (slaveIrq >= 0) slave.forget(slaveIrq);
    master.forget(irq);
    return slaveIrq >= 0 ? slave.vectorBase + slaveIrq : null;
  }

  /**
   * The vector {@linkcode Pic8259Pair.acknowledge} would return now, without acknowledging.
   *
   * @returns The vector, or `null` when INTR is low (nothing to deliver).
   */
  pendingVector(): number | null {
    const irq = this.#master.pendingIrq();
    if (irq < 0) return this.#glitch ? this.#master.vectorBase + 7 : null;
    if (!this.#cascades(irq)) return this.#master.vectorBase + irq;
    const slaveIrq = this.#slave.pendingIrq();
    return this.#slave.vectorBase + (slaveIrq >= 0 ? slaveIrq : 7);
  }

  /** Return both controllers and the ELCR to power-on state; `intr` follows. */
  reset(): void {
    this.#glitch = false;
    this.elcr.reset();
    this.#slave.reset();
    this.#master.reset();
  }

  #cascades(irq: number): boolean {
    return irq === PIC_CASCADE_INPUT && !this.#master.single;
  }

  // Master input 2 sees the slave's INT, ORed with whatever drives the ISA IRQ2 line.
  #driveCascade(): void {
    const line = this.#inputs?.[PIC_CASCADE_INPUT];
    this.#master.setInput(
      PIC_CASCADE_INPUT,
      this.#slaveOutput || this.#slaveGlitch || (line?.level ?? false),
    );
  }
}
