import assert from "node:assert/strict";
import { scenario } from "../mod.ts";
import { DISK, withBlankImage } from "./_disk.ts";

export default scenario(
  "disk faults on the timeline: reads fail until cleared, a torn write loses its sectors",
  async ({ boot }) => {
    await withBlankImage(async (path) => {
      // Disk faults at a guest time exist only on ring3 (QEMU's blkdebug is configured at open).
      const vm = await boot({
        kernel: "fixtures/build/minios.elf",
        disks: [path],
        backend: "ring3",
      });
      await vm.console.expect("minios$ ", { timeout: "5s" });
      vm.console.send("write data first version\r");
      await vm.console.expect("wrote 13 bytes to data\n", DISK);
      vm.inject({ kind: "disk", action: "fail-read", sector: 8, times: "always" });
      for (let i = 0; i < 2; i++) {
        vm.console.send("read data\r");
        await vm.console.expect("ata: disk 0: read error at sector 8 (status 0x41)\n", DISK);
      }
      vm.inject({ kind: "disk", action: "clear" });
      vm.console.send("read data\r");
      await vm.console.expect("first version\n", DISK);
      // The data sector of the rewrite never reaches the disk; the directory update does.
      vm.inject({ kind: "disk", action: "tear-write", sector: 8, keep: 0 });
      vm.console.send("write data SECOND VERSION\r");
      await vm.console.expect("wrote 14 bytes to data\n", DISK);
      vm.console.send("read data\r");
      await vm.console.expect("first version\n", DISK); // the old sector: 13 bytes, then a NUL
      vm.console.send("exit 0\r");
      assert.equal(await vm.exit(), 1);
      const events = ((await vm.result()).stats.events ?? []).filter((e) => e.kind === "disk");
      assert.deepEqual(events.map((e) => e.detail.replace(/ \(.*\)$/, "")), [
        "disk 0: fail-read sectors 8+1 always",
        "disk 0: read 8+1 failed at sector 8",
        "disk 0: read 8+1 failed at sector 8",
        "disk 0: faults cleared",
        "disk 0: tear-write sectors 8+1 1x keep 0",
        "disk 0: write 8+1 torn: 0 of 1 sectors kept",
      ]);
    });
  },
);
