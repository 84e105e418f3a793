import assert from "node:assert/strict";
import { IrqLine } from "./irq_line.ts";

function watch(line: IrqLine): boolean[] {
  const seen: boolean[] = [];
  line.connect((level) => seen.push(level));
  return seen;
}

Deno.test("IrqLine starts low and keeps its name", () => {
  const line = new IrqLine("irq4");
  assert.equal(line.name, "irq4");
  assert.equal(line.level, false);
});

Deno.test("IrqLine calls listeners only when the level changes", () => {
  const line = new IrqLine("irq4");
  const seen = watch(line);
  line.lower();
  line.set(true);
  line.raise();
  line.set(true);
  line.set(false);
  line.lower();
  assert.deepEqual(seen, [true, false]);
  assert.equal(line.level, false);
});

Deno.test("IrqLine.pulse() from low raises then lowers, two listener calls", () => {
  const line = new IrqLine("irq4");
  const seen = watch(line);
  line.pulse();
  assert.deepEqual(seen, [true, false]);
  assert.equal(line.level, false);
});

Deno.test("IrqLine.pulse() from high only lowers the line", () => {
  const line = new IrqLine("irq4");
  line.raise();
  const seen = watch(line);
  line.pulse();
  assert.deepEqual(seen, [false]);
});

Deno.test("IrqLine.connect() does not replay the current level", () => {
  const line = new IrqLine("irq4");
  line.raise();
  const seen = watch(line);
  assert.deepEqual(seen, []);
});

Deno.test("IrqLine disconnect stops calls and is idempotent", () => {
  const line = new IrqLine("irq4");
  const seen: boolean[] = [];
  const disconnect = line.connect((level) => seen.push(level));
  line.raise();
  disconnect();
  disconnect();
  line.lower();
  assert.deepEqual(seen, [true]);
});

Deno.test("IrqLine disconnect removes one connection of a listener connected twice", () => {
  const line = new IrqLine("irq4");
  let calls = 0;
  const listener = () => calls++;
  const first = line.connect(listener);
  line.connect(listener);
  line.raise();
  assert.equal(calls, 2);
  first();
  first();
  line.lower();
  assert.equal(calls, 3);
});

Deno.test("IrqLine lets a listener disconnect another during a change without skipping any", () => {
  const line = new IrqLine("irq4");
  const order: string[] = [];
  let disconnectB = () => {};
  line.connect(() => {
    order.push("a");
    disconnectB();
  });
  disconnectB = line.connect(() => order.push("b"));
  line.connect(() => order.push("c"));
  line.raise();
  assert.deepEqual(order, ["a", "b", "c"]);
  line.lower();
  assert.deepEqual(order, ["a", "b", "c", "a", "c"]);
});
