/**
 * An NE2000-compatible network card: the National DP8390 core (register pages 0-2, the receive
 * ring in card memory, transmit, interrupt status and mask) plus the NE2000 ASIC around it (the
 * remote-DMA data port at offset 0x10, the reset port at 0x1F, a 16-word station PROM holding
 * the MAC at card address 0). Card memory is QEMU's layout: PROM at 0, 32 KiB of buffer RAM at
 * 0x4000-0xBFFF (pages 0x40-0xC0).
 *
 * The card sees only its ports: frames leave through the `transmit` callback and arrive through
 * {@link Ne2000.receive}; the interrupt is one line. It imports neither the CPU nor the tracer.
 *
 * @module
 */
import type { AccessSize, PortDevice } from "./port_device.ts";
import type { IrqLine } from "./irq_line.ts";

/** Ports the card decodes from its base (QEMU's ne2k_pci BAR is 256; the ISA card 32). */
export const NE2000_PORT_COUNT = 0x20;

/** Command register (CR, offset 0 on every page). */
export const CR = {
  STP: 0x01,
  STA: 0x02,
  TXP: 0x04,
  /** Remote DMA command: 1 read, 2 write, 3 send packet, 4..7 abort/complete. */
  RD_SHIFT: 3,
  RD_MASK: 0x38,
  PS_SHIFT: 6,
} as const;

/** Interrupt status (ISR) and mask (IMR) bits. */
export const ISR = {
  /** Packet received. */
  PRX: 0x01,
  /** Packet transmitted. */
  PTX: 0x02,
  /** Receive error. */
  RXE: 0x04,
  /** Transmit error. */
  TXE: 0x08,
  /** Receive ring overwrite warning. */
  OVW: 0x10,
  /** Tally counter overflow. */
  CNT: 0x20,
  /** Remote DMA complete. */
  RDC: 0x40,
  /** Reset state (not an interrupt source). */
  RST: 0x80,
} as const;

/** Receive configuration (RCR) bits. */
export const RCR = {
  /** Accept broadcast. */
  AB: 0x04,
  /** Accept multicast (hashed by MAR). */
  AM: 0x08,
  /** Promiscuous. */
  PRO: 0x10,
  /** Monitor mode: check but do not buffer. */
  MON: 0x20,
} as const;

/** Data configuration (DCR): word-wide transfers. */
export const DCR_WTS = 0x01;
/** Transmit status: packet transmitted. */
export const TSR_PTX = 0x01;
/** Receive status: packet intact; PHY set for multicast/broadcast. */
export const RSR = { PRX: 0x01, PHY: 0x20 } as const;

const PROM_SIZE = 32;
const MEM_START = 0x4000;
const MEM_END = 0xc000;
const MIN_FRAME = 60;
const MAX_FRAME = 1514;
/** Frames held while the ring is full (QEMU holds them in its queue the same way). */
const HOLD_MAX = 32;
const DATA_PORT = 0x10;
const RESET_PORT = 0x1f;

/** Options of {@link Ne2000}. */
export interface Ne2000Options {
  /** Name used in logs. */
  name?: string;
  /** The station address, six bytes. */
  mac: Uint8Array;
  /** The card's interrupt output. */
  irq: IrqLine;
  /** A frame the guest transmitted (without FCS). */
  transmit: (frame: Uint8Array) => void;
  log?: (message: string) => void;
}

/** Counters for tests and statistics. */
export interface Ne2000Counters {
  transmitted: number;
  received: number;
  /** Not for this station (address filter). */
  filtered: number;
  /** Dropped because the card was stopped or the hold queue was full. */
  dropped: number;
}

/**
 * The card.
 *
 * @example Reading the MAC from the PROM with remote DMA
 * ```ts
 * import assert from "node:assert/strict";
 * import { IrqLine } from "./irq_line.ts";
 * import { Ne2000 } from "./ne2000.ts";
 *
 * const nic = new Ne2000({
 *   mac: new Uint8Array([0x52, 0x54, 0, 0x12, 0x34, 0x56]),
 *   irq: new IrqLine("nic"),
 *   transmit: () => {},
 * });
 * nic.write(0x0a, 12, 1); // RBCR0: 12 bytes
 * nic.write(0x08, 0, 1); // RSAR0: card address 0
 * nic.write(0x00, 0x0a, 1); // CR: start, remote read
 * const prom = Array.from({ length: 12 }, () => nic.read(0x10, 1));
 * assert.deepEqual(prom.filter((_, i) => i % 2 === 0), [0x52, 0x54, 0, 0x12, 0x34, 0x56]);
 * ```
 */
