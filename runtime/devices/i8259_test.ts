import assert from "node:assert/strict";
import {
  ELCR_PORT_COUNT,
  ICW1,
  ICW4,
  OCW2,
  OCW3,
  Pic8259Pair,
  PIC_PC_BASE,
  PIC_PORT_COUNT,
  POLL_INTERRUPT,
} from "./i8259.ts";
import { IoBus } from "./io_bus.ts";
import { IrqLine } from "./irq_line.ts";
import type { AccessSize } from "./port_device.ts";
import { seededRandom as prng } from "../seeded_random.ts";

const MASTER = PIC_PC_BASE.MASTER;
const SLAVE = PIC_PC_BASE.SLAVE;
const ELCR = PIC_PC_BASE.ELCR;

// A pair on a bus at the PC's ports, with INTR's changes and log messages recorded.
function setup() {
  const intr = new IrqLine("intr");
  const edges: boolean[] = [];
  intr.connect((level) => edges.push(level));
  const messages: string[] = [];
  const pic = new Pic8259Pair({ intr, log: (message) => messages.push(message) });
  const bus = new IoBus({ log: () => {} });
  bus.attach(MASTER, PIC_PORT_COUNT, pic.master);
  bus.attach(SLAVE, PIC_PORT_COUNT, pic.slave);
  bus.attach(ELCR, ELCR_PORT_COUNT, pic.elcr);
  const inb = (port: number) => bus.read(port, 1);
  const outb = (port: number, value: number) => bus.write(port, value, 1);
  return { pic, intr, edges, messages, bus, inb, outb };
}

type Pics = ReturnType<typeof setup>;

// Linux's init_8259A: vectors 0x20/0x28, slave on IR2, 8086 mode, normal EOI.
function initLinux(p: Pics, icw4: number = ICW4.UPM) {
  p.outb(MASTER, ICW1.INIT | ICW1.IC4);
  p.outb(MASTER + 1, 0x20);
  p.outb(MASTER + 1, 0x04);
  p.outb(MASTER + 1, icw4);
  p.outb(SLAVE, ICW1.INIT | ICW1.IC4);
  p.outb(SLAVE + 1, 0x28);
  p.outb(SLAVE + 1, 0x02);
  p.outb(SLAVE + 1, icw4);
}

function readIsr(p: Pics, port: number): number {
  p.outb(port, OCW3.SELECT | OCW3.RR | OCW3.RIS);
  const isr = p.inb(port);
  p.outb(port, OCW3.SELECT | OCW3.RR);
  return isr;
}

function eoi(p: Pics, port: number) {
  p.outb(port, OCW2.NON_SPECIFIC_EOI);
}

// -- power-on and initialisation ----------------------------------------------------------

Deno.test("Pic8259Pair powers on with IMR, IRR, ISR and ELCR clear and INTR low", () => {
  const p = setup();
  for (const port of [MASTER, SLAVE]) {
    assert.equal(p.inb(port + 1), 0, "IMR");
    assert.equal(p.inb(port), 0, "IRR");
    assert.equal(readIsr(p, port), 0, "ISR");
  }
  assert.equal(p.inb(ELCR), 0);
  assert.equal(p.inb(ELCR + 1), 0);
  assert.equal(p.intr.level, false);
  assert.equal(p.pic.pendingVector(), null);
  assert.deepEqual(p.messages, []);
  assert.equal(p.pic.master.name, "i8259-master");
  assert.equal(p.pic.slave.name, "i8259-slave");
});

Deno.test("Pic8259Pair delivers vectors from the ICW2 bases after Linux's initialisation", () => {
  const p = setup();
  initLinux(p);
  assert.deepEqual(p.messages, [], "the standard sequence logs nothing");
  p.pic.input(1).raise();
  assert.equal(p.intr.level, true);
  assert.equal(p.pic.pendingVector(), 0x21);
  assert.equal(p.pic.acknowledge(), 0x21);
  assert.equal(p.intr.level, false);
  assert.equal(readIsr(p, MASTER), 0x02);
  eoi(p, MASTER);
  assert.equal(readIsr(p, MASTER), 0);
});

