import assert from "node:assert/strict";
import { scenario } from "../mod.ts";

export default scenario(
  "an injected disk read error is reported by minios's ATA driver and the kernel keeps running",
  async ({ boot }) => {
    const dir = await Deno.makeTempDir({ prefix: "ring3-disk-" });
    try {
      const path = `${dir}/disk.img`;
      await Deno.writeFile(path, new Uint8Array(1 << 20));
      const vm = await boot({ kernel: "fixtures/build/minios.elf", disks: [path] });
      await vm.console.expect("minios$ ", { timeout: "5s" });
      vm.console.send("write data some bytes\r");
      await vm.console.expect("wrote 10 bytes to data\n");
      // minios's file system puts its first file at sector 8: fail the next read of it.
      vm.inject({ kind: "disk", disk: 0, action: "fail-read", sector: 8, times: 1 });
      vm.console.send("read data\r");
      if (vm.backend === "ring3") {
        await vm.console.expect(
          "ata: disk 0: read error at sector 8 (status 0x41, error 0x40)\nread: cannot read data\n",
        );
        const r = await vm.console.expect("minios$ ");
        assert.ok(r);
        vm.console.send("read data\r");
        await vm.console.expect("some bytes\n");
      } else {
        // QEMU cannot fail a read at a guest time: the read works and the skip is logged.
        await vm.console.expect("some bytes\n");
        assert.ok(vm.logs.some((l) => l.startsWith("skipped on the QEMU backend")));
      }
      vm.console.send("run hello\r");
      await vm.console.expect(/\[pid \d+ hello\] exit 0\n/);
      vm.console.send("exit 0\r");
      assert.equal(await vm.exit(), 1);
      if (vm.backend === "ring3") {
        const r = await vm.result();
        assert.ok(
          (r.stats.events ?? []).some((e) =>
            e.kind === "disk" && /read 8\+1 failed at sector 8/.test(e.detail)
          ),
          JSON.stringify(r.stats.events),
        );
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
);
