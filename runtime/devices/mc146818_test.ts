import assert from "node:assert/strict";
import { nsForTicks } from "./_clock_ticks.ts";
import { ManualClock } from "./device_clock.ts";
import { IoBus } from "./io_bus.ts";
import { IrqLine } from "./irq_line.ts";
import {
  CMOS_MEMORY,
  CMOS_SIZE,
  cmosMemorySizes,
  CmosRtc,
  RTC_A,
  RTC_ALARM_DONT_CARE,
  RTC_B,
  RTC_C,
  RTC_D,
  RTC_DEFAULT_EPOCH_MS,
  RTC_INDEX,
  RTC_PORT_COUNT,
  RTC_REG,
} from "./mc146818.ts";
import type { AccessSize } from "./port_device.ts";
import { seededRandom as prng } from "../seeded_random.ts";

const BASE = 0x70;
const SECOND = 1_000_000_000;
const MS = 1_000_000;

// A ManualClock that counts the callbacks still pending, to check "at most one timer".

// An RTC at 0x70 on a bus, with IRQ8's rising edges timestamped.
function setup(options: { epochMs?: number; memory?: Uint8Array } = {}) {
  const clock = new ManualClock();
  const irq8 = new IrqLine("irq8");
  const messages: string[] = [];
  const rtc = new CmosRtc({ clock, irq8, ...options, log: (m) => messages.push(m) });
  const rises: number[] = [];
  irq8.connect((level) => void (level && rises.push(clock.now())));
  const bus = new IoBus({ log: () => {} });
  bus.attach(BASE, RTC_PORT_COUNT, rtc);
  const get = (index: number) => {
    bus.write(BASE, index, 1);
    return bus.read(BASE + 1, 1);
  };
  const set = (index: number, value: number) => {
    bus.write(BASE, index, 1);
    bus.write(BASE + 1, value, 1);
  };
  // hh:mm:ss as the registers show them, in hex so BCD reads naturally.
  const time = () =>
    [RTC_REG.HOURS, RTC_REG.MINUTES, RTC_REG.SECONDS]
      .map((r) => get(r).toString(16).padStart(2, "0")).join(":");
  const date = () =>
    [RTC_REG.CENTURY, RTC_REG.YEAR, RTC_REG.MONTH, RTC_REG.DAY_OF_MONTH, RTC_REG.DAY_OF_WEEK]
      .map((r) => get(r).toString(16).padStart(2, "0")).join(" ");
  return { clock, irq8, rtc, rises, messages, bus, get, set, time, date };
}

// -- power-on and timekeeping --------------------------------------------------------------

Deno.test("CmosRtc powers on at 2026-01-01 00:00:00, a Thursday, in BCD 24-hour mode", () => {
  const r = setup();
  assert.equal(RTC_DEFAULT_EPOCH_MS, Date.parse("2026-01-01T00:00:00Z"));
  assert.equal(r.rtc.name, "mc146818");
  assert.equal(r.time(), "00:00:00");
  assert.equal(r.date(), "20 26 01 01 05");
  assert.equal(r.get(RTC_REG.A), 0x26);
  assert.equal(r.get(RTC_REG.B), RTC_B.HOUR_24);
  assert.equal(r.get(RTC_REG.C), 0);
  assert.equal(r.get(RTC_REG.D), RTC_D.VRT);
  assert.equal(r.irq8.level, false);
  assert.equal(r.rtc.nmiDisabled, false);
  assert.equal(r.clock.pending, 0, "no interrupt enabled, no timer");
});

Deno.test("CmosRtc advances its time with guest time only", () => {
  const r = setup();
  r.clock.advanceTo(3661 * SECOND - 1);
  assert.equal(r.time(), "01:01:00");
  r.clock.advanceTo(3661 * SECOND);
  assert.equal(r.time(), "01:01:01");
  r.clock.advanceTo(86400 * SECOND * 59);
  assert.equal(r.date(), "20 26 03 01 01", "59 days later: Sunday 1 March 2026");
});

