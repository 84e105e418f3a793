/**
 * A Motorola MC146818A real-time clock with the PC's 128 bytes of CMOS RAM, at ports 0x70
 * (index, with the NMI mask in bit 7) and 0x71 (data), interrupting on ISA IRQ8.
 *
 * The clock keeps no running counters: it remembers which RTC second a divider-chain second
 * boundary fell on in guest time, and derives the time registers, the update-in-progress bit
 * and the interrupt flags from guest time when they are read. A timer is pending only while an
 * enabled interrupt could still raise IRQ8.
 *
 * Register and bit names follow the MC146818A datasheet. Where it leaves a choice, QEMU's
 * hw/rtc/mc146818rtc.c is the reference; each such place says so.
 *
 * @module
 */

import { nsForTicks, ticksIn } from "./_clock_ticks.ts";
import type { DeviceClock } from "./device_clock.ts";
import type { IrqLine } from "./irq_line.ts";
import type { AccessSize, PortDevice } from "./port_device.ts";

// ---------------------------------------------------------------------------------------------
// Register map
// ---------------------------------------------------------------------------------------------

/** Number of ports the RTC decodes (0x70 and 0x71 on the PC). */
export const RTC_PORT_COUNT = 2;

/** Port offsets from the RTC's base. */
export const RTC_PORT = {
  /** Index register (write only): selects the CMOS byte; bit 7 masks NMI. */
  INDEX: 0,
  /** Data register: the selected CMOS byte. */
  DATA: 1,
} as const;

/** Index register fields. */
export const RTC_INDEX = {
  /** Bits 6-0: CMOS byte address. */
  ADDRESS_MASK: 0x7f,
  /** Bit 7: NMI disable (a PC chipset latch sharing the port, not part of the MC146818). */
  NMI_DISABLE: 0x80,
} as const;

/** CMOS addresses of the clock registers. */
export const RTC_REG = {
  /** Seconds (0-59). */
  SECONDS: 0x00,
  /** Seconds alarm (0xC0-0xFF: don't care). */
  SECONDS_ALARM: 0x01,
  /** Minutes (0-59). */
  MINUTES: 0x02,
  /** Minutes alarm. */
  MINUTES_ALARM: 0x03,
  /** Hours (0-23, or 1-12 with bit 7 = PM). */
  HOURS: 0x04,
  /** Hours alarm. */
  HOURS_ALARM: 0x05,
  /** Day of week (1-7, Sunday = 1). */
  DAY_OF_WEEK: 0x06,
  /** Date of month (1-31). */
  DAY_OF_MONTH: 0x07,
  /** Month (1-12). */
  MONTH: 0x08,
  /** Year (0-99). */
  YEAR: 0x09,
  /** Register A: UIP, divider, rate select. */
  A: 0x0a,
  /** Register B: SET, interrupt enables, data mode, 24/12, DSE. */
  B: 0x0b,
  /** Register C: interrupt flags (read only, cleared by reading). */
  C: 0x0c,
  /** Register D: valid RAM and time (read only). */
  D: 0x0d,
  /** Century (PC convention, named by the ACPI FADT; maintained with the time as QEMU does). */
  CENTURY: 0x32,
} as const;

/** Register A fields. */
export const RTC_A = {
  /** RS3-RS0: periodic interrupt rate select (0 = off). */
  RS_MASK: 0x0f,
  /** DV2-DV0: time base / divider control. */
  DV_MASK: 0x70,
  /** DV = 010: 32.768 kHz time base, dividers running (the PC's setting). */
  DV_32768_HZ: 0x20,
  /** DV = 11x: divider chain held in reset. */
  DV_RESET: 0x60,
  /** UIP: update in progress (read only). */
  UIP: 0x80,
} as const;