Deno.test("Pic8259Pair ignores the low three bits of ICW2", () => {
  const p = setup();
  p.outb(MASTER, ICW1.INIT | ICW1.IC4 | ICW1.SNGL);
  p.outb(MASTER + 1, 0x47);
  p.outb(MASTER + 1, ICW4.UPM);
  p.pic.input(3).raise();
  assert.equal(p.pic.acknowledge(), 0x43);
});

Deno.test("Pic8259Pair ICW1 clears IMR, ISR and pending edges and selects IRR again", () => {
  const p = setup();
  initLinux(p);
  p.pic.input(4).raise();
  p.pic.acknowledge();
  p.pic.input(5).raise();
  p.outb(MASTER + 1, 0x80);
  p.outb(MASTER, OCW3.SELECT | OCW3.RR | OCW3.RIS);
  p.outb(MASTER, ICW1.INIT | ICW1.IC4);
  assert.equal(p.intr.level, false);
  assert.equal(p.inb(MASTER), 0, "reads IRR again, and it is empty");
  p.outb(MASTER + 1, 0x20);
  p.outb(MASTER + 1, 0x04);
  p.outb(MASTER + 1, ICW4.UPM);
  assert.equal(p.inb(MASTER + 1), 0, "IMR cleared");
  assert.equal(readIsr(p, MASTER), 0);
});

Deno.test("Pic8259Pair after ICW1 needs a fresh rising edge from a line that stayed high", () => {
  const p = setup();
  p.pic.input(3).raise();
  initLinux(p);
  assert.equal(p.intr.level, false, "the edge sense circuit was reset");
  p.pic.input(3).lower();
  p.pic.input(3).raise();
  assert.equal(p.pic.acknowledge(), 0x23);
});

Deno.test("Pic8259Pair routes data-port writes to OCW1 once initialisation is over", () => {
  const p = setup();
  initLinux(p);
  p.outb(MASTER + 1, 0xfb);
  p.outb(SLAVE + 1, 0xff);
  assert.equal(p.inb(MASTER + 1), 0xfb);
  assert.equal(p.inb(SLAVE + 1), 0xff);
});

Deno.test("Pic8259Pair skips ICW4 when IC4 is clear and logs the unmodelled MCS-80 mode", () => {
  const p = setup();
  p.outb(MASTER, ICW1.INIT | ICW1.SNGL);
  p.outb(MASTER + 1, 0x30);
  p.outb(MASTER + 1, 0x5a);
  assert.equal(p.inb(MASTER + 1), 0x5a, "the third write is OCW1");
  assert.equal(p.messages.length, 1);
  assert.match(p.messages[0], /MCS-80\/85/);
  p.outb(MASTER, ICW1.INIT | ICW1.SNGL);
  assert.equal(p.messages.length, 1, "each message is logged once");
});

Deno.test("Pic8259Pair logs ICW3 values that disagree with the PC's fixed cascade", () => {
  const p = setup();
  p.outb(MASTER, ICW1.INIT | ICW1.IC4);
  p.outb(MASTER + 1, 0x20);
  p.outb(MASTER + 1, 0x08);
  p.outb(MASTER + 1, ICW4.UPM);
  assert.equal(p.messages.length, 1);
  assert.match(p.messages[0], /ICW3 0x8/);
});

// -- triggering ----------------------------------------------------------------------------