Deno.test("CmosRtc rolls the date, year and century over", () => {
  const r = setup({ epochMs: Date.parse("2099-12-31T23:59:59Z") });
  assert.equal(r.date(), "20 99 12 31 05");
  r.clock.advance(SECOND);
  assert.equal(r.time(), "00:00:00");
  assert.equal(r.date(), "21 00 01 01 06");
});

Deno.test("CmosRtc keeps the epoch's sub-second phase for its update boundaries", () => {
  const r = setup({ epochMs: RTC_DEFAULT_EPOCH_MS + 750 });
  r.clock.advanceTo(250 * MS - 1);
  assert.equal(r.get(RTC_REG.SECONDS), 0x00);
  r.clock.advanceTo(250 * MS);
  assert.equal(r.get(RTC_REG.SECONDS), 0x01);
});

Deno.test("CmosRtc shows binary values when register B selects binary data mode", () => {
  const r = setup({ epochMs: Date.parse("2026-07-19T21:43:59Z") });
  r.set(RTC_REG.B, RTC_B.HOUR_24 | RTC_B.DM_BINARY);
  assert.deepEqual(
    [RTC_REG.HOURS, RTC_REG.MINUTES, RTC_REG.SECONDS, RTC_REG.YEAR, RTC_REG.CENTURY].map(r.get),
    [21, 43, 59, 26, 20],
  );
});

Deno.test("CmosRtc 12-hour mode shows 12 for midnight and noon and sets bit 7 after noon", () => {
  const r = setup({ epochMs: Date.parse("2026-01-01T13:05:00Z") });
  r.set(RTC_REG.B, 0);
  assert.equal(r.get(RTC_REG.HOURS), 0x81);
  r.clock.advanceTo((10 * 3600 + 55 * 60) * SECOND);
  assert.equal(r.get(RTC_REG.HOURS), 0x12, "midnight is 12 AM");
  r.clock.advance(12 * 3600 * SECOND);
  assert.equal(r.get(RTC_REG.HOURS), 0x92, "noon is 12 PM");
  r.set(RTC_REG.B, RTC_B.DM_BINARY);
  assert.equal(r.get(RTC_REG.HOURS), 0x80 | 12);
});

Deno.test("CmosRtc sets UIP for the last 244 µs before each update", () => {
  const r = setup();
  const uip = () => r.get(RTC_REG.A) & RTC_A.UIP;
  r.clock.advanceTo(SECOND - 244_141);
  assert.equal(uip(), 0);
  r.clock.advanceTo(SECOND - 244_140);
  assert.equal(uip(), RTC_A.UIP);
  assert.equal(r.get(RTC_REG.SECONDS), 0x00, "the update has not happened yet");
  r.clock.advanceTo(SECOND);
  assert.equal(uip(), 0);
  assert.equal(r.get(RTC_REG.SECONDS), 0x01);
  r.set(RTC_REG.A, 0x26 | RTC_A.UIP);
  assert.equal(r.get(RTC_REG.A), 0x26, "UIP is read only");
});

// -- setting the time ----------------------------------------------------------------------

