/**
 * An Intel 8042 keyboard controller with a PS/2 keyboard behind it, as PC kernels see it at
 * ports 0x60 (data) and 0x64 (status and command), with IRQ 1.
 *
 * The keyboard speaks scancode set 1: the controller's translation bit (command byte bit 6) is
 * on at power-up as a BIOS leaves it, so what a kernel reads from port 0x60 is set 1. Input
 * arrives already in set 1 through {@linkcode I8042.keyboardInput} (see keymap.ts); a guest
 * that turns translation off still gets set 1, and that is logged as not modelled.
 *
 * The controller's output line 0 is the CPU's reset line: command 0xFE (any 0xF0-0xFF command
 * with bit 0 clear pulses it) and a write of the output port with bit 0 clear call `onReset`.
 *
 * Where the datasheet is silent, QEMU's hw/input/pckbd.c and hw/input/ps2.c are the reference.
 *
 * @module
 */

import type { IrqLine } from "./irq_line.ts";
import type { PortDevice } from "./port_device.ts";

/** Status register (read at 0x64). */
export const STATUS = {
  /** Output buffer full: a byte waits at 0x60. */
  OBF: 0x01,
  /** Input buffer full: never set here, writes are taken at once. */
  IBF: 0x02,
  /** System flag: copied from the command byte (set after the self-test). */
  SYS: 0x04,
  /** The last write went to 0x64 (a command), not 0x60. */
  CMD: 0x08,
  /** Keyboard not inhibited (the keylock switch is open). */
  UNLOCKED: 0x10,
  /** The output byte came from the auxiliary (mouse) port. */
  AUX_OBF: 0x20,
} as const;

/** Command byte ("mode") bits: read with 0x20, written with 0x60. */
export const MODE = {
  /** Raise IRQ 1 when a keyboard byte is in the output buffer. */
  KBD_INT: 0x01,
  /** Raise IRQ 12 for mouse bytes (no mouse here). */
  AUX_INT: 0x02,
  /** System flag. */
  SYS: 0x04,
  /** Keyboard interface disabled. */
  DISABLE_KBD: 0x10,
  /** Auxiliary interface disabled. */
  DISABLE_AUX: 0x20,
  /** Translate keyboard set 2 to set 1. */
  XLATE: 0x40,
} as const;

/** Controller commands (written to 0x64). */
export const CMD = {
  READ_MODE: 0x20,
  WRITE_MODE: 0x60,
  DISABLE_AUX: 0xa7,
  ENABLE_AUX: 0xa8,
  TEST_AUX: 0xa9,
  SELF_TEST: 0xaa,
  TEST_KBD: 0xab,
  DISABLE_KBD: 0xad,
  ENABLE_KBD: 0xae,
  READ_INPUT: 0xc0,
  READ_OUTPUT: 0xd0,
  WRITE_OUTPUT: 0xd1,
  WRITE_KBD_OBUF: 0xd2,
  WRITE_AUX_OBUF: 0xd3,
  WRITE_AUX: 0xd4,
  DISABLE_A20: 0xdd,
  ENABLE_A20: 0xdf,
  /** 0xF0-0xFF pulse output lines whose bit is 0; 0xFE pulses line 0, the CPU reset. */
  PULSE_RESET: 0xfe,
} as const;

/** Replies of the controller and the keyboard. */
export const REPLY = {
  SELF_TEST_OK: 0x55,
  INTERFACE_OK: 0x00,
  ACK: 0xfa,
  RESEND: 0xfe,
  BAT_OK: 0xaa,
  ECHO: 0xee,
} as const;

/** Output port bits (0xD0/0xD1). */
const OUT = { RESET: 0x01, A20: 0x02, OBF_KBD: 0x10 } as const;

/** Bytes the keyboard buffers before it drops input (a PS/2 keyboard holds about 16 keys). */
export const KBD_QUEUE_BYTES = 64;

/** Power-on command byte, as a BIOS leaves it: keyboard IRQ, system flag, translation, no mouse. */
export const MODE_AT_BOOT = MODE.KBD_INT | MODE.SYS | MODE.DISABLE_AUX | MODE.XLATE;

/** Options of {@linkcode I8042}. */
export interface I8042Options {
  /** IRQ 1. */
  irq1: IrqLine;
  /** The reset line was pulsed: the machine resets (or ends the run, as `-no-reboot`). */
  onReset: (reason: string) => void;
  /** Unmodelled requests. */
  log?: (message: string) => void;
}