Deno.test("Pic8259Pair latches an edge-triggered request on the rising edge only", () => {
  const p = setup();
  initLinux(p);
  const line = p.pic.input(6);
  line.pulse();
  assert.equal(p.inb(MASTER), 0x40, "a pulse is latched even though the line fell");
  assert.equal(p.pic.acknowledge(), 0x26);
  assert.equal(p.inb(MASTER), 0, "INTA consumed the edge");
  eoi(p, MASTER);
  line.raise();
  assert.equal(p.pic.acknowledge(), 0x26);
  eoi(p, MASTER);
  assert.equal(p.intr.level, false, "a line held high does not request again");
  line.lower();
  line.raise();
  assert.equal(p.intr.level, true, "a new edge does");
});

Deno.test("Pic8259Pair makes IRR follow a level-triggered line and re-requests after EOI", () => {
  const p = setup();
  initLinux(p);
  p.outb(ELCR + 1, 0x08); // IRQ11 level
  const line = p.pic.input(11);
  line.raise();
  assert.equal(p.inb(SLAVE), 0x08);
  assert.equal(p.pic.acknowledge(), 0x2b);
  assert.equal(p.inb(SLAVE), 0x08, "INTA does not clear a level request");
  eoi(p, SLAVE);
  eoi(p, MASTER);
  assert.equal(p.intr.level, true, "still high: requests again");
  assert.equal(p.pic.acknowledge(), 0x2b);
  line.lower();
  assert.equal(p.inb(SLAVE), 0);
  eoi(p, SLAVE);
  eoi(p, MASTER);
  assert.equal(p.intr.level, false);
});

Deno.test("Pic8259Pair gives the spurious IRQ7 vector when a level line drops before INTA", () => {
  const p = setup();
  initLinux(p);
  p.outb(ELCR, 0x20);
  p.pic.input(5).raise();
  assert.equal(p.intr.level, true);
  p.pic.input(5).lower();
  assert.equal(p.intr.level, false);
  assert.equal(p.pic.acknowledge(), 0x27);
  assert.equal(readIsr(p, MASTER), 0, "a spurious interrupt sets no ISR bit");
});

Deno.test("Pic8259Pair ELCR keeps the timer, keyboard, cascade, RTC and FPU lines edge", () => {
  const p = setup();
  p.outb(ELCR, 0xff);
  p.outb(ELCR + 1, 0xff);
  assert.equal(p.inb(ELCR), 0xf8);
  assert.equal(p.inb(ELCR + 1), 0xde);
  assert.equal(p.bus.read(ELCR, 2), 0xdef8);
});

Deno.test("Pic8259Pair samples a line's level when ELCR makes it level-triggered", () => {
  const p = setup();
  initLinux(p);
  p.pic.input(9).raise();
  p.pic.acknowledge();
  eoi(p, SLAVE);
  eoi(p, MASTER);
  assert.equal(p.intr.level, false);
  p.outb(ELCR + 1, 0x02);
  assert.equal(p.intr.level, true, "IRQ9 is high, so as a level line it requests");
  assert.equal(p.pic.acknowledge(), 0x29);
});

Deno.test("Pic8259Pair ICW1 LTIM makes every input of that controller level-triggered", () => {
  const p = setup();
  p.outb(MASTER, ICW1.INIT | ICW1.IC4 | ICW1.SNGL | ICW1.LTIM);
  p.outb(MASTER + 1, 0x20);
  p.outb(MASTER + 1, ICW4.UPM);
  p.pic.input(0).raise();
  p.pic.acknowledge();
  eoi(p, MASTER);
  assert.equal(p.pic.acknowledge(), 0x20, "IRQ0 requests again while high");
  eoi(p, MASTER);
  p.pic.input(0).lower();
  assert.equal(p.intr.level, false);
});

// -- masking and priority ------------------------------------------------------------------

Deno.test("Pic8259Pair holds a masked request in IRR and delivers it when unmasked", () => {
  const p = setup();
  initLinux(p);
  p.outb(MASTER + 1, 0x10);
  p.pic.input(4).raise();
  assert.equal(p.inb(MASTER), 0x10);
  assert.equal(p.intr.level, false);
  p.outb(MASTER + 1, 0);
  assert.equal(p.intr.level, true);
  assert.equal(p.pic.acknowledge(), 0x24);
});

