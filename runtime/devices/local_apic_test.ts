import assert from "node:assert/strict";
import { type DeviceClock, ManualClock } from "./device_clock.ts";
import { IrqLine } from "./irq_line.ts";
import {
  DELIVERY_MODE,
  DFR_MODEL,
  ESR,
  ICR,
  LAPIC_REG,
  LOCAL_APIC_MMIO_SIZE,
  LOCAL_APIC_VERSION,
  LocalApic,
  LVT,
  SVR,
  timerDivisor,
} from "./local_apic.ts";
import type { AccessSize } from "./port_device.ts";
import { seededRandom as prng } from "../seeded_random.ts";

// A local APIC on a ManualClock with its INTR line, level EOIs and log messages recorded.
function setup(options: { id?: number; busFrequencyHz?: number; clock?: DeviceClock } = {}) {
  const clock = new ManualClock();
  const intr = new IrqLine("intr");
  const edges: boolean[] = [];
  intr.connect((level) => edges.push(level));
  const levelEois: number[] = [];
  const messages: string[] = [];
  const apic = new LocalApic({
    name: "lapic0",
    clock: options.clock ?? clock,
    id: options.id,
    busFrequencyHz: options.busFrequencyHz,
    intr,
    onLevelEoi: (vector) => levelEois.push(vector),
    log: (message) => messages.push(message),
  });
  const read = (offset: number) => apic.read(offset, 4);
  const write = (offset: number, value: number) => apic.write(offset, value, 4);
  const enable = (vector = 0xff) => write(LAPIC_REG.SVR, SVR.APIC_ENABLED | vector);
  const eoi = () => write(LAPIC_REG.EOI, 0);
  // Read one bit of the 256-bit ISR, TMR or IRR through the eight 32-bit registers.
  const bit = (base: number, vector: number) =>
    ((read(base + 0x10 * (vector >> 5)) >>> (vector & 31)) & 1) === 1;
  return { apic, clock, intr, edges, levelEois, messages, read, write, enable, eoi, bit };
}

type Apic = ReturnType<typeof setup>;

// Latch and read ESR the way the SDM asks: write, then read.
function readEsr(a: Apic): number {
  a.write(LAPIC_REG.ESR, 0);
  return a.read(LAPIC_REG.ESR);
}

// Start the timer with divide-by-1 so counts are nanoseconds at the default 1 GHz.
function startTimer(a: Apic, lvt: number, initial: number, divide = 0xb) {
  a.write(LAPIC_REG.TIMER_DIVIDE, divide);
  a.write(LAPIC_REG.LVT_TIMER, lvt);
  a.write(LAPIC_REG.TIMER_INITIAL_COUNT, initial);
}

// Acknowledge and EOI everything deliverable, returning the vectors in acknowledge order.
function drain(a: Apic): number[] {
  const vectors: number[] = [];
  while (a.apic.hasInterrupt()) {
    vectors.push(a.apic.acknowledge());
    a.eoi();
  }
  return vectors;
}

// -- power-on state ------------------------------------------------------------------------

Deno.test("LocalApic powers on with the SDM's reset values and INTR low", () => {
  const a = setup({ id: 3 });
  assert.equal(a.apic.name, "lapic0");
  assert.equal(a.apic.size, LOCAL_APIC_MMIO_SIZE);
  assert.equal(a.read(LAPIC_REG.ID), 0x03000000);
  assert.equal(a.read(LAPIC_REG.VERSION), 0x00050014);
  assert.equal(LOCAL_APIC_VERSION, 0x00050014);
  assert.equal(a.read(LAPIC_REG.TPR), 0);
  assert.equal(a.read(LAPIC_REG.APR), 0);
  assert.equal(a.read(LAPIC_REG.PPR), 0);
  assert.equal(a.read(LAPIC_REG.LDR), 0);
  assert.equal(a.read(LAPIC_REG.DFR), 0xffffffff);
  assert.equal(a.read(LAPIC_REG.SVR), 0xff);
  for (let word = 0; word < 8; word++) {
    assert.equal(a.read(LAPIC_REG.ISR + 0x10 * word), 0);
    assert.equal(a.read(LAPIC_REG.TMR + 0x10 * word), 0);
    assert.equal(a.read(LAPIC_REG.IRR + 0x10 * word), 0);
  }
  assert.equal(a.read(LAPIC_REG.ESR), 0);
  assert.equal(a.read(LAPIC_REG.ICR_LOW), 0);
  assert.equal(a.read(LAPIC_REG.ICR_HIGH), 0);
  for (let lvt = LAPIC_REG.LVT_TIMER; lvt <= LAPIC_REG.LVT_ERROR; lvt += 0x10) {
    assert.equal(a.read(lvt), LVT.MASKED, `LVT 0x${lvt.toString(16)}`);
  }
  assert.equal(a.read(LAPIC_REG.TIMER_INITIAL_COUNT), 0);
  assert.equal(a.read(LAPIC_REG.TIMER_CURRENT_COUNT), 0);
  assert.equal(a.read(LAPIC_REG.TIMER_DIVIDE), 0);
  assert.equal(a.intr.level, false);
  assert.deepEqual(a.edges, []);
  assert.deepEqual(a.messages, []);
});

Deno.test("LocalApic defaults to name local-apic and APIC ID 0", () => {
  const apic = new LocalApic({ clock: new ManualClock(), intr: new IrqLine("intr") });
  assert.equal(apic.name, "local-apic");
  assert.equal(apic.read(LAPIC_REG.ID, 4), 0);
});

