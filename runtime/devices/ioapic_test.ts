import assert from "node:assert/strict";
import { ManualClock } from "./device_clock.ts";
import {
  IoApic,
  IOAPIC_DELIVERY_MODE,
  IOAPIC_INDEX,
  IOAPIC_MMIO_SIZE,
  IOAPIC_PIN_COUNT,
  IOAPIC_REG,
  IOAPIC_VERSION,
  REDIRECTION,
} from "./ioapic.ts";
import { IrqLine } from "./irq_line.ts";
import { LAPIC_REG, LocalApic, SVR } from "./local_apic.ts";
import type { AccessSize } from "./port_device.ts";
import { seededRandom as prng } from "../seeded_random.ts";

interface Message {
  vector: number;
  level: boolean;
  destination: number;
  logical: boolean;
}

// An I/O APIC whose messages and log lines are recorded, with indirect register helpers.
function setup() {
  const sent: Message[] = [];
  const messages: string[] = [];
  const ioapic = new IoApic({
    name: "ioapic0",
    deliver: (vector, level, destination, logical) =>
      sent.push({ vector, level, destination, logical }),
    log: (message) => messages.push(message),
  });
  const readReg = (index: number) => {
    ioapic.write(IOAPIC_REG.IOREGSEL, index, 4);
    return ioapic.read(IOAPIC_REG.IOWIN, 4);
  };
  const writeReg = (index: number, value: number) => {
    ioapic.write(IOAPIC_REG.IOREGSEL, index, 4);
    ioapic.write(IOAPIC_REG.IOWIN, value, 4);
  };
  const entryIndex = (pin: number) => IOAPIC_INDEX.REDIRECTION_TABLE + 2 * pin;
  // Program a redirection entry: high dword first, as kernels do, so the low dword (with the
  // mask bit) takes effect last.
  const program = (pin: number, low: number, high = 0) => {
    writeReg(entryIndex(pin) + 1, high);
    writeReg(entryIndex(pin), low);
  };
  const low = (pin: number) => readReg(entryIndex(pin));
  const high = (pin: number) => readReg(entryIndex(pin) + 1);
  const vectors = () => sent.map((m) => m.vector);
  return { ioapic, sent, messages, readReg, writeReg, program, low, high, vectors };
}

const LEVEL = REDIRECTION.LEVEL_TRIGGERED;
const MASKED = REDIRECTION.MASKED;

// -- power-on state and registers ----------------------------------------------------------

Deno.test("IoApic powers on with ID 0, version 0x20, 24 entries, every entry masked", () => {
  const x = setup();
  assert.equal(x.ioapic.name, "ioapic0");
  assert.equal(x.ioapic.size, IOAPIC_MMIO_SIZE);
  assert.equal(x.ioapic.read(IOAPIC_REG.IOREGSEL, 4), 0);
  assert.equal(x.readReg(IOAPIC_INDEX.ID), 0);
  assert.equal(x.readReg(IOAPIC_INDEX.VERSION), 0x00170020);
  assert.equal(IOAPIC_VERSION, 0x00170020);
  assert.equal(x.readReg(IOAPIC_INDEX.ARBITRATION), 0);
  for (let pin = 0; pin < IOAPIC_PIN_COUNT; pin++) {
    assert.equal(x.low(pin), MASKED, `pin ${pin}`);
    assert.equal(x.high(pin), 0);
  }
  assert.deepEqual(x.sent, []);
  assert.deepEqual(x.messages, []);
});

Deno.test("IoApic defaults to the name ioapic and names its input lines after it", () => {
  const ioapic = new IoApic({ deliver: () => {} });
  assert.equal(ioapic.name, "ioapic");
  assert.equal(ioapic.input(4).name, "ioapic.intin4");
});