Deno.test("Pic8259Pair serves the lowest-numbered line first and nests only higher ones", () => {
  const p = setup();
  initLinux(p);
  p.pic.input(4).raise();
  p.pic.input(3).raise();
  assert.equal(p.pic.acknowledge(), 0x23);
  assert.equal(p.intr.level, false, "IRQ4 waits behind IRQ3 in service");
  p.pic.input(1).raise();
  assert.equal(p.intr.level, true, "IRQ1 nests");
  assert.equal(p.pic.acknowledge(), 0x21);
  assert.equal(readIsr(p, MASTER), 0x0a);
  eoi(p, MASTER);
  assert.equal(readIsr(p, MASTER), 0x08, "non-specific EOI clears the highest: IRQ1");
  assert.equal(p.intr.level, false);
  eoi(p, MASTER);
  assert.equal(p.pic.acknowledge(), 0x24);
});

Deno.test("Pic8259Pair specific EOI clears the named in-service level only", () => {
  const p = setup();
  initLinux(p);
  p.pic.input(5).raise();
  p.pic.acknowledge();
  p.pic.input(2).raise();
  p.pic.acknowledge();
  p.outb(MASTER, OCW2.SPECIFIC_EOI | 5);
  assert.equal(readIsr(p, MASTER), 0x04);
});

Deno.test("Pic8259Pair rotate on non-specific EOI makes the served line lowest priority", () => {
  const p = setup();
  initLinux(p);
  p.pic.input(3).raise();
  assert.equal(p.pic.acknowledge(), 0x23);
  p.outb(MASTER, OCW2.ROTATE_NON_SPECIFIC_EOI);
  p.pic.input(3).lower();
  p.pic.input(3).raise();
  p.pic.input(5).raise();
  assert.equal(p.pic.acknowledge(), 0x25, "IRQ4 is now highest, so IRQ5 beats IRQ3");
  p.outb(MASTER, OCW2.ROTATE_NON_SPECIFIC_EOI);
  assert.equal(p.pic.acknowledge(), 0x23);
});

Deno.test("Pic8259Pair set priority makes the named level lowest", () => {
  const p = setup();
  initLinux(p);
  p.outb(MASTER, OCW2.SET_PRIORITY | 4);
  p.pic.input(0).raise();
  p.pic.input(4).raise();
  p.pic.input(6).raise();
  assert.equal(p.pic.acknowledge(), 0x26, "order is now 5,6,7,0,1,2,3,4");
  eoi(p, MASTER);
  assert.equal(p.pic.acknowledge(), 0x20);
  eoi(p, MASTER);
  assert.equal(p.pic.acknowledge(), 0x24);
});

Deno.test("Pic8259Pair rotate on specific EOI clears the level and rotates after it", () => {
  const p = setup();
  initLinux(p);
  p.pic.input(6).raise();
  p.pic.acknowledge();
  p.outb(MASTER, OCW2.ROTATE_SPECIFIC_EOI | 6);
  assert.equal(readIsr(p, MASTER), 0);
  p.pic.input(0).raise();
  p.pic.input(7).raise();
  assert.equal(p.pic.acknowledge(), 0x27, "IRQ7 is highest after rotating past 6");
});

Deno.test("Pic8259Pair rotates in automatic EOI mode once OCW2 enables it", () => {
  const p = setup();
  initLinux(p, ICW4.UPM | ICW4.AEOI);
  p.outb(MASTER, OCW2.ROTATE_AEOI_SET);
  p.pic.input(1).raise();
  assert.equal(p.pic.acknowledge(), 0x21);
  p.pic.input(1).lower();
  p.pic.input(1).raise();
  p.pic.input(7).raise();
  assert.equal(p.pic.acknowledge(), 0x27, "IRQ1 rotated to lowest");
  p.outb(MASTER, OCW2.ROTATE_AEOI_CLEAR);
  p.pic.input(7).lower();
  p.pic.input(7).raise();
  assert.equal(p.pic.acknowledge(), 0x21, "priorities stay where the last rotation left them");
  assert.equal(p.pic.acknowledge(), 0x27);
});