Deno.test("LocalApic rejects an APIC ID outside 0..254 and a non-positive bus frequency", () => {
  const clock = new ManualClock();
  const intr = new IrqLine("intr");
  assert.throws(() => new LocalApic({ clock, intr, id: 255 }), RangeError);
  assert.throws(() => new LocalApic({ clock, intr, id: 1.5 }), RangeError);
  assert.throws(() => new LocalApic({ clock, intr, busFrequencyHz: 0 }), RangeError);
  assert.throws(() => new LocalApic({ clock, intr, busFrequencyHz: Infinity }), RangeError);
});

Deno.test("LocalApic.reset() restores every register, stops the timer and lowers INTR", () => {
  const a = setup({ id: 2 });
  a.enable(0x3f);
  a.write(LAPIC_REG.ID, 0x07000000);
  a.write(LAPIC_REG.TPR, 0x20);
  a.write(LAPIC_REG.LDR, 0x01000000);
  a.write(LAPIC_REG.DFR, 0x0fffffff);
  a.write(LAPIC_REG.ICR_HIGH, 0x05000000);
  a.apic.acceptInterrupt(0x51);
  a.apic.acknowledge();
  a.apic.acceptInterrupt(0x61, true);
  a.apic.acceptInterrupt(0x05);
  startTimer(a, 0x40, 1000);
  assert.equal(a.intr.level, true);
  a.apic.reset();
  assert.equal(a.intr.level, false);
  assert.equal(a.read(LAPIC_REG.ID), 0x02000000, "the ID returns to the constructor's");
  assert.equal(a.read(LAPIC_REG.TPR), 0);
  assert.equal(a.read(LAPIC_REG.LDR), 0);
  assert.equal(a.read(LAPIC_REG.DFR), 0xffffffff);
  assert.equal(a.read(LAPIC_REG.SVR), 0xff);
  assert.equal(a.read(LAPIC_REG.ICR_HIGH), 0);
  assert.equal(a.bit(LAPIC_REG.ISR, 0x51), false);
  assert.equal(a.bit(LAPIC_REG.IRR, 0x61), false);
  assert.equal(a.bit(LAPIC_REG.TMR, 0x61), false);
  assert.equal(readEsr(a), 0);
  assert.equal(a.read(LAPIC_REG.LVT_TIMER), LVT.MASKED);
  assert.equal(a.read(LAPIC_REG.TIMER_INITIAL_COUNT), 0);
  assert.equal(a.read(LAPIC_REG.TIMER_DIVIDE), 0);
  a.enable();
  a.clock.advance(10_000);
  assert.equal(a.intr.level, false, "the timer started before reset never fires");
});

// -- register access -----------------------------------------------------------------------

Deno.test("LocalApic keeps only the defined bits of ID, TPR, LDR, DFR, SVR, ICR and divide", () => {
  const a = setup();
  a.write(LAPIC_REG.ID, 0xffffffff);
  assert.equal(a.read(LAPIC_REG.ID), 0xff000000);
  a.write(LAPIC_REG.TPR, 0xffffffff);
  assert.equal(a.read(LAPIC_REG.TPR), 0xff);
  a.write(LAPIC_REG.LDR, 0xffffffff);
  assert.equal(a.read(LAPIC_REG.LDR), 0xff000000);
  a.write(LAPIC_REG.DFR, 0);
  assert.equal(a.read(LAPIC_REG.DFR), 0x0fffffff, "model bits 28-31 only; the rest read ones");
  a.write(LAPIC_REG.SVR, 0xffffffff);
  assert.equal(a.read(LAPIC_REG.SVR), 0x1ff);
  a.write(LAPIC_REG.ICR_HIGH, 0xffffffff);
  assert.equal(a.read(LAPIC_REG.ICR_HIGH), 0xff000000);
  a.write(LAPIC_REG.TIMER_DIVIDE, 0xffffffff);
  assert.equal(a.read(LAPIC_REG.TIMER_DIVIDE), 0xb);
});

Deno.test("LocalApic LVT entries keep the bits the SDM defines for each entry", () => {
  const a = setup();
  a.enable();
  const cases = [
    [LAPIC_REG.LVT_TIMER, 0x300ff],
    [LAPIC_REG.LVT_THERMAL, 0x107ff],
    [LAPIC_REG.LVT_PERF, 0x107ff],
    [LAPIC_REG.LVT_LINT0, 0x1a7ff],
    [LAPIC_REG.LVT_LINT1, 0x1a7ff],
    [LAPIC_REG.LVT_ERROR, 0x100ff],
  ] as const;
  for (const [offset, writable] of cases) {
    a.write(offset, 0xffffffff);
    assert.equal(a.read(offset), writable, `LVT 0x${offset.toString(16)}`);
    a.write(offset, 0);
    assert.equal(a.read(offset), 0);
  }
});

Deno.test("LocalApic ignores writes to read-only registers and logs each register once", () => {
  const a = setup();
  a.enable();
  a.apic.acceptInterrupt(0x40);
  const readOnly = [
    LAPIC_REG.VERSION,
    LAPIC_REG.APR,
    LAPIC_REG.PPR,
    LAPIC_REG.ISR,
    LAPIC_REG.TMR + 0x70,
    LAPIC_REG.IRR + 0x20,
    LAPIC_REG.TIMER_CURRENT_COUNT,
  ];
  for (const offset of readOnly) {
    a.write(offset, 0xffffffff);
    a.write(offset, 0);
  }
  assert.equal(a.read(LAPIC_REG.VERSION), LOCAL_APIC_VERSION);
  assert.equal(a.read(LAPIC_REG.IRR + 0x20), 1, "vector 0x40 still pending");
  assert.equal(a.read(LAPIC_REG.ISR), 0);
  assert.equal(a.messages.length, readOnly.length);
  assert.ok(a.messages.every((m) => m.includes("read-only")), a.messages.join("\n"));
  assert.equal(readEsr(a), 0, "read-only registers are not illegal addresses");
});