Deno.test("CmosRtc SET freezes the time; clearing it restarts from the written registers", () => {
  const r = setup();
  r.clock.advanceTo(2300 * MS);
  r.set(RTC_REG.B, RTC_B.SET | RTC_B.HOUR_24);
  r.clock.advanceTo(4000 * MS);
  assert.equal(r.time(), "00:00:02");
  assert.equal(r.get(RTC_REG.A) & RTC_A.UIP, 0);
  r.clock.advanceTo(4999 * MS);
  assert.equal(r.get(RTC_REG.A) & RTC_A.UIP, 0, "no UIP while SET holds updates");
  r.set(RTC_REG.HOURS, 0x12);
  r.set(RTC_REG.MINUTES, 0x34);
  r.set(RTC_REG.SECONDS, 0x56);
  r.set(RTC_REG.DAY_OF_MONTH, 0x29);
  r.set(RTC_REG.MONTH, 0x02);
  r.set(RTC_REG.YEAR, 0x28);
  r.clock.advanceTo(5600 * MS);
  r.set(RTC_REG.B, RTC_B.HOUR_24);
  assert.equal(r.time(), "12:34:56");
  r.clock.advanceTo(6000 * MS - 1);
  assert.equal(r.time(), "12:34:56", "the divider kept its phase while SET was on");
  r.clock.advanceTo(6000 * MS);
  assert.equal(r.time(), "12:34:57");
  assert.equal(r.date(), "20 28 02 29 03", "29 February 2028 is a Tuesday");
});

Deno.test("CmosRtc reads back a time set in binary 12-hour mode", () => {
  const r = setup();
  r.set(RTC_REG.B, RTC_B.SET | RTC_B.DM_BINARY);
  r.set(RTC_REG.HOURS, 0x80 | 11);
  r.set(RTC_REG.MINUTES, 59);
  r.set(RTC_REG.SECONDS, 59);
  r.set(RTC_REG.B, RTC_B.DM_BINARY);
  r.clock.advance(SECOND);
  assert.equal(r.get(RTC_REG.HOURS), 12, "11:59:59 PM + 1 s is 12 AM");
  assert.equal(r.get(RTC_REG.MINUTES), 0);
  assert.equal(r.get(RTC_REG.DAY_OF_MONTH), 2);
});

Deno.test("CmosRtc takes a time register written while running and keeps counting", () => {
  const r = setup();
  r.clock.advanceTo(10_400 * MS);
  r.set(RTC_REG.MINUTES, 0x30);
  assert.equal(r.time(), "00:30:10");
  r.clock.advanceTo(11 * SECOND);
  assert.equal(r.time(), "00:30:11");
});

Deno.test("CmosRtc holds the time while the divider is in reset and updates 500 ms after", () => {
  const r = setup();
  r.clock.advanceTo(1200 * MS);
  r.set(RTC_REG.A, RTC_A.DV_RESET | 0x06);
  r.clock.advanceTo(5000 * MS);
  assert.equal(r.time(), "00:00:01");
  r.set(RTC_REG.A, 0x26);
  r.clock.advanceTo(5500 * MS - 1);
  assert.equal(r.time(), "00:00:01");
  r.clock.advanceTo(5500 * MS);
  assert.equal(r.time(), "00:00:02");
});

Deno.test("CmosRtc logs divider test modes and daylight saving as not modelled", () => {
  const r = setup();
  r.set(RTC_REG.A, 0x36);
  r.set(RTC_REG.B, RTC_B.HOUR_24 | RTC_B.DSE);
  r.set(RTC_REG.B, RTC_B.HOUR_24 | RTC_B.DSE);
  assert.equal(r.messages.length, 2);
  assert.match(r.messages[0], /test mode/);
  assert.match(r.messages[1], /DSE/);
});

// -- interrupts ----------------------------------------------------------------------------

// Acknowledge each IRQ8 as a handler would: read register C from inside the rising edge.
function acknowledgeEachInterrupt(r: ReturnType<typeof setup>): number[] {
  const flags: number[] = [];
  r.irq8.connect((level) => void (level && flags.push(r.get(RTC_REG.C))));
  return flags;
}

Deno.test("CmosRtc periodic interrupt at 1024 Hz raises IRQ8 1024 times per guest second", () => {
  const r = setup();
  const flags = acknowledgeEachInterrupt(r);
  r.set(RTC_REG.B, RTC_B.HOUR_24 | RTC_B.PIE);
  r.clock.advanceTo(SECOND);
  assert.equal(r.rises.length, 1024);
  r.rises.forEach((t, k) => assert.equal(t, nsForTicks((k + 1) * 32, 32768)));
  // UF joins in at the update at 1 s: flags are set whether or not enabled.
  assert.ok(flags.every((c) => (c & ~RTC_C.UF) === (RTC_C.IRQF | RTC_C.PF)));
  assert.equal(flags.at(-1), RTC_C.IRQF | RTC_C.PF | RTC_C.UF);
  assert.equal(r.irq8.level, false);
});

