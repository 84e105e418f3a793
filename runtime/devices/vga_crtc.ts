/**
 * The CRT controller of a CGA/VGA colour text adapter, as kernels reach it at ports
 * 0x3D4 (index) and 0x3D5 (data), plus Input Status 1 at 0x3DA. The text itself is not here:
 * the 80x25 character/attribute cells at physical 0xB8000 are ordinary guest RAM that the guest
 * writes natively; a screen reader combines them with this controller's start address and
 * cursor (runtime/screen/text_screen.ts).
 *
 * Register numbers follow the VGA reference (IBM VGA Technical Reference, CRTC registers).
 *
 * @module
 */

import type { AccessSize, PortDevice } from "./port_device.ts";

/** CRTC register indices. */
export const CRTC = {
  /** Cursor Start: scanline in bits 0-4, bit 5 turns the cursor off. */
  CURSOR_START: 0x0a,
  /** Cursor End: scanline in bits 0-4. */
  CURSOR_END: 0x0b,
  /** Start Address High/Low: the first cell shown, in cells from 0xB8000. */
  START_HIGH: 0x0c,
  START_LOW: 0x0d,
  /** Cursor Location High/Low, in cells from 0xB8000. */
  CURSOR_HIGH: 0x0e,
  CURSOR_LOW: 0x0f,
} as const;

/** Cursor Start bit 5: cursor disabled. */
export const CURSOR_DISABLE = 0x20;
/** Number of CRTC registers (0x00..0x18). */
const CRTC_REGS = 0x19;
/** Port offset of the index register (the data register is at 1). */
const INDEX = 0;

/** Where the cursor is and how it looks. */
export interface CursorState {
  /** Cell index from 0xB8000 (row * 80 + column when the start address is 0). */
  location: number;
  /** First and last scanline of the cursor block. */
  start: number;
  end: number;
  visible: boolean;
}

/**
 * The CRTC register file. Attach {@linkcode VgaCrtc.ports} at 0x3D4 (2 ports) and
 * {@linkcode VgaCrtc.status} at 0x3DA.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { VgaCrtc } from "./vga_crtc.ts";
 * const crtc = new VgaCrtc();
 * crtc.ports.write(0, 0x0e, 1);
 * crtc.ports.write(1, 0x01, 1);
 * crtc.ports.write(0, 0x0f, 1);
 * crtc.ports.write(1, 0x40, 1);
 * assert.equal(crtc.cursor().location, 0x140);
 * ```
 */
export class VgaCrtc {
  /** Ports 0x3D4 (index) and 0x3D5 (data). */
  readonly ports: PortDevice;
  /** Port 0x3DA: Input Status 1. */
  readonly status: PortDevice;
  #index = 0;
  #regs = new Uint8Array(CRTC_REGS);
  #retrace = false;

  constructor() {
    this.reset();
    this.ports = {
      name: "vga-crtc@0x3d4",
      read: (off) => off === INDEX ? this.#index : this.#read(),
      write: (off, v, size: AccessSize) => {
        if (off === INDEX) {
          this.#index = v & 0xff;
          // A word write to the index port sets index and data at once (outw 0x3D4).
          if (size >= 2) this.#write(v >> 8);
        } else this.#write(v);
      },
      reset: () => this.reset(),
    };
    this.status = {
      name: "vga-status@0x3da",
      // Display enable and vertical retrace toggle on each read, so that a driver waiting for
      // retrace (read until bit 3 set, then until clear) never spins forever.
      read: () => {
        this.#retrace = !this.#retrace;
        return this.#retrace ? 0x09 : 0x00;
      },
      write: () => {},
      reset: () => void (this.#retrace = false),
    };
  }

  /** Power-on values: an underline cursor (scanlines 14-15) at the top-left, start address 0. */
  reset(): void {
    this.#index = 0;
    this.#regs.fill(0);
    this.#regs[CRTC.CURSOR_START] = 0x0e;
    this.#regs[CRTC.CURSOR_END] = 0x0f;
  }

  #read(): number {
    return this.#index < CRTC_REGS ? this.#regs[this.#index] : 0xff;
  }

  #write(v: number): void {
    if (this.#index < CRTC_REGS) this.#regs[this.#index] = v & 0xff;
  }

  /** First cell shown, counted from 0xB8000. */
  startAddress(): number {
    return (this.#regs[CRTC.START_HIGH] << 8) | this.#regs[CRTC.START_LOW];
  }

  /** The cursor as the registers set it. */
  cursor(): CursorState {
    const start = this.#regs[CRTC.CURSOR_START];
    const end = this.#regs[CRTC.CURSOR_END] & 0x1f;
    return {
      location: (this.#regs[CRTC.CURSOR_HIGH] << 8) | this.#regs[CRTC.CURSOR_LOW],
      start: start & 0x1f,
      end,
      visible: (start & CURSOR_DISABLE) === 0 && (start & 0x1f) <= end,
    };
  }
}
