/**
 * The Intel 82C54 programmable interval timer at ports 0x40-0x43, and the PC's port 0x61
 * (system control port B), which gates counter 2 and reads its output.
 *
 * Counters are not ticked: each one remembers when its count was loaded, and its value and
 * output at any guest time follow from the 1.193182 MHz input clock by arithmetic. Only an
 * output wired to an interrupt line (counter 0, IRQ0) needs a timer, and it has one pending
 * callback at a time: the next change of its output.
 *
 * Register and bit names follow the 82C54 datasheet. Where it leaves a choice, QEMU's
 * hw/timer/i8254.c and i8254_common.c are the reference; each such place says so.
 *
 * @module
 */

import { nsForTicks, ticksIn } from "./_clock_ticks.ts";
import type { DeviceClock } from "./device_clock.ts";
import type { IrqLine } from "./irq_line.ts";
import type { AccessSize, PortDevice } from "./port_device.ts";

// ---------------------------------------------------------------------------------------------
// Register map (offsets from the base port, 0x40 on the PC)
// ---------------------------------------------------------------------------------------------

/** The PC's PIT input clock: 14.31818 MHz / 12. */
export const PIT_FREQUENCY_HZ = 1_193_182;

/** Number of ports the 8254 decodes (offsets 0-3). */
export const PIT_PORT_COUNT = 4;

/** Register offsets from the 8254's base port. */
export const PIT_REG = {
  /** Counter 0 (on the PC: IRQ0, the system timer). */
  COUNTER0: 0,
  /** Counter 1 (on the PC: DRAM refresh request). */
  COUNTER1: 1,
  /** Counter 2 (on the PC: speaker, gated and read through port 0x61). */
  COUNTER2: 2,
  /** Control Word Register (write only). */
  CONTROL: 3,
} as const;

/** Control word fields (offset 3). */
export const PIT_CONTROL = {
  /** BCD: count in binary-coded decimal (4 decades) rather than 16-bit binary. */
  BCD: 0x01,
  /** M2-M0: counter mode (6 and 7 are aliases of 2 and 3). */
  MODE_MASK: 0x0e,
  /** RW1-RW0: read/write format. */
  RW_MASK: 0x30,
  /** RW = 00: Counter Latch Command. */
  RW_LATCH: 0x00,
  /** RW = 01: read/write least significant byte only. */
  RW_LSB: 0x10,
  /** RW = 10: read/write most significant byte only. */
  RW_MSB: 0x20,
  /** RW = 11: least significant byte first, then most significant byte. */
  RW_WORD: 0x30,
  /** SC1-SC0: counter select. */
  SC_MASK: 0xc0,
  /** SC = 11: Read-Back Command. */
  SC_READ_BACK: 0xc0,
} as const;

/** Read-Back Command fields (control word with SC = 11). */
export const PIT_READ_BACK = {
  /** CNT0: select counter 0. */
  COUNTER0: 0x02,
  /** CNT1: select counter 1. */
  COUNTER1: 0x04,
  /** CNT2: select counter 2. */
  COUNTER2: 0x08,
  /** STATUS (active low): 0 latches the status of the selected counters. */
  NOT_STATUS: 0x10,
  /** COUNT (active low): 0 latches the count of the selected counters. */
  NOT_COUNT: 0x20,
} as const;

/** Status byte fields (latched by a Read-Back Command). */
export const PIT_STATUS = {
  /** BCD as programmed. */
  BCD: 0x01,
  /** M2-M0 as programmed. */
  MODE_MASK: 0x0e,
  /** RW1-RW0 as programmed. */
  RW_MASK: 0x30,
  /** NULL COUNT: the last count written has not been loaded into the counting element. */
  NULL_COUNT: 0x40,
  /** OUTPUT: the state of the OUT pin. */
  OUTPUT: 0x80,
} as const;

/** Port 0x61 (system control port B) bits; the PC's speaker and counter 2 controls. */
export const SPEAKER_PORT = {
  /** Counter 2 GATE input (read/write). */
  TIMER2_GATE: 0x01,
  /** Speaker data enable: ANDed with counter 2's output to drive the speaker (read/write). */
  SPEAKER_DATA: 0x02,
  /** Parity check disable (read/write, stored). */
  PARITY_CHECK_DISABLE: 0x04,
  /** I/O channel check disable (read/write, stored). */
  CHANNEL_CHECK_DISABLE: 0x08,
  /** Refresh request: toggles every 18 input clocks, about 15.085 µs (read only). */
  REFRESH: 0x10,
  /** Counter 2 OUT pin (read only). */
  TIMER2_OUT: 0x20,
  /** I/O channel check NMI source (read only; never set here). */
  CHANNEL_CHECK: 0x40,
  /** Parity check NMI source (read only; never set here). */
  PARITY_CHECK: 0x80,
} as const;