Deno.test("Pic8259Pair in automatic EOI mode sets no ISR bit, so anything nests", () => {
  const p = setup();
  initLinux(p, ICW4.UPM | ICW4.AEOI);
  p.pic.input(1).raise();
  assert.equal(p.pic.acknowledge(), 0x21);
  assert.equal(readIsr(p, MASTER), 0);
  p.pic.input(6).raise();
  assert.equal(p.intr.level, true, "a lower priority request is not blocked");
});

Deno.test("Pic8259Pair OCW2 no-operation changes nothing", () => {
  const p = setup();
  initLinux(p);
  p.pic.input(3).raise();
  p.pic.acknowledge();
  p.outb(MASTER, OCW2.NOP | 3);
  assert.equal(readIsr(p, MASTER), 0x08);
});

// -- OCW3 ----------------------------------------------------------------------------------

Deno.test("Pic8259Pair OCW3 selects IRR or ISR at offset 0, and the choice sticks", () => {
  const p = setup();
  initLinux(p);
  p.pic.input(3).raise();
  p.pic.acknowledge();
  p.pic.input(5).raise();
  p.outb(MASTER, OCW3.SELECT | OCW3.RR | OCW3.RIS);
  assert.equal(p.inb(MASTER), 0x08);
  assert.equal(p.inb(MASTER), 0x08);
  p.outb(MASTER, OCW3.SELECT | OCW3.RIS);
  assert.equal(p.inb(MASTER), 0x08, "RIS without RR does nothing");
  p.outb(MASTER, OCW3.SELECT | OCW3.RR);
  assert.equal(p.inb(MASTER), 0x20);
  assert.equal(p.inb(MASTER + 1), 0, "offset 1 always reads IMR");
});

Deno.test("Pic8259Pair poll mode returns the pending level and acknowledges it", () => {
  const p = setup();
  initLinux(p);
  p.outb(MASTER + 1, 0xff);
  p.pic.input(5).raise();
  p.outb(MASTER + 1, 0);
  p.outb(MASTER, OCW3.SELECT | OCW3.P);
  assert.equal(p.inb(MASTER + 1), POLL_INTERRUPT | 5, "either port returns the poll word");
  assert.equal(readIsr(p, MASTER), 0x20);
  assert.equal(p.intr.level, false);
  assert.equal(p.inb(MASTER + 1), 0, "one read per poll command");
  p.outb(MASTER, OCW3.SELECT | OCW3.P);
  assert.equal(p.inb(MASTER), 0, "nothing pending: bit 7 clear");
});

Deno.test("Pic8259Pair special mask mode lets lower levels through a masked in-service one", () => {
  const p = setup();
  initLinux(p);
  p.pic.input(3).raise();
  p.pic.acknowledge();
  p.pic.input(5).raise();
  assert.equal(p.intr.level, false, "IRQ3 in service blocks IRQ5");
  p.outb(MASTER + 1, 0x08);
  p.outb(MASTER, OCW3.SELECT | OCW3.ESMM | OCW3.SMM);
  assert.equal(p.intr.level, true);
  assert.equal(p.pic.acknowledge(), 0x25);
  eoi(p, MASTER);
  assert.equal(readIsr(p, MASTER), 0x08, "non-specific EOI skips the masked IRQ3 (datasheet)");
  p.outb(MASTER, OCW3.SELECT | OCW3.ESMM);
  p.outb(MASTER, OCW2.SPECIFIC_EOI | 3);
  assert.equal(readIsr(p, MASTER), 0);
});