/** Register B bits. */
export const RTC_B = {
  /** DSE: daylight saving enable (stored, not modelled). */
  DSE: 0x01,
  /** 24/12: 24-hour mode. */
  HOUR_24: 0x02,
  /** DM: binary data mode (0 = BCD). */
  DM_BINARY: 0x04,
  /** SQWE: square-wave output enable (stored; the PC leaves SQW unconnected). */
  SQWE: 0x08,
  /** UIE: update-ended interrupt enable. */
  UIE: 0x10,
  /** AIE: alarm interrupt enable. */
  AIE: 0x20,
  /** PIE: periodic interrupt enable. */
  PIE: 0x40,
  /** SET: stop updates so software can set the time. */
  SET: 0x80,
} as const;

/** Register C bits. */
export const RTC_C = {
  /** UF: update-ended flag. */
  UF: 0x10,
  /** AF: alarm flag. */
  AF: 0x20,
  /** PF: periodic interrupt flag. */
  PF: 0x40,
  /** IRQF: interrupt request flag, PF·PIE + AF·AIE + UF·UIE; mirrors the IRQ pin. */
  IRQF: 0x80,
} as const;

/** Register D bits. */
export const RTC_D = {
  /** VRT: valid RAM and time (the battery is good). */
  VRT: 0x80,
} as const;

/** An alarm byte with both top bits set matches every value ("don't care"). */
export const RTC_ALARM_DONT_CARE = 0xc0;

/** Bytes of CMOS: the 14 clock registers and 114 bytes of RAM. */
export const CMOS_SIZE = 128;

/** CMOS RAM addresses of the memory sizes a PC BIOS (and QEMU's pc.c) stores. */
export const CMOS_MEMORY = {
  /** Base memory in KiB (640), low and high byte. */
  BASE_KB: 0x15,
  /** Extended memory above 1 MiB in KiB (capped at 0xFFFF), low and high byte. */
  EXTENDED_KB: 0x17,
  /** Copy of EXTENDED_KB that POST reports. */
  EXTENDED_KB_POST: 0x30,
  /** Memory above 16 MiB (below 4 GiB) in 64 KiB blocks (capped at 0xFFFF), two bytes. */
  ABOVE_16M_64K: 0x34,
  /** Memory above 4 GiB in 64 KiB blocks, three bytes (SeaBIOS/QEMU extension). */
  ABOVE_4G_64K: 0x5b,
} as const;

/** Default wall time at guest time 0: 2026-01-01T00:00:00Z, so runs are deterministic. */
export const RTC_DEFAULT_EPOCH_MS = Date.UTC(2026, 0, 1);

const NS_PER_S = 1_000_000_000;
// The divider chain's 32.768 kHz time base.
const RTC_CLOCK_HZ = 32768;
// UIP rises this long before each update: 8 cycles of the 32.768 kHz time base, 244 µs
// (datasheet tBUC; QEMU's UIP_HOLD_LENGTH).
const UIP_NS = (8 * NS_PER_S) / RTC_CLOCK_HZ;
// Datasheet: the first update after the divider chain leaves reset comes 500 ms later.
const FIRST_UPDATE_NS = 500_000_000;
// Alarms repeat at most daily, so a search over one day of seconds finds any match.
const SECONDS_PER_DAY = 86400;
// The time registers and the addresses they live at, in the order #encodeTime returns them.
const TIME_REGS = [
  RTC_REG.SECONDS,
  RTC_REG.MINUTES,
  RTC_REG.HOURS,
  RTC_REG.DAY_OF_WEEK,
  RTC_REG.DAY_OF_MONTH,
  RTC_REG.MONTH,
  RTC_REG.YEAR,
  RTC_REG.CENTURY,
] as const;
const ALARMS = [
  [RTC_REG.SECONDS_ALARM, 0],
  [RTC_REG.MINUTES_ALARM, 1],
  [RTC_REG.HOURS_ALARM, 2],
] as const;
// Register values after power-on, as QEMU's realize sets them (and a PC BIOS leaves them):
// 32.768 kHz time base, 1024 Hz periodic rate, BCD, 24-hour mode, battery good.
const POWER_ON_A = RTC_A.DV_32768_HZ | 0x06;
const POWER_ON_B = RTC_B.HOUR_24;
const POWER_ON_D = RTC_D.VRT;