Deno.test("IoApic IOREGSEL keeps its low byte and answers reads of any width", () => {
  const x = setup();
  x.ioapic.write(IOAPIC_REG.IOREGSEL, 0x12345601, 4);
  assert.equal(x.ioapic.read(IOAPIC_REG.IOREGSEL, 4), 0x01);
  x.ioapic.write(IOAPIC_REG.IOREGSEL, 0x10, 1);
  assert.equal(x.ioapic.read(IOAPIC_REG.IOREGSEL, 1), 0x10);
  assert.equal(x.ioapic.read(IOAPIC_REG.IOWIN, 4), MASKED, "byte-wide select works");
});

Deno.test("IoApic ID keeps bits 24-27 and the arbitration ID follows it", () => {
  const x = setup();
  x.writeReg(IOAPIC_INDEX.ID, 0xffffffff);
  assert.equal(x.readReg(IOAPIC_INDEX.ID), 0x0f000000);
  assert.equal(x.readReg(IOAPIC_INDEX.ARBITRATION), 0x0f000000);
});

Deno.test("IoApic ignores writes to IOAPICVER and IOAPICARB and logs each once", () => {
  const x = setup();
  x.writeReg(IOAPIC_INDEX.VERSION, 0);
  x.writeReg(IOAPIC_INDEX.VERSION, 0);
  x.writeReg(IOAPIC_INDEX.ARBITRATION, 0x0f000000);
  assert.equal(x.readReg(IOAPIC_INDEX.VERSION), IOAPIC_VERSION);
  assert.equal(x.readReg(IOAPIC_INDEX.ARBITRATION), 0);
  assert.equal(x.messages.length, 2, x.messages.join("\n"));
});

Deno.test("IoApic redirection entries keep their defined bits and protect read-only ones", () => {
  const x = setup();
  x.program(5, 0xffffffff, 0xffffffff);
  // Everything but Delivery Status (12), Remote IRR (14) and reserved bits 17-31.
  assert.equal(x.low(5), 0x1afff);
  assert.equal(x.high(5), 0xff000000, "only the destination field of the high dword");
  x.writeReg(IOAPIC_INDEX.REDIRECTION_TABLE + 2 * 5, 0);
  assert.equal(x.low(5), 0);
  assert.equal(x.high(5), 0xff000000, "the halves are written separately");
  assert.equal(x.low(4), MASKED, "neighbours untouched");
  assert.equal(x.low(6), MASKED);
});

Deno.test("IoApic reaches all 24 entries through indices 0x10-0x3f", () => {
  const x = setup();
  for (let pin = 0; pin < IOAPIC_PIN_COUNT; pin++) x.program(pin, MASKED | (0x20 + pin), pin << 24);
  for (let pin = 0; pin < IOAPIC_PIN_COUNT; pin++) {
    assert.equal(x.low(pin), MASKED | (0x20 + pin));
    assert.equal(x.high(pin), (pin << 24) >>> 0);
  }
});

Deno.test("IoApic reads unassigned register indices as 0 and ignores writes to them", () => {
  const x = setup();
  for (const index of [0x03, 0x0f, 0x40, 0xff]) {
    x.writeReg(index, 0xffffffff);
    assert.equal(x.readReg(index), 0, `index 0x${index.toString(16)}`);
  }
  assert.equal(x.messages.length, 8, "one read and one write message per index");
});

Deno.test("IoApic IOWIN ignores accesses narrower than 32 bits, as QEMU does", () => {
  const x = setup();
  x.ioapic.write(IOAPIC_REG.IOREGSEL, IOAPIC_INDEX.REDIRECTION_TABLE, 4);
  x.ioapic.write(IOAPIC_REG.IOWIN, 0x30, 1);
  x.ioapic.write(IOAPIC_REG.IOWIN, 0x30, 2);
  assert.equal(x.ioapic.read(IOAPIC_REG.IOWIN, 2), 0);
  assert.equal(x.ioapic.read(IOAPIC_REG.IOWIN, 4), MASKED);
  assert.equal(x.messages.length, 3);
});