for (
  const [rs, hz] of [[0x01, 256], [0x02, 128], [0x03, 8192], [0x0f, 2], [0x00, 0]] as const
) {
  Deno.test(`CmosRtc periodic rate select 0x${rs.toString(16)} interrupts at ${hz} Hz`, () => {
    const r = setup();
    acknowledgeEachInterrupt(r);
    r.set(RTC_REG.A, RTC_A.DV_32768_HZ | rs);
    r.set(RTC_REG.B, RTC_B.HOUR_24 | RTC_B.PIE);
    r.clock.advanceTo(SECOND);
    assert.equal(r.rises.length, hz);
  });
}

Deno.test("CmosRtc sets PF without PIE but leaves IRQF and IRQ8 alone", () => {
  const r = setup();
  r.clock.advance(2 * MS);
  assert.equal(r.get(RTC_REG.C), RTC_C.PF);
  assert.equal(r.get(RTC_REG.C), 0, "reading C cleared it");
  assert.deepEqual(r.rises, []);
});

Deno.test("CmosRtc holds IRQ8 high until register C is read", () => {
  const r = setup();
  r.set(RTC_REG.B, RTC_B.HOUR_24 | RTC_B.UIE);
  r.clock.advanceTo(3500 * MS);
  assert.deepEqual(r.rises, [SECOND]);
  assert.equal(r.irq8.level, true);
  assert.equal(r.get(RTC_REG.C), RTC_C.IRQF | RTC_C.UF | RTC_C.PF);
  assert.equal(r.irq8.level, false);
  r.clock.advanceTo(4 * SECOND);
  assert.deepEqual(r.rises, [SECOND, 4 * SECOND]);
});

Deno.test("CmosRtc update-ended interrupt fires once per second after each update", () => {
  const r = setup();
  const flags = acknowledgeEachInterrupt(r);
  r.set(RTC_REG.B, RTC_B.HOUR_24 | RTC_B.UIE);
  r.clock.advanceTo(5 * SECOND);
  assert.deepEqual(r.rises, [1, 2, 3, 4, 5].map((s) => s * SECOND));
  assert.ok(flags.every((c) => (c & (RTC_C.IRQF | RTC_C.UF)) === (RTC_C.IRQF | RTC_C.UF)));
});

Deno.test("CmosRtc alarm interrupt fires when seconds, minutes and hours match", () => {
  const r = setup();
  const flags = acknowledgeEachInterrupt(r);
  r.set(RTC_REG.SECONDS_ALARM, 0x05);
  r.set(RTC_REG.MINUTES_ALARM, 0x00);
  r.set(RTC_REG.HOURS_ALARM, 0x00);
  r.set(RTC_REG.B, RTC_B.HOUR_24 | RTC_B.AIE);
  r.clock.advanceTo(120 * SECOND);
  assert.deepEqual(r.rises, [5 * SECOND]);
  assert.equal(flags[0] & (RTC_C.IRQF | RTC_C.AF), RTC_C.IRQF | RTC_C.AF);
});

Deno.test("CmosRtc alarm bytes 0xC0-0xFF match anything", () => {
  const r = setup();
  acknowledgeEachInterrupt(r);
  r.set(RTC_REG.SECONDS_ALARM, 0x30);
  r.set(RTC_REG.MINUTES_ALARM, RTC_ALARM_DONT_CARE);
  r.set(RTC_REG.HOURS_ALARM, 0xff);
  r.set(RTC_REG.B, RTC_B.HOUR_24 | RTC_B.AIE);
  r.clock.advanceTo(180 * SECOND);
  assert.deepEqual(r.rises, [30, 90, 150].map((s) => s * SECOND), "every minute at :30");
  r.set(RTC_REG.SECONDS_ALARM, RTC_ALARM_DONT_CARE);
  r.clock.advance(3 * SECOND);
  assert.equal(r.rises.length, 6, "every second");
});

