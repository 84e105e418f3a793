import assert from "node:assert/strict";
import { scenario } from "../mod.ts";

// QEMU 7.2's pc machine gives an ACPI 1.0 RSDP and a revision 1 FADT without a reset register;
// ring3's tables are ACPI 2.0 with an XSDT and the reset register, so this runs on ring3 only.
export default scenario(
  "ring3's ACPI 2.0 tables: the guest finds the XSDT and the FADT reset register (0xCF9, 0x06)",
  async ({ boot }) => {
    const vm = await boot({ kernel: "fixtures/build/minios.elf", backend: "ring3" });
    await vm.console.expect("minios$ ", { timeout: "5s" });
    vm.console.send("fw all\r");
    const out = (await vm.console.expect(/fw: checksums ok\n/, { timeout: "5s" })).input;
    assert.match(out, /fw: rsdp revision 2, xsdt at 0xf1040\n/);
    assert.match(out, /fw: fadt: revision 3\n/);
    assert.match(out, /fw: fadt: reset reg space 1 port 0xcf9 value 0x6\n/);
    vm.console.send("exit 0\r");
    assert.equal(await vm.exit(), 1);
  },
);
