/**
 * A National Semiconductor PC16550D UART (the "16550A" of PC serial ports), as kernels see it
 * at COM1..COM4.
 *
 * Register and bit names follow the PC16550D datasheet. Where the datasheet leaves a choice,
 * QEMU's hw/char/serial.c is the reference for what kernels expect; each such place says so.
 *
 * @module
 */

import type { IrqLine } from "./irq_line.ts";
import type { AccessSize, PortDevice } from "./port_device.ts";

// ---------------------------------------------------------------------------------------------
// Register map (offsets from the base port; DLAB is LCR bit 7)
// ---------------------------------------------------------------------------------------------

/** Register offsets from the UART's base port. */
export const REG = {
  /** Receiver Buffer Register (read, DLAB=0). */
  RBR: 0,
  /** Transmitter Holding Register (write, DLAB=0). */
  THR: 0,
  /** Divisor Latch, least significant byte (DLAB=1). */
  DLL: 0,
  /** Interrupt Enable Register (DLAB=0). */
  IER: 1,
  /** Divisor Latch, most significant byte (DLAB=1). */
  DLM: 1,
  /** Interrupt Identification Register (read). */
  IIR: 2,
  /** FIFO Control Register (write). */
  FCR: 2,
  /** Line Control Register. */
  LCR: 3,
  /** Modem Control Register. */
  MCR: 4,
  /** Line Status Register (read). */
  LSR: 5,
  /** Modem Status Register (read). */
  MSR: 6,
  /** Scratch Register. */
  SCR: 7,
} as const;

/** Number of ports the UART decodes (offsets 0..7). */
export const UART_PORT_COUNT = 8;

/** Depth of the receive and transmit FIFOs. */
export const UART_FIFO_SIZE = 16;

/** Interrupt Enable Register bits. */
export const IER = {
  /** Enable Received Data Available Interrupt (and character timeout). */
  ERBFI: 0x01,
  /** Enable Transmitter Holding Register Empty Interrupt. */
  ETBEI: 0x02,
  /** Enable Receiver Line Status Interrupt. */
  ELSI: 0x04,
  /** Enable MODEM Status Interrupt. */
  EDSSI: 0x08,
} as const;

/** Interrupt Identification Register bits and interrupt IDs (bits 0-3). */
export const IIR = {
  /** Bit 0: "0 if interrupt pending"; set means nothing is pending. */
  NO_INT: 0x01,
  /** Bits 1-3: the interrupt ID of the highest-priority pending source. */
  ID_MASK: 0x0e,
  /** Priority 4: MODEM status (a delta bit in MSR). */
  MODEM_STATUS: 0x00,
  /** Priority 3: Transmitter Holding Register Empty. */
  THRE: 0x02,
  /** Priority 2: Received Data Available (trigger level reached). */
  RX_DATA: 0x04,
  /** Priority 1: Receiver Line Status (OE, PE, FE or BI). */
  LINE_STATUS: 0x06,
  /** Priority 2: Character Timeout Indication (FIFO mode only). */
  RX_TIMEOUT: 0x0c,
  /** Bits 6-7: both set when FCR enabled the FIFOs. */
  FIFOS_ENABLED: 0xc0,
} as const;

/** FIFO Control Register bits. */
export const FCR = {
  /** FIFO Enable; the other bits are only programmed while this is written as 1. */
  FIFO_ENABLE: 0x01,
  /** RCVR FIFO Reset (self-clearing). */
  RX_RESET: 0x02,
  /** XMIT FIFO Reset (self-clearing). */
  TX_RESET: 0x04,
  /** DMA Mode Select (stored, no effect: there is no DMA here). */
  DMA_MODE: 0x08,
  /** Bits 6-7: RCVR FIFO trigger level. */
  TRIGGER_MASK: 0xc0,
  /** Trigger at 1 byte. */
  TRIGGER_1: 0x00,
  /** Trigger at 4 bytes. */
  TRIGGER_4: 0x40,
  /** Trigger at 8 bytes. */
  TRIGGER_8: 0x80,
  /** Trigger at 14 bytes. */
  TRIGGER_14: 0xc0,
} as const;