Deno.test("IoApic reads other offsets as 0 and ignores writes to them", () => {
  const x = setup();
  x.ioapic.write(0x04, 0x12, 4);
  x.ioapic.write(0x14, 0x12, 4);
  assert.equal(x.ioapic.read(0x04, 4), 0);
  assert.equal(x.ioapic.read(0x1c, 4), 0);
  assert.equal(x.ioapic.read(IOAPIC_REG.IOREGSEL, 4), 0);
  assert.equal(x.messages.length, 4);
});

Deno.test("IoApic.reset() masks every entry, clears Remote IRR, ID and IOREGSEL", () => {
  const x = setup();
  x.writeReg(IOAPIC_INDEX.ID, 0x05000000);
  x.program(9, LEVEL | 0x39, 0x01000000);
  x.ioapic.input(9).raise();
  assert.equal(x.low(9) & REDIRECTION.REMOTE_IRR, REDIRECTION.REMOTE_IRR);
  x.ioapic.write(IOAPIC_REG.IOREGSEL, 0x12, 4);
  x.ioapic.reset();
  assert.equal(x.ioapic.read(IOAPIC_REG.IOREGSEL, 4), 0);
  assert.equal(x.readReg(IOAPIC_INDEX.ID), 0);
  assert.equal(x.low(9), MASKED);
  assert.equal(x.high(9), 0);
  assert.equal(x.ioapic.input(9).level, true, "reset does not touch the wires");
  assert.equal(x.sent.length, 1);
});

// -- inputs --------------------------------------------------------------------------------

Deno.test("IoApic.input() returns the same line for a pin and rejects pins outside 0..23", () => {
  const x = setup();
  assert.equal(x.ioapic.input(3), x.ioapic.input(3));
  assert.notEqual(x.ioapic.input(3), x.ioapic.input(4));
  assert.throws(() => x.ioapic.input(24), RangeError);
  assert.throws(() => x.ioapic.input(-1), RangeError);
  assert.throws(() => x.ioapic.input(1.5), RangeError);
});

Deno.test("IoApic sends an edge-triggered interrupt once per rising edge", () => {
  const x = setup();
  x.program(4, 0x24);
  const line = x.ioapic.input(4);
  line.raise();
  assert.deepEqual(x.sent, [{ vector: 0x24, level: false, destination: 0, logical: false }]);
  line.raise();
  line.lower();
  assert.equal(x.sent.length, 1, "holding or dropping the line sends nothing");
  line.pulse();
  assert.equal(x.sent.length, 2);
  assert.equal(x.low(4) & REDIRECTION.REMOTE_IRR, 0, "edge entries never set Remote IRR");
});

Deno.test("IoApic forgets an edge on a masked pin, even after unmasking", () => {
  const x = setup();
  x.program(4, MASKED | 0x24);
  const line = x.ioapic.input(4);
  line.raise();
  x.program(4, 0x24);
  assert.deepEqual(x.sent, [], "the edge happened while masked");
  line.lower();
  line.raise();
  assert.deepEqual(x.vectors(), [0x24]);
});

Deno.test("IoApic sends a level-triggered interrupt and sets Remote IRR until the EOI", () => {
  const x = setup();
  x.program(10, LEVEL | 0x3a);
  const line = x.ioapic.input(10);
  line.raise();
  assert.deepEqual(x.sent, [{ vector: 0x3a, level: true, destination: 0, logical: false }]);
  assert.equal(x.low(10), LEVEL | REDIRECTION.REMOTE_IRR | 0x3a);
  line.lower();
  line.raise();
  assert.equal(x.sent.length, 1, "no new message while Remote IRR is set");
  x.ioapic.endOfInterrupt(0x3a);
  assert.equal(x.sent.length, 2, "still asserted after the EOI: sent again");
  assert.equal(x.low(10) & REDIRECTION.REMOTE_IRR, REDIRECTION.REMOTE_IRR);
  line.lower();
  x.ioapic.endOfInterrupt(0x3a);
  assert.equal(x.sent.length, 2, "deasserted by the EOI: nothing more");
  assert.equal(x.low(10) & REDIRECTION.REMOTE_IRR, 0);
  line.raise();
  assert.equal(x.sent.length, 3);
});

