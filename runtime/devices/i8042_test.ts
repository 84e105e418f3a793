import assert from "node:assert/strict";
import { IoBus } from "./io_bus.ts";
import { IrqLine } from "./irq_line.ts";
import { CMD, I8042, KBD_QUEUE_BYTES, MODE, MODE_AT_BOOT, REPLY, STATUS } from "./i8042.ts";
import { charScancodes } from "./keymap.ts";
import { seededRandom } from "../seeded_random.ts";

function setup() {
  const irq1 = new IrqLine("irq1");
  const edges: boolean[] = [];
  irq1.connect((l) => edges.push(l));
  const resets: string[] = [];
  const logs: string[] = [];
  const kbc = new I8042({ irq1, onReset: (r) => resets.push(r), log: (m) => logs.push(m) });
  const bus = new IoBus({ log: (m) => logs.push(m) });
  bus.attach(0x60, 1, kbc.data);
  bus.attach(0x64, 1, kbc.control);
  const inb = (p: number) => bus.read(p, 1);
  const outb = (p: number, v: number) => bus.write(p, v, 1);
  return { kbc, irq1, edges, resets, logs, inb, outb };
}

Deno.test("i8042 self-test and interface test answer through the output buffer", () => {
  const { inb, outb } = setup();
  assert.equal(inb(0x64) & STATUS.OBF, 0);
  outb(0x64, CMD.SELF_TEST);
  assert.equal(
    inb(0x64) & (STATUS.OBF | STATUS.SYS | STATUS.CMD),
    STATUS.OBF | STATUS.SYS | STATUS.CMD,
  );
  assert.equal(inb(0x60), REPLY.SELF_TEST_OK);
  assert.equal(inb(0x64) & STATUS.OBF, 0);
  outb(0x64, CMD.TEST_KBD);
  assert.equal(inb(0x60), 0x00);
});

Deno.test("i8042 command byte reads back what was written, and KBD_INT gates IRQ 1", () => {
  const { kbc, irq1, inb, outb } = setup();
  outb(0x64, CMD.READ_MODE);
  assert.equal(inb(0x60), MODE_AT_BOOT);
  outb(0x64, CMD.WRITE_MODE);
  outb(0x60, MODE_AT_BOOT & ~MODE.KBD_INT);
  assert.equal(kbc.mode, MODE_AT_BOOT & ~MODE.KBD_INT);
  kbc.keyboardInput([0x1e]);
  assert.equal(inb(0x64) & STATUS.OBF, STATUS.OBF);
  assert.equal(irq1.level, false, "no IRQ with KBD_INT clear: a polling driver");
  assert.equal(inb(0x60), 0x1e);
  outb(0x64, CMD.WRITE_MODE);
  outb(0x60, MODE_AT_BOOT);
  kbc.keyboardInput([0x9e]);
  assert.equal(irq1.level, true);
});

Deno.test("i8042 keyboard bytes raise IRQ 1 one at a time, with a fresh edge for each", () => {
  const { kbc, edges, inb } = setup();
  kbc.keyboardInput(charScancodes("A"));
  const got: number[] = [];
  while (inb(0x64) & STATUS.OBF) got.push(inb(0x60));
  assert.deepEqual(got, [0x2a, 0x1e, 0x9e, 0xaa]);
  assert.deepEqual(edges, [true, false, true, false, true, false, true, false]);
});

Deno.test("i8042 disable keyboard holds bytes back until enabled", () => {
  const { kbc, inb, outb } = setup();
  outb(0x64, CMD.DISABLE_KBD);
  kbc.keyboardInput([0x10, 0x90]);
  assert.equal(inb(0x64) & STATUS.OBF, 0);
  outb(0x64, CMD.ENABLE_KBD);
  assert.equal(inb(0x60), 0x10);
  assert.equal(inb(0x60), 0x90);
});

Deno.test("i8042 keyboard commands: reset answers ACK and BAT, identify, echo, LEDs", () => {
  const { inb, outb } = setup();
  const drain = () => {
    const r: number[] = [];
    while (inb(0x64) & STATUS.OBF) r.push(inb(0x60));
    return r;
  };
  outb(0x60, 0xff);
  assert.deepEqual(drain(), [REPLY.ACK, REPLY.BAT_OK]);
  outb(0x60, 0xf2);
  assert.deepEqual(drain(), [REPLY.ACK, 0xab, 0x41]);
  outb(0x60, 0xee);
  assert.deepEqual(drain(), [REPLY.ECHO]);
  outb(0x60, 0xed);
  outb(0x60, 0x07);
  assert.deepEqual(drain(), [REPLY.ACK, REPLY.ACK]);
  outb(0x60, 0x42);
  assert.deepEqual(drain(), [REPLY.RESEND]);
});

Deno.test("i8042 scanning disabled (0xF5) drops keys and counts them", () => {
  const { kbc, inb, outb } = setup();
  outb(0x60, 0xf5);
  assert.equal(inb(0x60), REPLY.ACK);
  kbc.keyboardInput([0x1e, 0x9e]);
  assert.equal(kbc.dropped, 2);
  assert.equal(inb(0x64) & STATUS.OBF, 0);
  outb(0x60, 0xf4);
  assert.equal(inb(0x60), REPLY.ACK);
  kbc.keyboardInput(new Array(KBD_QUEUE_BYTES + 5).fill(0x1e));
  assert.equal(kbc.dropped, 2 + 4, "one byte sits in the output buffer, 64 queue, 4 dropped");
});

Deno.test("i8042 0xFE pulses the reset line; other pulse commands and output-port writes", () => {
  const { resets, outb } = setup();
  outb(0x64, 0xff); // pulse nothing
  assert.equal(resets.length, 0);
  outb(0x64, CMD.PULSE_RESET);
  assert.equal(resets.length, 1);
  assert.match(resets[0], /0xfe/);
  outb(0x64, CMD.WRITE_OUTPUT);
  outb(0x60, 0x02);
  assert.equal(resets.length, 2);
});

Deno.test("i8042 random port writes never throw", () => {
  const { kbc, inb, outb } = setup();
  const rnd = seededRandom(42);
  for (let i = 0; i < 5000; i++) {
    const port = rnd() < 0.5 ? 0x60 : 0x64;
    if (rnd() < 0.5) inb(port);
    else outb(port, Math.floor(rnd() * 256));
    if (rnd() < 0.1) kbc.keyboardInput([Math.floor(rnd() * 256)]);
  }
});
