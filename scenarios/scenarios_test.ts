/** Every scenario in this folder, run as a test: what `deno task scenario NAME` runs. */
import assert from "node:assert/strict";
import { type Backend, runScenario, type Scenario } from "../mod.ts";

const BACKENDS: readonly Backend[] = ["ring3", "qemu"];
import { hostProcess } from "../runtime/harness/host_processes.ts";
import { qemuSystemBinary } from "../runtime/harness/qemu_vm.ts";

const ring3Host = Deno.build.os === "linux" && Deno.build.arch === "x86_64";
const dir = new URL("./", import.meta.url);
const names = [...Deno.readDirSync(dir)]
  .filter((e) =>
    e.isFile && e.name.endsWith(".ts") && !e.name.endsWith("_test.ts") && !e.name.startsWith("_")
  )
  .map((e) => e.name.slice(0, -3))
  .sort();

const noQemu = qemuSystemBinary("i386") === null;
if (noQemu) {
  console.log("qemu-system-i386 not installed: skipping the scenarios on the QEMU backend");
}

for (const [name, backend] of names.flatMap((n) => BACKENDS.map((b) => [n, b] as const))) {
  Deno.test({
    name: `scenario ${name} passes on ${backend} and leaves no guest process`,
    // QEMU: events and faults it cannot do are skipped, and the scenarios check that they are.
    ignore: backend === "ring3" ? !ring3Host : noQemu || Deno.build.os !== "linux",
    async fn() {
      const s = (await import(new URL(`${name}.ts`, dir).href)).default as Scenario;
      const out = await runScenario(s, { backend });
      assert.equal(out.status, "passed", out.error?.stack);
      // Scenarios assert how their machines end (some end them with faults on purpose).
      for (const m of out.machines) {
        assert.equal(hostProcess(m.pid), null, `guest process ${m.pid} outlived the scenario`);
      }
      assert.ok(out.machines.length > 0);
    },
  });
}