/**
 * The CMOS bytes a PC BIOS stores for the memory sizes, computed as QEMU's `pc_cmos_init`
 * does, ready to pass as {@linkcode CmosRtcOptions.memory}.
 *
 * @example 64 MiB of RAM
 * ```ts
 * import assert from "node:assert/strict";
 * import { CMOS_MEMORY, cmosMemorySizes } from "./mc146818.ts";
 *
 * const cmos = cmosMemorySizes(64 << 20);
 * assert.equal(cmos[CMOS_MEMORY.BASE_KB] | (cmos[CMOS_MEMORY.BASE_KB + 1] << 8), 640);
 * assert.equal(cmos[CMOS_MEMORY.EXTENDED_KB] | (cmos[CMOS_MEMORY.EXTENDED_KB + 1] << 8), 64512);
 * assert.equal(cmos[CMOS_MEMORY.ABOVE_16M_64K] | (cmos[CMOS_MEMORY.ABOVE_16M_64K + 1] << 8), 768);
 * ```
 *
 * @param ramBytes RAM mapped from address 0 below 4 GiB.
 * @param aboveFourGBytes RAM mapped from 4 GiB up (default 0).
 * @returns A 128-byte CMOS image with only the memory size bytes set.
 * @throws {RangeError} If `ramBytes` is not an integer from 0 to 4 GiB, or
 *   `aboveFourGBytes` is not a non-negative integer.
 */
export function cmosMemorySizes(ramBytes: number, aboveFourGBytes = 0): Uint8Array {
  const KiB = 1024;
  const MiB = 1024 * KiB;
  if (!Number.isInteger(ramBytes) || ramBytes < 0 || ramBytes > 4096 * MiB) {
    throw new RangeError(`RAM below 4 GiB must be an integer from 0 to 4 GiB, got ${ramBytes}`);
  }
  if (!Number.isInteger(aboveFourGBytes) || aboveFourGBytes < 0) {
    throw new RangeError(`RAM above 4 GiB must be a non-negative integer, got ${aboveFourGBytes}`);
  }
  const cmos = new Uint8Array(CMOS_SIZE);
  const put = (address: number, value: number, bytes: number) => {
    for (let i = 0; i < bytes; i++) cmos[address + i] = Math.floor(value / 256 ** i) & 0xff;
  };
  put(CMOS_MEMORY.BASE_KB, Math.min(Math.floor(ramBytes / KiB), 640), 2);
  const extended = ramBytes > MiB ? Math.min(Math.floor((ramBytes - MiB) / KiB), 0xffff) : 0;
  put(CMOS_MEMORY.EXTENDED_KB, extended, 2);
  put(CMOS_MEMORY.EXTENDED_KB_POST, extended, 2);
  const above16M = ramBytes > 16 * MiB
    ? Math.min(Math.floor((ramBytes - 16 * MiB) / (64 * KiB)), 0xffff)
    : 0;
  put(CMOS_MEMORY.ABOVE_16M_64K, above16M, 2);
  put(CMOS_MEMORY.ABOVE_4G_64K, Math.floor(aboveFourGBytes / (64 * KiB)), 3);
  return cmos;
}

/** Options for {@linkcode CmosRtc}. */
export interface CmosRtcOptions {
  /**
   * Name used in logs.
   *
   * @default {"mc146818"}
   */
  name?: string;
  /** Guest time and timers; the clock advances with guest time only. */
  clock: DeviceClock;
  /** ISA IRQ8, driven with IRQF (high until register C is read). */
  irq8: IrqLine;
  /**
   * Wall-clock time at guest time 0, in milliseconds since the Unix epoch.
   *
   * @default {RTC_DEFAULT_EPOCH_MS} (2026-01-01T00:00:00Z)
   */
  epochMs?: number;
  /**
   * Initial CMOS contents, up to 128 bytes (for example {@linkcode cmosMemorySizes}). Bytes
   * 0x00-0x0D are the clock registers and are ignored; the century byte is overwritten with
   * the time.
   *
   * @default {all zero}
   */
  memory?: Uint8Array;
  /**
   * Where to report programming the model does not implement (daylight saving, divider
   * test modes), each distinct message once.
   *
   * @default {(message) => console.warn(`mc146818: ${message}`)}
   */
  log?: (message: string) => void;
}

