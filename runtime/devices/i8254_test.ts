import assert from "node:assert/strict";
import { nsForTicks, ticksIn } from "./_clock_ticks.ts";
import { type DeviceClock, ManualClock } from "./device_clock.ts";
import {
  PcSpeakerPort,
  Pit8254,
  PIT_CONTROL,
  PIT_FREQUENCY_HZ,
  PIT_PORT_COUNT,
  PIT_READ_BACK,
  PIT_STATUS,
  SPEAKER_PORT,
} from "./i8254.ts";
import { IoBus } from "./io_bus.ts";
import { IrqLine } from "./irq_line.ts";
import type { AccessSize } from "./port_device.ts";
import { seededRandom as prng } from "../seeded_random.ts";

const PIT = 0x40;
const CONTROL = 0x43;
const PORT61 = 0x61;
const SECOND = 1_000_000_000;

// Guest time at which `ticks` input clocks have elapsed since `from`.
const at = (ticks: number, from = 0) => from + nsForTicks(ticks, PIT_FREQUENCY_HZ);

// A ManualClock that counts the callbacks still pending, to check "one timer per counter".

// A PIT and port 0x61 on a bus, with IRQ0's rising and falling edges timestamped.
// What the tests need from a clock: the device's view plus a way to move time.
type TestClock = DeviceClock & { advance(ns: number): void; advanceTo(ns: number): void };

function setup(clock: TestClock = new ManualClock()) {
  const irq0 = new IrqLine("irq0");
  const pit = new Pit8254({ clock, irq0 });
  const port61 = new PcSpeakerPort({ pit, clock });
  const rises: number[] = [];
  const falls: number[] = [];
  irq0.connect((level) => (level ? rises : falls).push(clock.now()));
  const bus = new IoBus({ log: () => {} });
  bus.attach(PIT, PIT_PORT_COUNT, pit);
  bus.attach(PORT61, 1, port61);
  const inb = (port: number) => bus.read(port, 1);
  const outb = (port: number, value: number) => bus.write(port, value, 1);
  // Control word then the count in the access mode it selects.
  const program = (control: number, count: number) => {
    const channel = control >>> 6;
    outb(CONTROL, control);
    const rw = control & PIT_CONTROL.RW_MASK;
    if (rw !== PIT_CONTROL.RW_MSB) outb(PIT + channel, count & 0xff);
    if (rw !== PIT_CONTROL.RW_LSB) outb(PIT + channel, (count >>> 8) & 0xff);
  };
  const latch = (channel: number) => {
    outb(CONTROL, channel << 6);
    return inb(PIT + channel) | (inb(PIT + channel) << 8);
  };
  const status = (channel: number) => {
    outb(CONTROL, PIT_CONTROL.SC_READ_BACK | PIT_READ_BACK.NOT_COUNT | (2 << channel));
    return inb(PIT + channel);
  };
  return { clock, irq0, pit, port61, rises, falls, bus, inb, outb, program, latch, status };
}

// -- power-on ------------------------------------------------------------------------------

Deno.test("Pit8254 powers on with every counter in mode 3 and counter 0 at 18.2 Hz", () => {
  const p = setup();
  assert.equal(p.pit.name, "i8254");
  assert.equal(p.irq0.level, true, "mode 3 starts with OUT high");
  for (const channel of [0, 1, 2]) {
    assert.equal(p.status(channel), PIT_STATUS.OUTPUT | 0x30 | (3 << 1), `counter ${channel}`);
  }
  assert.equal(p.pit.gate(0), true);
  assert.equal(p.pit.gate(2), false);
  p.clock.advanceTo(SECOND);
  assert.equal(p.rises.length, Math.floor(PIT_FREQUENCY_HZ / 65536));
  assert.equal(p.rises[0], at(65536));
});

// -- periodic modes and exact timing -------------------------------------------------------