Deno.test("Pic8259Pair leaving special mask mode blocks lower levels again at once", () => {
  const p = setup();
  initLinux(p);
  p.pic.input(3).raise();
  p.pic.acknowledge();
  p.outb(MASTER + 1, 0x08);
  p.outb(MASTER, OCW3.SELECT | OCW3.ESMM | OCW3.SMM);
  p.pic.input(5).raise();
  assert.equal(p.intr.level, true);
  p.outb(MASTER, OCW3.SELECT | OCW3.ESMM);
  assert.equal(p.intr.level, false);
});

// -- cascade -------------------------------------------------------------------------------

Deno.test("Pic8259Pair delivers slave lines through master input 2 with the slave's vector", () => {
  const p = setup();
  initLinux(p);
  p.pic.input(10).raise();
  assert.equal(p.inb(SLAVE), 0x04);
  assert.equal(p.inb(MASTER), 0x04, "the slave's INT is on master IR2");
  assert.equal(p.pic.pendingVector(), 0x2a);
  assert.equal(p.pic.acknowledge(), 0x2a);
  assert.equal(readIsr(p, SLAVE), 0x04);
  assert.equal(readIsr(p, MASTER), 0x04);
  eoi(p, SLAVE);
  eoi(p, MASTER);
  assert.equal(readIsr(p, SLAVE), 0);
  assert.equal(readIsr(p, MASTER), 0);
});

Deno.test("Pic8259Pair ranks slave lines between master IRQ1 and IRQ3", () => {
  const p = setup();
  initLinux(p);
  p.pic.input(3).raise();
  p.pic.input(15).raise();
  p.pic.input(1).raise();
  assert.equal(p.pic.acknowledge(), 0x21);
  eoi(p, MASTER);
  assert.equal(p.pic.acknowledge(), 0x2f);
  eoi(p, SLAVE);
  eoi(p, MASTER);
  assert.equal(p.pic.acknowledge(), 0x23);
});

Deno.test("Pic8259Pair gives the slave's spurious vector and keeps master IR2 in service", () => {
  const p = setup();
  initLinux(p);
  p.pic.input(12).raise();
  assert.equal(p.intr.level, true);
  p.outb(SLAVE + 1, 0x10); // the slave withdraws its request; the master's edge stays latched
  assert.equal(p.intr.level, true);
  assert.equal(p.pic.pendingVector(), 0x2f);
  assert.equal(p.pic.acknowledge(), 0x2f);
  assert.equal(readIsr(p, SLAVE), 0);
  assert.equal(readIsr(p, MASTER), 0x04, "Linux EOIs the master for a spurious IRQ15");
});

Deno.test("Pic8259Pair gives the master's spurious vector with nothing pending", () => {
  const p = setup();
  initLinux(p);
  assert.equal(p.pic.pendingVector(), null);
  assert.equal(p.pic.acknowledge(), 0x27);
  assert.equal(readIsr(p, MASTER), 0);
});

Deno.test("Pic8259Pair special fully nested mode lets a higher slave line nest", () => {
  const p = setup();
  initLinux(p, ICW4.UPM | ICW4.SFNM);
  p.pic.input(12).raise();
  assert.equal(p.pic.acknowledge(), 0x2c);
  p.pic.input(9).raise();
  assert.equal(p.intr.level, true);
  assert.equal(p.pic.acknowledge(), 0x29);
  assert.equal(readIsr(p, SLAVE), 0x12);
});

Deno.test("Pic8259Pair without special fully nested mode holds the slave while IR2 is busy", () => {
  const p = setup();
  initLinux(p);
  p.pic.input(12).raise();
  p.pic.acknowledge();
  p.pic.input(9).raise();
  assert.equal(p.intr.level, false);
  eoi(p, SLAVE);
  assert.equal(p.intr.level, false, "the slave's new edge waits in master IRR");
  eoi(p, MASTER);
  assert.equal(p.pic.acknowledge(), 0x29);
});