/** Line Control Register bits. */
export const LCR = {
  /** Bits 0-1: Word Length Select (5 + value data bits). */
  WLS_MASK: 0x03,
  /** Number of Stop Bits (2, or 1.5 with 5-bit words). */
  STB: 0x04,
  /** Parity Enable. */
  PEN: 0x08,
  /** Even Parity Select. */
  EPS: 0x10,
  /** Stick Parity. */
  STICK_PARITY: 0x20,
  /** Set Break. */
  SET_BREAK: 0x40,
  /** Divisor Latch Access Bit: offsets 0 and 1 address DLL and DLM. */
  DLAB: 0x80,
} as const;

/** MODEM Control Register bits. */
export const MCR = {
  /** Data Terminal Ready output. */
  DTR: 0x01,
  /** Request To Send output. */
  RTS: 0x02,
  /** OUT 1 output (unused on PCs). */
  OUT1: 0x04,
  /** OUT 2 output; on PCs it enables the UART's interrupt onto the ISA IRQ line. */
  OUT2: 0x08,
  /** Loopback diagnostic mode. */
  LOOP: 0x10,
} as const;

/** Line Status Register bits. */
export const LSR = {
  /** Data Ready: at least one byte waits in RBR or the RCVR FIFO. */
  DR: 0x01,
  /** Overrun Error. */
  OE: 0x02,
  /** Parity Error. */
  PE: 0x04,
  /** Framing Error. */
  FE: 0x08,
  /** Break Interrupt. */
  BI: 0x10,
  /** Transmitter Holding Register Empty. */
  THRE: 0x20,
  /** Transmitter Empty (THR and shift register both empty). */
  TEMT: 0x40,
  /** Error in RCVR FIFO (FIFO mode: a PE, FE or BI byte is queued). */
  RX_FIFO_ERROR: 0x80,
} as const;

/** MODEM Status Register bits. */
export const MSR = {
  /** Delta Clear To Send. */
  DCTS: 0x01,
  /** Delta Data Set Ready. */
  DDSR: 0x02,
  /** Trailing Edge Ring Indicator (RI went from on to off). */
  TERI: 0x04,
  /** Delta Data Carrier Detect. */
  DDCD: 0x08,
  /** Clear To Send input. */
  CTS: 0x10,
  /** Data Set Ready input. */
  DSR: 0x20,
  /** Ring Indicator input. */
  RI: 0x40,
  /** Data Carrier Detect input. */
  DCD: 0x80,
} as const;

// The four MSR delta bits; reading MSR clears them.
const MSR_DELTAS = MSR.DCTS | MSR.DDSR | MSR.TERI | MSR.DDCD;
// Bits of FCR that persist after a write (QEMU keeps the same 0xc9).
const FCR_STICKY = FCR.FIFO_ENABLE | FCR.DMA_MODE | FCR.TRIGGER_MASK;
// Indexed by FCR bits 6-7: the 16550A's RCVR trigger levels in bytes.
const RX_TRIGGER_LEVELS = [1, 4, 8, 14] as const;
// With no host modem lines to mirror, present a connected terminal, as QEMU does at reset.
const EXTERNAL_MODEM_LINES = MSR.DCD | MSR.DSR | MSR.CTS;

/** Options for {@linkcode Uart16550}. */
export interface Uart16550Options {
  /**
   * Name used in logs.
   *
   * @default {"uart16550"}
   */
  name?: string;
  /** The interrupt line the UART drives (through MCR.OUT2, as on a PC). */
  irq: IrqLine;
  /** Receives each byte the guest transmits, at the moment it writes THR. */
  transmit: (byte: number) => void;
  /**
   * Called when the receiver gains room after being unable to take more bytes from the
   * backend (the guest read RBR, reset the RCVR FIFO or left loopback), so a backend holding
   * bytes knows to call {@linkcode Uart16550.receive} again. QEMU's equivalent is
   * `qemu_chr_fe_accept_input`. It may call `receive()` directly.
   *
   * @default {undefined} (the backend polls {@linkcode Uart16550.canReceive})
   */
  onReceiveSpace?: () => void;
}