Deno.test("Pit8254 at Linux's 100 Hz divisor gives IRQ0 100 rising edges per guest second", () => {
  const p = setup();
  // Linux: LATCH = (1193182 + HZ/2) / HZ = 11932, mode 2, LSB then MSB (control word 0x34).
  const latch = 11932;
  p.program(0x34, latch);
  p.clock.advanceTo(10 * SECOND);
  const perSecond = Array.from(
    { length: 10 },
    (_, s) => p.rises.filter((t) => t >= s * SECOND && t < (s + 1) * SECOND).length,
  );
  // The first edge comes one period after programming, so second 0 holds 99; after that
  // every guest second holds exactly 100 (11932 clocks are 10.00015 ms, so the drift of
  // 1.5 µs per second would need 66 s to push an edge across a second boundary).
  assert.deepEqual(perSecond, [99, 100, 100, 100, 100, 100, 100, 100, 100, 100]);
  // Every edge is on its exact input clock: no drift from rescheduling.
  p.rises.forEach((t, i) => assert.equal(t, at((i + 1) * latch), `edge ${i + 1}`));
  assert.equal(p.rises.length, Math.floor(ticksIn(10 * SECOND, PIT_FREQUENCY_HZ) / latch));
  p.clock.advanceTo(at(1000 * latch));
  assert.equal(p.rises.length, 1000, "the 1000th edge at 10.00015 s");
});

Deno.test("Pit8254 mode 2 drops OUT for the one input clock in which the count is 1", () => {
  const p = setup();
  p.program(0x34, 100);
  p.clock.advanceTo(at(250));
  assert.deepEqual(p.falls, [at(99), at(199)]);
  assert.deepEqual(p.rises, [at(100), at(200)]);
});

Deno.test("Pit8254 mode 3 makes a square wave: high for ceil(N/2) clocks, low for the rest", () => {
  const p = setup();
  p.program(0x36, 11932);
  p.clock.advanceTo(SECOND);
  assert.equal(p.rises.length, 99);
  p.rises.forEach((t, i) => assert.equal(t, at((i + 1) * 11932)));
  p.falls.forEach((t, i) => assert.equal(t, at(i * 11932 + 5966)));
  p.program(0x36, 5);
  p.clock.advance(1);
  const base = p.clock.now() - 1;
  p.falls.length = 0;
  p.rises.length = 0;
  p.clock.advanceTo(at(10, base));
  assert.deepEqual(p.falls, [at(3, base), at(8, base)], "odd N: high for (N+1)/2 clocks");
  assert.deepEqual(p.rises, [at(5, base), at(10, base)]);
});

Deno.test("Pit8254 mode 3 counts down by two in each half, from N-1 for odd counts", () => {
  const p = setup();
  p.program(0x36, 8);
  const even: number[] = [];
  for (let t = 0; t < 8; t++) {
    p.clock.advanceTo(at(t));
    even.push(p.latch(0));
  }
  assert.deepEqual(even, [8, 6, 4, 2, 8, 6, 4, 2]);
  p.program(0x36, 7);
  const base = p.clock.now();
  const odd: number[] = [];
  for (let t = 0; t < 7; t++) {
    p.clock.advanceTo(at(t, base));
    odd.push(p.latch(0));
  }
  assert.deepEqual(odd, [6, 4, 2, 0, 6, 4, 2]);
});

Deno.test("Pit8254 keeps one timer pending for counter 0 and cancels it on reprogramming", () => {
  const clock = new ManualClock();
  const p = setup(clock);
  assert.equal(clock.pending, 1, "the power-on square wave");
  for (let i = 0; i < 20; i++) p.program(0x34, 1000 + i);
  assert.equal(clock.pending, 1);
  p.clock.advanceTo(SECOND / 10);
  assert.equal(clock.pending, 1, "rescheduled after each firing");
  p.outb(CONTROL, 0x34);
  assert.equal(clock.pending, 0, "a control word stops the counter until a count arrives");
  p.program(0x30, 100);
  p.clock.advance(SECOND);
  assert.equal(clock.pending, 0, "mode 0 has nothing to do after terminal count");
  p.program(0xb6, 100);
  p.program(0x76, 100);
  assert.equal(clock.pending, 0, "counters 1 and 2 drive no line, so need no timer");
});

// -- one-shot modes ------------------------------------------------------------------------

Deno.test("Pit8254 mode 0 raises OUT at terminal count and keeps counting down past zero", () => {
  const p = setup();
  p.outb(CONTROL, 0x30);
  assert.equal(p.irq0.level, false, "the control word drives OUT low");
  p.outb(PIT, 1000 & 0xff);
  p.outb(PIT, 1000 >> 8);
  const base = p.clock.now();
  p.rises.length = 0;
  p.clock.advanceTo(at(400, base));
  assert.equal(p.latch(0), 600);
  p.clock.advanceTo(at(1005, base));
  assert.deepEqual(p.rises, [at(1000, base)]);
  assert.equal(p.latch(0), 0xfffb);
  p.clock.advance(SECOND);
  assert.equal(p.irq0.level, true, "OUT stays high until reprogrammed");
  assert.equal(p.rises.length, 1);
});