// Read/write state of a counter's byte flip-flops, named as in QEMU (RW field values, plus
// a fourth state for the second byte of a word).
const RW_LSB = 1;
const RW_MSB = 2;
const RW_WORD0 = 3;
const RW_WORD1 = 4;

// Bits of port 0x61 that are plain read/write latches.
const SPEAKER_WRITABLE = 0x0f;
// Input clocks per refresh request on the PC/AT (counter 1 is programmed with 18).
const REFRESH_DIVISOR = 18;

// One counter. Kept as one plain object so a later snapshot can name its fields.
interface CounterState {
  /** Effective mode, 0-5. */
  mode: number;
  /** M2-M0 as written, for the status byte. */
  modeBits: number;
  /** RW field as written: 1 LSB, 2 MSB, 3 word. */
  rw: number;
  /** BCD counting. */
  bcd: boolean;
  /** The GATE input. */
  gate: boolean;
  /** Initial count N in counts: 1..0x10000 (binary) or 1..10000 (BCD); 0 means N = max. */
  count: number;
  /** A count has been loaded since the last control word, so the counter runs. */
  armed: boolean;
  /** Counting element frozen while not armed (returned by reads until a count is loaded). */
  frozen: number;
  /** Status NULL COUNT. */
  nullCount: boolean;
  /** Guest time the current run of counting began. */
  loadNs: number;
  /** Input clocks counted before `loadNs` (gate pauses in modes 0 and 4). */
  tickOffset: number;
  /** Whether the counting element is decrementing (false while GATE holds it). */
  counting: boolean;
  /** Write flip-flop: RW_LSB, RW_MSB, RW_WORD0 or RW_WORD1. */
  writeState: number;
  /** First byte of a word count, waiting for the second. */
  writeLatch: number;
  /** Read flip-flop for unlatched reads. */
  readState: number;
  /** Latched count and which bytes are left to read (0 = nothing latched). */
  latchedCount: number;
  latchState: number;
  /** Latched status byte, or -1 when none. */
  latchedStatus: number;
}

/** Options for {@linkcode Pit8254}. */
export interface Pit8254Options {
  /**
   * Name used in logs.
   *
   * @default {"i8254"}
   */
  name?: string;
  /** Guest time and timers. */
  clock: DeviceClock;
  /** The interrupt line counter 0's OUT drives (ISA IRQ0). */
  irq0: IrqLine;
}

