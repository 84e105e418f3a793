import assert from "node:assert/strict";
import { scenario } from "../mod.ts";

export default scenario(
  "a guest that pulses the i8042 reset line (0xFE) ends the run classified as a reset, as QEMU with -no-reboot",
  async ({ boot }) => {
    const vm = await boot({ kernel: "fixtures/build/minios.elf" });
    await vm.console.expect("minios$ ", { timeout: "5s" });
    vm.console.send("reboot\r");
    const r = await vm.result();
    assert.equal(r.outcome, "failure");
    assert.equal(r.outcome === "failure" && r.failure.kind, "reset");
  },
);