Deno.test("LocalApic reads reserved offsets as 0 and flags an illegal register address", () => {
  const a = setup();
  for (const offset of [0x000, 0x010, 0x040, 0x0c0, 0x3a0, 0x3f0, 0x400, 0xff0, 0x024]) {
    assert.equal(a.read(offset), 0, `offset 0x${offset.toString(16)}`);
  }
  assert.equal(readEsr(a), ESR.ILLEGAL_REGISTER_ADDRESS);
  a.write(0x0c0, 0x1234);
  a.write(0x0c0, 0x1234);
  assert.equal(a.messages.length, 1, "reserved writes are logged once per offset");
  assert.equal(readEsr(a), ESR.ILLEGAL_REGISTER_ADDRESS);
  assert.equal(a.read(LAPIC_REG.EOI), 0, "EOI is write-only and reads 0, without error");
  assert.equal(readEsr(a), 0);
});

Deno.test("LocalApic reads 0 from and ignores byte and word accesses, as QEMU does", () => {
  const a = setup();
  a.write(LAPIC_REG.TPR, 0x45);
  assert.equal(a.apic.read(LAPIC_REG.TPR, 1), 0);
  assert.equal(a.apic.read(LAPIC_REG.TPR, 2), 0);
  a.apic.write(LAPIC_REG.TPR, 0x12, 1);
  a.apic.write(LAPIC_REG.TPR, 0x12, 2);
  assert.equal(a.read(LAPIC_REG.TPR), 0x45);
  a.apic.read(LAPIC_REG.ID, 1);
  a.apic.write(LAPIC_REG.ID, 0, 1);
  assert.equal(a.messages.length, 4, "once per size and direction");
});

Deno.test("LocalApic ESR shows errors only after a write, which also clears them", () => {
  const a = setup();
  a.apic.acceptInterrupt(0x03);
  assert.equal(a.read(LAPIC_REG.ESR), 0, "not visible before the latching write");
  a.write(LAPIC_REG.ESR, 0);
  assert.equal(a.read(LAPIC_REG.ESR), ESR.RECEIVE_ILLEGAL_VECTOR);
  assert.equal(a.read(LAPIC_REG.ESR), ESR.RECEIVE_ILLEGAL_VECTOR, "reads do not clear");
  a.write(LAPIC_REG.ESR, 0);
  assert.equal(a.read(LAPIC_REG.ESR), 0);
});

// -- accepting, acknowledging and retiring interrupts --------------------------------------

Deno.test("LocalApic raises INTR for an accepted interrupt and lowers it on acknowledge", () => {
  const a = setup();
  a.enable();
  a.apic.acceptInterrupt(0x31);
  assert.equal(a.bit(LAPIC_REG.IRR, 0x31), true);
  assert.equal(a.apic.hasInterrupt(), true);
  assert.equal(a.intr.level, true);
  assert.equal(a.apic.acknowledge(), 0x31);
  assert.equal(a.bit(LAPIC_REG.IRR, 0x31), false);
  assert.equal(a.bit(LAPIC_REG.ISR, 0x31), true);
  assert.equal(a.intr.level, false);
  assert.equal(a.read(LAPIC_REG.PPR), 0x30);
  a.eoi();
  assert.equal(a.bit(LAPIC_REG.ISR, 0x31), false);
  assert.equal(a.read(LAPIC_REG.PPR), 0);
  assert.deepEqual(a.edges, [true, false]);
  assert.deepEqual(a.levelEois, []);
});

Deno.test("LocalApic acknowledges the highest vector first", () => {
  const a = setup();
  a.enable();
  for (const vector of [0x20, 0xfe, 0x41, 0x9f, 0x40]) a.apic.acceptInterrupt(vector);
  assert.deepEqual(drain(a), [0xfe, 0x9f, 0x41, 0x40, 0x20]);
  assert.equal(a.intr.level, false);
});

Deno.test("LocalApic queues a vector once however often it is accepted before acknowledge", () => {
  const a = setup();
  a.enable();
  a.apic.acceptInterrupt(0x50);
  a.apic.acceptInterrupt(0x50);
  assert.deepEqual(drain(a), [0x50]);
});

Deno.test("LocalApic holds a vector in IRR while the same vector is in service", () => {
  const a = setup();
  a.enable();
  a.apic.acceptInterrupt(0x50);
  assert.equal(a.apic.acknowledge(), 0x50);
  a.apic.acceptInterrupt(0x50);
  assert.equal(a.apic.hasInterrupt(), false, "same priority class as the one in service");
  a.eoi();
  assert.equal(a.apic.hasInterrupt(), true);
  assert.equal(a.apic.acknowledge(), 0x50);
});

Deno.test("LocalApic lets only a higher priority class interrupt the one in service", () => {
  const a = setup();
  a.enable();
  a.apic.acceptInterrupt(0x45);
  assert.equal(a.apic.acknowledge(), 0x45);
  a.apic.acceptInterrupt(0x4f);
  a.apic.acceptInterrupt(0x30);
  assert.equal(a.intr.level, false, "0x4f is in the same class, 0x30 below");
  a.apic.acceptInterrupt(0x50);
  assert.equal(a.intr.level, true);
  assert.equal(a.apic.acknowledge(), 0x50);
  assert.equal(a.read(LAPIC_REG.PPR), 0x50);
  a.eoi();
  assert.equal(a.bit(LAPIC_REG.ISR, 0x50), false, "EOI retires the highest in service");
  assert.equal(a.bit(LAPIC_REG.ISR, 0x45), true);
  a.eoi();
  assert.deepEqual(drain(a), [0x4f, 0x30]);
});

