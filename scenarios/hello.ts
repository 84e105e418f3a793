import assert from "node:assert/strict";
import { scenario } from "../mod.ts";

export default scenario(
  "hello boots in ring3, reports its memory, echoes a typed line and exits with its length",
  async ({ boot }) => {
    const vm = await boot({
      kernel: "fixtures/build/hello.elf",
      memory: "64M",
      cmdline: "greeting=hi",
    });
    await vm.console.expect("ring3 hello kernel\n", { timeout: "5s" });
    // The same figures QEMU's Multiboot loader gives a 64 MiB pc machine.
    await vm.console.expect("multiboot: flags=0x24f mem_lower=639KiB mem_upper=64384KiB\n");
    await vm.console.expect("cmdline: fixtures/build/hello.elf greeting=hi\n");
    await vm.console.expect("> ");
    vm.console.send("hello ring3\n");
    await vm.console.expect("you typed: hello ring3\nbye\n");
    // isa-debug-exit: the kernel writes the line length v = 11; the status is (v << 1) | 1.
    assert.equal(await vm.exit(), 23);
  },
);