Deno.test("Pit8254 mode 0 stops counting when the first byte of a new count is written", () => {
  const p = setup();
  p.program(0x30, 100);
  p.clock.advanceTo(at(40));
  p.outb(PIT, 0x10);
  p.clock.advanceTo(at(200));
  assert.equal(p.irq0.level, false);
  assert.equal(p.inb(PIT) | (p.inb(PIT) << 8), 60, "the count held where it stopped");
  p.outb(PIT, 0x00);
  const load = p.clock.now();
  p.clock.advanceTo(at(0x0f, load));
  assert.equal(p.irq0.level, false);
  p.clock.advanceTo(at(0x10, load));
  assert.equal(p.irq0.level, true, "the new count 0x10 runs from the second byte");
});

Deno.test("Pit8254 mode 4 strobes OUT low for one input clock at terminal count", () => {
  const p = setup();
  p.program(0x38, 500);
  p.falls.length = 0;
  p.rises.length = 0;
  p.clock.advanceTo(at(2000));
  assert.deepEqual(p.falls, [at(500)]);
  assert.deepEqual(p.rises, [at(501)]);
  p.outb(PIT, 10); // a new count without a control word
  p.outb(PIT, 0);
  const base = p.clock.now();
  p.clock.advanceTo(at(20, base));
  assert.deepEqual(p.falls, [at(500), at(10, base)], "writing a count retriggers");
});

Deno.test("Pit8254 mode 1 and mode 5 restart on a GATE rising edge from port 0x61", () => {
  const p = setup();
  const out2 = () => (p.inb(PORT61) & SPEAKER_PORT.TIMER2_OUT) !== 0;
  p.program(0xb2, 100); // counter 2, mode 1
  assert.equal(out2(), false, "low while the one-shot runs");
  p.clock.advanceTo(at(100));
  assert.equal(out2(), true);
  p.outb(PORT61, SPEAKER_PORT.TIMER2_GATE);
  const trigger = p.clock.now();
  assert.equal(out2(), false, "retriggered");
  p.clock.advanceTo(at(99, trigger));
  assert.equal(out2(), false);
  p.clock.advanceTo(at(100, trigger));
  assert.equal(out2(), true);

  p.program(0xba, 50); // counter 2, mode 5
  const load = p.clock.now();
  assert.equal(out2(), true);
  p.clock.advanceTo(at(50, load));
  assert.equal(out2(), false, "strobe at terminal count");
  p.clock.advanceTo(at(51, load));
  assert.equal(out2(), true);
  p.outb(PORT61, 0);
  p.outb(PORT61, SPEAKER_PORT.TIMER2_GATE);
  const retrigger = p.clock.now();
  p.clock.advanceTo(at(50, retrigger));
  assert.equal(out2(), false);
});

// -- GATE ----------------------------------------------------------------------------------

Deno.test("Pit8254 GATE low pauses mode 0 and counting resumes where it stopped", () => {
  const p = setup();
  p.outb(PORT61, SPEAKER_PORT.TIMER2_GATE);
  p.program(0xb0, 1000);
  p.clock.advanceTo(at(400));
  p.outb(PORT61, 0);
  p.clock.advance(SECOND);
  assert.equal(p.latch(2), 600);
  p.outb(PORT61, SPEAKER_PORT.TIMER2_GATE);
  const resume = p.clock.now();
  p.clock.advanceTo(at(599, resume));
  assert.equal(p.pit.output(2), false);
  p.clock.advanceTo(at(600, resume));
  assert.equal(p.pit.output(2), true);
});

Deno.test("Pit8254 GATE low holds mode 2 with OUT high and a rising edge reloads the count", () => {
  const p = setup();
  p.outb(PORT61, SPEAKER_PORT.TIMER2_GATE);
  p.program(0xb4, 100);
  p.clock.advanceTo(at(99));
  assert.equal(p.pit.output(2), false, "count 1");
  p.outb(PORT61, 0);
  assert.equal(p.pit.output(2), true);
  p.clock.advance(SECOND);
  assert.equal(p.latch(2), 1, "held");
  p.outb(PORT61, SPEAKER_PORT.TIMER2_GATE);
  assert.equal(p.latch(2), 100);
});

