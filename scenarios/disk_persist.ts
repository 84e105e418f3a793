import assert from "node:assert/strict";
import { scenario } from "../mod.ts";
import { DISK, withBlankImage } from "./_disk.ts";

export default scenario(
  "a file written by minios survives a reboot on a write-through disk; the default overlay leaves the image unchanged",
  async ({ boot }) => {
    await withBlankImage(async (path) => {
      const kernel = "fixtures/build/minios.elf";
      // First boot, write-through: the guest formats the disk and writes a file.
      let vm = await boot({ kernel, disks: [{ path, writeThrough: true }] });
      await vm.console.expect("minios$ ", { timeout: "5s" });
      vm.console.send("disk\r");
      await vm.console.expect(/disk 0: .*, 2048 sectors \(1024 KiB\), LBA48/, DISK);
      vm.console.send("write notes kept across a reboot\r");
      await vm.console.expect("wrote 20 bytes to notes\n", DISK);
      vm.console.send("exit 0\r");
      assert.equal(await vm.exit(), 1);

      // Second boot of the same file: the file is there.
      vm = await boot({ kernel, disks: [{ path, writeThrough: true }] });
      await vm.console.expect("minios$ ", { timeout: "5s" });
      vm.console.send("read notes\r");
      await vm.console.expect("kept across a reboot\n", DISK);
      vm.console.send("exit 0\r");
      assert.equal(await vm.exit(), 1);

      // Default overlay: the guest sees its own writes, the image never changes, even when the
      // run is killed rather than ended by the guest.
      const before = await Deno.readFile(path);
      vm = await boot({ kernel, disks: [path] });
      await vm.console.expect("minios$ ", { timeout: "5s" });
      vm.console.send("write scratch only in the overlay\r");
      await vm.console.expect("wrote 19 bytes to scratch\n", DISK);
      vm.console.send("read scratch\r");
      await vm.console.expect("only in the overlay\n", DISK);
      vm.console.send("read notes\r");
      await vm.console.expect("kept across a reboot\n", DISK);
      await vm.stop("killed with writes in the overlay");
      assert.deepEqual(await Deno.readFile(path), before, "the base image is unchanged");

      // The same image as the secondary channel's slave (IRQ 15): the overlay's file is gone.
      vm = await boot({ kernel, disks: [{ path, index: 3 }] });
      await vm.console.expect("minios$ ", { timeout: "5s" });
      vm.console.send("ls\r");
      await vm.console.expect(/notes 20\n1 file,/, DISK);
      vm.console.send("exit 0\r");
      assert.equal(await vm.exit(), 1);
    });
  },
);