// The registers reset() sets, plus the backend handshake flag it keeps. Kept as one plain
// object so a later snapshot can name its fields.
interface UartState {
  /** Interrupt Enable Register (low 4 bits). */
  ier: number;
  /** IIR as last computed by #updateIrq. */
  iir: number;
  /** FCR bits that stick (FIFO enable, DMA mode, trigger level). */
  fcr: number;
  /** Line Control Register. */
  lcr: number;
  /** MODEM Control Register (low 5 bits). */
  mcr: number;
  /** LSR error bits (OE, PE, FE, BI) waiting to be read. */
  lsrErrors: number;
  /** MODEM Status Register: input levels in bits 4-7, deltas in bits 0-3. */
  msr: number;
  /** Scratch Register. */
  scr: number;
  /** Divisor latch (DLM:DLL). */
  divisor: number;
  /** THRE interrupt latched: set when THR empties, cleared by an IIR read that reports it. */
  thrInterruptPending: boolean;
  /** The byte last moved into RBR, which a non-FIFO read of an empty receiver returns. */
  rbr: number;
  /** Receive ring buffer; in non-FIFO mode only one byte is used (the RBR). */
  rx: Uint8Array;
  /** Index in `rx` of the oldest byte. */
  rxHead: number;
  /** Bytes waiting in `rx`. */
  rxCount: number;
  /** Set when the backend was refused bytes, so #onReceiveSpace is owed a call. */
  receiverWasFull: boolean;
}

/**
 * A 16550A UART with instantaneous transmission.
 *
 * Behaviour:
 * - Transmit: a THR write hands the byte to `transmit` at once, so LSR.THRE and LSR.TEMT are
 *   always set. Each write re-arms the THRE interrupt, so with IER.ETBEI set the IRQ line drops
 *   and rises again, giving an edge-triggered controller a new edge per byte, as in QEMU.
 * - Receive: {@linkcode Uart16550.receive} accepts up to 16 bytes (FIFO mode) or 1 byte (RBR
 *   only) and returns how many it took, so it never overruns; the backend keeps the rest.
 *   Overrun (LSR.OE) happens only in loopback, where the guest can transmit into a full
 *   receiver.
 * - Character timeout: there is no clock, so a FIFO holding fewer bytes than the trigger level
 *   reports the timeout interrupt (IIR 0x0c) immediately, as if four character times had
 *   passed. QEMU arms a timer instead (`fifo_timeout_timer`). Kernels that mask the IIR ID with
 *   0x06 see 0x04, received data, either way.
 * - IRQ output: the line is asserted only while an interrupt is pending and MCR.OUT2 is set and
 *   loopback is off. On PC serial cards the OUT2 pin enables the tri-state buffer between the
 *   UART's INTR pin and the ISA IRQ line (Linux and Xen drivers set OUT2 before expecting
 *   interrupts; Xen's ns16550.c calls it the "master interrupt enable"), and in loopback the
 *   datasheet forces the OUT pins inactive. QEMU does not gate on OUT2 at all and resets MCR
 *   to OUT2, so a kernel that never sets OUT2 gets interrupts under QEMU but not here or on
 *   real hardware.
 * - Not modelled: line parameters (word length, parity, stop bits and baud rate are stored
 *   but a byte is a byte), sending or receiving a break, parity and framing errors, DMA mode,
 *   and host modem lines (outside loopback MSR shows DCD, DSR and CTS on, like QEMU).
 *
 * @example Transmitting through the THR
 * ```ts
 * import assert from "node:assert/strict";
 * import { IrqLine } from "./irq_line.ts";
 * import { REG, Uart16550 } from "./uart16550.ts";
 *
 * const sent: number[] = [];
 * const uart = new Uart16550({ irq: new IrqLine("com1"), transmit: (b) => sent.push(b) });
 * uart.write(REG.THR, 0x41, 1);
 * assert.deepEqual(sent, [0x41]);
 * ```
 */
