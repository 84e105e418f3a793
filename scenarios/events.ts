import assert from "node:assert/strict";
import { type AppliedEvent, scenario } from "../mod.ts";
import { guestClock, guestIrqs, MINIOS, missedMs } from "./_minios.ts";

/** On a backend that cannot do an event, it must say so and the guest must see nothing. */
function applied(e: AppliedEvent): boolean {
  if (e.outcome === "skipped") {
    assert.match(e.detail, /^skipped: not supported by qemu backend/);
    return false;
  }
  assert.equal(e.outcome, "applied", e.detail);
  return true;
}

export default scenario(
  "timeline events reach minios: input at a guest time, IRQ pulses, spurious IRQ7 and IRQ15, " +
    "timer ticks held back and jumped ahead",
  async ({ boot }) => {
    const vm = await boot({ kernel: MINIOS, memory: "64M", timeout: "60s" });
    await vm.console.expect("minios$ ", { timeout: "5s" });

    // Bytes on the serial line at a guest time: the shell runs the command no earlier.
    const c0 = await guestClock(vm);
    const typed = await vm.at(`${c0.ms + 300}ms`, { kind: "serial", text: "clock\r" });
    assert.equal(typed.outcome, "applied");
    const c1 = await guestClock(vm, false);
    assert.ok(c1.ms >= c0.ms + 300, `typed at ${c0.ms + 300} ms, ran at ${c1.ms} ms`);

    // A pulse on COM1's line with no byte behind it: the driver finds nothing to read.
    let before = await guestIrqs(vm);
    const pulse = await vm.inject({ kind: "irq", line: 4, action: "pulse" });
    let after = await guestIrqs(vm);
    // (QEMU's UART makes stray interrupts of its own, from its receive-timeout timer.)
    if (applied(pulse)) assert.equal(after.com1Stray - before.com1Stray, 1);

    // The 8259's spurious vectors, each counted once by minios's 0x27 and 0x2F handlers.
    before = after;
    const s7 = await vm.inject({ kind: "spurious", irq: 7 });
    after = await guestIrqs(vm);
    assert.equal(after.spurious7 - before.spurious7, applied(s7) ? 1 : 0);
    before = after;
    const s15 = await vm.inject({ kind: "spurious", irq: 15 });
    after = await guestIrqs(vm);
    assert.equal(after.spurious15 - before.spurious15, applied(s15) ? 1 : 0);
    // IRQ2 raised with nothing on the slave is how a spurious IRQ15 comes about on a PC.
    before = after;
    const cascade = await vm.inject({ kind: "irq", line: 2, action: "pulse" });
    after = await guestIrqs(vm);
    assert.equal(after.spurious15 - before.spurious15, applied(cascade) ? 1 : 0);

    // Timer ticks held back for 1 s of guest time: the guest's tick count falls behind its TSC.
    const h0 = await guestClock(vm);
    const hold = await vm.inject({ kind: "timer", action: "hold", for: "1s" });
    await vm.at(`${hold.guestNs / 1e6 + 1500}ms`, { kind: "serial", text: "clock\r" });
    const h1 = await guestClock(vm, false);
    const held = missedMs(h0, h1);
    if (applied(hold)) assert.ok(held >= 900, `only ${held} ms without ticks`);
    else assert.ok(Math.abs(held) <= 200, `${held} ms without ticks`);

    // Guest time jumped 2 s ahead: the TSC jumps, the ticks in between come as one.
    const a0 = await guestClock(vm);
    const advance = await vm.inject({ kind: "timer", action: "advance", by: "2s" });
    const a1 = await guestClock(vm);
    if (applied(advance)) {
      assert.ok(a1.ms - a0.ms >= 2000, `the clock moved ${a1.ms - a0.ms} ms`);
      assert.ok(missedMs(a0, a1) >= 1500, `${missedMs(a0, a1)} ms without ticks`);
    }

    vm.console.send("exit 0\r");
    assert.equal(await vm.exit(), 1);
    const log = (await vm.result()).stats.events ?? [];
    for (const kind of ["serial", "irq", "spurious", "timer"]) {
      assert.ok(log.some((e) => e.kind === kind), `no ${kind} event in the log`);
    }
  },
  // Guest clock readings, and events or faults QEMU skips, make the transcripts differ.
  { compareTranscripts: false },
);