// The device's state. Kept as one plain object so a later snapshot can name its fields.
interface RtcState {
  /** Index register bits 6-0. */
  index: number;
  /** Index register bit 7. */
  nmiDisabled: boolean;
  /** The 128 CMOS bytes; time registers as last brought up to date, A without UIP. */
  cmos: Uint8Array;
  /** RTC seconds since the Unix epoch at guest time `anchorNs` (meaningful while updating). */
  baseSec: number;
  /** Guest time of a divider-chain second boundary (meaningful while the dividers run). */
  anchorNs: number;
  /** Register C's flags account for every event up to this guest time. */
  syncedNs: number;
}

/**
 * An MC146818A with PC CMOS RAM, running on guest time.
 *
 * Behaviour:
 * - Time: at guest time t the clock shows `epochMs + t` unless the guest set it; it advances
 *   only with guest time. Time and date registers are BCD or binary (register B DM) and 24- or
 *   12-hour (bit 7 = PM), regenerated from the current second when read; a format change
 *   shows on the next read (the datasheet expects software to rewrite the time after one).
 *   The calendar is the Gregorian one (the chip's own leap rule is year % 4, which first
 *   differs in 2100), the day of week follows from the date, and century 0x32 is kept with
 *   the year as QEMU does.
 * - Updates: once per second on a divider-chain boundary while register B SET is clear and
 *   DV is 000-010 (QEMU's test). SET freezes the registers for writing; clearing it restarts
 *   from them with the divider's phase kept, so the next update comes at the next boundary.
 *   DV = 11x holds the divider in reset; leaving it puts the first update 500 ms later. A time
 *   register written while updates run restarts from the registers the same way (QEMU).
 * - UIP (register A bit 7) reads 1 during the last 244 µs before each update, as QEMU models
 *   it (the datasheet also keeps it set through the 1984 µs update cycle, which here is
 *   instantaneous).
 * - Interrupts: PF at the rate of register A RS3-RS0 while the divider runs (independent of
 *   PIE, as in the datasheet; QEMU only sets PF when PIE is set), UF after each update, AF
 *   after an update whose seconds, minutes and hours match the alarm bytes (0xC0-0xFF: don't
 *   care). IRQF = PF·PIE + AF·AIE + UF·UIE, and IRQ8 follows IRQF: it stays high until the
 *   guest reads register C, which returns and clears every flag. Setting SET clears UIE
 *   (datasheet). Lost periodic interrupts are not re-injected (QEMU's lost_tick_policy
 *   "discard").
 * - Ports: the index port reads 0xff (QEMU); bit 7 of an index write is the PC's NMI mask,
 *   exposed as {@linkcode CmosRtc.nmiDisabled} for the board. C and D ignore writes; A's UIP
 *   is read only.
 * - {@linkcode CmosRtc.reset} is a power cycle with a fresh battery: time from `epochMs`, RAM
 *   from `memory`. (The chip's RESET pin only clears interrupt enables and flags.)
 * - Not modelled: daylight saving (DSE, logged), the square-wave pin, the 4.194304 and
 *   1.048576 MHz time bases (DV 000 and 001 behave as 010, like QEMU) and the divider test
 *   modes (DV 011 and 10x stop updates, logged).
 *
 * @example Reading the seconds register in BCD
 * ```ts
 * import assert from "node:assert/strict";
 * import { ManualClock } from "./device_clock.ts";
 * import { IrqLine } from "./irq_line.ts";
 * import { CmosRtc, RTC_PORT, RTC_REG } from "./mc146818.ts";
 *
 * const clock = new ManualClock();
 * const rtc = new CmosRtc({ clock, irq8: new IrqLine("irq8") });
 * clock.advance(42_000_000_000);
 * rtc.write(RTC_PORT.INDEX, RTC_REG.SECONDS, 1);
 * assert.equal(rtc.read(RTC_PORT.DATA, 1), 0x42);
 * ```
 */
