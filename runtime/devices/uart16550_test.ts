import assert from "node:assert/strict";
import { IoBus } from "./io_bus.ts";
import { IrqLine } from "./irq_line.ts";
import type { AccessSize } from "./port_device.ts";
import {
  FCR,
  IER,
  IIR,
  LCR,
  LSR,
  MCR,
  MSR,
  REG,
  Uart16550,
  UART_FIFO_SIZE,
  UART_PORT_COUNT,
} from "./uart16550.ts";
import { seededRandom as prng } from "../seeded_random.ts";

const BASE = 0x3f8;

// A UART at COM1 on a bus, with its IRQ line, transmitted bytes and line changes recorded.
function setup(options: { onReceiveSpace?: () => void } = {}) {
  const irq = new IrqLine("irq4");
  const edges: boolean[] = [];
  irq.connect((level) => edges.push(level));
  const sent: number[] = [];
  const messages: string[] = [];
  const uart = new Uart16550({
    name: "uart16550@0x3f8",
    irq,
    transmit: (byte) => sent.push(byte),
    onReceiveSpace: options.onReceiveSpace,
  });
  const bus = new IoBus({ log: (message) => messages.push(message) });
  bus.attach(BASE, UART_PORT_COUNT, uart);
  const inb = (reg: number) => bus.read(BASE + reg, 1);
  const outb = (reg: number, value: number) => bus.write(BASE + reg, value, 1);
  const rx = (...bytes: number[]) => uart.receive(Uint8Array.from(bytes));
  return { uart, irq, edges, sent, messages, bus, inb, outb, rx };
}

type Uart = ReturnType<typeof setup>;

function enableFifo(u: Uart, trigger: number = FCR.TRIGGER_1) {
  u.outb(REG.FCR, FCR.FIFO_ENABLE | trigger);
}

function drain(u: Uart): number[] {
  const bytes: number[] = [];
  while ((u.inb(REG.LSR) & LSR.DR) !== 0) bytes.push(u.inb(REG.RBR));
  return bytes;
}

// -- power-on state ------------------------------------------------------------------------

Deno.test("Uart16550 powers on with the datasheet's reset values and its IRQ line low", () => {
  const u = setup();
  assert.equal(u.uart.name, "uart16550@0x3f8");
  assert.equal(u.inb(REG.IER), 0);
  assert.equal(u.inb(REG.IIR), IIR.NO_INT);
  assert.equal(u.inb(REG.LCR), 0);
  assert.equal(u.inb(REG.MCR), 0);
  assert.equal(u.inb(REG.LSR), LSR.THRE | LSR.TEMT);
  assert.equal(u.inb(REG.MSR), MSR.DCD | MSR.DSR | MSR.CTS);
  assert.equal(u.inb(REG.SCR), 0);
  assert.equal(u.uart.canReceive(), 1);
  u.outb(REG.LCR, LCR.DLAB);
  assert.equal(u.inb(REG.DLL), 0x0c);
  assert.equal(u.inb(REG.DLM), 0);
  assert.equal(u.irq.level, false);
  assert.deepEqual(u.edges, []);
  assert.deepEqual(u.messages, []);
});

Deno.test("Uart16550 defaults its name to uart16550", () => {
  const uart = new Uart16550({ irq: new IrqLine("irq4"), transmit: () => {} });
  assert.equal(uart.name, "uart16550");
});

Deno.test("Uart16550.reset() restores every register and lowers the IRQ line", () => {
  const u = setup();
  u.outb(REG.MCR, MCR.OUT2 | MCR.DTR);
  u.outb(REG.IER, 0x0f);
  u.outb(REG.SCR, 0x55);
  enableFifo(u, FCR.TRIGGER_8);
  u.rx(1, 2, 3);
  u.outb(REG.LCR, LCR.DLAB | 0x03);
  u.outb(REG.DLL, 0x01);
  assert.equal(u.irq.level, true);
  u.uart.reset();
  assert.equal(u.irq.level, false);
  assert.equal(u.inb(REG.LCR), 0);
  assert.equal(u.inb(REG.IER), 0);
  assert.equal(u.inb(REG.IIR), IIR.NO_INT);
  assert.equal(u.inb(REG.MCR), 0);
  assert.equal(u.inb(REG.LSR), LSR.THRE | LSR.TEMT);
  assert.equal(u.inb(REG.MSR), MSR.DCD | MSR.DSR | MSR.CTS);
  assert.equal(u.inb(REG.SCR), 0);
  assert.equal(u.uart.canReceive(), 1);
  u.outb(REG.LCR, LCR.DLAB);
  assert.equal(u.inb(REG.DLL), 0x0c);
  assert.equal(u.inb(REG.DLM), 0);
});