export class Ne2000 implements PortDevice {
  readonly name: string;
  readonly counters: Ne2000Counters = { transmitted: 0, received: 0, filtered: 0, dropped: 0 };
  readonly #mem = new Uint8Array(MEM_END);
  readonly #mac: Uint8Array;
  readonly #irq: IrqLine;
  readonly #transmit: (frame: Uint8Array) => void;
  readonly #log: (message: string) => void;
  readonly #held: Uint8Array[] = [];
  // DP8390 registers.
  #cr = 0;
  #pstart = 0;
  #pstop = 0;
  #bnry = 0;
  #tpsr = 0;
  #tbcr = 0;
  #isr = 0;
  #rsar = 0;
  #rbcr = 0;
  #rcr = 0;
  #tcr = 0;
  #dcr = 0;
  #imr = 0;
  #tsr = 0;
  #rsr = 0;
  #curr = 0;
  readonly #par = new Uint8Array(6);
  readonly #mar = new Uint8Array(8);

  /** @param o MAC, interrupt line, transmit callback */
  constructor(o: Ne2000Options) {
    if (o.mac.length !== 6) throw new RangeError(`a MAC has 6 bytes, got ${o.mac.length}`);
    this.name = o.name ?? "ne2000";
    this.#mac = new Uint8Array(o.mac);
    this.#irq = o.irq;
    this.#transmit = o.transmit;
    this.#log = o.log ?? (() => {});
    this.reset();
  }

  /** Power-on and the reset port: stopped, in reset, interrupts masked, PROM loaded. */
  reset(): void {
    this.#cr = CR.STP | (4 << CR.RD_SHIFT);
    this.#isr = ISR.RST;
    this.#imr = 0;
    this.#pstart =
      this.#pstop =
      this.#bnry =
      this.#curr =
        0;
    this.#tpsr =
      this.#tbcr =
      this.#rsar =
      this.#rbcr =
        0;
    this.#rcr =
      this.#tcr =
      this.#dcr =
      this.#tsr =
      this.#rsr =
        0;
    this.#par.fill(0);
    this.#mar.fill(0);
    this.#held.length = 0;
    // The station PROM: the MAC, then 0x57 0x57 ("WW", the NE2000 signature) at 14/15, every
    // byte doubled as the card's 16-bit PROM presents it (QEMU's ne2000_reset does the same).
    const prom = new Uint8Array(16);
    prom.set(this.#mac);
    prom[14] = prom[15] = 0x57;
    for (let i = 0; i < 16; i++) this.#mem[2 * i] = this.#mem[2 * i + 1] = prom[i];
    this.#updateIrq();
  }

  /** Recomputes the interrupt output: asserted while an unmasked status bit is set. */
  #updateIrq(): void {
    this.#irq.set((this.#isr & this.#imr & 0x7f) !== 0);
  }

  read(offset: number, size: AccessSize): number {
    if (offset >= DATA_PORT && offset < RESET_PORT) return this.#dataRead(size);
    if (offset === RESET_PORT) {
      this.reset();
      return 0;
    }
    if (offset > 0x0f) return 0xff;
    if (offset === 0) return this.#cr;
    switch ((this.#cr >> CR.PS_SHIFT) & 3) {
      case 0:
        return this.#page0Read(offset);
      case 1:
        return this.#page1Read(offset);
      case 2:
        return this.#page2Read(offset);
      default:
        return 0xff;
    }
  }

  write(offset: number, value: number, size: AccessSize): void {
    if (offset >= DATA_PORT && offset < RESET_PORT) return this.#dataWrite(value, size);
    if (offset === RESET_PORT) return; // writes to the reset port do nothing; reads reset
    if (offset > 0x0f) return;
    value &= 0xff;
    if (offset === 0) return this.#writeCommand(value);
    const page = (this.#cr >> CR.PS_SHIFT) & 3;
    if (page === 0) this.#page0Write(offset, value);
    else if (page === 1) this.#page1Write(offset, value);
    else this.#log(`${this.name}: write to page ${page} register ${offset} ignored`);
  }

  #page0Read(offset: number): number {
    switch (offset) {
      case 0x01:
        return this.#rsar & 0xff; // CLDA0: local DMA address, shown as the remote one
      case 0x02:
        return this.#rsar >> 8;
      case 0x03:
        return this.#bnry;
      case 0x04:
        return this.#tsr;
      case 0x05:
        return 0; // NCR: no collisions on this wire
      case 0x06:
        return 0; // FIFO
      case 0x07:
        return this.#isr;
      case 0x08:
        return this.#rsar & 0xff; // CRDA0
      case 0x09:
        return this.#rsar >> 8;
      case 0x0a:
        return 0x50; // RTL8029 ID0 'P'
      case 0x0b:
        return 0x43; // RTL8029 ID1 'C'
      case 0x0c:
        return this.#rsr;
      default:
        return 0; // tally counters: no errors ever
    }
  }

  #page0Write(offset: number, v: number): void {
    switch (offset) {
      case 0x01:
        this.#pstart = v;
        return;
      case 0x02:
        this.#pstop = v;
        return;
      case 0x03:
        this.#bnry = v;
        // Room may have appeared in the ring: take a held frame.
        this.#drainHeld();
        return;
      case 0x04:
        this.#tpsr = v;
        return;
      case 0x05:
        this.#tbcr = (this.#tbcr & 0xff00) | v;
        return;
      case 0x06:
        this.#tbcr = (this.#tbcr & 0x00ff) | (v << 8);
        return;
      case 0x07:
        this.#isr &= ~(v & 0x7f); // write 1 to clear; RST is read-only
        this.#updateIrq();
        return;
      case 0x08:
        this.#rsar = (this.#rsar & 0xff00) | v;
        return;
      case 0x09:
        this.#rsar = (this.#rsar & 0x00ff) | (v << 8);
        return;
      case 0x0a:
        this.#rbcr = (this.#rbcr & 0xff00) | v;
        return;
      case 0x0b:
        this.#rbcr = (this.#rbcr & 0x00ff) | (v << 8);
        return;
      case 0x0c:
        this.#rcr = v;
        return;
      case 0x0d:
        this.#tcr = v;
        return;
      case 0x0e:
        this.#dcr = v;
        return;
      case 0x0f:
        this.#imr = v & 0x7f;
        this.#updateIrq();
        return;
    }
  }