Deno.test("LocalApic TPR blocks interrupts whose priority class is not above its class", () => {
  const a = setup();
  a.enable();
  a.write(LAPIC_REG.TPR, 0x5a);
  a.apic.acceptInterrupt(0x5f);
  assert.equal(a.intr.level, false, "class 5 is not above TPR class 5");
  assert.equal(a.read(LAPIC_REG.PPR), 0x5a, "PPR follows TPR when nothing is in service");
  a.apic.acceptInterrupt(0x60);
  assert.equal(a.intr.level, true);
  assert.equal(a.apic.acknowledge(), 0x60);
  a.eoi();
  assert.equal(a.intr.level, false);
  a.write(LAPIC_REG.TPR, 0x40);
  assert.equal(a.intr.level, true, "lowering TPR releases 0x5f");
  assert.equal(a.apic.acknowledge(), 0x5f);
});

Deno.test("LocalApic PPR is the higher of TPR and the in-service class", () => {
  const a = setup();
  a.enable();
  a.apic.acceptInterrupt(0x73);
  a.apic.acknowledge();
  a.write(LAPIC_REG.TPR, 0x65);
  assert.equal(a.read(LAPIC_REG.PPR), 0x70);
  a.write(LAPIC_REG.TPR, 0x75);
  assert.equal(a.read(LAPIC_REG.PPR), 0x75, "equal classes: PPR is TPR, sub-class included");
  a.write(LAPIC_REG.TPR, 0x85);
  assert.equal(a.read(LAPIC_REG.PPR), 0x85);
});

Deno.test("LocalApic APR follows the SDM's arbitration priority formula", () => {
  const a = setup();
  a.enable();
  a.write(LAPIC_REG.TPR, 0x35);
  assert.equal(a.read(LAPIC_REG.APR), 0x35, "TPR when nothing is pending or in service");
  a.apic.acceptInterrupt(0x52);
  assert.equal(a.read(LAPIC_REG.APR), 0x50, "the pending class when it is above TPR");
  a.apic.acknowledge();
  // TPR class 3 < ISR class 5: max(3 AND 5, 0) = 1, as the SDM's bitwise AND has it.
  assert.equal(a.read(LAPIC_REG.APR), 0x10);
  a.write(LAPIC_REG.TPR, 0x65);
  assert.equal(a.read(LAPIC_REG.APR), 0x65);
});

Deno.test("LocalApic acknowledge() returns the spurious vector when nothing is deliverable", () => {
  const a = setup();
  a.enable(0x3f);
  assert.equal(a.apic.acknowledge(), 0x3f, "nothing pending");
  a.apic.acceptInterrupt(0x40);
  assert.equal(a.intr.level, true);
  // The guest raises TPR between INTR and the INTA cycle (SDM 11.9).
  a.write(LAPIC_REG.TPR, 0x40);
  assert.equal(a.apic.acknowledge(), 0x3f);
  assert.equal(a.bit(LAPIC_REG.IRR, 0x40), true, "the real interrupt stays pending");
  assert.equal(a.read(LAPIC_REG.ISR + 0x10), 0, "a spurious vector is not put in service");
});

Deno.test("LocalApic EOI with nothing in service does nothing", () => {
  const a = setup();
  a.enable();
  a.eoi();
  a.apic.acceptInterrupt(0x40, true);
  a.eoi();
  assert.equal(a.bit(LAPIC_REG.IRR, 0x40), true, "EOI does not touch IRR");
  assert.deepEqual(a.levelEois, []);
});

Deno.test("LocalApic reports the EOI of a level-triggered vector and not of an edge one", () => {
  const a = setup();
  a.enable();
  a.apic.acceptInterrupt(0x61, true);
  a.apic.acceptInterrupt(0x62);
  assert.equal(a.bit(LAPIC_REG.TMR, 0x61), true);
  assert.equal(a.bit(LAPIC_REG.TMR, 0x62), false);
  assert.deepEqual(drain(a), [0x62, 0x61]);
  assert.deepEqual(a.levelEois, [0x61]);
});

Deno.test("LocalApic lets an EOI callback re-assert the level interrupt it retires", () => {
  let lineStillHigh = true;
  const late: { apic?: LocalApic } = {};
  const intr = new IrqLine("intr");
  const apic = new LocalApic({
    clock: new ManualClock(),
    intr,
    onLevelEoi: (vector) => {
      if (lineStillHigh) late.apic!.acceptInterrupt(vector, true);
    },
    log: () => {},
  });
  late.apic = apic;
  apic.write(LAPIC_REG.SVR, SVR.APIC_ENABLED | 0xff, 4);
  apic.acceptInterrupt(0x70, true);
  assert.equal(apic.acknowledge(), 0x70);
  apic.write(LAPIC_REG.EOI, 0, 4);
  assert.equal(intr.level, true, "re-delivered from inside the EOI");
  assert.equal(apic.acknowledge(), 0x70);
  lineStillHigh = false;
  apic.write(LAPIC_REG.EOI, 0, 4);
  assert.equal(intr.level, false);
});

Deno.test("LocalApic refuses vectors 0-15 and raises the LVT error interrupt", () => {
  const a = setup();
  a.enable();
  a.write(LAPIC_REG.LVT_ERROR, 0xfe);
  a.apic.acceptInterrupt(0x0f);
  assert.equal(a.bit(LAPIC_REG.IRR, 0x0f), false);
  assert.deepEqual(drain(a), [0xfe]);
  assert.equal(readEsr(a), ESR.RECEIVE_ILLEGAL_VECTOR);
  a.apic.acceptInterrupt(0x10);
  assert.deepEqual(drain(a), [0x10], "vector 16 is legal");
});