/**
 * The controller and its keyboard. Attach {@linkcode I8042.data} at 0x60 and
 * {@linkcode I8042.control} at 0x64.
 *
 * @example Self-test through the ports
 * ```ts
 * import assert from "node:assert/strict";
 * import { I8042 } from "./i8042.ts";
 * import { IrqLine } from "./irq_line.ts";
 * const kbc = new I8042({ irq1: new IrqLine("irq1"), onReset: () => {} });
 * kbc.control.write(0, 0xaa, 1);
 * assert.equal(kbc.control.read(0, 1) & 1, 1);
 * assert.equal(kbc.data.read(0, 1), 0x55);
 * ```
 */
export class I8042 {
  /** Port 0x60. */
  readonly data: PortDevice;
  /** Port 0x64. */
  readonly control: PortDevice;
  #mode = MODE_AT_BOOT;
  #status = STATUS.UNLOCKED | STATUS.SYS;
  #outport = OUT.RESET | OUT.A20;
  /** The byte in the output buffer, when OBF is set. */
  #obuf = 0;
  /** Controller replies, served before keyboard bytes. */
  #replies: number[] = [];
  /** Bytes from the keyboard. */
  #kbd: number[] = [];
  /** A controller command waiting for its data byte at 0x60. */
  #pendingCmd = 0;
  /** A keyboard command waiting for its parameter byte. */
  #pendingKbd = 0;
  #scanning = true;
  #dropped = 0;
  readonly #o: I8042Options;

  /** @param o the IRQ line, the reset callback and a log */
  constructor(o: I8042Options) {
    this.#o = o;
    this.data = {
      name: "i8042-data@0x60",
      read: () => this.#readData(),
      write: (_off, v) => this.#writeData(v & 0xff),
      reset: () => this.reset(),
    };
    this.control = {
      name: "i8042-control@0x64",
      read: () => this.#status,
      write: (_off, v) => this.#command(v & 0xff),
      reset: () => this.reset(),
    };
  }

  /** Power-on state (as a BIOS leaves it: see {@link MODE_AT_BOOT}). */
  reset(): void {
    this.#mode = MODE_AT_BOOT;
    this.#status = STATUS.UNLOCKED | STATUS.SYS;
    this.#outport = OUT.RESET | OUT.A20;
    this.#obuf = 0;
    this.#replies = [];
    this.#kbd = [];
    this.#pendingCmd = 0;
    this.#pendingKbd = 0;
    this.#scanning = true;
    this.#update();
  }

  /** The command byte (for tests and reports). */
  get mode(): number {
    return this.#mode;
  }

  /** Keyboard bytes dropped because the keyboard's buffer was full or scanning was off. */
  get dropped(): number {
    return this.#dropped;
  }

  /** Keyboard bytes waiting behind the output buffer. */
  get queued(): number {
    return this.#kbd.length;
  }

  /**
   * Scancodes from the keyboard (set 1, as the translated output a kernel reads). Bytes beyond
   * the keyboard's buffer, or sent while scanning is disabled (0xF5), are dropped and counted.
   *
   * @param bytes set 1 make/break codes, e.g. from keymap.ts
   */
  keyboardInput(bytes: Iterable<number>): void {
    for (const b of bytes) {
      if (!this.#scanning || this.#kbd.length >= KBD_QUEUE_BYTES) this.#dropped++;
      else this.#kbd.push(b & 0xff);
      this.#update();
    }
  }

  /** Moves the next byte into an empty output buffer and recomputes IRQ 1. */
  #update(): void {
    if (!(this.#status & STATUS.OBF)) {
      if (this.#replies.length > 0) {
        this.#fill(this.#replies.shift()!);
      } else if (this.#kbd.length > 0 && !(this.#mode & MODE.DISABLE_KBD)) {
        this.#fill(this.#kbd.shift()!);
      }
    }
    const irq = (this.#status & STATUS.OBF) !== 0 && !(this.#status & STATUS.AUX_OBF) &&
      (this.#mode & MODE.KBD_INT) !== 0;
    this.#o.irq1.set(irq);
  }

  #fill(byte: number): void {
    this.#obuf = byte;
    this.#status = (this.#status | STATUS.OBF) & ~STATUS.AUX_OBF;
  }

  #reply(...bytes: number[]): void {
    this.#replies.push(...bytes);
  }

  #readData(): number {
    const v = this.#obuf;
    // Reading an empty buffer returns the last byte again, as the hardware latch does.
    this.#status &= ~(STATUS.OBF | STATUS.AUX_OBF);
    // Lower first, so the next byte gives the edge-triggered 8259 a fresh rising edge.
    this.#o.irq1.set(false);
    this.#update();
    return v;
  }