// -- simple registers ----------------------------------------------------------------------

Deno.test("Uart16550 scratch register holds any byte", () => {
  const u = setup();
  for (const value of [0x00, 0xa5, 0xff]) {
    u.outb(REG.SCR, value);
    assert.equal(u.inb(REG.SCR), value);
  }
});

Deno.test("Uart16550 LCR reads back all eight bits", () => {
  const u = setup();
  u.outb(REG.LCR, 0x7f);
  assert.equal(u.inb(REG.LCR), 0x7f);
  u.outb(REG.LCR, 0x03);
  assert.equal(u.inb(REG.LCR), 0x03);
});

Deno.test("Uart16550 IER keeps its low four bits and MCR its low five", () => {
  const u = setup();
  u.outb(REG.IER, 0xff);
  assert.equal(u.inb(REG.IER), 0x0f);
  u.outb(REG.MCR, 0xff);
  assert.equal(u.inb(REG.MCR), 0x1f);
});

Deno.test("Uart16550 ignores writes to the read-only LSR and MSR", () => {
  const u = setup();
  u.outb(REG.LSR, 0x00);
  u.outb(REG.MSR, 0x0f);
  assert.equal(u.inb(REG.LSR), LSR.THRE | LSR.TEMT);
  assert.equal(u.inb(REG.MSR), MSR.DCD | MSR.DSR | MSR.CTS);
});

Deno.test("Uart16550 DLAB maps offsets 0 and 1 to the divisor latch", () => {
  const u = setup();
  u.outb(REG.IER, IER.ERBFI);
  u.outb(REG.LCR, LCR.DLAB | 0x03);
  u.outb(REG.DLL, 0x01);
  u.outb(REG.DLM, 0x80);
  assert.equal(u.inb(REG.DLL), 0x01);
  assert.equal(u.inb(REG.DLM), 0x80);
  assert.deepEqual(u.sent, [], "a DLL write is not a transmission");
  u.outb(REG.LCR, 0x03);
  assert.equal(u.inb(REG.IER), IER.ERBFI, "a DLM write does not touch IER");
  u.rx(0x42);
  assert.equal(u.inb(REG.RBR), 0x42);
  u.outb(REG.LCR, LCR.DLAB);
  assert.equal(u.inb(REG.DLL), 0x01, "the divisor survives DLAB toggling");
  assert.equal(u.inb(REG.DLM), 0x80);
});

Deno.test("Uart16550 with DLAB set does not consume received bytes on offset 0 reads", () => {
  const u = setup();
  u.rx(0x42);
  u.outb(REG.LCR, LCR.DLAB);
  u.inb(REG.DLL);
  u.outb(REG.LCR, 0);
  assert.equal(u.inb(REG.LSR) & LSR.DR, LSR.DR);
  assert.equal(u.inb(REG.RBR), 0x42);
});

// -- transmit ------------------------------------------------------------------------------

Deno.test("Uart16550 transmits a THR write at once and keeps THRE and TEMT set", () => {
  const u = setup();
  u.outb(REG.THR, 0x48);
  assert.equal(u.inb(REG.LSR) & (LSR.THRE | LSR.TEMT), LSR.THRE | LSR.TEMT);
  u.outb(REG.THR, 0x69);
  assert.deepEqual(u.sent, [0x48, 0x69]);
});

Deno.test("Uart16550 raises its IRQ line for THRE when IER.ETBEI is enabled with OUT2 set", () => {
  const u = setup();
  u.outb(REG.MCR, MCR.OUT2);
  u.outb(REG.IER, IER.ETBEI);
  assert.equal(u.irq.level, true);
  assert.deepEqual(u.edges, [true]);
});

Deno.test("Uart16550 clears a THRE interrupt when IIR reports it", () => {
  const u = setup();
  u.outb(REG.MCR, MCR.OUT2);
  u.outb(REG.IER, IER.ETBEI);
  assert.equal(u.inb(REG.IIR), IIR.THRE);
  assert.equal(u.irq.level, false);
  assert.equal(u.inb(REG.IIR), IIR.NO_INT);
  assert.deepEqual(u.edges, [true, false]);
});

