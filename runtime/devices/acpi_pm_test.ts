import assert from "node:assert/strict";
import { AcpiPm, PM_TIMER_HZ, pmTimerAt } from "./acpi_pm.ts";
import { ManualClock } from "./device_clock.ts";

Deno.test("PM timer counts 3.579545 MHz of guest time in 24 bits", () => {
  const clock = new ManualClock();
  const pm = new AcpiPm({ clock });
  assert.equal(pm.read(8, 4), 0);
  clock.advance(1_000_000); // 1 ms
  assert.equal(pm.read(8, 4), 3579);
  clock.advanceTo(1e9);
  assert.equal(pm.read(8, 4), PM_TIMER_HZ);
  assert.equal(pm.read(10, 2) & 0xffff, PM_TIMER_HZ >>> 16, "the high half at +10");
  // 2^24 ticks = 4.687 s: the counter wraps.
  assert.equal(pmTimerAt(((2 ** 24) / PM_TIMER_HZ) * 1e9 + 1000), 3);
});

Deno.test("PM1 status is write-1-to-clear, enable and control read back, SLP_EN reports the type", () => {
  const clock = new ManualClock();
  const sleeps: number[] = [];
  const pm = new AcpiPm({ clock, onSleep: (t) => sleeps.push(t) });
  pm.write(2, 0x0121, 2);
  assert.equal(pm.read(2, 2), 0x0121);
  pm.write(4, 0x0001, 2);
  assert.equal(pm.read(4, 2), 0x0001);
  pm.write(4, 0x2000 | (5 << 10) | 1, 2);
  assert.deepEqual(sleeps, [5]);
  assert.equal(pm.read(4, 2) & 0x2000, 0, "SLP_EN reads as 0");
});