Deno.test("Pic8259Pair master in single mode treats input 2 as an ordinary line", () => {
  const p = setup();
  p.outb(MASTER, ICW1.INIT | ICW1.IC4 | ICW1.SNGL);
  p.outb(MASTER + 1, 0x20);
  p.outb(MASTER + 1, ICW4.UPM);
  p.pic.input(2).raise();
  assert.equal(p.pic.pendingVector(), 0x22);
  assert.equal(p.pic.acknowledge(), 0x22);
});

Deno.test("Pic8259Pair ORs the ISA IRQ2 line with the slave's output on master input 2", () => {
  const p = setup();
  initLinux(p);
  p.pic.input(2).raise();
  assert.equal(p.inb(MASTER), 0x04);
  p.pic.input(10).raise();
  assert.equal(p.pic.acknowledge(), 0x2a);
});

// -- API and access sizes ------------------------------------------------------------------

Deno.test("Pic8259Pair.input() returns one line per IRQ and rejects other numbers", () => {
  const p = setup();
  assert.equal(p.pic.input(7), p.pic.input(7));
  assert.equal(p.pic.input(13).name, "irq13");
  for (const bad of [-1, 16, 1.5, NaN]) assert.throws(() => p.pic.input(bad), RangeError);
});

Deno.test("Pic8259Pair.pendingVector() does not acknowledge", () => {
  const p = setup();
  initLinux(p);
  p.pic.input(0).raise();
  assert.equal(p.pic.pendingVector(), 0x20);
  assert.equal(p.pic.pendingVector(), 0x20);
  assert.equal(readIsr(p, MASTER), 0);
  assert.equal(p.inb(MASTER), 0x01);
});

Deno.test("Pic8259Pair.reset() returns to power-on state and lowers INTR", () => {
  const p = setup();
  initLinux(p);
  p.outb(ELCR + 1, 0x08);
  p.outb(MASTER + 1, 0x10);
  p.pic.input(0).raise();
  p.pic.acknowledge();
  p.pic.input(1).raise();
  p.pic.reset();
  assert.equal(p.intr.level, false);
  assert.equal(p.inb(ELCR + 1), 0);
  assert.equal(p.inb(MASTER + 1), 0);
  assert.equal(p.inb(MASTER), 0);
  assert.equal(readIsr(p, MASTER), 0);
  p.pic.input(3).raise();
  assert.equal(p.pic.acknowledge(), 0x03, "vector base back to 0");
});

Deno.test("Pic8259Pair splits word accesses into consecutive byte registers", () => {
  const p = setup();
  initLinux(p);
  p.bus.write(MASTER, 0x9c00 | OCW3.SELECT | OCW3.RR, 2); // OCW3 then OCW1 = 0x9c
  assert.equal(p.inb(MASTER + 1), 0x9c);
  p.pic.input(1).raise();
  assert.equal(p.bus.read(MASTER, 2), 0x9c02);
  assert.equal(p.bus.read(MASTER + 1, 4), 0xffffff9c, "bytes past the chip float high");
});

// -- robustness ----------------------------------------------------------------------------

// mulberry32: small, seedable, good enough to explore register sequences reproducibly.