Deno.test("IoApic EOI for another vector leaves Remote IRR alone", () => {
  const x = setup();
  x.program(10, LEVEL | 0x3a);
  x.program(11, 0x3b);
  x.ioapic.input(10).raise();
  x.ioapic.endOfInterrupt(0x3b);
  assert.equal(x.low(10) & REDIRECTION.REMOTE_IRR, REDIRECTION.REMOTE_IRR);
  assert.equal(x.sent.length, 1);
});

Deno.test("IoApic EOI clears Remote IRR on every level entry sharing the vector", () => {
  const x = setup();
  x.program(16, LEVEL | 0x50);
  x.program(17, LEVEL | 0x50);
  x.ioapic.input(16).raise();
  x.ioapic.input(17).raise();
  assert.equal(x.sent.length, 2);
  x.ioapic.input(16).lower();
  x.ioapic.input(17).lower();
  x.ioapic.endOfInterrupt(0x50);
  assert.equal(x.low(16) & REDIRECTION.REMOTE_IRR, 0);
  assert.equal(x.low(17) & REDIRECTION.REMOTE_IRR, 0);
});

Deno.test("IoApic sends at once when a level entry is unmasked with its line asserted", () => {
  const x = setup();
  x.program(11, MASKED | LEVEL | 0x3b);
  const line = x.ioapic.input(11);
  line.raise();
  assert.deepEqual(x.sent, []);
  assert.equal(x.low(11) & REDIRECTION.REMOTE_IRR, 0, "a masked level pin has no side effect");
  x.program(11, LEVEL | 0x3b);
  assert.deepEqual(x.vectors(), [0x3b]);
});

Deno.test("IoApic sends nothing when a level entry is unmasked with its line deasserted", () => {
  const x = setup();
  x.program(11, MASKED | LEVEL | 0x3b);
  const line = x.ioapic.input(11);
  line.raise();
  line.lower();
  x.program(11, LEVEL | 0x3b);
  assert.deepEqual(x.sent, []);
});

Deno.test("IoApic keeps Remote IRR across masking, so unmasking does not resend early", () => {
  const x = setup();
  x.program(12, LEVEL | 0x3c);
  x.ioapic.input(12).raise();
  x.program(12, MASKED | LEVEL | 0x3c);
  assert.equal(x.low(12) & REDIRECTION.REMOTE_IRR, REDIRECTION.REMOTE_IRR);
  x.program(12, LEVEL | 0x3c);
  assert.equal(x.sent.length, 1);
  x.ioapic.endOfInterrupt(0x3c);
  assert.equal(x.sent.length, 2);
});

Deno.test("IoApic clears Remote IRR when an entry is rewritten as edge-triggered", () => {
  // Linux's __eoi_ioapic_pin without an EOI register: mask, set edge, set level, unmask.
  const x = setup();
  x.program(13, LEVEL | 0x3d);
  const line = x.ioapic.input(13);
  line.raise();
  x.program(13, MASKED | 0x3d);
  assert.equal(x.low(13) & REDIRECTION.REMOTE_IRR, 0);
  x.program(13, MASKED | LEVEL | 0x3d);
  x.program(13, LEVEL | 0x3d);
  assert.equal(x.sent.length, 2, "the still-asserted line is sent again");
});

Deno.test("IoApic passes the destination field and mode to deliver", () => {
  const x = setup();
  x.program(1, REDIRECTION.DESTINATION_LOGICAL | 0x21, 0x03000000);
  x.program(2, IOAPIC_DELIVERY_MODE.LOWEST_PRIORITY << 8 | 0x22, 0xff000000);
  x.ioapic.input(1).raise();
  x.ioapic.input(2).raise();
  assert.deepEqual(x.sent, [
    { vector: 0x21, level: false, destination: 0x03, logical: true },
    { vector: 0x22, level: false, destination: 0xff, logical: false },
  ]);
});

