import assert from "node:assert/strict";
import { nsForTicks, ticksIn } from "./_clock_ticks.ts";

const PIT_HZ = 1_193_182;
const RTC_HZ = 32768;

Deno.test("ticksIn() matches exact BigInt arithmetic far beyond 2^53 / hz", () => {
  const samples = [0, 1, 837, 838, 999_999_999, 1_000_000_000, 7_500_000_000, 123_456_789_012];
  for (let ns = 1; ns < 2 ** 50; ns = ns * 3 + 7) samples.push(ns);
  for (const hz of [PIT_HZ, RTC_HZ]) {
    for (const ns of samples) {
      const exact = Number((BigInt(ns) * BigInt(hz)) / 1_000_000_000n);
      assert.equal(ticksIn(ns, hz), exact, `${ns} ns at ${hz} Hz`);
    }
  }
});

Deno.test("ticksIn() floors negative intervals towards minus infinity", () => {
  assert.equal(ticksIn(-1, PIT_HZ), -1);
  assert.equal(ticksIn(-1_000_000_000, RTC_HZ), -RTC_HZ);
  assert.equal(ticksIn(-1_000_000_001, RTC_HZ), -RTC_HZ - 1);
});

Deno.test("nsForTicks() is the first nanosecond at which that many ticks have elapsed", () => {
  for (const hz of [PIT_HZ, RTC_HZ]) {
    // Up to 2^53 ns (104 guest days), the range in which nanoseconds are exact doubles.
    for (let ticks = 1; nsForTicks(ticks, hz) < 2 ** 53; ticks = ticks * 5 + 3) {
      const ns = nsForTicks(ticks, hz);
      assert.ok(ticksIn(ns, hz) >= ticks, `${ticks} ticks at ${hz} Hz`);
      assert.ok(ticksIn(ns - 1, hz) < ticks, `${ticks} ticks at ${hz} Hz, 1 ns early`);
    }
  }
  assert.equal(nsForTicks(0, PIT_HZ), 0);
  assert.equal(nsForTicks(PIT_HZ, PIT_HZ), 1_000_000_000);
});
