/** Every scenario in this folder, run as a test: what `deno task scenario NAME` runs. */
import assert from "node:assert/strict";
import { runScenario, type Scenario } from "../mod.ts";
import { hostProcess } from "../runtime/harness/host_processes.ts";

const ring3Host = Deno.build.os === "linux" && Deno.build.arch === "x86_64";
const dir = new URL("./", import.meta.url);
const names = [...Deno.readDirSync(dir)]
  .filter((e) => e.isFile && e.name.endsWith(".ts") && !e.name.endsWith("_test.ts"))
  .map((e) => e.name.slice(0, -3))
  .sort();

for (const name of names) {
  Deno.test({
    name: `scenario ${name} passes and leaves no guest process`,
    ignore: !ring3Host,
    async fn() {
      const s = (await import(new URL(`${name}.ts`, dir).href)).default as Scenario;
      const out = await runScenario(s);
      assert.equal(out.status, "passed", out.error?.stack);
      for (const m of out.machines) {
        assert.ok(
          m.result.outcome === "exit" || m.result.failure.kind === "stopped" ||
            m.result.failure.kind === "reset", // pc_reset's guest resets the machine on purpose
        );
        assert.equal(hostProcess(m.pid), null, `guest process ${m.pid} outlived the scenario`);
      }
      assert.ok(out.machines.length > 0);
    },
  });
}
