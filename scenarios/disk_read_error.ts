import assert from "node:assert/strict";
import { scenario } from "../mod.ts";
import { DISK, withBlankImage } from "./_disk.ts";

export default scenario(
  "a disk read error is reported by minios's ATA driver and the kernel keeps running",
  async ({ boot }) => {
    await withBlankImage(async (path) => {
      // minios's file system puts its first file at sector 8: its first read there fails.
      // Armed at boot, so QEMU (blkdebug) does the same; see disk_timeline for faults armed
      // at a guest time.
      const vm = await boot({
        kernel: "fixtures/build/minios.elf",
        disks: [{ path, faults: [{ action: "fail-read", sector: 8, times: 1 }] }],
      });
      await vm.console.expect("minios$ ", { timeout: "5s" });
      vm.console.send("write data some bytes\r");
      await vm.console.expect("wrote 10 bytes to data\n", DISK);
      vm.console.send("read data\r");
      await vm.console.expect(
        "ata: disk 0: read error at sector 8 (status 0x41)\nread: cannot read data\nminios$ ",
        DISK,
      );
      vm.console.send("read data\r");
      await vm.console.expect("some bytes\n", DISK);
      vm.console.send("run hello\r");
      await vm.console.expect(/\[pid \d+ hello\] exit 0\n/);
      vm.console.send("exit 0\r");
      assert.equal(await vm.exit(), 1);
      if (vm.backend === "ring3") {
        const events = (await vm.result()).stats.events ?? [];
        assert.ok(
          events.some((e) => e.kind === "disk" && /read 8\+1 failed at sector 8/.test(e.detail)),
          JSON.stringify(events),
        );
      }
    });
  },
);
