import assert from "node:assert/strict";
import { scenario } from "../mod.ts";

export default scenario(
  "minios's shell starts a user program that runs in its own address space and exits",
  async ({ boot }) => {
    const vm = await boot({ kernel: "fixtures/build/minios.elf", memory: "64M" });
    await vm.console.expect("minios$ ", { timeout: "5s" });
    // Typed a character at a time, 10 ms of guest time apart, as a person at a terminal would.
    await vm.console.type("run hello\r", { interval: "10ms" });
    await vm.console.expect(/hello from pid (\d+)\n/);
    await vm.console.expect(/\[pid \d+ hello\] exit 0\n/);
    vm.console.send("exit 0\r");
    assert.equal(await vm.exit(), 1);
  },
);