Deno.test("CmosRtc latches AF lazily without AIE, even after a long quiet gap", () => {
  const r = setup();
  r.set(RTC_REG.SECONDS_ALARM, 0x03);
  r.set(RTC_REG.MINUTES_ALARM, 0x00);
  r.set(RTC_REG.HOURS_ALARM, 0x12);
  r.clock.advance(2 * 86400 * SECOND);
  assert.equal(r.get(RTC_REG.C), RTC_C.AF | RTC_C.UF | RTC_C.PF);
  r.clock.advance(SECOND);
  assert.equal(r.get(RTC_REG.C) & RTC_C.AF, 0, "12:00:03 did not come round again");
  assert.deepEqual(r.rises, []);
  assert.equal(r.clock.pending, 0);
});

Deno.test("CmosRtc raises IRQ8 at once when an interrupt is enabled with its flag set", () => {
  const r = setup();
  r.clock.advance(2 * SECOND);
  r.set(RTC_REG.B, RTC_B.HOUR_24 | RTC_B.UIE);
  assert.equal(r.irq8.level, true);
  r.set(RTC_REG.B, RTC_B.HOUR_24);
  assert.equal(r.irq8.level, false, "IRQF is PF·PIE + AF·AIE + UF·UIE");
  assert.equal(r.get(RTC_REG.C), RTC_C.UF | RTC_C.PF);
});

Deno.test("CmosRtc clears UIE when SET is written and stops update interrupts", () => {
  const r = setup();
  r.set(RTC_REG.B, RTC_B.SET | RTC_B.UIE | RTC_B.HOUR_24);
  assert.equal(r.get(RTC_REG.B), RTC_B.SET | RTC_B.HOUR_24);
  r.set(RTC_REG.B, RTC_B.SET | RTC_B.AIE | RTC_B.HOUR_24);
  r.set(RTC_REG.SECONDS_ALARM, RTC_ALARM_DONT_CARE);
  r.set(RTC_REG.MINUTES_ALARM, RTC_ALARM_DONT_CARE);
  r.set(RTC_REG.HOURS_ALARM, RTC_ALARM_DONT_CARE);
  r.clock.advance(3 * SECOND);
  assert.deepEqual(r.rises, [], "no updates, so no alarms, while SET is on");
});

Deno.test("CmosRtc stops periodic interrupts while the divider is in reset", () => {
  const r = setup();
  r.set(RTC_REG.A, RTC_A.DV_RESET | 0x06);
  r.set(RTC_REG.B, RTC_B.HOUR_24 | RTC_B.PIE);
  r.clock.advance(SECOND);
  assert.deepEqual(r.rises, []);
  assert.equal(r.clock.pending, 0);
});

Deno.test("CmosRtc keeps at most one timer pending however interrupts are combined", () => {
  const r = setup();
  r.set(RTC_REG.B, RTC_B.HOUR_24 | RTC_B.PIE | RTC_B.AIE | RTC_B.UIE);
  assert.equal(r.clock.pending, 1);
  r.clock.advance(SECOND / 2);
  assert.equal(r.clock.pending, 1, "waiting for the update while PF is unread");
  r.get(RTC_REG.C);
  assert.equal(r.clock.pending, 1);
  r.set(RTC_REG.B, RTC_B.HOUR_24);
  assert.equal(r.clock.pending, 0);
});

// -- registers and RAM ---------------------------------------------------------------------

Deno.test("CmosRtc ignores writes to registers C and D", () => {
  const r = setup();
  r.set(RTC_REG.C, 0xff);
  r.set(RTC_REG.D, 0x00);
  assert.equal(r.get(RTC_REG.C), 0);
  assert.equal(r.get(RTC_REG.D), RTC_D.VRT);
});