Deno.test("Pic8259Pair survives random register writes, line changes and INTA cycles", () => {
  const SIZES: readonly AccessSize[] = [1, 1, 1, 2, 4];
  const PORTS = [MASTER, MASTER + 1, SLAVE, SLAVE + 1, ELCR, ELCR + 1];
  for (const seed of [1, 2, 3, 0x8259]) {
    const random = prng(seed);
    const int = (n: number) => Math.floor(random() * n);
    const p = setup();
    const context = () => `seed ${seed}`;
    for (let step = 0; step < 5000; step++) {
      const choice = int(10);
      const port = PORTS[int(PORTS.length)];
      const size = SIZES[int(SIZES.length)];
      if (choice < 4) {
        p.bus.write(port, int(2) === 0 ? int(0x100) : int(0x1_0000_0000), size);
      } else if (choice < 6) {
        const value = p.bus.read(port, size);
        const max = size === 1 ? 0xff : size === 2 ? 0xffff : 0xffffffff;
        assert.ok(Number.isInteger(value) && value >= 0 && value <= max, context());
      } else if (choice < 8) {
        p.pic.input(int(16)).set(int(2) === 0);
      } else {
        // INTR must agree with pendingVector, and INTA must deliver what it promised.
        const pending = p.pic.pendingVector();
        assert.equal(p.intr.level, pending !== null, context());
        const vector = p.pic.acknowledge();
        assert.ok(Number.isInteger(vector) && vector >= 0 && vector <= 0xff, context());
        if (pending !== null) assert.equal(vector, pending, context());
      }
      if (step % 97 === 0) p.pic.reset();
    }
  }
});

// -- timeline events and faults: spurious requests, lost requests ---------------------------

Deno.test("Pic8259Pair.spurious(7) raises INTR and answers IR7 with no ISR bit set", () => {
  const p = setup();
  initLinux(p);
  p.outb(MASTER + 1, 0xff); // even with every line masked: nothing stands behind the INT
  p.pic.spurious(7);
  assert.equal(p.intr.level, true);
  assert.equal(p.pic.pendingVector(), 0x27);
  assert.equal(p.pic.acknowledge(), 0x27);
  assert.equal(p.intr.level, false);
  assert.equal(readIsr(p, MASTER), 0);
});

Deno.test("Pic8259Pair.spurious(7) yields to a real request pending at INTA", () => {
  const p = setup();
  initLinux(p);
  p.outb(MASTER + 1, 0x00);
  p.pic.spurious(7);
  p.pic.input(1).pulse();
  assert.equal(p.pic.acknowledge(), 0x21);
  assert.equal(p.intr.level, false, "the glitch was consumed by the INTA cycle");
});

Deno.test("Pic8259Pair.spurious(15) sets the master's cascade ISR bit and answers the slave's IR7", () => {
  const p = setup();
  initLinux(p);
  p.outb(MASTER + 1, ~0x04 & 0xff); // cascade unmasked, as Linux leaves it
  p.outb(SLAVE + 1, 0xff);
  assert.match(p.pic.spurious(15), /INTA gives its IR7 vector/);
  assert.equal(p.intr.level, true);
  assert.equal(p.pic.acknowledge(), 0x2f);
  assert.equal(readIsr(p, MASTER), 0x04);
  assert.equal(readIsr(p, SLAVE), 0);
  eoi(p, MASTER);
  assert.equal(readIsr(p, MASTER), 0);
});

Deno.test("Pic8259Pair.spurious(15) does not reach the CPU while the master masks the cascade", () => {
  const p = setup();
  initLinux(p);
  p.outb(MASTER + 1, 0xff);
  assert.match(p.pic.spurious(15), /INTR stays low/);
  assert.equal(p.intr.level, false);
  assert.throws(() => p.pic.spurious(3), RangeError);
});

Deno.test("Pic8259Pair.discard loses the pending request: no ISR bit, no EOI owed", () => {
  const p = setup();
  initLinux(p);
  p.outb(MASTER + 1, 0x00);
  p.outb(SLAVE + 1, 0x00);
  p.pic.input(0).pulse();
  assert.equal(p.pic.discard(), 0x20);
  assert.equal(p.intr.level, false);
  assert.equal(readIsr(p, MASTER), 0);
  p.pic.input(12).pulse();
  assert.equal(p.pic.discard(), 0x2c);
  assert.equal(readIsr(p, MASTER) | readIsr(p, SLAVE), 0);
  assert.equal(p.pic.discard(), null, "nothing pending");
  // The next edge on the same line is delivered as usual.
  p.pic.input(0).pulse();
  assert.equal(p.pic.acknowledge(), 0x20);
});
