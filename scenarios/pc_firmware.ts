import assert from "node:assert/strict";
import { scenario } from "../mod.ts";

export default scenario(
  "minios finds the ACPI and MP tables with correct checksums, the IOAPIC, the IRQ0 override, the PM timer and the reset register",
  async ({ boot }) => {
    const vm = await boot({ kernel: "fixtures/build/minios.elf", memory: "64M" });
    await vm.console.expect("minios$ ", { timeout: "5s" });
    vm.console.send("fw\r");
    const out = (await vm.console.expect(/fw: checksums ok\n|fw: checksum errors\n/, {
      timeout: "5s",
    })).input;
    assert.match(out, /fw: acpi rsdp found\n/);
    // Facts QEMU's SeaBIOS tables and ring3's share (table order and extra tables differ).
    assert.match(
      out,
      /fw: madt: lapic 0xfee00000, ioapic at 0xfec00000, irq0 -> gsi 2, irq9 flags 0xd/,
    );
    assert.match(out, /fw: fadt: pm timer port 0x608, sci irq 9/);
    assert.match(out, /fw: mp: ioapic at 0xfec00000, irq0 -> intin 2/);
    assert.match(out, /fw: pm timer ticks at 3.58 MHz/);
    assert.match(out, /fw: checksums ok/);
    vm.console.send("exit 0\r");
    assert.equal(await vm.exit(), 1);
  },
);
