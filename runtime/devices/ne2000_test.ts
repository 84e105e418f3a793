import assert from "node:assert/strict";
import { IrqLine } from "./irq_line.ts";
import { Ne2000 } from "./ne2000.ts";

const MAC = new Uint8Array([0x52, 0x54, 0x00, 0x12, 0x34, 0x56]);

function card() {
  const irq = new IrqLine("nic");
  const sent: Uint8Array[] = [];
  const nic = new Ne2000({ mac: MAC, irq, transmit: (f) => sent.push(f) });
  const w = (reg: number, v: number) => nic.write(reg, v, 1);
  const r = (reg: number) => nic.read(reg, 1);
  /** The init sequence of Linux's 8390.c, ring 0x46..0x80 (PSTART/PSTOP), TX at 0x40. */
  const start = (pstart = 0x46, pstop = 0x80) => {
    w(0x00, 0x21); // stop, abort DMA, page 0
    w(0x0e, 0x49); // DCR: word transfers, FIFO 8
    w(0x0a, 0);
    w(0x0b, 0);
    w(0x0c, 0x04); // RCR: broadcast
    w(0x0d, 0x02); // TCR: internal loopback while configuring
    w(0x01, pstart);
    w(0x03, pstart);
    w(0x02, pstop);
    w(0x07, 0xff);
    w(0x0f, 0x00);
    w(0x00, 0x61); // page 1
    MAC.forEach((b, i) => w(0x01 + i, b));
    w(0x07, pstart + 1); // CURR
    w(0x00, 0x22); // page 0, start
    w(0x0d, 0x00);
    w(0x0f, 0x3f);
  };
  const remoteRead = (address: number, count: number) => {
    w(0x0a, count & 0xff);
    w(0x0b, count >> 8);
    w(0x08, address & 0xff);
    w(0x09, address >> 8);
    w(0x00, 0x0a);
    const out: number[] = [];
    for (let i = 0; i < count; i += 2) {
      const v = nic.read(0x10, 2);
      out.push(v & 0xff, v >> 8);
    }
    return out.slice(0, count);
  };
  return { nic, irq, sent, w, r, start, remoteRead };
}

function frame(dst: Uint8Array, length: number, fill: number): Uint8Array {
  const f = new Uint8Array(length);
  f.set(dst);
  f.set([2, 0, 0, 0, 0, 9], 6);
  f[12] = 0x08;
  f[13] = 0x00;
  for (let i = 14; i < length; i++) f[i] = (fill + i) & 0xff;
  return f;
}

Deno.test("NE2000: after reset ISR shows RST, the PROM holds the MAC doubled and 'WW'", () => {
  const { nic, r, w } = card();
  assert.equal(r(0x07) & 0x80, 0x80);
  nic.read(0x1f, 1); // reset port
  w(0x0e, 0x48); // byte mode
  w(0x0a, 32);
  w(0x08, 0);
  w(0x00, 0x0a);
  const prom = Array.from({ length: 32 }, () => nic.read(0x10, 1));
  assert.deepEqual(prom.filter((_, i) => i % 2 === 0).slice(0, 6), [...MAC]);
  assert.equal(prom[28], 0x57);
  assert.equal(r(0x07) & 0x40, 0x40, "RDC after the count ran out");
});

Deno.test("NE2000: remote DMA write then read round-trips through card memory", () => {
  const { nic, w, start, remoteRead, r } = card();
  start();
  w(0x07, 0xff);
  w(0x0a, 8);
  w(0x0b, 0);
  w(0x08, 0x00);
  w(0x09, 0x40);
  w(0x00, 0x12); // remote write
  nic.write(0x10, 0x04030201, 4);
  nic.write(0x10, 0x0807, 2);
  nic.write(0x10, 0x0a09, 2);
  assert.equal(r(0x07) & 0x40, 0x40);
  assert.deepEqual(remoteRead(0x4000, 8), [1, 2, 3, 4, 7, 8, 9, 10]);
});