Deno.test("Uart16550 re-arms THRE on every THR write, giving the IRQ line a new edge", () => {
  const u = setup();
  u.outb(REG.MCR, MCR.OUT2);
  u.outb(REG.IER, IER.ETBEI);
  u.outb(REG.THR, 0x41);
  assert.deepEqual(u.edges, [true, false, true]);
  u.inb(REG.IIR);
  u.outb(REG.THR, 0x42);
  assert.deepEqual(u.edges, [true, false, true, false, true]);
  assert.equal(u.inb(REG.IIR), IIR.THRE);
});

Deno.test("Uart16550 clears a pending THRE interrupt when ETBEI is disabled", () => {
  const u = setup();
  u.outb(REG.MCR, MCR.OUT2);
  u.outb(REG.IER, IER.ETBEI);
  u.outb(REG.IER, 0);
  assert.equal(u.irq.level, false);
  u.outb(REG.IER, IER.ERBFI);
  assert.equal(u.inb(REG.IIR), IIR.NO_INT, "THRE does not come back without ETBEI rising");
});

Deno.test("Uart16550 raises THRE again when ETBEI is re-enabled after an IIR acknowledge", () => {
  const u = setup();
  u.outb(REG.MCR, MCR.OUT2);
  u.outb(REG.IER, IER.ETBEI);
  u.inb(REG.IIR);
  u.outb(REG.IER, IER.ETBEI | IER.ERBFI);
  assert.equal(u.inb(REG.IIR), IIR.NO_INT, "ETBEI unchanged: no resampling");
  u.outb(REG.IER, 0);
  u.outb(REG.IER, IER.ETBEI);
  assert.equal(u.irq.level, true);
  assert.equal(u.inb(REG.IIR), IIR.THRE);
});

Deno.test("Uart16550 keeps THRE pending when a higher-priority source hides it from IIR", () => {
  const u = setup();
  u.outb(REG.MCR, MCR.OUT2);
  u.outb(REG.IER, IER.ETBEI | IER.ERBFI);
  u.rx(0x41);
  assert.equal(u.inb(REG.IIR), IIR.RX_DATA);
  assert.equal(u.inb(REG.IIR), IIR.RX_DATA);
  assert.equal(u.inb(REG.RBR), 0x41);
  assert.equal(u.irq.level, true);
  assert.equal(u.inb(REG.IIR), IIR.THRE);
  assert.equal(u.irq.level, false);
});

// -- receive -------------------------------------------------------------------------------

Deno.test("Uart16550 raises its IRQ line when a byte arrives with IER.ERBFI set", () => {
  const u = setup();
  u.outb(REG.MCR, MCR.OUT2);
  u.outb(REG.IER, IER.ERBFI);
  assert.equal(u.irq.level, false);
  assert.equal(u.rx(0x61), 1);
  assert.equal(u.irq.level, true);
  assert.equal(u.inb(REG.IIR), IIR.RX_DATA);
  assert.equal(u.inb(REG.LSR) & LSR.DR, LSR.DR);
  assert.equal(u.inb(REG.RBR), 0x61);
  assert.equal(u.irq.level, false);
  assert.equal(u.inb(REG.LSR) & LSR.DR, 0);
  assert.equal(u.inb(REG.IIR), IIR.NO_INT);
  assert.deepEqual(u.edges, [true, false]);
});

Deno.test("Uart16550 raises a received-data interrupt for bytes that arrived before ERBFI", () => {
  const u = setup();
  u.outb(REG.MCR, MCR.OUT2);
  u.rx(0x61);
  assert.equal(u.irq.level, false);
  u.outb(REG.IER, IER.ERBFI);
  assert.equal(u.irq.level, true);
});

Deno.test("Uart16550 without FIFOs accepts one byte at a time and returns partial counts", () => {
  const u = setup();
  assert.equal(u.uart.canReceive(), 1);
  assert.equal(u.rx(1, 2, 3), 1);
  assert.equal(u.uart.canReceive(), 0);
  assert.equal(u.rx(2, 3), 0);
  assert.equal(u.inb(REG.LSR) & LSR.OE, 0, "receive() never overruns");
  assert.equal(u.inb(REG.RBR), 1);
  assert.equal(u.rx(2, 3), 1);
  assert.equal(u.inb(REG.RBR), 2);
  assert.equal(u.rx(), 0);
});