Deno.test("Pit8254 loads a count written while GATE is low but waits for GATE to count", () => {
  const p = setup();
  p.program(0xb0, 10);
  p.clock.advance(SECOND);
  assert.equal(p.pit.output(2), false);
  assert.equal(p.latch(2), 10);
});

// -- reading -------------------------------------------------------------------------------

Deno.test("Pit8254 counter latch holds the count until both bytes are read", () => {
  const p = setup();
  p.program(0x34, 1000);
  p.clock.advanceTo(at(10));
  p.outb(CONTROL, 0x00);
  p.clock.advanceTo(at(110));
  p.outb(CONTROL, 0x00); // ignored: the first latch is unread
  assert.equal(p.inb(PIT), 990 & 0xff);
  p.clock.advanceTo(at(210));
  assert.equal(p.inb(PIT), 990 >> 8);
  assert.equal(p.latch(0), 790, "a new latch after the old one was read");
});

Deno.test("Pit8254 alternates LSB and MSB on unlatched reads of a word counter", () => {
  const p = setup();
  p.program(0x34, 0x1234);
  p.clock.advanceTo(at(0x34));
  assert.equal(p.inb(PIT), 0x00);
  assert.equal(p.inb(PIT), 0x12);
  assert.equal(p.inb(PIT), 0x00);
});

Deno.test("Pit8254 LSB-only and MSB-only access modes read and write one byte", () => {
  const p = setup();
  p.program(0x14, 0x80); // LSB only: count 0x0080
  p.rises.length = 0;
  p.clock.advanceTo(at(0x80));
  assert.deepEqual(p.rises, [at(0x80)]);
  assert.equal(p.inb(PIT), 0x80);
  assert.equal(p.inb(PIT), 0x80);
  p.program(0x24, 0x0200); // MSB only: count 0x0200
  const base = p.clock.now();
  p.clock.advanceTo(at(0x100, base));
  assert.equal(p.inb(PIT), 0x01);
  assert.equal(p.inb(PIT), 0x01);
});

Deno.test("Pit8254 read-back returns the status byte first, then the latched count", () => {
  const p = setup();
  p.program(0xb6, 0x1234); // counter 2, mode 3, GATE low
  p.outb(CONTROL, PIT_CONTROL.SC_READ_BACK | PIT_READ_BACK.COUNTER2);
  assert.equal(p.inb(0x42), PIT_STATUS.OUTPUT | 0x30 | (3 << 1));
  assert.equal(p.inb(0x42), 0x34);
  assert.equal(p.inb(0x42), 0x12);
});

Deno.test("Pit8254 read-back can latch several counters' counts at once", () => {
  const p = setup();
  p.program(0x34, 1000);
  p.program(0x74, 2000);
  p.clock.advanceTo(at(10));
  p.outb(
    CONTROL,
    PIT_CONTROL.SC_READ_BACK | PIT_READ_BACK.NOT_STATUS | PIT_READ_BACK.COUNTER0 |
      PIT_READ_BACK.COUNTER1,
  );
  p.clock.advanceTo(at(500));
  assert.equal(p.inb(PIT) | (p.inb(PIT) << 8), 990);
  assert.equal(p.inb(0x41) | (p.inb(0x41) << 8), 1990);
});

Deno.test("Pit8254 status shows NULL COUNT between a control word and its count", () => {
  const p = setup();
  p.outb(CONTROL, 0x74);
  assert.equal(p.status(1), PIT_STATUS.NULL_COUNT | PIT_STATUS.OUTPUT | 0x30 | (2 << 1));
  p.outb(0x41, 0x10);
  p.outb(0x41, 0x00);
  assert.equal(p.status(1) & PIT_STATUS.NULL_COUNT, 0);
});

Deno.test("Pit8254 status shows OUT low in mode 0 before terminal count", () => {
  const p = setup();
  p.program(0x30, 50);
  assert.equal(p.status(0), 0x30);
  p.clock.advanceTo(at(50));
  assert.equal(p.status(0), PIT_STATUS.OUTPUT | 0x30);
});