Deno.test("IoApic logs SMI, NMI, INIT and ExtINT entries as unsupported and sends nothing", () => {
  const x = setup();
  const modes = [
    IOAPIC_DELIVERY_MODE.SMI,
    IOAPIC_DELIVERY_MODE.NMI,
    IOAPIC_DELIVERY_MODE.INIT,
    IOAPIC_DELIVERY_MODE.EXTINT,
    3,
  ];
  modes.forEach((mode, pin) => {
    x.program(pin, mode << 8 | LEVEL | 0x20);
    x.ioapic.input(pin).raise();
    x.ioapic.input(pin).lower();
    x.ioapic.input(pin).raise();
    assert.equal(x.low(pin) & REDIRECTION.REMOTE_IRR, 0, "no Remote IRR left stuck");
  });
  assert.deepEqual(x.sent, []);
  assert.equal(x.messages.length, modes.length, x.messages.join("\n"));
  for (const name of ["SMI", "NMI", "INIT", "ExtINT", "reserved"]) {
    assert.ok(x.messages.some((m) => m.includes(name)), name);
  }
});

Deno.test("IoApic.endOfInterrupt() rejects vectors outside 0..255", () => {
  const x = setup();
  assert.throws(() => x.ioapic.endOfInterrupt(256), RangeError);
  assert.throws(() => x.ioapic.endOfInterrupt(-1), RangeError);
});

// -- with a local APIC ---------------------------------------------------------------------

// The board's wiring: messages reach the one local APIC if it matches the destination, and
// its level EOIs come back to the I/O APIC.
function board(apicId = 0) {
  const intr = new IrqLine("intr");
  const late: { ioapic?: IoApic } = {};
  const apic = new LocalApic({
    clock: new ManualClock(),
    id: apicId,
    intr,
    onLevelEoi: (vector) => late.ioapic!.endOfInterrupt(vector),
    log: () => {},
  });
  const ioapic = new IoApic({
    deliver: (vector, level, destination, logical) => {
      if (apic.matchesDestination(destination, logical)) apic.acceptInterrupt(vector, level);
    },
    log: () => {},
  });
  late.ioapic = ioapic;
  apic.write(LAPIC_REG.SVR, SVR.APIC_ENABLED | 0xff, 4);
  const program = (pin: number, low: number, high: number) => {
    ioapic.write(IOAPIC_REG.IOREGSEL, IOAPIC_INDEX.REDIRECTION_TABLE + 2 * pin + 1, 4);
    ioapic.write(IOAPIC_REG.IOWIN, high, 4);
    ioapic.write(IOAPIC_REG.IOREGSEL, IOAPIC_INDEX.REDIRECTION_TABLE + 2 * pin, 4);
    ioapic.write(IOAPIC_REG.IOWIN, low, 4);
  };
  const remoteIrr = (pin: number) => {
    ioapic.write(IOAPIC_REG.IOREGSEL, IOAPIC_INDEX.REDIRECTION_TABLE + 2 * pin, 4);
    return (ioapic.read(IOAPIC_REG.IOWIN, 4) & REDIRECTION.REMOTE_IRR) !== 0;
  };
  return { apic, ioapic, intr, program, remoteIrr };
}

Deno.test("IoApic and LocalApic run a level-triggered interrupt through to its EOI", () => {
  const b = board();
  b.program(9, LEVEL | 0x49, 0);
  const line = b.ioapic.input(9);
  line.raise();
  assert.equal(b.intr.level, true);
  assert.equal(b.apic.acknowledge(), 0x49);
  assert.equal(b.remoteIrr(9), true);
  // The handler leaves the device asserting, then EOIs: the interrupt comes back.
  b.apic.write(LAPIC_REG.EOI, 0, 4);
  assert.equal(b.intr.level, true);
  assert.equal(b.apic.acknowledge(), 0x49);
  // This time the handler quiets the device first.
  line.lower();
  b.apic.write(LAPIC_REG.EOI, 0, 4);
  assert.equal(b.intr.level, false);
  assert.equal(b.remoteIrr(9), false);
});