Deno.test("Uart16550 without FIFOs re-reads the last byte from an empty RBR", () => {
  const u = setup();
  u.rx(0x7e);
  assert.equal(u.inb(REG.RBR), 0x7e);
  assert.equal(u.inb(REG.RBR), 0x7e);
  assert.equal(u.inb(REG.LSR) & LSR.DR, 0);
});

Deno.test("Uart16550 with FIFOs reads 0 from an empty receive FIFO, as QEMU does", () => {
  const u = setup();
  enableFifo(u);
  u.rx(0x7e);
  assert.equal(u.inb(REG.RBR), 0x7e);
  assert.equal(u.inb(REG.RBR), 0);
});

Deno.test("Uart16550 FIFO holds 16 bytes in order and refuses the rest", () => {
  const u = setup();
  enableFifo(u);
  assert.equal(u.uart.canReceive(), UART_FIFO_SIZE);
  const bytes = Array.from({ length: 20 }, (_, i) => 0x30 + i);
  assert.equal(u.rx(...bytes), 16);
  assert.equal(u.uart.canReceive(), 0);
  assert.equal(u.rx(0x99), 0);
  assert.equal(u.inb(REG.RBR), 0x30);
  assert.equal(u.uart.canReceive(), 1);
  assert.equal(u.rx(0x40, 0x41), 1);
  assert.deepEqual(drain(u), [...bytes.slice(1, 16), 0x40]);
  assert.equal(u.inb(REG.LSR) & LSR.OE, 0);
});

Deno.test("Uart16550 FIFO wraps around its ring many times without losing order", () => {
  const u = setup();
  enableFifo(u);
  const got: number[] = [];
  for (let i = 0; i < 100; i++) {
    u.rx(i & 0xff, (i + 1) & 0xff, (i + 2) & 0xff);
    got.push(u.inb(REG.RBR), u.inb(REG.RBR), u.inb(REG.RBR));
  }
  assert.deepEqual(got, Array.from({ length: 100 }, (_, i) => [i, i + 1, i + 2]).flat());
});

Deno.test("Uart16550 reports FIFOs enabled in IIR bits 6-7", () => {
  const u = setup();
  enableFifo(u);
  assert.equal(u.inb(REG.IIR), IIR.FIFOS_ENABLED | IIR.NO_INT);
  u.outb(REG.FCR, 0);
  assert.equal(u.inb(REG.IIR), IIR.NO_INT);
});

for (
  const [trigger, level] of [
    [FCR.TRIGGER_1, 1],
    [FCR.TRIGGER_4, 4],
    [FCR.TRIGGER_8, 8],
    [FCR.TRIGGER_14, 14],
  ] as const
) {
  Deno.test(
    `Uart16550 reports data available at the ${level}-byte trigger and timeout below it`,
    () => {
      const u = setup();
      u.outb(REG.MCR, MCR.OUT2);
      u.outb(REG.IER, IER.ERBFI);
      enableFifo(u, trigger);
      for (let count = 1; count <= UART_FIFO_SIZE; count++) {
        u.rx(count);
        const expected = count < level ? IIR.RX_TIMEOUT : IIR.RX_DATA;
        assert.equal(u.inb(REG.IIR), IIR.FIFOS_ENABLED | expected, `${count} bytes`);
        assert.equal(u.irq.level, true);
      }
      drain(u);
      assert.equal(u.inb(REG.IIR), IIR.FIFOS_ENABLED | IIR.NO_INT);
      assert.equal(u.irq.level, false);
    },
  );
}

Deno.test("Uart16550 FCR receive reset empties the receive FIFO and clears DR", () => {
  const u = setup();
  enableFifo(u);
  u.rx(1, 2, 3);
  u.outb(REG.FCR, FCR.FIFO_ENABLE | FCR.RX_RESET);
  assert.equal(u.inb(REG.LSR) & LSR.DR, 0);
  assert.equal(u.uart.canReceive(), UART_FIFO_SIZE);
  u.rx(4);
  assert.deepEqual(drain(u), [4]);
});