Deno.test("LocalApic raises the error interrupt once per error until ESR is written", () => {
  const a = setup();
  a.enable();
  a.write(LAPIC_REG.LVT_ERROR, 0xfe);
  a.apic.acceptInterrupt(0x01);
  assert.deepEqual(drain(a), [0xfe]);
  a.apic.acceptInterrupt(0x02);
  assert.deepEqual(drain(a), [], "the same error is still pending");
  a.write(LAPIC_REG.ESR, 0);
  a.apic.acceptInterrupt(0x03);
  assert.deepEqual(drain(a), [0xfe]);
});

Deno.test("LocalApic survives an illegal vector in the LVT error entry", () => {
  const a = setup();
  a.enable();
  a.write(LAPIC_REG.LVT_ERROR, 0x02);
  a.read(0x040);
  assert.equal(readEsr(a), ESR.ILLEGAL_REGISTER_ADDRESS | ESR.RECEIVE_ILLEGAL_VECTOR);
  assert.equal(a.intr.level, false);
});

Deno.test("LocalApic.acceptInterrupt() rejects vectors outside 0..255", () => {
  const a = setup();
  assert.throws(() => a.apic.acceptInterrupt(256), RangeError);
  assert.throws(() => a.apic.acceptInterrupt(-1), RangeError);
  assert.throws(() => a.apic.acceptInterrupt(32.5), RangeError);
});

// -- software enable -----------------------------------------------------------------------

Deno.test("LocalApic while software-disabled holds interrupts in IRR with INTR low", () => {
  const a = setup();
  a.apic.acceptInterrupt(0x40);
  assert.equal(a.bit(LAPIC_REG.IRR, 0x40), true);
  assert.equal(a.apic.hasInterrupt(), false);
  assert.equal(a.intr.level, false);
  assert.equal(a.apic.acknowledge(), 0xff, "INTA while disabled gets the spurious vector");
  a.enable();
  assert.equal(a.intr.level, true);
  a.write(LAPIC_REG.SVR, 0xff);
  assert.equal(a.intr.level, false, "disabling again drops INTR");
  a.enable();
  assert.equal(a.apic.acknowledge(), 0x40);
});

Deno.test("LocalApic software disable masks every LVT entry and keeps them masked", () => {
  const a = setup();
  a.enable();
  for (let lvt = LAPIC_REG.LVT_TIMER; lvt <= LAPIC_REG.LVT_ERROR; lvt += 0x10) a.write(lvt, 0x42);
  a.write(LAPIC_REG.SVR, 0xff);
  for (let lvt = LAPIC_REG.LVT_TIMER; lvt <= LAPIC_REG.LVT_ERROR; lvt += 0x10) {
    assert.equal(a.read(lvt), LVT.MASKED | 0x42, `LVT 0x${lvt.toString(16)}`);
    a.write(lvt, 0x43);
    assert.equal(a.read(lvt), LVT.MASKED | 0x43, "unmasking is ignored while disabled");
  }
  a.enable();
  assert.equal(a.read(LAPIC_REG.LVT_TIMER), LVT.MASKED | 0x43, "enabling does not unmask");
  a.write(LAPIC_REG.LVT_TIMER, 0x43);
  assert.equal(a.read(LAPIC_REG.LVT_TIMER), 0x43);
});

// -- timer ---------------------------------------------------------------------------------

Deno.test("LocalApic one-shot timer fires once when the count reaches zero", () => {
  const a = setup();
  a.enable();
  startTimer(a, 0x40, 1000);
  assert.equal(a.read(LAPIC_REG.TIMER_CURRENT_COUNT), 1000);
  a.clock.advance(250);
  assert.equal(a.read(LAPIC_REG.TIMER_CURRENT_COUNT), 750);
  a.clock.advance(749);
  assert.equal(a.read(LAPIC_REG.TIMER_CURRENT_COUNT), 1);
  assert.equal(a.intr.level, false);
  a.clock.advance(1);
  assert.equal(a.read(LAPIC_REG.TIMER_CURRENT_COUNT), 0);
  assert.equal(a.intr.level, true);
  assert.deepEqual(drain(a), [0x40]);
  a.clock.advance(100_000);
  assert.equal(a.read(LAPIC_REG.TIMER_CURRENT_COUNT), 0, "one-shot stays at zero");
  assert.equal(a.intr.level, false);
  assert.equal(a.bit(LAPIC_REG.TMR, 0x40), false, "timer interrupts are edge-triggered");
});

Deno.test("LocalApic periodic timer fires every period and reloads the count", () => {
  const a = setup();
  a.enable();
  startTimer(a, LVT.TIMER_PERIODIC | 0x41, 100);
  const fired: number[] = [];
  for (let t = 1; t <= 350; t++) {
    a.clock.advance(1);
    if (a.intr.level) {
      fired.push(a.clock.now());
      drain(a);
    }
  }
  assert.deepEqual(fired, [100, 200, 300]);
  assert.equal(a.read(LAPIC_REG.TIMER_CURRENT_COUNT), 50);
  a.clock.advanceTo(400);
  assert.equal(a.read(LAPIC_REG.TIMER_CURRENT_COUNT), 100, "reloaded at once");
});

Deno.test("LocalApic timer interrupts coalesce in IRR while the guest does not service them", () => {
  const a = setup();
  a.enable();
  startTimer(a, LVT.TIMER_PERIODIC | 0x41, 100);
  a.clock.advance(1000);
  assert.deepEqual(drain(a), [0x41]);
  a.clock.advance(100);
  assert.deepEqual(drain(a), [0x41]);
});