Deno.test("NE2000: transmit sends TBCR bytes from TPSR, sets PTX and raises the IRQ", () => {
  const { nic, w, start, sent, irq, r } = card();
  start();
  const f = frame(new Uint8Array(6).fill(0xff), 60, 1);
  w(0x0a, 60);
  w(0x0b, 0);
  w(0x08, 0);
  w(0x09, 0x40);
  w(0x00, 0x12);
  for (let i = 0; i < 60; i += 2) nic.write(0x10, f[i] | (f[i + 1] << 8), 2);
  w(0x07, 0xff);
  w(0x04, 0x40);
  w(0x05, 60);
  w(0x06, 0);
  w(0x00, 0x26);
  assert.equal(sent.length, 1);
  assert.deepEqual([...sent[0]], [...f]);
  assert.equal(r(0x07) & 0x02, 0x02);
  assert.equal(r(0x04) & 0x01, 0x01, "TSR.PTX");
  assert.equal(r(0x00) & 0x04, 0, "TXP cleared");
  assert.equal(irq.level, true);
  w(0x07, 0x02);
  assert.equal(irq.level, false);
  w(0x0f, 0);
  w(0x00, 0x26);
  assert.equal(irq.level, false, "masked by IMR");
});

Deno.test("NE2000: receive ring wraps at PSTOP, headers chain, BNRY holds frames back", () => {
  const { nic, w, r, start, remoteRead, irq } = card();
  start(0x46, 0x4c); // a 6-page ring
  const dst = MAC;
  const frames = [frame(dst, 600, 1), frame(dst, 600, 2), frame(dst, 600, 3)];
  assert.equal(nic.receive(frames[0]), true); // pages 0x47..0x49
  assert.equal(irq.level, true);
  w(0x00, 0x62);
  assert.equal(r(0x07), 0x4a, "CURR after 3 pages");
  w(0x00, 0x22);
  // The second frame does not fit before BNRY (0x46): it is held, not lost.
  assert.equal(nic.receive(frames[1]), true);
  w(0x00, 0x62);
  assert.equal(r(0x07), 0x4a);
  w(0x00, 0x22);
  // The driver reads frame 1 and moves BNRY: frame 2 lands, wrapping from 0x4b to 0x46.
  const header = remoteRead(0x4700, 4);
  assert.deepEqual(header, [0x01, 0x4a, (604) & 0xff, 604 >> 8]);
  assert.deepEqual(remoteRead(0x4704, 600), [...frames[0]]);
  w(0x03, 0x49);
  w(0x00, 0x62);
  assert.equal(r(0x07), 0x47, "CURR wrapped: 0x4a + 3 pages in a ring of 0x46..0x4b");
  w(0x00, 0x22);
  const h2 = remoteRead(0x4a00, 4);
  assert.equal(h2[1], 0x47);
  // Remote DMA reads wrap at PSTOP as well.
  assert.deepEqual(remoteRead(0x4a04, 600), [...frames[1]]);
  assert.equal(nic.counters.received, 2);
});

Deno.test("NE2000: address filter takes own, broadcast when AB, everything when PRO", () => {
  const { nic, w, start } = card();
  start();
  assert.equal(nic.receive(frame(new Uint8Array([2, 0, 0, 0, 0, 7]), 60, 0)), false);
  assert.equal(nic.receive(frame(new Uint8Array(6).fill(0xff), 60, 0)), true);
  w(0x0c, 0x00);
  assert.equal(nic.receive(frame(new Uint8Array(6).fill(0xff), 60, 0)), false);
  w(0x0c, 0x10);
  assert.equal(nic.receive(frame(new Uint8Array([2, 0, 0, 0, 0, 7]), 60, 0)), true);
  w(0x00, 0x21); // stopped: nothing comes in
  assert.equal(nic.receive(frame(MAC, 60, 0)), false);
  assert.equal(nic.counters.filtered, 2);
});

Deno.test("NE2000: random register writes never throw", () => {
  const { nic } = card();
  let seed = 7;
  const rnd = () => (seed = (seed * 1103515245 + 12345) & 0x7fffffff);
  for (let i = 0; i < 20000; i++) {
    const off = rnd() % 0x20;
    const size = ([1, 2, 4] as const)[rnd() % 3];
    if (rnd() % 2) nic.write(off, rnd(), size);
    else nic.read(off, size);
    if (i % 100 === 0) nic.receive(frame(MAC, 60 + (rnd() % 1400), i));
  }
});