/**
 * An 82C54 with three counters at 1.193182 MHz, counter 0 wired to IRQ0, counters 0 and 1
 * gated high and counter 2 gated through {@linkcode PcSpeakerPort}.
 *
 * Behaviour:
 * - OUT levels follow the datasheet in every mode: mode 0 low until terminal count; mode 1
 *   low while counting; mode 2 high except for the one input clock in which the count is 1,
 *   so IRQ0 rises once per period, when the count reloads; mode 3 high for ceil(N/2) clocks
 *   and low for the rest, counting by two (odd N: N-1, N-3, ... in each half); modes 4 and 5
 *   low for one clock at terminal count. QEMU draws modes 1, 2, 4 and 5 inverted (high
 *   pulses), so the rising edge an edge-triggered PIC sees comes at the same clock in mode 2,
 *   one clock later here in modes 4 and 5, and at terminal count rather than at the start in
 *   mode 1.
 * - Modes 1 and 5 start when the count is written and restart at each GATE rising edge, as
 *   in QEMU; the datasheet makes them wait for a GATE trigger.
 * - Timing: the count is loaded at the moment it is written, so every event comes one input
 *   clock (838 ns) earlier than the datasheet's "N + 1 clocks after the write", as in QEMU.
 *   Guest time is converted to input clocks exactly (no drift), so a counter programmed for
 *   a period of N clocks produces its k-th edge at exactly k·N clocks after the load.
 * - A new count takes effect at once in every mode (QEMU); the datasheet defers it to the end
 *   of the current period in modes 2 and 3 and to the next trigger in modes 1 and 5. A
 *   control word resets the counter (OUT to its initial level, counting stopped until a count
 *   is written), and in mode 0 the first byte of a word count stops counting.
 * - GATE: low pauses modes 0 and 4; low stops modes 2 and 3 with OUT high and a rising edge
 *   restarts them; a rising edge restarts modes 1 and 5.
 * - BCD: counting is decimal (four decades, 0 meaning 10000) and reads return BCD. Digits
 *   above 9 in a written count are taken at face value (0x1A = 20).
 * - Counts 1 in modes 2 and 3 are illegal in the datasheet; here OUT simply stays high.
 * - Reads of the control port return 0xff (datasheet: no operation, the bus floats; QEMU
 *   returns 0).
 *
 * @example Programming 100 Hz the way Linux does
 * ```ts
 * import assert from "node:assert/strict";
 * import { ManualClock } from "./device_clock.ts";
 * import { IrqLine } from "./irq_line.ts";
 * import { Pit8254, PIT_REG } from "./i8254.ts";
 *
 * const clock = new ManualClock();
 * const irq0 = new IrqLine("irq0");
 * const pit = new Pit8254({ clock, irq0 });
 * let rises = 0;
 * irq0.connect((level) => void (level && rises++));
 * pit.write(PIT_REG.CONTROL, 0x34, 1); // counter 0, LSB then MSB, mode 2
 * pit.write(PIT_REG.COUNTER0, 11932 & 0xff, 1);
 * pit.write(PIT_REG.COUNTER0, 11932 >> 8, 1);
 * clock.advance(100_000_000); // 0.1 s
 * assert.equal(rises, 9); // the 10th comes 1.5 µs later: 11932 clocks are 10.0001 ms
 * ```
 */