export class CmosRtc implements PortDevice {
  /** Name used in logs. */
  readonly name: string;
  readonly #clock: DeviceClock;
  readonly #irq: IrqLine;
  readonly #log: (message: string) => void;
  readonly #epochSec: number;
  readonly #epochSubNs: number;
  readonly #memory = new Uint8Array(CMOS_SIZE);
  readonly #s: RtcState = {
    index: 0,
    nmiDisabled: false,
    cmos: new Uint8Array(CMOS_SIZE),
    baseSec: 0,
    anchorNs: 0,
    syncedNs: 0,
  };
  #cancel: (() => void) | null = null;

  /**
   * Create the clock in its power-on state, with IRQ8 low.
   *
   * @param options See {@linkcode CmosRtcOptions}.
   * @throws {RangeError} If `memory` is longer than 128 bytes or `epochMs` is not finite.
   */
  constructor(options: CmosRtcOptions) {
    this.name = options.name ?? "mc146818";
    this.#clock = options.clock;
    this.#irq = options.irq8;
    const sink = options.log ?? ((message: string) => console.warn(`mc146818: ${message}`));
    const logged = new Set<string>();
    this.#log = (message) => {
      if (logged.has(message)) return;
      logged.add(message);
      sink(message);
    };
    const epochMs = options.epochMs ?? RTC_DEFAULT_EPOCH_MS;
    if (!Number.isFinite(epochMs)) throw new RangeError(`epochMs must be finite, got ${epochMs}`);
    // Split so that sub-second arithmetic stays exact in nanoseconds.
    this.#epochSec = Math.floor(epochMs / 1000);
    this.#epochSubNs = Math.round((epochMs - this.#epochSec * 1000) * 1_000_000);
    const memory = options.memory ?? new Uint8Array(0);
    if (memory.length > CMOS_SIZE) {
      throw new RangeError(`CMOS memory holds ${CMOS_SIZE} bytes, got ${memory.length}`);
    }
    this.#memory.set(memory);
    this.reset();
  }

  /** Bit 7 of the last index write: the PC chipset's NMI mask. */
  get nmiDisabled(): boolean {
    return this.#s.nmiDisabled;
  }

  /**
   * Power-on: RAM from `memory`, registers A = 0x26, B = 0x02 (BCD, 24-hour), C = 0,
   * D = 0x80, the time `epochMs` + guest time, index 0, NMI enabled, IRQ8 low.
   */
  reset(): void {
    const s = this.#s;
    const now = this.#clock.now();
    s.cmos.set(this.#memory);
    s.cmos[RTC_REG.A] = POWER_ON_A;
    s.cmos[RTC_REG.B] = POWER_ON_B;
    s.cmos[RTC_REG.C] = 0;
    s.cmos[RTC_REG.D] = POWER_ON_D;
    s.cmos[RTC_REG.SECONDS_ALARM] = 0;
    s.cmos[RTC_REG.MINUTES_ALARM] = 0;
    s.cmos[RTC_REG.HOURS_ALARM] = 0;
    s.index = 0;
    s.nmiDisabled = false;
    const sinceSecond = this.#epochSubNs + now;
    const phase = mod(sinceSecond, NS_PER_S);
    s.anchorNs = now - phase;
    s.baseSec = this.#epochSec + (sinceSecond - phase) / NS_PER_S;
    s.syncedNs = now;
    this.#refreshTime(now);
    this.#updateIrq();
    this.#reschedule(now);
  }

  /** Read `size` bytes at `offset`, one register per byte; bytes past 0x71 read 0xff. */
  read(offset: number, size: AccessSize): number {
    let value = 0;
    for (let i = 0; i < size; i++) {
      value |= (offset + i === RTC_PORT.DATA ? this.#readData() : 0xff) << (8 * i);
    }
    return value >>> 0;
  }

  /** Write `value` at `offset`, one register per byte. */
  write(offset: number, value: number, size: AccessSize): void {
    for (let i = 0; i < size; i++) {
      const byte = (value >>> (8 * i)) & 0xff;
      if (offset + i === RTC_PORT.INDEX) {
        this.#s.index = byte & RTC_INDEX.ADDRESS_MASK;
        this.#s.nmiDisabled = (byte & RTC_INDEX.NMI_DISABLE) !== 0;
      } else if (offset + i === RTC_PORT.DATA) {
        this.#writeData(byte);
      }
    }
  }

  #readData(): number {
    const s = this.#s;
    const now = this.#clock.now();
    const index = s.index;
    switch (index) {
      case RTC_REG.A:
        return s.cmos[index] | (this.#updateInProgress(now) ? RTC_A.UIP : 0);
      case RTC_REG.C: {
        this.#sync(now);
        const flags = s.cmos[index];
        s.cmos[index] = 0;
        this.#updateIrq();
        this.#reschedule(now);
        return flags;
      }
      default:
        if (isTimeRegister(index)) this.#refreshTime(now);
        return s.cmos[index];
    }
  }

  #writeData(value: number): void {
    const s = this.#s;
    const now = this.#clock.now();
    const index = s.index;
    switch (index) {
      case RTC_REG.A:
        this.#writeA(value, now);
        return;
      case RTC_REG.B:
        this.#writeB(value, now);
        return;
      case RTC_REG.C:
      case RTC_REG.D:
        return;
      case RTC_REG.SECONDS_ALARM:
      case RTC_REG.MINUTES_ALARM:
      case RTC_REG.HOURS_ALARM:
        // Seconds already passed were matched against the old alarm.
        this.#sync(now);
        s.cmos[index] = value;
        this.#reschedule(now);
        return;
      default:
        if (!isTimeRegister(index)) {
          s.cmos[index] = value;
          return;
        }
        this.#sync(now);
        this.#refreshTime(now);
        s.cmos[index] = value;
        if (this.#updating()) this.#restartFromRegisters(this.#lastBoundary(now));
        this.#reschedule(now);
        return;
    }
  }

  #writeA(value: number, now: number): void {
    const s = this.#s;
    this.#sync(now);
    this.#refreshTime(now);
    const wasRunning = this.#dividerRunning();
    const wasUpdating = this.#updating();
    s.cmos[RTC_REG.A] = value & ~RTC_A.UIP;
    const dv = value & RTC_A.DV_MASK;
    if (dv > RTC_A.DV_32768_HZ && (dv & RTC_A.DV_RESET) !== RTC_A.DV_RESET) {
      this.#log(`register A divider test mode 0x${dv.toString(16)} is not modelled; time stops`);
    }
    if (!wasRunning && this.#dividerRunning()) s.anchorNs = now + FIRST_UPDATE_NS - NS_PER_S;
    if (!wasUpdating && this.#updating()) {
      this.#restartFromRegisters(wasRunning ? this.#lastBoundary(now) : s.anchorNs);
    }
    this.#updateIrq();
    this.#reschedule(now);
  }

  #writeB(value: number, now: number): void {
    const s = this.#s;
    this.#sync(now);
    this.#refreshTime(now);
    const wasUpdating = this.#updating();
    // Datasheet: SET going high clears UIE.
    s.cmos[RTC_REG.B] = (value & RTC_B.SET) !== 0 ? value & ~RTC_B.UIE : value;
    if ((value & RTC_B.DSE) !== 0) this.#log("register B daylight saving (DSE) is not modelled");
    if (!wasUpdating && this.#updating()) this.#restartFromRegisters(this.#lastBoundary(now));
    this.#updateIrq();
    this.#reschedule(now);
  }

  // The dividers run unless DV holds them in reset.
  #dividerRunning(): boolean {
    return (this.#s.cmos[RTC_REG.A] & RTC_A.DV_RESET) !== RTC_A.DV_RESET;
  }

  // Seconds advance: dividers on a real time base (QEMU: DV <= 010) and SET clear.
  #updating(): boolean {
    const { cmos } = this.#s;
    return (cmos[RTC_REG.A] & RTC_A.DV_MASK) <= RTC_A.DV_32768_HZ &&
      (cmos[RTC_REG.B] & RTC_B.SET) === 0;
  }

  // Whole seconds since the anchor at guest time `at`.
  #secondsAt(at: number): number {
    return Math.floor((at - this.#s.anchorNs) / NS_PER_S);
  }

  #lastBoundary(at: number): number {
    return at - mod(at - this.#s.anchorNs, NS_PER_S);
  }

  #updateInProgress(at: number): boolean {
    return this.#updating() && mod(at - this.#s.anchorNs, NS_PER_S) >= NS_PER_S - UIP_NS;
  }

  // Periodic interrupt period in 32.768 kHz cycles, 0 when RS selects none (QEMU:
  // periodic_period_to_clock; rates 1 and 2 repeat rates 8 and 9 with this time base).
  #periodCycles(): number {
    let rs = this.#s.cmos[RTC_REG.A] & RTC_A.RS_MASK;
    if (rs === 0) return 0;
    if (rs <= 2) rs += 7;
    return 1 << (rs - 1);
  }

  // Latch into register C the flags of every event in (syncedNs, now]. Settings do not change
  // between syncs: every register write syncs first.
  #sync(now: number): void {
    const s = this.#s;
    const from = s.syncedNs;
    if (now <= from) return;
    s.syncedNs = now;
    if (!this.#dividerRunning()) return;
    const period = this.#periodCycles();
    if (period !== 0) {
      const before = Math.floor(ticksIn(from - s.anchorNs, RTC_CLOCK_HZ) / period);
      const after = Math.floor(ticksIn(now - s.anchorNs, RTC_CLOCK_HZ) / period);
      if (after > before) s.cmos[RTC_REG.C] |= RTC_C.PF;
    }
    if (this.#updating()) {
      const before = this.#secondsAt(from);
      const after = this.#secondsAt(now);
      if (after > before) {
        s.cmos[RTC_REG.C] |= RTC_C.UF;
        if ((s.cmos[RTC_REG.C] & RTC_C.AF) === 0) {
          for (let k = Math.max(before + 1, after - SECONDS_PER_DAY + 1); k <= after; k++) {
            if (this.#alarmMatches(s.baseSec + k)) {
              s.cmos[RTC_REG.C] |= RTC_C.AF;
              break;
            }
          }
        }
      }
    }
    this.#updateIrq();
  }

  // Datasheet: the alarm bytes are compared with the time bytes as stored, so they must be in
  // the same format; 0xC0-0xFF matches anything.
  #alarmMatches(second: number): boolean {
    const time = this.#encodeTime(second);
    for (const [register, field] of ALARMS) {
      const alarm = this.#s.cmos[register];
      if ((alarm & RTC_ALARM_DONT_CARE) === RTC_ALARM_DONT_CARE) continue;
      if (alarm !== time[field]) return false;
    }
    return true;
  }

  // Bring the time registers up to the current second, if updates are running.
  #refreshTime(now: number): void {
    if (!this.#updating()) return;
    const s = this.#s;
    const bytes = this.#encodeTime(s.baseSec + this.#secondsAt(now));
    for (let i = 0; i < TIME_REGS.length; i++) s.cmos[TIME_REGS[i]] = bytes[i];
  }

  // Take the time from the registers as the second that began at guest time `anchor`.
  #restartFromRegisters(anchor: number): void {
    const s = this.#s;
    s.anchorNs = anchor;
    const second = this.#decodeTime();
    if (second !== null) s.baseSec = second;
  }

  // The time registers for RTC second `second`, in TIME_REGS order and the current format.
  #encodeTime(second: number): number[] {
    const b = this.#s.cmos[RTC_REG.B];
    const encode = (value: number) =>
      (b & RTC_B.DM_BINARY) !== 0 ? value : (Math.floor(value / 10) << 4) | (value % 10);
    const date = new Date(second * 1000);
    const hour = date.getUTCHours();
    const hours = (b & RTC_B.HOUR_24) !== 0
      ? encode(hour)
      : encode(hour % 12 === 0 ? 12 : hour % 12) | (hour >= 12 ? 0x80 : 0);
    const year = date.getUTCFullYear();
    return [
      encode(date.getUTCSeconds()),
      encode(date.getUTCMinutes()),
      hours,
      encode(date.getUTCDay() + 1),
      encode(date.getUTCDate()),
      encode(date.getUTCMonth() + 1),
      encode(year % 100),
      encode(Math.floor(year / 100) % 100),
    ];
  }

  // The RTC second the time registers name, or null if they name no representable date.
  // Out-of-range fields roll over (month 13 is January of the next year).
  #decodeTime(): number | null {
    const { cmos } = this.#s;
    const b = cmos[RTC_REG.B];
    const decode = (value: number) =>
      (b & RTC_B.DM_BINARY) !== 0 ? value : (value >> 4) * 10 + (value & 0x0f);
    const rawHours = cmos[RTC_REG.HOURS];
    const hour = (b & RTC_B.HOUR_24) !== 0
      ? decode(rawHours)
      : (decode(rawHours & 0x7f) % 12) + ((rawHours & 0x80) !== 0 ? 12 : 0);
    const date = new Date(0);
    // setUTCFullYear, unlike Date.UTC, does not map years 0-99 to 1900-1999.
    date.setUTCFullYear(
      decode(cmos[RTC_REG.CENTURY]) * 100 + decode(cmos[RTC_REG.YEAR]),
      decode(cmos[RTC_REG.MONTH]) - 1,
      decode(cmos[RTC_REG.DAY_OF_MONTH]),
    );
    date.setUTCHours(hour, decode(cmos[RTC_REG.MINUTES]), decode(cmos[RTC_REG.SECONDS]), 0);
    const ms = date.getTime();
    return Number.isFinite(ms) ? Math.floor(ms / 1000) : null;
  }

  // Recompute IRQF and IRQ8 from the flags and enables. Must run after every change to
  // register B or C (QEMU raises and lowers s->irq at the same points).
  #updateIrq(): void {
    const { cmos } = this.#s;
    const flags = cmos[RTC_REG.C] & (RTC_C.PF | RTC_C.AF | RTC_C.UF);
    const irqf = (flags & cmos[RTC_REG.B]) !== 0;
    cmos[RTC_REG.C] = flags | (irqf ? RTC_C.IRQF : 0);
    this.#irq.set(irqf);
  }

  // Keep one timer pending for the next event that could raise IRQ8: a periodic edge while PIE
  // is set and PF clear, a second boundary while UIE or AIE waits for its flag. Other events
  // are latched lazily by #sync when the guest reads register C.
  #reschedule(now: number): void {
    this.#cancel?.();
    this.#cancel = null;
    const s = this.#s;
    const b = s.cmos[RTC_REG.B];
    const c = s.cmos[RTC_REG.C];
    let next = Infinity;
    const period = this.#periodCycles();
    if ((b & RTC_B.PIE) !== 0 && (c & RTC_C.PF) === 0 && period !== 0 && this.#dividerRunning()) {
      const edge = (Math.floor(ticksIn(now - s.anchorNs, RTC_CLOCK_HZ) / period) + 1) * period;
      next = s.anchorNs + nsForTicks(edge, RTC_CLOCK_HZ);
    }
    const waitsForUpdate = ((b & RTC_B.UIE) !== 0 && (c & RTC_C.UF) === 0) ||
      ((b & RTC_B.AIE) !== 0 && (c & RTC_C.AF) === 0);
    if (waitsForUpdate && this.#updating()) {
      next = Math.min(next, s.anchorNs + (this.#secondsAt(now) + 1) * NS_PER_S);
    }
    if (next === Infinity) return;
    this.#cancel = this.#clock.schedule(next, () => {
      this.#cancel = null;
      const at = Math.max(this.#clock.now(), next);
      this.#sync(at);
      this.#reschedule(at);
    });
  }
}

function isTimeRegister(index: number): boolean {
  return (TIME_REGS as readonly number[]).includes(index);
}

// Modulo with the sign of the divisor.
function mod(value: number, divisor: number): number {
  return ((value % divisor) + divisor) % divisor;
}