Deno.test("Uart16550 FCR transmit reset re-arms the THRE interrupt", () => {
  const u = setup();
  u.outb(REG.MCR, MCR.OUT2);
  enableFifo(u);
  u.outb(REG.IER, IER.ETBEI);
  u.inb(REG.IIR);
  u.outb(REG.FCR, FCR.FIFO_ENABLE | FCR.TX_RESET);
  assert.equal(u.irq.level, true);
  assert.equal(u.inb(REG.IIR), IIR.FIFOS_ENABLED | IIR.THRE);
});

Deno.test("Uart16550 ignores FCR reset bits written without FIFO enable", () => {
  const u = setup();
  u.rx(0x42);
  u.outb(REG.FCR, FCR.RX_RESET | FCR.TX_RESET | FCR.TRIGGER_14);
  assert.equal(u.inb(REG.LSR) & LSR.DR, LSR.DR);
  assert.equal(u.inb(REG.RBR), 0x42);
  assert.equal(u.inb(REG.IIR), IIR.NO_INT);
});

Deno.test("Uart16550 empties the receiver when FIFOs are switched on or off", () => {
  const u = setup();
  u.rx(1);
  enableFifo(u);
  assert.equal(u.inb(REG.LSR) & LSR.DR, 0);
  u.rx(2, 3);
  u.outb(REG.FCR, 0);
  assert.equal(u.inb(REG.LSR) & LSR.DR, 0);
  assert.equal(u.uart.canReceive(), 1);
});

Deno.test("Uart16550 keeps FIFO contents when FCR is rewritten with FIFOs still enabled", () => {
  const u = setup();
  enableFifo(u, FCR.TRIGGER_1);
  u.rx(1, 2);
  enableFifo(u, FCR.TRIGGER_8);
  assert.deepEqual(drain(u), [1, 2]);
});

Deno.test("Uart16550 calls onReceiveSpace once room appears after refusing bytes", () => {
  let calls = 0;
  const u = setup({ onReceiveSpace: () => calls++ });
  u.rx(1);
  u.inb(REG.RBR);
  assert.equal(calls, 0, "nothing was refused");
  u.rx(2, 3);
  assert.equal(calls, 0);
  u.inb(REG.RBR);
  assert.equal(calls, 1);
  u.inb(REG.RBR);
  assert.equal(calls, 1, "told once per refusal");
});

Deno.test("Uart16550 lets onReceiveSpace deliver more bytes from inside the RBR read", () => {
  const pending = [2, 3, 4];
  const late: { uart?: Uart16550 } = {};
  const u = setup({
    onReceiveSpace: () => pending.splice(0, late.uart!.receive(Uint8Array.from(pending))),
  });
  late.uart = u.uart;
  assert.equal(u.rx(1, ...pending), 1);
  assert.deepEqual(drain(u), [1, 2, 3, 4]);
  assert.deepEqual(pending, []);
});

Deno.test("Uart16550 calls onReceiveSpace after an FCR receive reset or a reset", () => {
  let calls = 0;
  const u = setup({ onReceiveSpace: () => calls++ });
  enableFifo(u);
  u.rx(...new Array(17).fill(0));
  u.outb(REG.FCR, FCR.FIFO_ENABLE | FCR.RX_RESET);
  assert.equal(calls, 1);
  u.rx(...new Array(17).fill(0));
  u.uart.reset();
  assert.equal(calls, 2);
});

// -- IRQ gating ----------------------------------------------------------------------------

Deno.test("Uart16550 holds its IRQ line low while MCR.OUT2 is clear", () => {
  const u = setup();
  u.outb(REG.IER, IER.ERBFI);
  u.rx(0x61);
  assert.equal(u.inb(REG.IIR), IIR.RX_DATA, "the interrupt is pending inside the UART");
  assert.equal(u.irq.level, false);
  u.outb(REG.MCR, MCR.OUT2);
  assert.equal(u.irq.level, true);
  u.outb(REG.MCR, MCR.DTR | MCR.RTS);
  assert.equal(u.irq.level, false);
  u.outb(REG.MCR, MCR.OUT2 | MCR.DTR | MCR.RTS);
  assert.equal(u.irq.level, true);
  assert.deepEqual(u.edges, [true, false, true]);
});

Deno.test("Uart16550 holds its IRQ line low in loopback mode even with OUT2 set", () => {
  const u = setup();
  u.outb(REG.IER, IER.ERBFI);
  u.outb(REG.MCR, MCR.OUT2 | MCR.LOOP);
  u.outb(REG.THR, 0x55);
  assert.equal(u.inb(REG.IIR), IIR.RX_DATA);
  assert.equal(u.irq.level, false);
  u.outb(REG.MCR, MCR.OUT2);
  assert.equal(u.irq.level, true);
});

