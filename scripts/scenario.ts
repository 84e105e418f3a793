/**
 * `deno task scenario NAME...`: runs scenarios from scenarios/NAME.ts and prints one line per
 * scenario; the exit status is 0 only when all passed.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { formatFailure, runScenario, type Scenario } from "../mod.ts";

const { positionals, values } = parseArgs({
  args: Deno.args,
  allowPositionals: true,
  options: { list: { type: "boolean" }, help: { type: "boolean", short: "h" } },
});

const dir = new URL("../scenarios/", import.meta.url);
const available = [...Deno.readDirSync(dir)]
  .filter((e) => e.isFile && e.name.endsWith(".ts") && !e.name.endsWith("_test.ts"))
  .map((e) => e.name.slice(0, -3))
  .sort();

if (values.help || (positionals.length === 0 && !values.list)) {
  console.log(`usage: deno task scenario NAME... | --list\nscenarios: ${available.join(", ")}`);
  Deno.exit(values.help ? 0 : 2);
}
if (values.list) {
  for (const name of available) console.log(name);
  Deno.exit(0);
}

let failed = 0;
for (const name of positionals) {
  if (!available.includes(name)) {
    console.error(`no scenario named "${name}" (available: ${available.join(", ")})`);
    Deno.exit(2);
  }
  const mod = await import(new URL(`${name}.ts`, dir).href);
  const s = mod.default as Scenario;
  const out = await runScenario(s);
  const secs = (out.hostMs / 1000).toFixed(2);
  if (out.status === "passed") {
    console.log(`ok - ${name}: ${s.name} (${secs}s)`);
  } else if (out.status === "skipped") {
    console.log(`ok - ${name} # SKIP ${out.skipReason}`);
  } else {
    failed++;
    console.log(`not ok - ${name}: ${s.name} (${secs}s)`);
    console.log(indent(out.error?.message ?? "failed"));
    for (const m of out.machines) {
      if (
        m.result.outcome === "failure" && !out.error?.message.includes(m.result.failure.message)
      ) {
        console.log(indent(`machine ${m.kernel}: ${formatFailure(m.result.failure)}`));
      }
    }
  }
}
Deno.exit(failed ? 1 : 0);

function indent(s: string): string {
  return s.split("\n").map((l) => `  ${l}`).join("\n");
}