for (
  const [divide, divisor] of [
    [0x0, 2],
    [0x1, 4],
    [0x2, 8],
    [0x3, 16],
    [0x8, 32],
    [0x9, 64],
    [0xa, 128],
    [0xb, 1],
  ] as const
) {
  Deno.test(`LocalApic divide configuration 0x${divide.toString(16)} divides by ${divisor}`, () => {
    assert.equal(timerDivisor(divide), divisor);
    const a = setup();
    a.enable();
    startTimer(a, 0x40, 10, divide);
    a.clock.advance(10 * divisor - 1);
    assert.equal(a.intr.level, false);
    assert.equal(a.read(LAPIC_REG.TIMER_CURRENT_COUNT), 1);
    a.clock.advance(1);
    assert.equal(a.intr.level, true);
  });
}

Deno.test("LocalApic timer counts at busFrequencyHz divided by the divisor", () => {
  const a = setup({ busFrequencyHz: 100_000_000 });
  a.enable();
  startTimer(a, 0x40, 5, 0x0);
  a.clock.advance(99);
  assert.equal(a.read(LAPIC_REG.TIMER_CURRENT_COUNT), 1, "20 ns per tick");
  assert.equal(a.intr.level, false);
  a.clock.advance(1);
  assert.equal(a.intr.level, true);
});

Deno.test("LocalApic timer with a fractional tick length never fires early", () => {
  const a = setup({ busFrequencyHz: 3_000_000_000 });
  a.enable();
  startTimer(a, LVT.TIMER_PERIODIC | 0x40, 10);
  const fired: number[][] = [];
  for (let t = 1; t <= 12; t++) {
    a.clock.advance(1);
    if (a.intr.level) {
      fired.push([a.clock.now(), a.read(LAPIC_REG.TIMER_CURRENT_COUNT)]);
      drain(a);
    }
  }
  // Periods of 10/3 ns end at 3.33, 6.67 and 10 ns; each fires at the next whole ns, when
  // 12, 21 and 30 ticks of 1/3 ns have passed.
  assert.deepEqual(fired, [[4, 8], [7, 9], [10, 10]]);
});

Deno.test("LocalApic masked timer keeps counting but does not interrupt", () => {
  const a = setup();
  a.enable();
  startTimer(a, LVT.MASKED | LVT.TIMER_PERIODIC | 0x40, 100);
  a.clock.advance(250);
  assert.equal(a.read(LAPIC_REG.TIMER_CURRENT_COUNT), 50);
  assert.equal(a.intr.level, false);
  a.write(LAPIC_REG.LVT_TIMER, LVT.TIMER_PERIODIC | 0x40);
  a.clock.advance(49);
  assert.equal(a.intr.level, false);
  a.clock.advance(1);
  assert.equal(a.intr.level, true, "resumes at the next period boundary");
});

Deno.test("LocalApic one-shot timer that expired while masked stays silent when unmasked", () => {
  const a = setup();
  a.enable();
  startTimer(a, LVT.MASKED | 0x40, 100);
  a.clock.advance(150);
  a.write(LAPIC_REG.LVT_TIMER, 0x40);
  a.clock.advance(1000);
  assert.equal(a.intr.level, false);
});

Deno.test("LocalApic timer stops when 0 is written to the initial count", () => {
  const a = setup();
  a.enable();
  startTimer(a, LVT.TIMER_PERIODIC | 0x40, 100);
  a.clock.advance(50);
  a.write(LAPIC_REG.TIMER_INITIAL_COUNT, 0);
  assert.equal(a.read(LAPIC_REG.TIMER_CURRENT_COUNT), 0);
  a.clock.advance(1000);
  assert.equal(a.intr.level, false);
});

Deno.test("LocalApic timer restarts from the initial count when it is rewritten", () => {
  const a = setup();
  a.enable();
  startTimer(a, 0x40, 100);
  a.clock.advance(90);
  a.write(LAPIC_REG.TIMER_INITIAL_COUNT, 100);
  a.clock.advance(90);
  assert.equal(a.intr.level, false);
  assert.equal(a.read(LAPIC_REG.TIMER_CURRENT_COUNT), 10);
  a.clock.advance(10);
  assert.equal(a.intr.level, true);
});

Deno.test("LocalApic timer keeps the elapsed ticks when the divider changes mid-count", () => {
  const a = setup();
  a.enable();
  startTimer(a, 0x40, 100);
  a.clock.advance(40);
  a.write(LAPIC_REG.TIMER_DIVIDE, 0x0);
  assert.equal(a.read(LAPIC_REG.TIMER_CURRENT_COUNT), 60);
  a.clock.advance(119);
  assert.equal(a.intr.level, false);
  a.clock.advance(1);
  assert.equal(a.intr.level, true, "the remaining 60 ticks took 120 ns");
});

Deno.test("LocalApic timer is silenced by software disable and stays masked after enable", () => {
  const a = setup();
  a.enable();
  startTimer(a, LVT.TIMER_PERIODIC | 0x40, 100);
  a.clock.advance(50);
  a.write(LAPIC_REG.SVR, 0xff);
  a.enable();
  a.clock.advance(1000);
  assert.equal(a.intr.level, false);
  assert.equal(a.read(LAPIC_REG.LVT_TIMER), LVT.MASKED | LVT.TIMER_PERIODIC | 0x40);
});