Deno.test("CmosRtc keeps the NMI mask from bit 7 of the index and reads 0xff from the port", () => {
  const r = setup();
  r.bus.write(BASE, RTC_INDEX.NMI_DISABLE | RTC_REG.D, 1);
  assert.equal(r.rtc.nmiDisabled, true);
  assert.equal(r.bus.read(BASE + 1, 1), RTC_D.VRT, "bit 7 is not part of the address");
  assert.equal(r.bus.read(BASE, 1), 0xff);
  r.bus.write(BASE, RTC_REG.D, 1);
  assert.equal(r.rtc.nmiDisabled, false);
});

Deno.test("CmosRtc stores 114 bytes of RAM and starts them from the memory option", () => {
  const memory = new Uint8Array(CMOS_SIZE);
  memory[0x10] = 0x40;
  memory[0x7f] = 0xa5;
  memory[RTC_REG.SECONDS] = 0x99;
  const r = setup({ memory });
  assert.equal(r.get(0x10), 0x40);
  assert.equal(r.get(0x7f), 0xa5);
  assert.equal(r.get(RTC_REG.SECONDS), 0x00, "clock registers are not taken from memory");
  for (let i = 0x0e; i < CMOS_SIZE; i++) {
    if (i === RTC_REG.CENTURY) continue;
    r.set(i, i ^ 0x5a);
  }
  for (let i = 0x0e; i < CMOS_SIZE; i++) {
    if (i === RTC_REG.CENTURY) continue;
    assert.equal(r.get(i), i ^ 0x5a, `byte 0x${i.toString(16)}`);
  }
  assert.throws(() => new CmosRtc({ ...r, irq8: r.irq8, memory: new Uint8Array(129) }), RangeError);
  assert.throws(() => new CmosRtc({ clock: r.clock, irq8: r.irq8, epochMs: NaN }), RangeError);
});

Deno.test("CmosRtc accepts word accesses as index then data", () => {
  const r = setup();
  r.bus.write(BASE, 0x7700 | 0x20, 2);
  assert.equal(r.get(0x20), 0x77);
  r.bus.write(BASE, 0x20, 1);
  assert.equal(r.bus.read(BASE, 2), 0x77ff);
  assert.equal(r.bus.read(BASE, 4), 0xffff77ff);
});

Deno.test("CmosRtc.reset() is a power cycle: epoch time, registers and RAM, IRQ8 low", () => {
  const r = setup({ memory: cmosMemorySizes(32 << 20) });
  r.set(RTC_REG.B, RTC_B.HOUR_24 | RTC_B.UIE | RTC_B.DM_BINARY);
  r.set(0x40, 0x11);
  r.set(CMOS_MEMORY.BASE_KB, 0);
  r.clock.advance(90 * SECOND);
  assert.equal(r.irq8.level, true);
  r.rtc.reset();
  assert.equal(r.irq8.level, false);
  assert.equal(r.get(RTC_REG.B), RTC_B.HOUR_24);
  assert.equal(r.time(), "00:01:30", "epoch + guest time");
  assert.equal(r.get(0x40), 0);
  assert.equal(r.get(CMOS_MEMORY.BASE_KB), 640 & 0xff);
  assert.equal(r.clock.pending, 0);
});

// -- cmosMemorySizes -----------------------------------------------------------------------

function word(cmos: Uint8Array, address: number): number {
  return cmos[address] | (cmos[address + 1] << 8);
}

