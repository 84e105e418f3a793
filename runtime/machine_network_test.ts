import assert from "node:assert/strict";
import { ManualClock } from "./devices/device_clock.ts";
import { MachineNetwork } from "./machine_network.ts";
import { IrqLine } from "./devices/irq_line.ts";
import { Ne2000 } from "./devices/ne2000.ts";
import { Network } from "./net/network.ts";
import { NetSync } from "./net/net_sync.ts";

/** Two cards' worth of network state without Workers: the clock rule and the events. */
function setup() {
  const net = new Network({ latency: "100us" });
  const inbox: { port: number; frame: Uint8Array; atNs: number }[] = [];
  const ja = net.join(
    { deliver: (frame, atNs) => inbox.push({ port: 0, frame, atNs }) },
    undefined,
  );
  const jb = net.join(
    { deliver: (frame, atNs) => inbox.push({ port: 1, frame, atNs }) },
    undefined,
  );
  const clock = new ManualClock();
  const sent: Uint8Array[] = [];
  const a = new MachineNetwork([{ mac: ja.mac, sync: ja.sync }], clock, (_n, f) => sent.push(f));
  const nic = new Ne2000({ mac: ja.mac, irq: new IrqLine("n"), transmit: () => {} });
  a.attach([nic]);
  return { net, inbox, ja, jb, clock, sent, a, nic };
}

Deno.test("networked idle: a machine idles no further than its peer's clock plus the latency", () => {
  const { a, clock, net, jb } = setup();
  const none = () => false;
  // Peer b at 0: a may reach 100 us, not its next timer at 10 ms.
  assert.equal(a.limitIdle(clock.now(), 10e6, none), 100e3);
  clock.advanceTo(100e3);
  assert.equal(a.limitIdle(clock.now(), 10e6, none), "wait", "at the bound: wait for b");
  const jc = net.join({ deliver: () => {} }, undefined); // c joins at 0
  assert.equal(a.limitIdle(clock.now(), null, none), "wait", "nothing due, peers behind");
  new NetSync(jb.sync.buffer, jb.sync.slot).publish(150e3);
  new NetSync(jc.sync.buffer, jc.sync.slot).publish(180e3);
  assert.equal(a.limitIdle(clock.now(), null, none), 250e3, "nothing due: follow the peers");
  net.leave(jb.port);
  net.leave(2);
  assert.equal(a.limitIdle(clock.now(), 10e6, none), 10e6, "b and c gone: no bound");
  assert.equal(a.limitIdle(clock.now(), null, none), null);
});

Deno.test("networked idle: a frame in flight or in the mailbox holds the clock", () => {
  const { a, clock, sent, net } = setup();
  const boardNic = a.boardNics()[0];
  boardNic.transmit(new Uint8Array(60));
  assert.equal(sent.length, 1);
  assert.equal(a.limitIdle(clock.now(), 10e6, () => false), "wait", "one frame in flight");
  net.send(0, sent[0], 0); // the switch delivered it
  assert.equal(a.limitIdle(clock.now(), 10e6, () => true), "wait", "mailbox not drained");
  assert.equal(a.limitIdle(clock.now(), 10e6, () => false), 100e3);
});

Deno.test("nic events: drop and corrupt the next received frames, inject one", () => {
  const { a, clock, nic, ja } = setup();
  // Bring the card up: ring 0x46..0x80, own address, started.
  nic.write(0x01, 0x46, 1);
  nic.write(0x02, 0x80, 1);
  nic.write(0x03, 0x46, 1);
  nic.write(0x00, 0x61, 1);
  ja.mac.forEach((b, i) => nic.write(1 + i, b, 1));
  nic.write(0x07, 0x47, 1);
  nic.write(0x00, 0x22, 1);
  nic.write(0x0c, 0x04, 1);
  const f = new Uint8Array(60);
  f.set(ja.mac);
  assert.match(a.applyEvent({ kind: "nic", action: "drop", count: 2 }), /drop the next 2/);
  a.arrive(0, f, 0);
  a.arrive(0, f, 50);
  assert.equal(nic.counters.received, 0);
  a.arrive(0, f, 1000); // in the future: lands when the clock gets there
  assert.equal(nic.counters.received, 0);
  clock.advanceTo(1000);
  assert.equal(nic.counters.received, 1);
  a.applyEvent({ kind: "nic", action: "corrupt", offset: 0 });
  a.arrive(0, f, 1000);
  assert.equal(nic.counters.filtered, 1, "first byte flipped: not our address any more");
  const hex = [...f].map((b) => b.toString(16).padStart(2, "0")).join("");
  assert.match(a.applyEvent({ kind: "nic", action: "inject", frame: hex }), /injected 60/);
  assert.equal(nic.counters.received, 2);
  assert.throws(() => a.applyEvent({ kind: "nic", nic: 3, action: "drop" }), /no network card 3/);
  assert.throws(() => a.applyEvent({ kind: "nic", action: "flip" }), /drop, corrupt or inject/);
});
