import assert from "node:assert/strict";
import { EthernetSwitch, formatMac, parseMac } from "./ethernet_switch.ts";

function frame(dst: string, src: string): Uint8Array {
  const f = new Uint8Array(60);
  f.set(parseMac(dst));
  f.set(parseMac(src), 6);
  return f;
}

const A = "52:54:00:00:00:0a", B = "52:54:00:00:00:0b", C = "52:54:00:00:00:0c";
const BCAST = "ff:ff:ff:ff:ff:ff";

Deno.test("switch: floods unknown and broadcast destinations, then sends to the learned port", () => {
  const sw = new EthernetSwitch();
  const [pa, pb, pc] = [sw.addPort(), sw.addPort(), sw.addPort()];
  assert.deepEqual(sw.forward(pa, frame(BCAST, A)), [pb, pc]);
  assert.deepEqual(sw.forward(pb, frame(A, B)), [pa], "A learned on its port");
  assert.deepEqual(sw.forward(pa, frame(B, A)), [pb]);
  assert.deepEqual(sw.forward(pa, frame(C, A)), [pb, pc], "C unknown: flooded");
  assert.deepEqual(sw.forward(pa, frame("01:00:5e:00:00:01", A)), [pb, pc], "multicast floods");
  // A moves to port c: the table follows.
  assert.deepEqual(sw.forward(pc, frame(B, A)), [pb]);
  assert.deepEqual(sw.forward(pb, frame(A, B)), [pc]);
  // A frame for a station on the port it came from goes nowhere.
  assert.deepEqual(sw.forward(pc, frame(A, C)), []);
  assert.equal(sw.table().get(A), pc);
  assert.deepEqual(sw.forward(pa, new Uint8Array(10)), [], "runt");
});

Deno.test("switch: a multicast source is never learned; MACs parse and format", () => {
  const sw = new EthernetSwitch();
  const [pa, pb] = [sw.addPort(), sw.addPort()];
  sw.forward(pa, frame(B, "01:00:00:00:00:01"));
  assert.equal(sw.table().size, 0);
  assert.deepEqual(sw.forward(pb, frame("01:00:00:00:00:01", B)), [pa]);
  assert.equal(formatMac(parseMac(A)), A);
  assert.throws(() => parseMac("52:54:00"), /looks like/);
});