Deno.test("LocalApic ignores the TSC-deadline timer mode bit and logs it once", () => {
  const a = setup();
  a.enable();
  a.write(LAPIC_REG.LVT_TIMER, LVT.TIMER_TSC_DEADLINE | 0x40);
  a.write(LAPIC_REG.LVT_TIMER, LVT.TIMER_TSC_DEADLINE | 0x40);
  assert.equal(a.read(LAPIC_REG.LVT_TIMER), 0x40, "bit 18 reads 0: mode is one-shot");
  assert.equal(a.messages.length, 1);
  assert.match(a.messages[0], /TSC-deadline/);
  a.write(LAPIC_REG.TIMER_DIVIDE, 0xb);
  a.write(LAPIC_REG.TIMER_INITIAL_COUNT, 10);
  a.clock.advance(10);
  assert.deepEqual(drain(a), [0x40]);
  a.clock.advance(100);
  assert.deepEqual(drain(a), [], "one-shot");
});

Deno.test("LocalApic delivers an overdue timer expiry before a register write changes it", () => {
  // A clock whose callbacks run only when asked, like a machine that is slow to get to them.
  const timers: { at: number; fn: () => void; live: boolean }[] = [];
  let now = 0;
  const lazyClock: DeviceClock = {
    now: () => now,
    schedule(atNs: number, fn: () => void) {
      const t = { at: atNs, fn, live: true };
      timers.push(t);
      return () => void (t.live = false);
    },
  };
  const a = setup({ clock: lazyClock });
  a.enable();
  startTimer(a, 0x40, 100);
  now = 150;
  a.write(LAPIC_REG.LVT_TIMER, LVT.MASKED | 0x40);
  assert.equal(a.bit(LAPIC_REG.IRR, 0x40), true, "the expiry at 100 ns happened first");
  assert.ok(timers.every((t) => !t.live), "and its callback was cancelled");
});

// -- IPIs ----------------------------------------------------------------------------------

Deno.test("LocalApic delivers a fixed IPI with the self shorthand to itself", () => {
  const a = setup();
  a.enable();
  a.write(LAPIC_REG.ICR_LOW, ICR.SHORTHAND_SELF | 0x55);
  assert.equal(a.read(LAPIC_REG.ICR_LOW), ICR.SHORTHAND_SELF | 0x55);
  assert.equal(a.read(LAPIC_REG.ICR_LOW) & ICR.DELIVERY_STATUS, 0, "sent at once");
  assert.deepEqual(drain(a), [0x55]);
  assert.deepEqual(a.messages, []);
});

Deno.test("LocalApic delivers an all-including-self IPI to itself only", () => {
  const a = setup();
  a.enable();
  a.write(LAPIC_REG.ICR_LOW, ICR.SHORTHAND_ALL_INCLUDING_SELF | 0x56);
  assert.deepEqual(drain(a), [0x56]);
  assert.deepEqual(a.messages, []);
});

Deno.test("LocalApic sets TMR for a level-triggered self IPI", () => {
  const a = setup();
  a.enable();
  const icr = ICR.SHORTHAND_SELF | ICR.LEVEL_TRIGGERED | ICR.LEVEL_ASSERT | 0x57;
  a.write(LAPIC_REG.ICR_LOW, icr);
  assert.equal(a.bit(LAPIC_REG.TMR, 0x57), true);
  assert.deepEqual(drain(a), [0x57]);
  assert.deepEqual(a.levelEois, [0x57]);
});

Deno.test("LocalApic delivers a fixed IPI addressed to its own APIC ID or to broadcast", () => {
  const a = setup({ id: 2 });
  a.enable();
  a.write(LAPIC_REG.ICR_HIGH, 0x02000000);
  a.write(LAPIC_REG.ICR_LOW, 0x60);
  a.write(LAPIC_REG.ICR_HIGH, 0xff000000);
  a.write(LAPIC_REG.ICR_LOW, DELIVERY_MODE.LOWEST_PRIORITY << 8 | 0x61);
  assert.deepEqual(drain(a), [0x61, 0x60]);
  assert.deepEqual(a.messages, []);
});

Deno.test("LocalApic logs IPIs for other CPUs as unsupported and drops them", () => {
  const a = setup();
  a.enable();
  a.write(LAPIC_REG.ICR_HIGH, 0x01000000);
  a.write(LAPIC_REG.ICR_LOW, 0x60);
  a.write(LAPIC_REG.ICR_LOW, 0x60);
  a.write(LAPIC_REG.ICR_LOW, ICR.SHORTHAND_ALL_EXCLUDING_SELF | 0x61);
  assert.deepEqual(drain(a), []);
  assert.equal(a.messages.length, 2, a.messages.join("\n"));
  assert.match(a.messages[0], /physical destination 0x1/);
  assert.match(a.messages[1], /all excluding self/);
});

Deno.test("LocalApic logs INIT and Start-Up IPIs as unsupported, once per kind", () => {
  const a = setup();
  a.enable();
  a.write(LAPIC_REG.ICR_HIGH, 0x01000000);
  const init = DELIVERY_MODE.INIT << 8 | ICR.LEVEL_ASSERT | ICR.LEVEL_TRIGGERED;
  const deassert = DELIVERY_MODE.INIT << 8 | ICR.LEVEL_TRIGGERED;
  const sipi = DELIVERY_MODE.STARTUP << 8 | 0x9f;
  for (const icr of [init, deassert, sipi, sipi, init]) a.write(LAPIC_REG.ICR_LOW, icr);
  a.write(LAPIC_REG.ICR_LOW, ICR.SHORTHAND_SELF | DELIVERY_MODE.NMI << 8);
  assert.equal(a.messages.length, 3, a.messages.join("\n"));
  assert.match(a.messages[0], /INIT IPI/);
  assert.match(a.messages[1], /Start-Up IPI/);
  assert.match(a.messages[2], /NMI IPI to self/);
  assert.deepEqual(drain(a), []);
});

