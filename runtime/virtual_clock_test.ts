import assert from "node:assert/strict";
import { VirtualClock } from "./virtual_clock.ts";

/** A clock whose CPU time the test sets. */
function clock() {
  let cpu = 0;
  const c = new VirtualClock(() => cpu);
  return { c, set: (ns: number) => cpu = ns };
}

Deno.test("holdTimers holds device timers until the hold ends, then runs them once", () => {
  const { c, set } = clock();
  const ran: string[] = [];
  c.schedule(100, () => ran.push("pit"));
  c.holdTimers(1000);
  set(500);
  assert.equal(c.timerDue(), false);
  assert.equal(c.runDueTimers(), 0);
  // An idle guest skips to the end of the hold, not to the held timer's own time.
  assert.equal(c.nextEventAt(-1, false), 1000);
  set(1000);
  assert.equal(c.timerDue(), true);
  assert.equal(c.runDueTimers(), 1);
  assert.deepEqual(ran, ["pit"]);
});

Deno.test("holdTimers does not hold timeline events", () => {
  const { c, set } = clock();
  const ran: string[] = [];
  c.schedule(100, () => ran.push("pit"));
  c.scheduleEvent(200, () => ran.push("event"));
  c.holdTimers(1000);
  assert.equal(c.nextEventAt(-1, false), 200);
  set(300);
  assert.equal(c.timerDue(), true);
  assert.equal(c.runDueTimers(), 1);
  assert.deepEqual(ran, ["event"]);
});

Deno.test("advance moves guest time forward at once; due timers run at the next look", () => {
  const { c, set } = clock();
  set(10);
  let fired = 0;
  c.schedule(2e9, () => fired++);
  c.advance(3e9);
  assert.equal(c.now(), 3e9 + 10);
  assert.equal(c.runDueTimers(), 1);
  assert.equal(fired, 1);
  c.advance(-5);
  assert.equal(c.now(), 3e9 + 10, "never backwards");
});