Deno.test("IoApic messages reach the CPU only for its APIC ID or the broadcast address", () => {
  const b = board(1);
  b.program(3, 0x33, 0x01000000);
  b.program(4, 0x34, 0x02000000);
  b.program(5, 0x35, 0xff000000);
  for (const pin of [3, 4, 5]) b.ioapic.input(pin).pulse();
  const vectors: number[] = [];
  while (b.apic.hasInterrupt()) {
    vectors.push(b.apic.acknowledge());
    b.apic.write(LAPIC_REG.EOI, 0, 4);
  }
  assert.deepEqual(vectors, [0x35, 0x33]);
});

// -- robustness ----------------------------------------------------------------------------

// mulberry32: small, seedable, good enough to explore register sequences reproducibly.

Deno.test("IoApic survives random register writes and input changes with invariants intact", () => {
  const SIZES: readonly AccessSize[] = [4, 4, 4, 1, 2];
  for (const seed of [1, 2, 3, 0xc0ffee]) {
    const random = prng(seed);
    const int = (n: number) => Math.floor(random() * n);
    const x = setup();
    const context = () => `seed ${seed}`;
    for (let step = 0; step < 5000; step++) {
      const choice = int(10);
      const size = SIZES[int(SIZES.length)];
      if (choice < 2) {
        // Mostly valid indices, sometimes anything.
        const index = int(4) === 0 ? int(0x100) : int(0x40);
        x.ioapic.write(IOAPIC_REG.IOREGSEL, index, size);
      } else if (choice < 4) {
        const value = int(2) === 0 ? int(0x20000) : int(0x1_0000_0000);
        x.ioapic.write(int(5) === 0 ? int(IOAPIC_MMIO_SIZE) : IOAPIC_REG.IOWIN, value, size);
      } else if (choice < 6) {
        const value = x.ioapic.read(int(3) === 0 ? int(IOAPIC_MMIO_SIZE) : IOAPIC_REG.IOWIN, size);
        assert.ok(Number.isInteger(value) && value >= 0 && value <= 0xffffffff, context());
      } else if (choice < 9) {
        x.ioapic.input(int(IOAPIC_PIN_COUNT)).set(int(2) === 0);
      } else {
        x.ioapic.endOfInterrupt(int(256));
      }
      for (const m of x.sent) {
        assert.ok(m.vector >= 0 && m.vector <= 0xff, context());
        assert.ok(m.destination >= 0 && m.destination <= 0xff, context());
      }
      x.sent.length = 0;
    }
    // Invariants: reserved bits read 0, Remote IRR only on level entries, and an EOI for every
    // vector leaves no level entry with its line asserted, unmasked and unsent.
    const selected = x.ioapic.read(IOAPIC_REG.IOREGSEL, 4);
    for (let pin = 0; pin < IOAPIC_PIN_COUNT; pin++) {
      const low = x.low(pin);
      assert.equal(low & ~0x1ffff, 0, context());
      assert.equal(low & REDIRECTION.DELIVERY_STATUS, 0, context());
      if ((low & LEVEL) === 0) assert.equal(low & REDIRECTION.REMOTE_IRR, 0, context());
      assert.equal(x.high(pin) & 0x00ffffff, 0, context());
    }
    x.ioapic.write(IOAPIC_REG.IOREGSEL, selected, 4);
    x.ioapic.reset();
    for (let pin = 0; pin < IOAPIC_PIN_COUNT; pin++) assert.equal(x.low(pin), MASKED, context());
  }
});
