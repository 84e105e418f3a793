import assert from "node:assert/strict";
import { type FaultPlan, scenario } from "../mod.ts";
import { MINIOS } from "./_minios.ts";

export default scenario(
  "faults that end a run: the guest process killed mid-trap or at a guest time ends as " +
    "guest-died, a refused host mapping as host-error; nothing is left running",
  async ({ boot, seed }) => {
    const endsAs = async (faults: FaultPlan, kind: string, message: RegExp) => {
      const vm = await boot({ kernel: MINIOS, cmdline: "selftest", faults, seed });
      const r = await vm.result();
      const log = r.stats.events ?? [];
      if (log.some((e) => e.outcome === "skipped")) {
        // QEMU cannot do it: reported as skipped, and the guest ran to its own end.
        assert.match(log[0].detail, /skipped: not supported by qemu backend/);
        return;
      }
      assert.equal(r.outcome, "failure");
      if (r.outcome !== "failure") return;
      assert.equal(r.failure.kind, kind, r.failure.message);
      assert.match(r.failure.message, message);
      assert.ok(log.some((e) => e.kind === "fault" && e.outcome === "applied"));
    };
    await endsAs([{ fault: "kill-guest", afterTraps: 500 }], "guest-died", /signal 9/);
    // Both backends can do this one: QEMU's process is killed.
    await endsAs([{ fault: "kill-guest", at: "300ms" }], "guest-died", /signal 9|killed/);
    await endsAs([{ fault: "fail-host-mmap", after: 10 }], "host-error", /refused/);
  },
  // Guest clock readings, and events or faults QEMU skips, make the transcripts differ.
  { compareTranscripts: false },
);