export class Pit8254 implements PortDevice {
  /** Name used in logs. */
  readonly name: string;
  readonly #clock: DeviceClock;
  readonly #outputs: readonly (IrqLine | null)[];
  readonly #counters: CounterState[] = [0, 1, 2].map(() => ({
    mode: 3,
    modeBits: 3,
    rw: RW_WORD0,
    bcd: false,
    gate: true,
    count: 0x10000,
    armed: true,
    frozen: 0,
    nullCount: false,
    loadNs: 0,
    tickOffset: 0,
    counting: true,
    writeState: RW_WORD0,
    writeLatch: 0,
    readState: RW_WORD0,
    latchedCount: 0,
    latchState: 0,
    latchedStatus: -1,
  }));
  // The pending output-change callback of each counter with a wired output.
  readonly #cancel: ((() => void) | null)[] = [null, null, null];

  /**
   * Create the timer in its power-on state, with counter 0 already running.
   *
   * @param options See {@linkcode Pit8254Options}.
   */
  constructor(options: Pit8254Options) {
    this.name = options.name ?? "i8254";
    this.#clock = options.clock;
    this.#outputs = [options.irq0, null, null];
    this.reset();
  }

  /**
   * Return to the state QEMU gives at reset (the datasheet leaves it undefined): every counter
   * in mode 3 with count 0 (65536), LSB-then-MSB access, binary, loaded now; counters 0 and 1
   * gated high, counter 2 gated low. Counter 0 therefore runs at 18.2 Hz, as the BIOS leaves
   * it.
   */
  reset(): void {
    const now = this.#clock.now();
    for (let i = 0; i < 3; i++) {
      const c = this.#counters[i];
      c.mode = 3;
      c.modeBits = 3;
      c.rw = RW_WORD0;
      c.bcd = false;
      c.gate = i !== 2;
      c.count = 0x10000;
      c.armed = true;
      c.frozen = 0;
      c.nullCount = false;
      c.loadNs = now;
      c.tickOffset = 0;
      c.counting = c.gate;
      c.writeState = RW_WORD0;
      c.writeLatch = 0;
      c.readState = RW_WORD0;
      c.latchedCount = 0;
      c.latchState = 0;
      c.latchedStatus = -1;
      this.#update(i, now);
    }
  }

  /**
   * Read `size` bytes at `offset`; wider accesses are split into byte reads of consecutive
   * registers (QEMU declares byte access only), and bytes past offset 3 read as 0xff.
   */
  read(offset: number, size: AccessSize): number {
    let value = 0;
    for (let i = 0; i < size; i++) value |= this.#readByte(offset + i) << (8 * i);
    return value >>> 0;
  }

  /** Write `value` at `offset`, split into bytes like {@linkcode Pit8254.read}. */
  write(offset: number, value: number, size: AccessSize): void {
    for (let i = 0; i < size; i++) this.#writeByte(offset + i, (value >>> (8 * i)) & 0xff);
  }

  /**
   * Drive counter `channel`'s GATE input (on the PC only counter 2's is not tied high).
   *
   * @param channel Counter number, 0-2.
   * @param level The new GATE level.
   * @throws {RangeError} If `channel` is not 0, 1 or 2.
   */
  setGate(channel: number, level: boolean): void {
    const c = this.#counter(channel);
    if (c.gate === level) return;
    const now = this.#clock.now();
    c.gate = level;
    if (c.armed) {
      switch (c.mode) {
        case 0:
        case 4:
          // Level sensitive: counting pauses while low and resumes where it stopped.
          if (level) {
            c.loadNs = now;
          } else {
            c.tickOffset = this.#elapsed(c, now);
          }
          c.counting = level;
          break;
        case 2:
        case 3:
          // Low stops counting (OUT high) and holds the count; the rising edge restarts the
          // period.
          if (level) {
            this.#start(c, now);
          } else {
            c.tickOffset = this.#elapsed(c, now);
            c.counting = false;
          }
          break;
        default:
          // Modes 1 and 5: a rising edge triggers the count again.
          if (level) this.#start(c, now);
          break;
      }
    }
    this.#update(channel, now);
  }

  /**
   * Counter `channel`'s GATE input.
   *
   * @param channel Counter number, 0-2.
   * @returns The GATE level.
   * @throws {RangeError} If `channel` is not 0, 1 or 2.
   */
  gate(channel: number): boolean {
    return this.#counter(channel).gate;
  }

  /**
   * Counter `channel`'s OUT pin at the current guest time.
   *
   * @param channel Counter number, 0-2.
   * @returns The OUT level.
   * @throws {RangeError} If `channel` is not 0, 1 or 2.
   */
  output(channel: number): boolean {
    return this.#out(this.#counter(channel), this.#clock.now());
  }

  #counter(channel: number): CounterState {
    const c = Number.isInteger(channel) ? this.#counters[channel] : undefined;
    if (c === undefined) throw new RangeError(`PIT counter must be 0, 1 or 2, got ${channel}`);
    return c;
  }

  #readByte(offset: number): number {
    if (offset >= PIT_REG.CONTROL) return 0xff;
    const c = this.#counters[offset];
    if (c.latchedStatus >= 0) {
      // Datasheet: with both latched, the status comes first, then the count.
      const status = c.latchedStatus;
      c.latchedStatus = -1;
      return status;
    }
    if (c.latchState !== 0) {
      const value = c.latchedCount;
      switch (c.latchState) {
        case RW_MSB:
          c.latchState = 0;
          return value >>> 8;
        case RW_WORD0:
          c.latchState = RW_MSB;
          return value & 0xff;
        default: // RW_LSB
          c.latchState = 0;
          return value & 0xff;
      }
    }
    const value = this.#readCount(c, this.#clock.now());
    switch (c.readState) {
      case RW_MSB:
        return value >>> 8;
      case RW_WORD0:
        c.readState = RW_WORD1;
        return value & 0xff;
      case RW_WORD1:
        c.readState = RW_WORD0;
        return value >>> 8;
      default: // RW_LSB
        return value & 0xff;
    }
  }

  #writeByte(offset: number, value: number): void {
    if (offset > PIT_REG.CONTROL) return;
    const now = this.#clock.now();
    if (offset === PIT_REG.CONTROL) {
      this.#writeControl(value, now);
      return;
    }
    const c = this.#counters[offset];
    switch (c.writeState) {
      case RW_MSB:
        this.#load(offset, value << 8, now);
        return;
      case RW_WORD0:
        c.writeLatch = value;
        c.writeState = RW_WORD1;
        if (c.mode === 0) {
          // Datasheet: in mode 0 writing the first byte stops counting; OUT stays low.
          c.frozen = this.#readCount(c, now);
          c.armed = false;
          this.#update(offset, now);
        }
        return;
      case RW_WORD1:
        c.writeState = RW_WORD0;
        this.#load(offset, c.writeLatch | (value << 8), now);
        return;
      case RW_LSB:
      default:
        this.#load(offset, value, now);
        return;
    }
  }

  #writeControl(value: number, now: number): void {
    if ((value & PIT_CONTROL.SC_MASK) === PIT_CONTROL.SC_READ_BACK) {
      for (let i = 0; i < 3; i++) {
        if ((value & (PIT_READ_BACK.COUNTER0 << i)) === 0) continue;
        const c = this.#counters[i];
        if ((value & PIT_READ_BACK.NOT_COUNT) === 0) this.#latchCount(c, now);
        // A second status latch before the first is read is ignored, like the count's.
        if ((value & PIT_READ_BACK.NOT_STATUS) === 0 && c.latchedStatus < 0) {
          c.latchedStatus = this.#status(c, now);
        }
      }
      return;
    }
    const channel = value >>> 6;
    const c = this.#counters[channel];
    const rw = (value & PIT_CONTROL.RW_MASK) >>> 4;
    if (rw === 0) {
      this.#latchCount(c, now);
      return;
    }
    // A control word resets the counter's control logic: OUT to its initial level, counting
    // stopped until a new count is written, latches and byte flip-flops cleared.
    c.frozen = this.#readCount(c, now);
    c.modeBits = (value & PIT_CONTROL.MODE_MASK) >>> 1;
    // M2 is "don't care" for modes 2 and 3, so 6 and 7 are aliases (QEMU keeps 6 and 7 and
    // then treats them as mode 0).
    c.mode = c.modeBits > 5 ? c.modeBits & 3 : c.modeBits;
    c.bcd = (value & PIT_CONTROL.BCD) !== 0;
    c.rw = rw;
    c.readState = rw;
    c.writeState = rw;
    c.latchState = 0;
    c.latchedStatus = -1;
    c.armed = false;
    c.nullCount = true;
    this.#update(channel, now);
  }

  // Load a complete count written by the guest and start counting (QEMU: pit_load_count).
  #load(channel: number, raw: number, now: number): void {
    const c = this.#counters[channel];
    let count = c.bcd ? fromBcd(raw) : raw;
    if (count === 0) count = c.bcd ? 10000 : 0x10000;
    c.count = count;
    c.armed = true;
    c.nullCount = false;
    this.#start(c, now);
    // Modes 0, 2, 3 and 4 count only while GATE is high; 1 and 5 were just triggered.
    if (!c.gate && c.mode !== 1 && c.mode !== 5) c.counting = false;
    this.#update(channel, now);
  }

  #start(c: CounterState, now: number): void {
    c.loadNs = now;
    c.tickOffset = 0;
    c.counting = true;
  }

  // Counter Latch Command; a second one before the first is fully read is ignored.
  #latchCount(c: CounterState, now: number): void {
    if (c.latchState !== 0) return;
    c.latchedCount = this.#readCount(c, now);
    // The RW field values double as the latch's read states (LSB, MSB, or LSB then MSB).
    c.latchState = c.rw;
  }

  #status(c: CounterState, now: number): number {
    return (this.#out(c, now) ? PIT_STATUS.OUTPUT : 0) |
      (c.nullCount ? PIT_STATUS.NULL_COUNT : 0) |
      (c.rw << 4) |
      (c.modeBits << 1) |
      (c.bcd ? PIT_STATUS.BCD : 0);
  }

  // Input clocks counted since the count was loaded, at guest time `at`.
  #elapsed(c: CounterState, at: number): number {
    if (!c.counting) return c.tickOffset;
    return c.tickOffset + Math.max(0, ticksIn(at - c.loadNs, PIT_FREQUENCY_HZ));
  }

  // The counting element as the guest reads it (BCD-encoded in BCD mode), at guest time `at`.
  #readCount(c: CounterState, at: number): number {
    if (!c.armed) return c.frozen;
    const n = c.count;
    const d = this.#elapsed(c, at);
    const modulus = c.bcd ? 10000 : 0x10000;
    let value: number;
    switch (c.mode) {
      case 2:
        // N, N-1, ..., 1, then reload.
        value = n - (d % n);
        break;
      case 3: {
        // Datasheet: the count goes down by two; an odd N loads N-1 and holds OUT high one
        // clock longer. Each half-period counts N (or N-1) down to 2 (or 0).
        const high = Math.ceil(n / 2);
        const r = d % n;
        const start = n - (n & 1);
        value = start - 2 * (r < high ? r : r - high);
        break;
      }
      default:
        // Modes 0, 1, 4, 5 count down from N and wrap past zero.
        value = ((n - d) % modulus + modulus) % modulus;
        break;
    }
    value %= modulus;
    return c.bcd ? toBcd(value) : value;
  }

  // The OUT pin at guest time `at`.
  #out(c: CounterState, at: number): boolean {
    // After a control word OUT is low in mode 0 and high in every other mode.
    if (!c.armed) return c.mode !== 0;
    const n = c.count;
    switch (c.mode) {
      case 0:
      case 1:
        return this.#elapsed(c, at) >= n;
      case 2:
        if (!c.counting || n < 2) return true;
        return this.#elapsed(c, at) % n !== n - 1;
      case 3:
        if (!c.counting) return true;
        return this.#elapsed(c, at) % n < Math.ceil(n / 2);
      default: // 4 and 5
        return this.#elapsed(c, at) !== n;
    }
  }

  // Guest time of OUT's next change after `at`, or null if it will not change by itself.
  #nextChange(c: CounterState, at: number): number | null {
    if (!c.armed || !c.counting) return null;
    const n = c.count;
    const d = this.#elapsed(c, at);
    let tick: number;
    switch (c.mode) {
      case 0:
      case 1:
        if (d >= n) return null;
        tick = n;
        break;
      case 2: {
        if (n < 2) return null;
        const base = d - (d % n);
        // Falls when the count reaches 1, rises when it reloads.
        tick = d - base < n - 1 ? base + n - 1 : base + n;
        break;
      }
      case 3: {
        if (n < 2) return null;
        const base = d - (d % n);
        const high = Math.ceil(n / 2);
        tick = d - base < high ? base + high : base + n;
        break;
      }
      default: // 4 and 5: one clock low at terminal count
        if (d > n) return null;
        tick = d < n ? n : n + 1;
        break;
    }
    return c.loadNs + nsForTicks(tick - c.tickOffset, PIT_FREQUENCY_HZ);
  }

  // Recompute counter `channel`'s wired output at `at` and keep exactly one timer pending for
  // its next change. Must run after every change to the counter's state.
  #update(channel: number, at: number): void {
    const line = this.#outputs[channel];
    if (line === null) return;
    this.#cancel[channel]?.();
    this.#cancel[channel] = null;
    const c = this.#counters[channel];
    line.set(this.#out(c, at));
    // A listener that reprogrammed the counter has already armed its own timer.
    if (this.#cancel[channel] !== null) return;
    this.#arm(channel, c, at);
  }

  #arm(channel: number, c: CounterState, at: number): void {
    const next = this.#nextChange(c, at);
    if (next === null) return;
    this.#cancel[channel] = this.#clock.schedule(next, () => this.#onTimer(channel, next));
  }

  // The timer fires at or after `due`. The output is evaluated at `due`, not at the time the
  // callback runs (as QEMU's pit_irq_timer does), so a late callback still shows every
  // change in order: a one-clock mode 2 pulse is never skipped. If the callback is late by
  // more than one rising edge, the ones in between are dropped, since an edge-triggered
  // controller could not tell them apart from one.
  #onTimer(channel: number, due: number): void {
    const line = this.#outputs[channel]!;
    const c = this.#counters[channel];
    this.#cancel[channel] = null;
    const now = Math.max(this.#clock.now(), due);
    let at = due;
    let rose = false;
    for (;;) {
      const level = this.#out(c, at);
      if (level && !line.level) rose = true;
      line.set(level);
      if (this.#cancel[channel] !== null) return; // reprogrammed by a listener
      const next = this.#nextChange(c, at);
      if (next === null) return;
      if (next > now) break;
      if (rose) {
        at = now;
        line.set(this.#out(c, at));
        if (this.#cancel[channel] !== null) return;
        break;
      }
      at = next;
    }
    this.#arm(channel, c, at);
  }
}

/** Options for {@linkcode PcSpeakerPort}. */
export interface PcSpeakerPortOptions {
  /**
   * Name used in logs.
   *
   * @default {"port61"}
   */
  name?: string;
  /** The PIT whose counter 2 the port gates and reads. */
  pit: Pit8254;
  /** Guest time, for the refresh toggle bit. */
  clock: DeviceClock;
}

/**
 * Port 0x61, system control port B: counter 2's GATE and the speaker enable (bits 0-1), the
 * NMI check disables (bits 2-3, stored), and read-only status: the refresh toggle (bit 4)
 * and counter 2's OUT (bit 5). Linux's `pit_calibrate_tsc` and `quick_pit_calibrate` drive
 * counter 2 through it. NMI sources (bits 6-7) always read 0.
 *
 * The refresh bit toggles every 18 input clocks (15.085 µs) of guest time, as counter 1
 * produces on the PC/AT; QEMU instead toggles it on every read.
 *
 * @example Waiting for counter 2 to reach terminal count
 * ```ts
 * import assert from "node:assert/strict";
 * import { ManualClock } from "./device_clock.ts";
 * import { IrqLine } from "./irq_line.ts";
 * import { PcSpeakerPort, Pit8254, PIT_REG, SPEAKER_PORT } from "./i8254.ts";
 *
 * const clock = new ManualClock();
 * const pit = new Pit8254({ clock, irq0: new IrqLine("irq0") });
 * const port61 = new PcSpeakerPort({ pit, clock });
 * port61.write(0, SPEAKER_PORT.TIMER2_GATE, 1);
 * pit.write(PIT_REG.CONTROL, 0xb0, 1); // counter 2, LSB then MSB, mode 0
 * pit.write(PIT_REG.COUNTER2, 0xff, 1);
 * pit.write(PIT_REG.COUNTER2, 0xff, 1);
 * assert.equal(port61.read(0, 1) & SPEAKER_PORT.TIMER2_OUT, 0);
 * clock.advance(55_000_000);
 * assert.equal(port61.read(0, 1) & SPEAKER_PORT.TIMER2_OUT, SPEAKER_PORT.TIMER2_OUT);
 * ```
 */
export class PcSpeakerPort implements PortDevice {
  /** Name used in logs. */
  readonly name: string;
  readonly #pit: Pit8254;
  readonly #clock: DeviceClock;
  #value = 0;

  /**
   * Create the port with every control bit clear (counter 2 gated off, speaker off).
   *
   * @param options See {@linkcode PcSpeakerPortOptions}.
   */
  constructor(options: PcSpeakerPortOptions) {
    this.name = options.name ?? "port61";
    this.#pit = options.pit;
    this.#clock = options.clock;
    this.reset();
  }

  /** Counter 2's GATE, as bit 0 last set it. */
  get gate(): boolean {
    return (this.#value & SPEAKER_PORT.TIMER2_GATE) !== 0;
  }

  /** Whether the speaker is driven: bit 1 set and counter 2's OUT high. */
  get speakerOn(): boolean {
    return (this.#value & SPEAKER_PORT.SPEAKER_DATA) !== 0 && this.#pit.output(2);
  }

  /** Counter 2's OUT at the current guest time. */
  get output(): boolean {
    return this.#pit.output(2);
  }

  /** Clear the control bits and lower counter 2's GATE. */
  reset(): void {
    this.#value = 0;
    this.#pit.setGate(2, false);
  }

  /** Read the port; bytes past offset 0 of a wider access read as 0xff. */
  read(offset: number, size: AccessSize): number {
    let value = 0;
    for (let i = 0; i < size; i++) {
      value |= (offset + i === 0 ? this.#readByte() : 0xff) << (8 * i);
    }
    return value >>> 0;
  }

  /** Write the port; only the byte at offset 0 counts. */
  write(offset: number, value: number, _size: AccessSize): void {
    if (offset !== 0) return;
    this.#value = value & SPEAKER_WRITABLE;
    this.#pit.setGate(2, (value & SPEAKER_PORT.TIMER2_GATE) !== 0);
  }

  #readByte(): number {
    const ticks = ticksIn(this.#clock.now(), PIT_FREQUENCY_HZ);
    const refresh = (Math.floor(ticks / REFRESH_DIVISOR) & 1) !== 0;
    return this.#value |
      (refresh ? SPEAKER_PORT.REFRESH : 0) |
      (this.#pit.output(2) ? SPEAKER_PORT.TIMER2_OUT : 0);
  }
}

// BCD digits to a number; digits above 9 are taken at face value.
function fromBcd(raw: number): number {
  return ((raw >>> 12) & 0xf) * 1000 + ((raw >>> 8) & 0xf) * 100 + ((raw >>> 4) & 0xf) * 10 +
    (raw & 0xf);
}

function toBcd(value: number): number {
  return (Math.floor(value / 1000) % 10) << 12 | (Math.floor(value / 100) % 10) << 8 |
    (Math.floor(value / 10) % 10) << 4 | value % 10;
}