// -- priorities ----------------------------------------------------------------------------

Deno.test("Uart16550 IIR ranks line status over data over THRE over modem status", () => {
  const u = setup();
  u.outb(REG.IER, 0x0f);
  // Loopback makes every source reachable from the guest side: an overrun, a byte, THRE, and
  // a modem status delta from toggling a looped-back output.
  u.outb(REG.MCR, MCR.LOOP);
  u.outb(REG.THR, 0x01);
  u.outb(REG.THR, 0x02);
  u.outb(REG.MCR, MCR.LOOP | MCR.RTS);
  assert.equal(u.inb(REG.IIR), IIR.LINE_STATUS);
  assert.equal(u.inb(REG.LSR), LSR.DR | LSR.OE | LSR.THRE | LSR.TEMT);
  assert.equal(u.inb(REG.IIR), IIR.RX_DATA);
  assert.equal(u.inb(REG.RBR), 0x02);
  assert.equal(u.inb(REG.IIR), IIR.THRE);
  assert.equal(u.inb(REG.IIR), IIR.MODEM_STATUS);
  // CTS dropped on entering loopback and came back with RTS; DSR and DCD just dropped.
  assert.equal(u.inb(REG.MSR) & 0x0f, MSR.DCTS | MSR.DDSR | MSR.DDCD);
  assert.equal(u.inb(REG.IIR), IIR.NO_INT);
});

// -- loopback and modem status -------------------------------------------------------------

Deno.test("Uart16550 loopback sends THR writes to its own receiver, not to the backend", () => {
  const u = setup();
  enableFifo(u);
  u.outb(REG.MCR, MCR.LOOP);
  u.outb(REG.THR, 0x10);
  u.outb(REG.THR, 0x20);
  assert.deepEqual(u.sent, []);
  assert.deepEqual(drain(u), [0x10, 0x20]);
  u.outb(REG.MCR, 0);
  u.outb(REG.THR, 0x30);
  assert.deepEqual(u.sent, [0x30]);
});

Deno.test("Uart16550 loopback disconnects the serial input from the backend", () => {
  const u = setup();
  enableFifo(u);
  u.outb(REG.MCR, MCR.LOOP);
  assert.equal(u.uart.canReceive(), 0);
  assert.equal(u.rx(1, 2), 0);
  u.outb(REG.MCR, 0);
  assert.equal(u.rx(1, 2), 2);
});

Deno.test("Uart16550 loopback tells a refused backend when the input reconnects", () => {
  let calls = 0;
  const u = setup({ onReceiveSpace: () => calls++ });
  u.outb(REG.MCR, MCR.LOOP);
  u.rx(1);
  u.outb(REG.MCR, MCR.LOOP | MCR.DTR);
  assert.equal(calls, 0);
  u.outb(REG.MCR, 0);
  assert.equal(calls, 1);
});

Deno.test("Uart16550 loopback shows DTR, RTS, OUT1, OUT2 as DSR, CTS, RI, DCD in MSR", () => {
  const u = setup();
  const cases = [
    [MCR.DTR, MSR.DSR],
    [MCR.RTS, MSR.CTS],
    [MCR.OUT1, MSR.RI],
    [MCR.OUT2, MSR.DCD],
    [0, 0],
    [0x0f, 0xf0],
  ] as const;
  for (const [outputs, inputs] of cases) {
    u.outb(REG.MCR, MCR.LOOP | outputs);
    assert.equal(u.inb(REG.MSR) & 0xf0, inputs, `MCR 0x${outputs.toString(16)}`);
  }
});

Deno.test("Uart16550 passes the Linux and Xen loopback probe (MCR 0x1a reads MSR 0x90)", () => {
  const u = setup();
  u.outb(REG.MCR, MCR.LOOP | MCR.RTS | MCR.OUT2);
  assert.equal(u.inb(REG.MSR) & 0xf0, MSR.CTS | MSR.DCD);
});

