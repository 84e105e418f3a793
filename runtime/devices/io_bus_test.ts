import assert from "node:assert/strict";
import { IoBus, PortConflictError } from "./io_bus.ts";
import type { AccessSize, PortDevice } from "./port_device.ts";

interface Access {
  kind: "read" | "write";
  offset: number;
  size: AccessSize;
  value?: number;
}

// Records every access and answers reads with a fixed value.
class Probe implements PortDevice {
  readonly accesses: Access[] = [];
  constructor(readonly name: string, readonly answer = 0) {}
  read(offset: number, size: AccessSize): number {
    this.accesses.push({ kind: "read", offset, size });
    return this.answer;
  }
  write(offset: number, value: number, size: AccessSize): void {
    this.accesses.push({ kind: "write", offset, size, value });
  }
  reset(): void {}
}

function quietBus(): { bus: IoBus; messages: string[] } {
  const messages: string[] = [];
  return { bus: new IoBus({ log: (message) => messages.push(message) }), messages };
}

Deno.test("IoBus reads unowned ports as all ones for the access size", () => {
  const { bus } = quietBus();
  assert.equal(bus.read(0x80, 1), 0xff);
  assert.equal(bus.read(0x80, 2), 0xffff);
  assert.equal(bus.read(0x80, 4), 0xffffffff);
  assert.equal(bus.read(0xffff, 4), 0xffffffff);
});

Deno.test("IoBus logs an unhandled read once per port", () => {
  const { bus, messages } = quietBus();
  bus.read(0x80, 1);
  bus.read(0x80, 2);
  bus.read(0x80, 1);
  bus.read(0x81, 4);
  assert.deepEqual(messages, [
    "unhandled read of port 0x80 (size 1)",
    "unhandled read of port 0x81 (size 4)",
  ]);
});

Deno.test("IoBus ignores and logs an unhandled write once per port, apart from reads", () => {
  const { bus, messages } = quietBus();
  bus.write(0x80, 0x12, 1);
  bus.write(0x80, 0x34, 1);
  bus.read(0x80, 1);
  bus.write(0x84, 0x1234_5678_9, 4);
  assert.deepEqual(messages, [
    "unhandled write of port 0x80 (size 1, value 0x12)",
    "unhandled read of port 0x80 (size 1)",
    "unhandled write of port 0x84 (size 4, value 0x23456789)",
  ]);
});

Deno.test("IoBus logs to console.warn when no log option is given", () => {
  const original = console.warn;
  const warnings: unknown[][] = [];
  console.warn = (...args: unknown[]) => warnings.push(args);
  try {
    new IoBus().read(0x80, 1);
  } finally {
    console.warn = original;
  }
  assert.deepEqual(warnings, [["io_bus: unhandled read of port 0x80 (size 1)"]]);
});

Deno.test("IoBus routes accesses to the owning device with offsets from its base", () => {
  const { bus, messages } = quietBus();
  const device = new Probe("probe", 0x5a);
  bus.attach(0x3f8, 8, device);
  assert.equal(bus.read(0x3f8, 1), 0x5a);
  bus.write(0x3ff, 0x99, 1);
  assert.deepEqual(device.accesses, [
    { kind: "read", offset: 0, size: 1 },
    { kind: "write", offset: 7, size: 1, value: 0x99 },
  ]);
  assert.equal(bus.read(0x3f7, 1), 0xff);
  assert.equal(bus.read(0x400, 1), 0xff);
  assert.equal(messages.length, 2);
});

Deno.test("IoBus masks read results to the access size", () => {
  const { bus } = quietBus();
  bus.attach(0x10, 1, new Probe("wide", 0x1234_5678));
  bus.attach(0x20, 1, new Probe("negative", -1));
  assert.equal(bus.read(0x10, 1), 0x78);
  assert.equal(bus.read(0x10, 2), 0x5678);
  assert.equal(bus.read(0x10, 4), 0x1234_5678);
  assert.equal(bus.read(0x20, 1), 0xff);
  assert.equal(bus.read(0x20, 4), 0xffffffff);
});

Deno.test("IoBus masks written values to the access size before the device sees them", () => {
  const { bus } = quietBus();
  const device = new Probe("probe");
  bus.attach(0x10, 4, device);
  bus.write(0x10, 0x1234, 1);
  bus.write(0x10, 0x12345, 2);
  bus.write(0x10, -1, 4);
  assert.deepEqual(device.accesses.map((a) => a.value), [0x34, 0x2345, 0xffffffff]);
});