Deno.test("Pit8254 counts in BCD when the control word's BCD bit is set", () => {
  const p = setup();
  p.program(0x31, 0x1000); // mode 0, BCD, count 1000
  p.clock.advanceTo(at(1));
  assert.equal(p.latch(0), 0x0999);
  p.clock.advanceTo(at(1001));
  assert.equal(p.latch(0), 0x9999, "wraps to 9999");
  assert.equal(p.status(0) & PIT_STATUS.BCD, PIT_STATUS.BCD);
  p.program(0x35, 0x0000); // mode 2, BCD, count 0 = 10000
  const base = p.clock.now();
  p.rises.length = 0;
  p.clock.advanceTo(at(10000, base));
  assert.deepEqual(p.rises, [at(10000, base)]);
});

Deno.test("Pit8254 runs modes 6 and 7 as 2 and 3 and reports them as programmed", () => {
  const p = setup();
  p.program(0x3c, 100); // mode 6
  p.falls.length = 0;
  p.clock.advanceTo(at(100));
  assert.deepEqual(p.falls, [at(99)], "a mode 2 pulse");
  assert.equal(p.status(0) & PIT_STATUS.MODE_MASK, 6 << 1);
});

Deno.test("Pit8254 reads 0xff from the control port and splits wide accesses into bytes", () => {
  const p = setup();
  assert.equal(p.inb(CONTROL), 0xff);
  p.program(0xb0, 0x4321);
  assert.equal(p.bus.read(0x42, 2), 0xff21, "counter 2 LSB, then the control port");
  p.bus.write(PIT, 0x7034, 2); // 0x34 to counter 0, 0x70 to counter 1
  assert.equal(p.status(1) & PIT_STATUS.RW_MASK, 0x30, "counter 1 still expects a word");
});

Deno.test("Pit8254 channel accessors reject anything but counters 0, 1 and 2", () => {
  const p = setup();
  for (const bad of [-1, 3, 0.5]) {
    assert.throws(() => p.pit.setGate(bad, true), RangeError);
    assert.throws(() => p.pit.gate(bad), RangeError);
    assert.throws(() => p.pit.output(bad), RangeError);
  }
});

Deno.test("Pit8254.reset() returns every counter to its power-on mode and count", () => {
  const p = setup();
  p.program(0x30, 5);
  p.program(0x75, 0x99);
  p.outb(CONTROL, 0xb0);
  p.clock.advance(1000);
  p.pit.reset();
  for (const channel of [0, 1, 2]) {
    assert.equal(p.status(channel), PIT_STATUS.OUTPUT | 0x30 | (3 << 1), `counter ${channel}`);
  }
  assert.equal(p.irq0.level, true);
});

// -- late timers ---------------------------------------------------------------------------

// A clock that runs due callbacks only when advanced, with now() already at the target: the
// worst case the machine's "at the next opportunity" allows.
class LateClock implements DeviceClock {
  #now = 0;
  #timers: { at: number; fn: () => void; live: boolean }[] = [];

  now(): number {
    return this.#now;
  }

  schedule(atNs: number, fn: () => void): () => void {
    const timer = { at: atNs, fn, live: true };
    this.#timers.push(timer);
    return () => void (timer.live = false);
  }