Deno.test("Uart16550 latches MSR delta bits on looped-back changes and clears them on read", () => {
  const u = setup();
  u.outb(REG.MCR, MCR.LOOP | 0x0f);
  u.inb(REG.MSR);
  u.outb(REG.MCR, MCR.LOOP);
  assert.equal(u.inb(REG.MSR), MSR.DCTS | MSR.DDSR | MSR.TERI | MSR.DDCD);
  assert.equal(u.inb(REG.MSR), 0);
  u.outb(REG.MCR, MCR.LOOP | MCR.OUT1);
  assert.equal(u.inb(REG.MSR), MSR.RI, "RI rising is not a trailing edge");
  u.outb(REG.MCR, MCR.LOOP);
  assert.equal(u.inb(REG.MSR), MSR.TERI);
});

Deno.test("Uart16550 latches deltas for the external lines loopback disconnects", () => {
  const u = setup();
  u.outb(REG.MCR, MCR.LOOP | MCR.DTR | MCR.RTS | MCR.OUT2);
  assert.equal(u.inb(REG.MSR), MSR.DCD | MSR.DSR | MSR.CTS, "same levels, no deltas");
  u.outb(REG.MCR, MCR.LOOP);
  assert.equal(u.inb(REG.MSR), MSR.DDCD | MSR.DDSR | MSR.DCTS);
  u.outb(REG.MCR, 0);
  assert.equal(u.inb(REG.MSR), MSR.DCD | MSR.DSR | MSR.CTS | MSR.DDCD | MSR.DDSR | MSR.DCTS);
});

Deno.test("Uart16550 raises a modem status interrupt when EDSSI is set and a delta latches", () => {
  const u = setup();
  u.outb(REG.IER, IER.EDSSI);
  u.outb(REG.MCR, MCR.LOOP);
  u.inb(REG.MSR);
  assert.equal(u.inb(REG.IIR), IIR.NO_INT);
  u.outb(REG.MCR, MCR.LOOP | MCR.DTR);
  assert.equal(u.inb(REG.IIR), IIR.MODEM_STATUS);
  u.inb(REG.MSR);
  assert.equal(u.inb(REG.IIR), IIR.NO_INT);
});

Deno.test("Uart16550 overruns in loopback without FIFOs by overwriting RBR and setting OE", () => {
  const u = setup();
  u.outb(REG.MCR, MCR.LOOP | MCR.OUT2);
  u.outb(REG.THR, 0x01);
  u.outb(REG.THR, 0x02);
  assert.equal(u.inb(REG.LSR), LSR.DR | LSR.OE | LSR.THRE | LSR.TEMT);
  assert.equal(u.inb(REG.LSR), LSR.DR | LSR.THRE | LSR.TEMT, "reading LSR clears OE");
  assert.equal(u.inb(REG.RBR), 0x02);
});

Deno.test("Uart16550 overruns in loopback with FIFOs by dropping the new byte", () => {
  const u = setup();
  enableFifo(u);
  u.outb(REG.IER, IER.ELSI);
  u.outb(REG.MCR, MCR.LOOP);
  for (let i = 0; i < 17; i++) u.outb(REG.THR, i);
  assert.equal(u.inb(REG.IIR), IIR.FIFOS_ENABLED | IIR.LINE_STATUS);
  assert.equal(u.inb(REG.LSR) & LSR.OE, LSR.OE);
  assert.equal(u.inb(REG.IIR), IIR.FIFOS_ENABLED | IIR.NO_INT);
  assert.deepEqual(drain(u), Array.from({ length: 16 }, (_, i) => i));
});

// -- access sizes --------------------------------------------------------------------------

Deno.test("Uart16550 splits word and doubleword accesses into byte registers", () => {
  const u = setup();
  u.bus.write(BASE + REG.LCR, 0x0b03, 2);
  assert.equal(u.inb(REG.LCR), 0x03);
  assert.equal(u.inb(REG.MCR), 0x0b);
  u.outb(REG.SCR, 0x5a);
  assert.equal(u.bus.read(BASE + REG.MSR, 2), 0x5ab0);
  assert.equal(u.bus.read(BASE + REG.MCR, 4), 0x5ab0600b);
  assert.equal(u.bus.read(BASE + REG.SCR, 4), 0xffffff5a, "bytes past offset 7 float high");
  u.bus.write(BASE + REG.SCR, 0x12345677, 4);
  assert.equal(u.inb(REG.SCR), 0x77);
  assert.deepEqual(u.messages, [], "the UART owns the whole straddling access");
});