Deno.test("LocalApic refuses to send an IPI with a vector below 16", () => {
  const a = setup();
  a.enable();
  a.write(LAPIC_REG.ICR_LOW, ICR.SHORTHAND_SELF | 0x0e);
  assert.deepEqual(drain(a), []);
  assert.equal(readEsr(a), ESR.SEND_ILLEGAL_VECTOR);
});

Deno.test("LocalApic matches logical destinations in the flat and cluster models", () => {
  const a = setup({ id: 1 });
  assert.equal(a.apic.matchesDestination(0x01, false), true);
  assert.equal(a.apic.matchesDestination(0x02, false), false);
  assert.equal(a.apic.matchesDestination(0xff, false), true);
  assert.equal(a.apic.matchesDestination(0x01, true), false, "LDR 0 matches no flat mask");
  assert.equal(a.apic.matchesDestination(0xff, true), true, "logical broadcast");
  a.write(LAPIC_REG.LDR, 0x24000000);
  assert.equal(a.apic.matchesDestination(0x04, true), true);
  assert.equal(a.apic.matchesDestination(0x81, true), false);
  a.write(LAPIC_REG.DFR, DFR_MODEL.CLUSTER << 28);
  assert.equal(a.apic.matchesDestination(0x24, true), true, "cluster 2, member bit 2");
  assert.equal(a.apic.matchesDestination(0x26, true), true);
  assert.equal(a.apic.matchesDestination(0x14, true), false, "other cluster");
  assert.equal(a.apic.matchesDestination(0x21, true), false, "other member");
  a.write(LAPIC_REG.DFR, 0x70000000);
  assert.equal(a.apic.matchesDestination(0x24, true), false, "undefined model");
});

Deno.test("LocalApic delivers a logical-mode fixed IPI that matches its LDR", () => {
  const a = setup();
  a.enable();
  a.write(LAPIC_REG.LDR, 0x01000000);
  a.write(LAPIC_REG.ICR_HIGH, 0x03000000);
  a.write(LAPIC_REG.ICR_LOW, ICR.DESTINATION_LOGICAL | 0x70);
  assert.deepEqual(drain(a), [0x70]);
});

Deno.test("LocalApic follows an APIC ID written by the guest", () => {
  const a = setup();
  a.enable();
  a.write(LAPIC_REG.ID, 0x05000000);
  assert.equal(a.apic.matchesDestination(5, false), true);
  assert.equal(a.apic.matchesDestination(0, false), false);
});

// -- robustness ----------------------------------------------------------------------------

// mulberry32: small, seedable, good enough to explore register sequences reproducibly.

Deno.test("LocalApic survives random register writes with its invariants intact", () => {
  const SIZES: readonly AccessSize[] = [4, 4, 4, 4, 1, 2];
  const REGISTERS = Object.values(LAPIC_REG);
  for (const seed of [1, 2, 3, 0xc0ffee]) {
    const random = prng(seed);
    const int = (n: number) => Math.floor(random() * n);
    const a = setup();
    const context = () => `seed ${seed}`;
    for (let step = 0; step < 5000; step++) {
      const choice = int(20);
      // Mostly real registers (including the upper ISR/TMR/IRR words), sometimes anywhere.
      const offset = int(4) === 0 ? int(LOCAL_APIC_MMIO_SIZE) : REGISTERS[int(REGISTERS.length)] +
        (int(4) === 0 ? 0x10 * int(8) : 0);
      const size = SIZES[int(SIZES.length)];
      if (choice < 8) {
        // Favour enabling values for SVR now and then, so the enabled paths run too.
        const value = offset === LAPIC_REG.SVR && int(2) === 0
          ? SVR.APIC_ENABLED | int(0x100)
          : int(3) === 0
          ? int(0x100)
          : int(0x1_0000_0000);
        a.apic.write(offset, value, size);
      } else if (choice < 13) {
        const value = a.apic.read(offset, size);
        assert.ok(Number.isInteger(value) && value >= 0 && value <= 0xffffffff, context());
      } else if (choice < 15) {
        a.apic.acceptInterrupt(int(256), int(2) === 0);
      } else if (choice < 17) {
        const vector = a.apic.acknowledge();
        assert.ok(Number.isInteger(vector) && vector >= 0 && vector <= 0xff, context());
      } else {
        a.clock.advance(int(5000));
      }
      assert.equal(a.intr.level, a.apic.hasInterrupt(), context());
      const count = a.read(LAPIC_REG.TIMER_CURRENT_COUNT);
      assert.ok(count <= a.read(LAPIC_REG.TIMER_INITIAL_COUNT), context());
      const ppr = a.read(LAPIC_REG.PPR);
      assert.ok(ppr >= 0 && ppr <= 0xff, context());
      if ((a.read(LAPIC_REG.SVR) & SVR.APIC_ENABLED) === 0) {
        for (let lvt = LAPIC_REG.LVT_TIMER; lvt <= LAPIC_REG.LVT_ERROR; lvt += 0x10) {
          assert.equal(a.read(lvt) & LVT.MASKED, LVT.MASKED, context());
        }
      }
    }
    // Whatever happened, the APIC can be drained and reset to a quiet state.
    a.enable();
    a.write(LAPIC_REG.TPR, 0);
    for (let i = 0; i < 300 && a.apic.hasInterrupt(); i++) a.apic.acknowledge();
    for (let i = 0; i < 300; i++) a.eoi();
    a.apic.reset();
    assert.equal(a.intr.level, false, context());
  }
});
