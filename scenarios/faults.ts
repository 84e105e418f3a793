import assert from "node:assert/strict";
import { type FaultPlan, type RunResult, scenario, type ScenarioBootOptions } from "../mod.ts";
import { guestClock, MINIOS, missedMs } from "./_minios.ts";

/** The fault log of a run. */
function faultLog(r: RunResult): string[] {
  return (r.stats.events ?? []).filter((e) => e.kind === "fault").map((e) => e.detail);
}

/** On QEMU these faults are reported as skipped, one entry each, and the guest runs unharmed. */
function skippedOnQemu(r: RunResult, plan: FaultPlan): boolean {
  const skipped = (r.stats.events ?? []).filter((e) => e.outcome === "skipped");
  if (skipped.length === 0) return false;
  assert.equal(skipped.length, plan.length);
  for (const e of skipped) assert.match(e.detail, /skipped: not supported by qemu backend/);
  return true;
}

export default scenario(
  "minios survives dropped, delayed and duplicated interrupts and garbage port reads; each " +
    "fault is logged and repeats exactly from its seed",
  async ({ boot, seed }) => {
    /** Boots minios with `faults`, types `input` 1 s in, reads its clock, and exits. */
    const run = async (faults: FaultPlan, runSeed: number, input = "clock\r") => {
      const options: ScenarioBootOptions = { kernel: MINIOS, faults, seed: runSeed };
      const vm = await boot(options);
      await vm.console.expect("minios$ ", { timeout: "5s" });
      const c0 = { ticks: 0, ms: 0 }; // minios starts its timer at boot
      // Input only after the faults' window: a dropped COM1 interrupt would leave the UART's
      // line high with no new edge, and the shell deaf, as on hardware.
      await vm.at("1s", { kind: "serial", text: input });
      if (input !== "clock\r") await vm.console.expect("minios$ ");
      const c1 = await guestClock(vm, input === "clock\r");
      vm.console.send("exit 0\r");
      assert.equal(await vm.exit(), 1);
      const result = await vm.result();
      return { c0, c1, result, transcript: vm.console.transcript, faults: faultLog(result) };
    };

    // 30 timer ticks in a row lost at the controller, starting where the seed says: minios's
    // tick count falls 300 ms behind its TSC, and the same seed picks the same interrupt.
    const drop: FaultPlan = [{ fault: "drop-interrupt", within: 20, count: 30 }];
    const d1 = await run(drop, seed);
    if (!skippedOnQemu(d1.result, drop)) {
      assert.equal(d1.faults.length, 30);
      assert.match(d1.faults[0], /drop-interrupt: due interrupt \d+ \(picked by the seed/);
      assert.ok(missedMs(d1.c0, d1.c1) >= 250, `ticks missed: ${missedMs(d1.c0, d1.c1)} ms`);
      const d2 = await run(drop, seed);
      assert.deepEqual(d2.faults, d1.faults, "the same seed drops the same interrupts");
    }

    // Interrupts held back for 300 ms: the ticks in between come as one when they resume.
    const delay: FaultPlan = [{ fault: "delay-interrupts", fromNs: 0.2e9, forNs: 0.3e9 }];
    const late = await run(delay, seed);
    if (!skippedOnQemu(late.result, delay)) {
      assert.deepEqual(late.faults, [
        "delay-interrupts: external interrupts held back from 200 ms for 300 ms of guest time",
      ]);
      assert.ok(missedMs(late.c0, late.c1) >= 250, `${missedMs(late.c0, late.c1)} ms`);
    }

    // The third interrupt delivered twice: one tick more than time accounts for.
    const dup: FaultPlan = [{ fault: "duplicate-interrupt", nth: 3 }];
    const twice = await run(dup, seed);
    if (!skippedOnQemu(twice.result, dup)) {
      assert.deepEqual(twice.faults, ["duplicate-interrupt: vector 0x20 delivered twice"]);
      assert.ok(missedMs(twice.c0, twice.c1) <= 0, `${missedMs(twice.c0, twice.c1)} ms`);
    }

    // Garbage from COM1's receive register for 4 reads: the shell gets 4 random bytes instead
    // of "irqs" (it ignores the unprintable ones) and takes the next command. The same seed,
    // the same garbage and the same transcript.
    const garbage: FaultPlan = [{ fault: "port-garbage", port: 0x3f8, count: 4 }];
    const g1 = await run(garbage, seed, "irqs\rclock\r");
    if (!skippedOnQemu(g1.result, garbage)) {
      assert.equal(g1.faults.length, 4);
      assert.doesNotMatch(g1.transcript, /irqs: timer=/);
      assert.match(g1.transcript, /clock: ticks=\d+/);
      const g2 = await run(garbage, seed, "irqs\rclock\r");
      assert.deepEqual(g2.faults, g1.faults);
      // (Clock readings may differ by a millisecond: guest time is measured CPU time.)
      const text = (t: string) => t.replace(/clock: .*\n/, "");
      assert.equal(text(g2.transcript), text(g1.transcript));
      const g3 = await run(garbage, seed + 1, "irqs\rclock\r");
      assert.notDeepEqual(g3.faults, g1.faults, "another seed, other garbage");
    }
  },
  // Guest clock readings, and events or faults QEMU skips, make the transcripts differ.
  { compareTranscripts: false },
);