  #command(cmd: number): void {
    this.#status |= STATUS.CMD;
    this.#pendingCmd = 0;
    if (cmd >= 0xf0) {
      if ((cmd & 1) === 0) this.#o.onReset(`0x${cmd.toString(16)} to the i8042 command port`);
      return;
    }
    switch (cmd) {
      case CMD.READ_MODE:
        this.#reply(this.#mode);
        break;
      case CMD.WRITE_MODE:
      case CMD.WRITE_OUTPUT:
      case CMD.WRITE_KBD_OBUF:
      case CMD.WRITE_AUX_OBUF:
      case CMD.WRITE_AUX:
        this.#pendingCmd = cmd;
        break;
      case CMD.DISABLE_AUX:
        this.#mode |= MODE.DISABLE_AUX;
        break;
      case CMD.ENABLE_AUX:
        this.#mode &= ~MODE.DISABLE_AUX;
        break;
      case CMD.TEST_AUX:
        this.#reply(REPLY.INTERFACE_OK);
        break;
      case CMD.SELF_TEST:
        this.#status |= STATUS.SYS;
        this.#reply(REPLY.SELF_TEST_OK);
        break;
      case CMD.TEST_KBD:
        this.#reply(REPLY.INTERFACE_OK);
        break;
      case CMD.DISABLE_KBD:
        this.#mode |= MODE.DISABLE_KBD;
        break;
      case CMD.ENABLE_KBD:
        this.#mode &= ~MODE.DISABLE_KBD;
        break;
      case CMD.READ_INPUT:
        this.#reply(0x80); // keyboard not inhibited
        break;
      case CMD.READ_OUTPUT:
        this.#reply(
          this.#outport |
            ((this.#status & STATUS.OBF) && !(this.#status & STATUS.AUX_OBF) ? OUT.OBF_KBD : 0),
        );
        break;
      case CMD.DISABLE_A20:
        this.#outport &= ~OUT.A20;
        this.#o.log?.("i8042: A20 disabled: not modelled, addresses do not wrap at 1 MiB");
        break;
      case CMD.ENABLE_A20:
        this.#outport |= OUT.A20;
        break;
      default:
        this.#o.log?.(`i8042: unimplemented controller command 0x${cmd.toString(16)}`);
    }
    this.#update();
  }

  #writeData(v: number): void {
    this.#status &= ~STATUS.CMD;
    const cmd = this.#pendingCmd;
    this.#pendingCmd = 0;
    switch (cmd) {
      case CMD.WRITE_MODE:
        this.#mode = v;
        this.#status = (this.#status & ~STATUS.SYS) | (v & MODE.SYS);
        if (!(v & MODE.XLATE)) {
          this.#o.log?.("i8042: translation off: not modelled, the keyboard still sends set 1");
        }
        break;
      case CMD.WRITE_OUTPUT:
        this.#outport = v;
        if (!(v & OUT.RESET)) this.#o.onReset("i8042 output port written with the reset bit clear");
        break;
      case CMD.WRITE_KBD_OBUF:
        this.#reply(v);
        break;
      case CMD.WRITE_AUX_OBUF:
      case CMD.WRITE_AUX:
        // No mouse: the byte goes nowhere, as with nothing plugged into the aux port.
        break;
      default:
        this.#keyboardCommand(v);
    }
    this.#update();
  }

  /** A byte for the keyboard itself (written to 0x60 with no controller command pending). */
  #keyboardCommand(v: number): void {
    // The keyboard answers through its own queue, so replies keep their order with keys.
    const answer = (...bytes: number[]) => this.#kbd.push(...bytes);
    const param = this.#pendingKbd;
    this.#pendingKbd = 0;
    if (param === 0xed || param === 0xf3) return void answer(REPLY.ACK); // LEDs, typematic
    if (param === 0xf0) return void answer(REPLY.ACK, ...(v === 0 ? [0x41] : []));
    switch (v) {
      case 0xed:
      case 0xf3:
      case 0xf0:
        this.#pendingKbd = v;
        answer(REPLY.ACK);
        return;
      case 0xee:
        answer(REPLY.ECHO);
        return;
      case 0xf2: // identify: an MF2 keyboard, as translated
        answer(REPLY.ACK, 0xab, 0x41);
        return;
      case 0xf4:
        this.#scanning = true;
        answer(REPLY.ACK);
        return;
      case 0xf5:
        this.#scanning = false;
        this.#kbd = [];
        answer(REPLY.ACK);
        return;
      case 0xf6:
        this.#scanning = true;
        answer(REPLY.ACK);
        return;
      case 0xff:
        this.#kbd = [];
        this.#scanning = true;
        answer(REPLY.ACK, REPLY.BAT_OK);
        return;
      default:
        this.#o.log?.(`i8042: unknown keyboard command 0x${v.toString(16)} (answered resend)`);
        answer(REPLY.RESEND);
    }
  }
}