Deno.test("cmosMemorySizes() fills base, extended and above-16M sizes as QEMU's pc.c does", () => {
  const small = cmosMemorySizes(512 << 10);
  assert.equal(word(small, CMOS_MEMORY.BASE_KB), 512);
  assert.equal(word(small, CMOS_MEMORY.EXTENDED_KB), 0);
  assert.equal(word(small, CMOS_MEMORY.ABOVE_16M_64K), 0);

  const mid = cmosMemorySizes(64 << 20);
  assert.equal(word(mid, CMOS_MEMORY.BASE_KB), 640);
  assert.equal(word(mid, CMOS_MEMORY.EXTENDED_KB), 63 << 10);
  assert.equal(word(mid, CMOS_MEMORY.EXTENDED_KB_POST), 63 << 10);
  assert.equal(word(mid, CMOS_MEMORY.ABOVE_16M_64K), (48 << 20) >> 16);

  const big = cmosMemorySizes(3 * 2 ** 30, 5 * 2 ** 30);
  assert.equal(word(big, CMOS_MEMORY.EXTENDED_KB), 0xffff, "capped");
  assert.equal(word(big, CMOS_MEMORY.ABOVE_16M_64K), (3 * 2 ** 30 - 2 ** 24) / 65536);
  assert.deepEqual([...big.subarray(CMOS_MEMORY.ABOVE_4G_64K, CMOS_MEMORY.ABOVE_4G_64K + 3)], [
    0x00,
    0x40,
    0x01,
  ]);
  assert.equal(word(cmosMemorySizes(2 ** 32), CMOS_MEMORY.ABOVE_16M_64K), 0xff00);
  const touched = [0x15, 0x16, 0x17, 0x18, 0x30, 0x31, 0x34, 0x35, 0x5b, 0x5c, 0x5d];
  big.forEach((byte, i) =>
    assert.ok(byte === 0 || touched.includes(i), `byte 0x${i.toString(16)}`)
  );
});

Deno.test("cmosMemorySizes() rejects sizes that are not whole bytes in range", () => {
  for (const bad of [-1, 1.5, 2 ** 32 + 1, NaN]) {
    assert.throws(() => cmosMemorySizes(bad), RangeError);
  }
  assert.throws(() => cmosMemorySizes(0, -65536), RangeError);
});

// -- robustness ----------------------------------------------------------------------------

// mulberry32: small, seedable, good enough to explore register sequences reproducibly.

Deno.test("CmosRtc survives random register writes and time steps with invariants intact", () => {
  const SIZES: readonly AccessSize[] = [1, 1, 1, 2, 4];
  // Favour the clock registers so that modes, enables and the time change often.
  const indexes = () => (int(3) === 0 ? int(0x80) : int(0x0e));
  let int = (_n: number) => 0;
  for (const seed of [1, 2, 3, 0x146818]) {
    const random = prng(seed);
    int = (n: number) => Math.floor(random() * n);
    const r = setup({ epochMs: RTC_DEFAULT_EPOCH_MS + int(1000) });
    const context = () => `seed ${seed}`;
    for (let step = 0; step < 4000; step++) {
      const choice = int(10);
      if (choice < 3) {
        r.set(indexes(), int(2) === 0 ? int(0x100) : [0x26, 0x02, 0x40, 0x70][int(4)]);
      } else if (choice < 4) {
        const size = SIZES[int(SIZES.length)];
        r.bus.write(BASE + int(2), int(0x1_0000_0000), size);
      } else if (choice < 7) {
        const index = indexes();
        const before = r.irq8.level;
        const value = r.get(index);
        assert.ok(Number.isInteger(value) && value >= 0 && value <= 0xff, context());
        if (index === RTC_REG.C) {
          // Every event that can raise IRQ8 has a timer, so IRQ8 already showed IRQF.
          assert.equal(
            (value & RTC_C.IRQF) !== 0,
            before,
            `${context()}: C 0x${value.toString(16)}`,
          );
          assert.equal(r.irq8.level, false, context());
        }
      } else {
        r.clock.advance(int(3) === 0 ? int(3 * SECOND) : int(2 * MS));
      }
      assert.ok(r.clock.pending <= 1, `${context()}: ${r.clock.pending} timers pending`);
    }
  }
});