Deno.test("IoBus delivers a multi-byte access whole to the owner of its first port", () => {
  const { bus, messages } = quietBus();
  const first = new Probe("first", 0xaabbccdd);
  const second = new Probe("second");
  bus.attach(0x60, 2, first);
  bus.attach(0x62, 2, second);
  assert.equal(bus.read(0x61, 4), 0xaabbccdd);
  bus.write(0x61, 0x11223344, 4);
  assert.deepEqual(first.accesses, [
    { kind: "read", offset: 1, size: 4 },
    { kind: "write", offset: 1, size: 4, value: 0x11223344 },
  ]);
  assert.deepEqual(second.accesses, []);
  assert.deepEqual(messages, []);
});

Deno.test("IoBus.attach() refuses a range overlapping an attached one, naming both", () => {
  const { bus } = quietBus();
  bus.attach(0x3f8, 8, new Probe("uart16550@0x3f8"));
  assert.throws(
    () => bus.attach(0x3fc, 8, new Probe("late")),
    (error: unknown) => {
      assert.ok(error instanceof PortConflictError);
      assert.equal(error.name, "PortConflictError");
      assert.equal(error.port, 0x3fc);
      assert.equal(error.existing.device.name, "uart16550@0x3f8");
      assert.equal(error.incoming.device.name, "late");
      assert.equal(
        error.message,
        'cannot attach "late" at ports 0x3fc-0x403: port 0x3fc already belongs to ' +
          '"uart16550@0x3f8" (ports 0x3f8-0x3ff)',
      );
      return true;
    },
  );
  assert.throws(() => bus.attach(0x3f0, 9, new Probe("below")), PortConflictError);
  assert.throws(() => bus.attach(0x3ff, 1, new Probe("inside")), PortConflictError);
});

Deno.test("IoBus leaves the bus unchanged when an attach is refused", () => {
  const { bus } = quietBus();
  bus.attach(0x64, 1, new Probe("kbd"));
  assert.throws(() => bus.attach(0x60, 8, new Probe("wide")), PortConflictError);
  assert.equal(bus.read(0x60, 1), 0xff);
  assert.deepEqual(bus.devices().map((a) => a.device.name), ["kbd"]);
});

Deno.test("IoBus accepts adjacent ranges and the very last port", () => {
  const { bus } = quietBus();
  bus.attach(0x60, 1, new Probe("a", 1));
  bus.attach(0x61, 1, new Probe("b", 2));
  bus.attach(0xffff, 1, new Probe("last", 3));
  assert.equal(bus.read(0x60, 1), 1);
  assert.equal(bus.read(0x61, 1), 2);
  assert.equal(bus.read(0xffff, 1), 3);
});

Deno.test("IoBus.attach() rejects ranges outside the port space with RangeError", () => {
  const { bus } = quietBus();
  const device = new Probe("p");
  assert.throws(() => bus.attach(-1, 1, device), RangeError);
  assert.throws(() => bus.attach(0x10000, 1, device), RangeError);
  assert.throws(() => bus.attach(1.5, 1, device), RangeError);
  assert.throws(() => bus.attach(0xfffe, 3, device), RangeError);
  assert.throws(() => bus.attach(0x10, 0, device), RangeError);
  assert.deepEqual(bus.devices(), []);
});

Deno.test("IoBus rejects bad ports and access sizes with RangeError", () => {
  const { bus } = quietBus();
  assert.throws(() => bus.read(0x10000, 1), RangeError);
  assert.throws(() => bus.read(-1, 1), RangeError);
  assert.throws(() => bus.read(1.5, 1), RangeError);
  assert.throws(() => bus.read(0x80, 3 as 1), RangeError);
  assert.throws(() => bus.write(0x80, 0, 8 as 4), RangeError);
  assert.throws(() => bus.write(Number.NaN, 0, 1), RangeError);
});

Deno.test("IoBus.devices() lists attachments by base port", () => {
  const { bus } = quietBus();
  const uart = new Probe("uart");
  const pit = new Probe("pit");
  bus.attach(0x3f8, 8, uart);
  bus.attach(0x40, 4, pit);
  const list = bus.devices();
  assert.deepEqual(list, [
    { base: 0x40, length: 4, device: pit },
    { base: 0x3f8, length: 8, device: uart },
  ]);
  assert.ok(Object.isFrozen(list[0]));
  list.pop();
  assert.equal(bus.devices().length, 2);
});
