import assert from "node:assert/strict";
import {
  DEBUG_EXIT_DEFAULT_BASE,
  DEBUG_EXIT_DEFAULT_LENGTH,
  DebugExit,
  debugExitStatus,
} from "./debug_exit.ts";
import { IoBus } from "./io_bus.ts";

function setup(base = 0xf4, length = 4) {
  const codes: number[] = [];
  const messages: string[] = [];
  const bus = new IoBus({ log: (message) => messages.push(message) });
  bus.attach(base, length, new DebugExit({ onExit: (code) => codes.push(code) }));
  return { bus, codes, messages };
}

Deno.test("DebugExit reports (value << 1) | 1 for a write of any size at any offset", () => {
  const { bus, codes } = setup();
  bus.write(0xf4, 0x00, 1);
  bus.write(0xf5, 0x10, 1);
  bus.write(0xf6, 0x1234, 2);
  bus.write(0xf7, 0x31, 4);
  assert.deepEqual(codes, [0x01, 0x21, 0x2469, 0x63]);
});

Deno.test("DebugExit reports the full code of a 32-bit write, not a wrapped one", () => {
  const { bus, codes } = setup();
  bus.write(0xf4, 0xffffffff, 4);
  bus.write(0xf4, 0x80000000, 4);
  assert.deepEqual(codes, [0x1_ffff_ffff, 0x1_0000_0001]);
});

Deno.test("debugExitStatus() keeps the low 8 bits a process status can carry", () => {
  assert.equal(debugExitStatus(0), 1);
  assert.equal(debugExitStatus(0x10), 0x21);
  assert.equal(debugExitStatus(0x7f), 0xff);
  assert.equal(debugExitStatus(0x80), 0x01);
  assert.equal(debugExitStatus(0xffffffff), 0xff);
  assert.equal(debugExitStatus(0x31), 0x63);
});

Deno.test("DebugExit reads as 0 at every size, like current QEMU", () => {
  const { bus, codes, messages } = setup();
  assert.equal(bus.read(0xf4, 1), 0);
  assert.equal(bus.read(0xf5, 2), 0);
  assert.equal(bus.read(0xf7, 4), 0);
  assert.deepEqual(codes, []);
  assert.deepEqual(messages, []);
});

Deno.test("DebugExit sits at QEMU's default 0x501 for 2 ports when the machine asks", () => {
  const { bus, codes } = setup(DEBUG_EXIT_DEFAULT_BASE, DEBUG_EXIT_DEFAULT_LENGTH);
  bus.write(0x502, 3, 1);
  assert.deepEqual(codes, [7]);
  assert.equal(bus.read(0x503, 1), 0xff);
});

Deno.test("DebugExit keeps its name and survives reset", () => {
  const codes: number[] = [];
  const device = new DebugExit({ name: "exit@0xf4", onExit: (code) => codes.push(code) });
  assert.equal(device.name, "exit@0xf4");
  assert.equal(new DebugExit({ onExit: () => {} }).name, "isa-debug-exit");
  device.reset();
  device.write(0, 2, 1);
  assert.deepEqual(codes, [5]);
});
