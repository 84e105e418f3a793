import assert from "node:assert/strict";
import { QemuVm, type RunResult, scenario, type ScenarioBootOptions } from "../mod.ts";

const SPIN = "fixtures/build/spin.elf";
const FAULT = "fixtures/build/fault.elf";
/** Guest time a run may overshoot its limit by: one clock sample or timer tick. */
const SLACK_NS = 100e6;

export default scenario(
  "guests that flood their console, panic, loop forever, triple-fault or storm end with a " +
    "classified result within their guest-time limit",
  async ({ boot }) => {
    const end = async (options: ScenarioBootOptions, kind: string): Promise<RunResult> => {
      const vm = await boot(options);
      const r = await vm.result();
      assert.equal(r.outcome, "failure", `${options.kernel} ${options.cmdline}: ${r.outcome}`);
      if (r.outcome !== "failure") return r;
      const limitNs = Number.parseFloat(String(options.timeout)) * 1e9;
      const expected = kind === "exception-storm" && vm instanceof QemuVm
        ? "timeout" // QEMU has no notion of an exception storm: the guest runs to its limit
        : kind;
      assert.equal(r.failure.kind, expected, r.failure.message);
      assert.ok(r.failure.guestNs <= limitNs + SLACK_NS, `${r.failure.guestNs} ns`);
      return r;
    };

    // A console flood: more than 16 KiB within 1 s of guest time (the default is 128 KiB in 8 s).
    const flood = await end({
      kernel: SPIN,
      cmdline: "mode=flood",
      timeout: "10s",
      consoleFlood: { bytes: 16 * 1024, window: "1s" },
    }, "console-flood");
    if (flood.outcome === "failure") {
      assert.match(flood.failure.message, /more than 16384 bytes .* within 1000 ms/);
      assert.match(flood.failure.lastConsoleLines.join("\n"), /flood: the quick brown fox/);
    }

    // A panic line ends the run at once, long before its limit.
    const panic = await end({ kernel: SPIN, cmdline: "mode=panic", timeout: "10s" }, "panic");
    if (panic.outcome === "failure") {
      assert.match(panic.failure.message, /printed "Kernel panic - not syncing/);
      assert.ok(panic.failure.guestNs < 5e9);
    }
    // Failure patterns are the scenario's to choose: none, or its own.
    await end({ kernel: SPIN, cmdline: "mode=panic", timeout: "0.3s", failOn: false }, "timeout");
    await end({ kernel: SPIN, timeout: "10s", failOn: [/^spinning$/m] }, "panic");

    // A guest that loops forever without trapping is ended by its limit.
    await end({ kernel: SPIN, timeout: "0.5s" }, "timeout");

    // Crashes: a triple fault, and the same #UD returned to forever.
    await end({ kernel: FAULT, cmdline: "kind=triple", timeout: "5s" }, "triple-fault");
    const storm = await end(
      { kernel: FAULT, cmdline: "kind=storm", timeout: "1s", exceptionStormLimit: 50 },
      "exception-storm",
    );
    if (storm.outcome === "failure" && storm.failure.kind === "exception-storm") {
      assert.match(
        storm.failure.message,
        /#UD invalid opcode at eip 0x[0-9a-f]+ 50 times in a row/,
      );
    }
  },
  // Guest clock readings, and events or faults QEMU skips, make the transcripts differ.
  { compareTranscripts: false },
);