Deno.test("Uart16550 word write at THR transmits the low byte and sets IER from the high", () => {
  const u = setup();
  u.bus.write(BASE + REG.THR, 0x0341, 2);
  assert.deepEqual(u.sent, [0x41]);
  assert.equal(u.inb(REG.IER), 0x03);
});

// -- robustness ----------------------------------------------------------------------------

// mulberry32: small, seedable, good enough to explore register sequences reproducibly.

Deno.test("Uart16550 survives random register reads and writes with invariants intact", () => {
  const SIZES: readonly AccessSize[] = [1, 1, 1, 2, 4];
  for (const seed of [1, 2, 3, 0xc0ffee]) {
    const random = prng(seed);
    const int = (n: number) => Math.floor(random() * n);
    const badBytes: number[] = [];
    const irq = new IrqLine("irq4");
    const uart = new Uart16550({
      irq,
      transmit: (byte) => {
        if (!Number.isInteger(byte) || byte < 0 || byte > 0xff) badBytes.push(byte);
      },
    });
    const bus = new IoBus({ log: () => {} });
    bus.attach(BASE, UART_PORT_COUNT, uart);
    const context = () => `seed ${seed}`;

    for (let step = 0; step < 5000; step++) {
      const choice = int(10);
      // Ports one past either end of the UART are included: they must read as all ones.
      const port = BASE - 1 + int(UART_PORT_COUNT + 2);
      const size = SIZES[int(SIZES.length)];
      if (choice < 4) {
        // Favour small values sometimes so bits like DLAB and LOOP get cleared as well as set.
        const value = int(2) === 0 ? int(0x100) : int(0x1_0000_0000);
        bus.write(port, value, size);
      } else if (choice < 8) {
        const value = bus.read(port, size);
        const max = size === 1 ? 0xff : size === 2 ? 0xffff : 0xffffffff;
        assert.ok(Number.isInteger(value) && value >= 0 && value <= max, context());
      } else {
        const before = uart.canReceive();
        const bytes = Uint8Array.from({ length: int(20) }, () => int(256));
        const accepted = uart.receive(bytes);
        assert.equal(accepted, Math.min(before, bytes.length), context());
      }

      const room = uart.canReceive();
      assert.ok(room >= 0 && room <= UART_FIFO_SIZE, `${context()}: canReceive ${room}`);

      if (step % 37 === 0) {
        const lsr = bus.read(BASE + REG.LSR, 1);
        assert.equal(lsr & (LSR.THRE | LSR.TEMT), LSR.THRE | LSR.TEMT, context());
        assert.equal(lsr & LSR.RX_FIFO_ERROR, 0, context());
        // The line must agree with IIR (sampled before the read's own side effect) and MCR.
        const mcr = bus.read(BASE + REG.MCR, 1);
        const level = irq.level;
        const iir = bus.read(BASE + REG.IIR, 1);
        assert.equal(iir & 0x30, 0, `${context()}: IIR 0x${iir.toString(16)}`);
        assert.ok((iir & 0xc0) === 0 || (iir & 0xc0) === 0xc0, context());
        if ((iir & IIR.NO_INT) !== 0) assert.equal(iir & IIR.ID_MASK, 0, context());
        const pending = (iir & IIR.NO_INT) === 0;
        const gated = (mcr & (MCR.OUT2 | MCR.LOOP)) === MCR.OUT2;
        assert.equal(level, pending && gated, `${context()}: IIR 0x${iir.toString(16)}`);
      }

      if (step % 499 === 0) {
        // Drain through the ports with DLAB clear; the receiver can never hold more than 16.
        const lcr = bus.read(BASE + REG.LCR, 1);
        bus.write(BASE + REG.LCR, lcr & ~LCR.DLAB, 1);
        let count = 0;
        while ((bus.read(BASE + REG.LSR, 1) & LSR.DR) !== 0) {
          bus.read(BASE + REG.RBR, 1);
          count++;
          assert.ok(count <= UART_FIFO_SIZE, `${context()}: more than 16 bytes queued`);
        }
        const loopback = (bus.read(BASE + REG.MCR, 1) & MCR.LOOP) !== 0;
        assert.ok(loopback || uart.canReceive() > 0, `${context()}: drained yet full`);
        bus.write(BASE + REG.LCR, lcr, 1);
      }
    }
    assert.deepEqual(badBytes, [], context());
  }
});