  #page1Read(offset: number): number {
    if (offset <= 6) return this.#par[offset - 1];
    if (offset === 7) return this.#curr;
    return this.#mar[offset - 8];
  }

  #page1Write(offset: number, v: number): void {
    if (offset <= 6) this.#par[offset - 1] = v;
    else if (offset === 7) {
      this.#curr = v;
      this.#drainHeld();
    } else this.#mar[offset - 8] = v;
  }

  #page2Read(offset: number): number {
    switch (offset) {
      case 0x01:
        return this.#pstart;
      case 0x02:
        return this.#pstop;
      case 0x04:
        return this.#tpsr;
      case 0x0c:
        return this.#rcr;
      case 0x0d:
        return this.#tcr;
      case 0x0e:
        return this.#dcr;
      case 0x0f:
        return this.#imr;
      default:
        return 0;
    }
  }

  #writeCommand(v: number): void {
    const wasStopped = (this.#cr & CR.STP) !== 0;
    // TXP stays set until the transmission ends; the remote DMA field is as written.
    this.#cr = v;
    if ((v & CR.STP) !== 0) {
      this.#isr |= ISR.RST;
      this.#updateIrq();
      return;
    }
    if (wasStopped || (v & CR.STA) !== 0) this.#isr &= ~ISR.RST;
    const rd = (v & CR.RD_MASK) >> CR.RD_SHIFT;
    // A remote read or write of zero bytes completes at once (QEMU does the same).
    if ((rd === 1 || rd === 2) && this.#rbcr === 0) this.#isr |= ISR.RDC;
    if ((v & CR.TXP) !== 0) this.#send();
    this.#updateIrq();
  }

  #send(): void {
    const start = this.#tpsr << 8;
    const length = this.#tbcr;
    if ((this.#tcr & 0x06) !== 0) {
      this.#log(`${this.name}: loopback transmit (TCR 0x${this.#tcr.toString(16)}) not modelled`);
    } else if (start >= MEM_START && start + length <= MEM_END && length > 0) {
      this.counters.transmitted++;
      this.#transmit(this.#mem.slice(start, start + Math.min(length, MAX_FRAME)));
    } else {
      this.#log(`${this.name}: transmit of ${length} bytes at 0x${start.toString(16)} refused`);
    }
    this.#tsr = TSR_PTX;
    this.#isr |= ISR.PTX;
    this.#cr &= ~CR.TXP;
  }

  #memRead(addr: number): number {
    if (addr < PROM_SIZE || (addr >= MEM_START && addr < MEM_END)) return this.#mem[addr];
    return 0xff;
  }

  #memWrite(addr: number, v: number): void {
    if (addr >= MEM_START && addr < MEM_END) this.#mem[addr] = v;
  }

  /** One step of remote DMA: advance the address (wrapping at PSTOP) and count down. */
  #dmaStep(bytes: number): void {
    this.#rsar = (this.#rsar + bytes) & 0xffff;
    if (this.#pstop !== 0 && this.#rsar === this.#pstop << 8) this.#rsar = this.#pstart << 8;
    this.#rbcr = this.#rbcr <= bytes ? 0 : this.#rbcr - bytes;
    if (this.#rbcr === 0) {
      this.#isr |= ISR.RDC;
      this.#updateIrq();
    }
  }

  #dataRead(size: AccessSize): number {
    // A dword access is two word transfers; byte mode moves one byte at a time.
    const unit = size === 1 || (this.#dcr & DCR_WTS) === 0 ? 1 : 2;
    let v = 0;
    for (let done = 0; done < size; done += unit) {
      let part = this.#memRead(this.#rsar);
      if (unit === 2) part |= this.#memRead(this.#rsar + 1) << 8;
      v |= part << (8 * done);
      this.#dmaStep(unit);
    }
    return v >>> 0;
  }

  #dataWrite(value: number, size: AccessSize): void {
    const unit = size === 1 || (this.#dcr & DCR_WTS) === 0 ? 1 : 2;
    for (let done = 0; done < size; done += unit) {
      this.#memWrite(this.#rsar, (value >>> (8 * done)) & 0xff);
      if (unit === 2) this.#memWrite(this.#rsar + 1, (value >>> (8 * done + 8)) & 0xff);
      this.#dmaStep(unit);
    }
  }

  /** Whether the card would take a frame to `dest` now (address filter of RCR/PAR/MAR). */
  #accepts(frame: Uint8Array): boolean {
    if ((this.#rcr & RCR.PRO) !== 0) return true;
    const broadcast = frame.subarray(0, 6).every((b) => b === 0xff);
    if (broadcast) return (this.#rcr & RCR.AB) !== 0;
    if ((frame[0] & 1) !== 0) {
      if ((this.#rcr & RCR.AM) === 0) return false;
      const bit = crc32Ethernet(frame.subarray(0, 6)) >>> 26;
      return (this.#mar[bit >> 3] & (1 << (bit & 7))) !== 0;
    }
    return this.#par.every((b, i) => b === frame[i]);
  }

  #ringFree(): number {
    const size = (this.#pstop - this.#pstart) << 8;
    const index = this.#curr << 8;
    const boundary = this.#bnry << 8;
    return index < boundary ? boundary - index : size - (index - boundary);
  }

  /**
   * A frame arrives from the wire (destination first, no FCS). Shorter frames are padded to
   * the 60-byte minimum, as the sending card would have.
   *
   * @returns whether it was stored (or held for a full ring), false when filtered or dropped
   */
  receive(frame: Uint8Array): boolean {
    if ((this.#cr & CR.STP) !== 0 || (this.#cr & CR.STA) === 0 || frame.length < 14) {
      this.counters.dropped++;
      return false;
    }
    if (!this.#accepts(frame)) {
      this.counters.filtered++;
      return false;
    }
    if ((this.#rcr & RCR.MON) !== 0) return false;
    if (this.#held.length > 0 || !this.#store(frame)) {
      if (this.#held.length >= HOLD_MAX) {
        this.counters.dropped++;
        return false;
      }
      this.#held.push(frame);
    }
    return true;
  }

  #drainHeld(): void {
    while (this.#held.length > 0 && this.#store(this.#held[0])) this.#held.shift();
  }

  /** Writes a frame into the ring at CURR; false when it does not fit (the ring is full). */
  #store(input: Uint8Array): boolean {
    if (this.#pstart === 0 || this.#pstop <= this.#pstart || (this.#cr & CR.STP) !== 0) {
      return false;
    }
    let frame = input;
    if (frame.length < MIN_FRAME) {
      frame = new Uint8Array(MIN_FRAME);
      frame.set(input);
    }
    const total = frame.length + 4;
    const pages = Math.ceil(total / 256);
    // CURR must never land on BNRY (that would read as an empty ring): the frame must leave
    // at least part of a page free, as the DP8390 stops one page short of the boundary.
    if (pages * 256 >= this.#ringFree()) return false;
    const start = this.#curr << 8;
    let next = this.#curr + pages;
    if (next >= this.#pstop) next -= this.#pstop - this.#pstart;
    this.#rsr = RSR.PRX | ((frame[0] & 1) !== 0 ? RSR.PHY : 0);
    const header = [this.#rsr, next, total & 0xff, total >> 8];
    const ringStart = this.#pstart << 8;
    const ringEnd = this.#pstop << 8;
    let at = start;
    const put = (b: number) => {
      this.#mem[at] = b;
      at++;
      if (at >= ringEnd) at = ringStart;
    };
    for (const b of header) put(b);
    for (const b of frame) put(b);
    this.#curr = next;
    this.counters.received++;
    this.#isr |= ISR.PRX;
    this.#updateIrq();
    return true;
  }
}

/** CRC-32 as Ethernet computes it (for the multicast hash), over `bytes`. */
function crc32Ethernet(bytes: Uint8Array): number {
  let crc = 0xffffffff;
  for (const b of bytes) {
    let x = b;
    for (let i = 0; i < 8; i++) {
      const bit = ((crc >>> 31) ^ x) & 1;
      crc = (crc << 1) >>> 0;
      if (bit) crc = (crc ^ 0x04c11db7) >>> 0;
      x >>= 1;
    }
  }
  return crc >>> 0;
}
