/** The network scenarios on the QEMU backend: the same guest, QEMU's ne2k_pci and socket netdev. */
import assert from "node:assert/strict";
import { runScenario, type Scenario } from "../mod.ts";
import { qemuSystemBinary } from "../runtime/harness/qemu_vm.ts";
import { hostProcess } from "../runtime/harness/host_processes.ts";

const NO_QEMU = qemuSystemBinary("i386") === null;
if (NO_QEMU) console.log("qemu-system-i386 not installed: skipping the network scenarios on QEMU");

for (const name of ["net_ping", "net_loss"]) {
  Deno.test({
    name: `scenario ${name} on the QEMU backend passes and leaves no QEMU behind`,
    ignore: NO_QEMU,
    async fn() {
      const s = (await import(`./${name}.ts`)).default as Scenario;
      const out = await runScenario(s, { backend: "qemu" });
      assert.equal(out.status, "passed", out.error?.stack);
      assert.equal(out.machines.length, 2);
      for (const m of out.machines) {
        assert.equal(m.backend, "qemu");
        assert.equal(hostProcess(m.pid), null, `QEMU ${m.pid} outlived the scenario`);
      }
    },
  });
}