export class Uart16550 implements PortDevice {
  /** Name used in logs. */
  readonly name: string;
  readonly #irq: IrqLine;
  readonly #transmit: (byte: number) => void;
  readonly #onReceiveSpace: (() => void) | undefined;
  readonly #s: UartState = {
    ier: 0,
    iir: IIR.NO_INT,
    fcr: 0,
    lcr: 0,
    mcr: 0,
    lsrErrors: 0,
    msr: 0,
    scr: 0,
    divisor: 0,
    thrInterruptPending: false,
    rbr: 0,
    rx: new Uint8Array(UART_FIFO_SIZE),
    rxHead: 0,
    rxCount: 0,
    receiverWasFull: false,
  };

  /**
   * Create a UART in its power-on state, with its IRQ line low.
   *
   * @param options See {@linkcode Uart16550Options}.
   */
  constructor(options: Uart16550Options) {
    this.name = options.name ?? "uart16550";
    this.#irq = options.irq;
    this.#transmit = options.transmit;
    this.#onReceiveSpace = options.onReceiveSpace;
    this.reset();
  }

  /** Return every register to its power-on value and lower the IRQ line. */
  reset(): void {
    const s = this.#s;
    s.ier = 0;
    s.iir = IIR.NO_INT;
    s.fcr = 0;
    s.lcr = 0;
    // The datasheet's master-reset value. QEMU resets to OUT2 (0x08), as if firmware had
    // already enabled the interrupt; see the class comment.
    s.mcr = 0;
    s.lsrErrors = 0;
    s.msr = EXTERNAL_MODEM_LINES;
    s.scr = 0;
    // The datasheet leaves the divisor undefined after reset; QEMU picks 0x0c (9600 baud at
    // the PC's 1.8432 MHz clock), and so do we so that DLL/DLM read back something sane.
    s.divisor = 0x0c;
    s.thrInterruptPending = false;
    s.rbr = 0;
    s.rx.fill(0);
    s.rxHead = 0;
    s.rxCount = 0;
    this.#updateIrq();
    // receiverWasFull belongs to the backend handshake, not to the guest-visible registers: a
    // backend refused bytes before the reset is told there is room now.
    this.#notifyReceiveSpace();
  }

  /**
   * Read `size` bytes at `offset`.
   *
   * Wider accesses are split into byte reads of consecutive registers, as QEMU does for this
   * device (it declares 1-byte accesses only); bytes past offset 7 read as 0xff, like an
   * undriven bus.
   */
  read(offset: number, size: AccessSize): number {
    if (size === 1) return this.#readByte(offset);
    let value = 0;
    for (let i = 0; i < size; i++) value |= this.#readByte(offset + i) << (8 * i);
    return value >>> 0;
  }

  /**
   * Write `value` at `offset`.
   *
   * Wider accesses are split into byte writes of consecutive registers, low byte first; bytes
   * past offset 7 are dropped.
   */
  write(offset: number, value: number, size: AccessSize): void {
    if (size === 1) {
      this.#writeByte(offset, value & 0xff);
      return;
    }
    for (let i = 0; i < size; i++) this.#writeByte(offset + i, (value >>> (8 * i)) & 0xff);
  }

  /**
   * How many bytes {@linkcode Uart16550.receive} would accept now.
   *
   * @returns Free space in the RCVR FIFO (FIFO mode) or RBR (1 or 0); 0 in loopback mode,
   *   where the datasheet disconnects the serial input.
   */
  canReceive(): number {
    const s = this.#s;
    if ((s.mcr & MCR.LOOP) !== 0) return 0;
    return this.#rxCapacity() - s.rxCount;
  }

  /**
   * Deliver bytes arriving on the serial line.
   *
   * Takes as many leading bytes as fit (see {@linkcode Uart16550.canReceive}) and leaves the
   * rest to the caller, so the receiver never overruns. When some are refused, the
   * `onReceiveSpace` option is called once room appears.
   *
   * @param bytes Bytes in arrival order.
   * @returns How many leading bytes of `bytes` were accepted.
   */
  receive(bytes: Uint8Array): number {
    const accepted = Math.min(bytes.length, this.canReceive());
    for (let i = 0; i < accepted; i++) this.#pushRx(bytes[i]);
    if (accepted < bytes.length) this.#s.receiverWasFull = true;
    if (accepted > 0) this.#updateIrq();
    return accepted;
  }

  #readByte(offset: number): number {
    const s = this.#s;
    switch (offset) {
      case REG.RBR: // DLL
        return (s.lcr & LCR.DLAB) !== 0 ? s.divisor & 0xff : this.#readRbr();
      case REG.IER: // DLM
        return (s.lcr & LCR.DLAB) !== 0 ? s.divisor >>> 8 : s.ier;
      case REG.IIR: {
        const iir = s.iir;
        // Reading IIR is how the guest acknowledges a THRE interrupt, but only when IIR
        // reported it; a higher-priority source hides it and it stays pending.
        if ((iir & IIR.ID_MASK) === IIR.THRE) {
          s.thrInterruptPending = false;
          this.#updateIrq();
        }
        return iir;
      }
      case REG.LCR:
        return s.lcr;
      case REG.MCR:
        return s.mcr;
      case REG.LSR: {
        const lsr = (s.rxCount > 0 ? LSR.DR : 0) | s.lsrErrors | LSR.THRE | LSR.TEMT;
        if (s.lsrErrors !== 0) {
          s.lsrErrors = 0;
          this.#updateIrq();
        }
        return lsr;
      }
      case REG.MSR: {
        const msr = s.msr;
        if ((msr & MSR_DELTAS) !== 0) {
          s.msr = msr & ~MSR_DELTAS;
          this.#updateIrq();
        }
        return msr;
      }
      case REG.SCR:
        return s.scr;
      default:
        return 0xff;
    }
  }

  #writeByte(offset: number, value: number): void {
    const s = this.#s;
    switch (offset) {
      case REG.THR: // DLL
        if ((s.lcr & LCR.DLAB) !== 0) {
          s.divisor = (s.divisor & 0xff00) | value;
        } else {
          this.#writeThr(value);
        }
        return;
      case REG.IER: // DLM
        if ((s.lcr & LCR.DLAB) !== 0) {
          s.divisor = (s.divisor & 0x00ff) | (value << 8);
        } else {
          this.#writeIer(value & 0x0f);
        }
        return;
      case REG.FCR:
        this.#writeFcr(value);
        return;
      case REG.LCR:
        // DLAB only changes what offsets 0 and 1 address; nothing else depends on LCR here.
        s.lcr = value;
        return;
      case REG.MCR:
        this.#writeMcr(value & 0x1f);
        return;
      case REG.LSR:
      case REG.MSR:
        // Read-only status registers: the datasheet reserves writes for factory test and
        // QEMU ignores them.
        return;
      case REG.SCR:
        s.scr = value;
        return;
      default:
        return;
    }
  }

  #readRbr(): number {
    const s = this.#s;
    if (s.rxCount === 0) {
      // QEMU: an empty FIFO reads 0, while the 8250-style RBR keeps its last byte.
      return (s.fcr & FCR.FIFO_ENABLE) !== 0 ? 0 : s.rbr;
    }
    const byte = s.rx[s.rxHead];
    s.rxHead = (s.rxHead + 1) % UART_FIFO_SIZE;
    s.rxCount--;
    s.rbr = byte;
    this.#updateIrq();
    this.#notifyReceiveSpace();
    return byte;
  }

  #writeThr(byte: number): void {
    const s = this.#s;
    // THR holds the byte until the (instant) shift; dropping the latch first means the IRQ
    // line falls and rises again, so an edge-triggered PIC sees one edge per byte.
    s.thrInterruptPending = false;
    this.#updateIrq();
    if ((s.mcr & MCR.LOOP) !== 0) {
      this.#loopbackReceive(byte);
    } else {
      this.#transmit(byte);
    }
    s.thrInterruptPending = true;
    this.#updateIrq();
  }

  #writeIer(ier: number): void {
    const s = this.#s;
    const changed = s.ier ^ ier;
    s.ier = ier;
    // Enabling ETBEI while THR is empty (always, here) raises THRE even if an IIR read had
    // acknowledged it; Windows relies on this (QEMU serial.c, citing Bochs). Disabling drops
    // the latch so it does not fire later from stale state.
    if ((changed & IER.ETBEI) !== 0) {
      s.thrInterruptPending = (ier & IER.ETBEI) !== 0;
    }
    this.#updateIrq();
  }

  #writeFcr(value: number): void {
    const s = this.#s;
    const wasEnabled = (s.fcr & FCR.FIFO_ENABLE) !== 0;
    const hadRoom = this.canReceive() > 0;
    if ((value & FCR.FIFO_ENABLE) === 0) {
      // Datasheet: other FCR bits are only programmed while FCR0 is written as 1, and
      // clearing FCR0 empties both FIFOs. (QEMU also honours RX_RESET here.)
      if (wasEnabled) {
        this.#clearRx();
        s.thrInterruptPending = true;
      }
      s.fcr = 0;
    } else {
      // Switching modes empties both FIFOs, as if both reset bits were written.
      if (!wasEnabled || (value & FCR.RX_RESET) !== 0) this.#clearRx();
      // The transmit FIFO is always empty here, but resetting it re-arms THRE like QEMU.
      if (!wasEnabled || (value & FCR.TX_RESET) !== 0) s.thrInterruptPending = true;
      s.fcr = value & FCR_STICKY;
    }
    this.#updateIrq();
    if (!hadRoom) this.#notifyReceiveSpace();
  }

  #writeMcr(mcr: number): void {
    const s = this.#s;
    const leftLoopback = (s.mcr & MCR.LOOP) !== 0 && (mcr & MCR.LOOP) === 0;
    s.mcr = mcr;
    this.#updateModemInputs();
    this.#updateIrq();
    if (leftLoopback) this.#notifyReceiveSpace();
  }

  // Recompute MSR's input levels and latch delta bits for the ones that changed. In loopback
  // the datasheet wires DTR->DSR, RTS->CTS, OUT1->RI and OUT2->DCD and keeps the MODEM status
  // interrupt working, which is how drivers test it. (QEMU computes the levels the same way
  // but sets no delta bits in loopback.)
  #updateModemInputs(): void {
    const s = this.#s;
    const mcr = s.mcr;
    let lines = EXTERNAL_MODEM_LINES;
    if ((mcr & MCR.LOOP) !== 0) {
      lines = 0;
      if ((mcr & MCR.DTR) !== 0) lines |= MSR.DSR;
      if ((mcr & MCR.RTS) !== 0) lines |= MSR.CTS;
      if ((mcr & MCR.OUT1) !== 0) lines |= MSR.RI;
      if ((mcr & MCR.OUT2) !== 0) lines |= MSR.DCD;
    }
    const old = s.msr & ~MSR_DELTAS;
    const changed = old ^ lines;
    let deltas = s.msr & MSR_DELTAS;
    if ((changed & MSR.CTS) !== 0) deltas |= MSR.DCTS;
    if ((changed & MSR.DSR) !== 0) deltas |= MSR.DDSR;
    if ((changed & MSR.DCD) !== 0) deltas |= MSR.DDCD;
    // TERI marks only the trailing edge: RI going from on to off.
    if ((old & MSR.RI) !== 0 && (lines & MSR.RI) === 0) deltas |= MSR.TERI;
    s.msr = lines | deltas;
  }

  // The guest's own transmitter feeding its receiver, the one path that can overrun.
  #loopbackReceive(byte: number): void {
    const s = this.#s;
    if (s.rxCount < this.#rxCapacity()) {
      this.#pushRx(byte);
    } else if ((s.fcr & FCR.FIFO_ENABLE) !== 0) {
      // Datasheet: on FIFO overrun the new character is lost; the FIFO keeps its contents.
      s.lsrErrors |= LSR.OE;
    } else {
      // Without FIFOs the new character overwrites the unread one in RBR.
      s.rx[s.rxHead] = byte;
      s.lsrErrors |= LSR.OE;
    }
  }

  #pushRx(byte: number): void {
    const s = this.#s;
    s.rx[(s.rxHead + s.rxCount) % UART_FIFO_SIZE] = byte;
    s.rxCount++;
  }

  #clearRx(): void {
    const s = this.#s;
    s.rxHead = 0;
    s.rxCount = 0;
  }

  #rxCapacity(): number {
    return (this.#s.fcr & FCR.FIFO_ENABLE) !== 0 ? UART_FIFO_SIZE : 1;
  }

  #notifyReceiveSpace(): void {
    const s = this.#s;
    if (!s.receiverWasFull || this.#onReceiveSpace === undefined || this.canReceive() === 0) {
      return;
    }
    s.receiverWasFull = false;
    this.#onReceiveSpace();
  }

  // Recompute IIR and the IRQ line from state. Must run after every change that can affect
  // either (QEMU: serial_update_irq). Priorities follow the datasheet's IIR table.
  #updateIrq(): void {
    const s = this.#s;
    const fifo = (s.fcr & FCR.FIFO_ENABLE) !== 0;
    let id: number = IIR.NO_INT;
    if ((s.ier & IER.ELSI) !== 0 && s.lsrErrors !== 0) {
      id = IIR.LINE_STATUS;
    } else if ((s.ier & IER.ERBFI) !== 0 && s.rxCount > 0) {
      const trigger = RX_TRIGGER_LEVELS[s.fcr >>> 6];
      id = fifo && s.rxCount < trigger ? IIR.RX_TIMEOUT : IIR.RX_DATA;
    } else if ((s.ier & IER.ETBEI) !== 0 && s.thrInterruptPending) {
      id = IIR.THRE;
    } else if ((s.ier & IER.EDSSI) !== 0 && (s.msr & MSR_DELTAS) !== 0) {
      id = IIR.MODEM_STATUS;
    }
    s.iir = id | (fifo ? IIR.FIFOS_ENABLED : 0);
    this.#irq.set(id !== IIR.NO_INT && (s.mcr & (MCR.OUT2 | MCR.LOOP)) === MCR.OUT2);
  }
}