  advance(ns: number): void {
    this.advanceTo(this.#now + ns);
  }

  advanceTo(atNs: number): void {
    this.#now = atNs;
    for (;;) {
      this.#timers = this.#timers.filter((t) => t.live);
      const due = this.#timers.filter((t) => t.at <= atNs).sort((a, b) => a.at - b.at)[0];
      if (due === undefined) return;
      due.live = false;
      due.fn();
    }
  }
}

Deno.test("Pit8254 evaluates a late timer at its due time, so no mode 2 pulse is skipped", () => {
  const clock = new LateClock();
  const p = setup(clock);
  p.program(0x34, 11932);
  for (let t = 3_000_000; t <= SECOND; t += 3_000_000) clock.advanceTo(t);
  assert.equal(p.rises.length, 99, "callbacks 3 ms late still see every period");
});

Deno.test("Pit8254 coalesces edges a very late timer missed into one rising edge", () => {
  const clock = new LateClock();
  const p = setup(clock);
  p.program(0x34, 11932);
  for (let step = 1; step <= 40; step++) clock.advanceTo(step * 25_000_000);
  assert.equal(p.rises.length, 40, "one edge per late callback, never a stuck line");
  assert.equal(p.irq0.level, p.pit.output(0));
});

// -- port 0x61 -----------------------------------------------------------------------------

Deno.test("PcSpeakerPort lets Linux's pit_calibrate_tsc see counter 2 expire on time", () => {
  const p = setup();
  // arch/x86/kernel/tsc.c: gate high, speaker off, mode 0, 50 ms worth of clocks.
  p.outb(PORT61, (p.inb(PORT61) & ~SPEAKER_PORT.SPEAKER_DATA) | SPEAKER_PORT.TIMER2_GATE);
  const latch = Math.floor(PIT_FREQUENCY_HZ / (1000 / 50));
  p.outb(CONTROL, 0xb0);
  p.outb(0x42, latch & 0xff);
  p.outb(0x42, latch >> 8);
  let polls = 0;
  while ((p.inb(PORT61) & SPEAKER_PORT.TIMER2_OUT) === 0) {
    p.clock.advance(1000);
    polls++;
  }
  assert.equal(p.clock.now(), Math.ceil(at(latch) / 1000) * 1000);
  assert.ok(polls > 49_000 && polls < 50_100, `${polls} polls`);
});

Deno.test("PcSpeakerPort refresh bit toggles every 18 input clocks of guest time", () => {
  const p = setup();
  const refresh = () => p.inb(PORT61) & SPEAKER_PORT.REFRESH;
  assert.equal(refresh(), 0);
  p.clock.advanceTo(at(17));
  assert.equal(refresh(), 0);
  p.clock.advanceTo(at(18));
  assert.equal(refresh(), SPEAKER_PORT.REFRESH);
  p.clock.advanceTo(at(36));
  assert.equal(refresh(), 0);
});

Deno.test("PcSpeakerPort stores bits 0-3 and drives the speaker from OUT2 and bit 1", () => {
  const p = setup();
  assert.equal(p.port61.name, "port61");
  p.outb(PORT61, 0xff);
  assert.equal(p.inb(PORT61) & 0xcf, 0x0f, "NMI status bits read 0");
  assert.equal(p.port61.gate, true);
  p.program(0xb6, 1000); // counter 2 square wave
  assert.equal(p.port61.output, true);
  assert.equal(p.port61.speakerOn, true);
  p.clock.advanceTo(at(500));
  assert.equal(p.port61.speakerOn, false, "low half of the square wave");
  p.outb(PORT61, SPEAKER_PORT.TIMER2_GATE);
  p.clock.advanceTo(at(1000));
  assert.equal(p.port61.speakerOn, false, "data enable off");
  p.port61.reset();
  assert.equal(p.inb(PORT61) & 0x0f, 0);
  assert.equal(p.pit.gate(2), false);
  assert.equal(p.bus.read(PORT61, 2) >>> 8, 0xff, "nothing past the one port");
});

// -- robustness ----------------------------------------------------------------------------

// mulberry32: small, seedable, good enough to explore register sequences reproducibly.

Deno.test("Pit8254 survives random register writes and time steps with invariants intact", () => {
  const SIZES: readonly AccessSize[] = [1, 1, 1, 2, 4];
  for (const seed of [1, 2, 3, 0x8254]) {
    const random = prng(seed);
    const int = (n: number) => Math.floor(random() * n);
    const clock = new ManualClock();
    const p = setup(clock);
    const context = () => `seed ${seed}`;
    for (let step = 0; step < 4000; step++) {
      const choice = int(10);
      const port = int(6) === 0 ? PORT61 : PIT + int(PIT_PORT_COUNT);
      const size = SIZES[int(SIZES.length)];
      if (choice < 4) {
        p.bus.write(port, int(2) === 0 ? int(0x100) : int(0x1_0000_0000), size);
      } else if (choice < 7) {
        const value = p.bus.read(port, size);
        const max = size === 1 ? 0xff : size === 2 ? 0xffff : 0xffffffff;
        assert.ok(Number.isInteger(value) && value >= 0 && value <= max, context());
      } else {
        p.clock.advance(int(20_000));
      }
      assert.ok(clock.pending <= 1, `${context()}: ${clock.pending} timers pending`);
      assert.equal(p.irq0.level, p.pit.output(0), `${context()}: IRQ0 disagrees with OUT0`);
    }
  }
});
