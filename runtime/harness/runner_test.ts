/**
 * The runner: command line, selection, and whole runs in process over a temporary scenarios
 * folder (scenarios/ itself holds only scenarios that pass), read back through tap-parser.
 */
import assert from "node:assert/strict";
import { Parser } from "tap-parser";
import {
  compareBackends,
  globToRegExp,
  main,
  newRunId,
  parseCli,
  selectScenarios,
  transcriptFileName,
  UsageError,
} from "./runner.ts";
import type { ScenarioReport } from "./reporters/model.ts";
import type { ScenarioOutcome } from "./scenario.ts";
import { emptyStats } from "../run_result.ts";

const ring3Host = Deno.build.os === "linux" && Deno.build.arch === "x86_64";
const modTs = new URL("../../mod.ts", import.meta.url).href;

// deno-lint-ignore no-explicit-any
type Json = any;

/** A temporary scenarios folder with these modules (name → body after the imports). */
async function scenarioDir(modules: Record<string, string>): Promise<URL> {
  const dir = await Deno.makeTempDir({ prefix: "ring3-scenarios-" });
  for (const [name, body] of Object.entries(modules)) {
    await Deno.writeTextFile(
      `${dir}/${name}.ts`,
      `import { scenario } from "${modTs}";\n${body}\n`,
    );
  }
  return new URL(`file://${dir}/`);
}

/** Runs the command in process. */
async function run(
  args: string[],
  dir: URL,
): Promise<{ status: number; out: string; err: string }> {
  let out = "";
  let err = "";
  const status = await main(args, dir, { out: (t) => out += t, err: (t) => err += t });
  return { status, out, err };
}

function tapAsserts(text: string): Json[] {
  return (Parser.parse(text) as Json[]).filter((e) => e[0] === "assert").map((e) => e[1]);
}

Deno.test("parseCli: defaults, values, and usage errors", () => {
  assert.deepEqual(parseCli(["hello"]), {
    patterns: ["hello"],
    jobs: 1,
    reporter: "pretty",
    seed: 1,
    backend: "ring3",
    list: false,
    help: false,
  });
  const o = parseCli(["a", "b*", "--jobs", "3", "--reporter", "tap", "--seed", "0x10"]);
  assert.deepEqual([o.patterns, o.jobs, o.reporter, o.seed], [["a", "b*"], 3, "tap", 16]);
  assert.equal(parseCli(["x", "--artifacts", "out"]).artifacts, "out");
  assert.equal(parseCli(["--list"]).list, true);
  assert.equal(parseCli(["-h"]).help, true);
  for (
    const bad of [
      [],
      ["x", "--bogus"],
      ["x", "--jobs", "0"],
      ["x", "--jobs", "two"],
      ["x", "--jobs"],
      ["x", "--seed", "-1"],
      ["x", "--seed", "1.5"],
      ["x", "--reporter", "xml"],
      ["x", "--artifacts", ""],
    ]
  ) {
    assert.throws(() => parseCli(bad), UsageError, bad.join(" "));
  }
});

Deno.test("selectScenarios: names, globs, scenarios/NAME.ts, sorted and once each", () => {
  const all = ["alpha", "beta", "hello", "help_me", "minios"];
  assert.deepEqual(selectScenarios(["hello"], all), ["hello"]);
  assert.deepEqual(selectScenarios(["*"], all), all);
  assert.deepEqual(selectScenarios(["hel*", "hello", "a*"], all), ["alpha", "hello", "help_me"]);
  assert.deepEqual(selectScenarios(["scenarios/beta.ts", "./scenarios/alpha.ts"], all), [
    "alpha",
    "beta",
  ]);
  assert.deepEqual(selectScenarios(["?eta", "[ab]*"], all), ["alpha", "beta"]);
  assert.deepEqual(selectScenarios(["[!ab]*o"], all), ["hello"]);
  assert.throws(() => selectScenarios(["nope"], all), /no scenario named "nope"/);
  assert.throws(() => selectScenarios(["x*"], all), /no scenario matches "x\*"/);
  assert.ok(globToRegExp("a.b").test("a.b"));
  assert.ok(!globToRegExp("a.b").test("axb"));
  assert.ok(!globToRegExp("hel").test("hello"));
});

Deno.test("artifact names and run ids", () => {
  assert.equal(transcriptFileName(1, "fixtures/build/hello.elf"), "1-hello.elf.log");
  assert.equal(transcriptFileName(2, "/tmp/my kernel"), "2-my_kernel.log");
  assert.match(newRunId(new Date("2026-11-21T16:51:38.123Z")), /^20261121T165138Z-[0-9a-f]{4}$/);
});

Deno.test("a run: name order whatever the completion order, jobs overlap, seed, exit 1", async () => {
  const key = `ring3-test-${crypto.randomUUID()}`;
  const dir = await scenarioDir({
    // a waits until b has started: it passes only when the two run at the same time.
    a_waits: `export default scenario("waits for b", async () => {
      const g = globalThis as unknown as Record<string, boolean>;
      for (let i = 0; i < 100 && !g["${key}"]; i++) await new Promise((r) => setTimeout(r, 10));
      if (!g["${key}"]) throw new Error("b did not run alongside a");
    });`,
    b_marks: `export default scenario("marks", async () => {
      (globalThis as unknown as Record<string, boolean>)["${key}"] = true;
    });`,
    c_seed: `export default scenario("sees seed 9", async ({ seed }) => {
      if (seed !== 9) throw new Error("seed " + seed);
    });`,
    d_skip: `export default scenario("skipped", async () => {}, { skip: "not today" });`,
    e_throws: `export default scenario("throws", async () => { throw new TypeError("bad"); });`,
    f_broken: `export const notAScenario = 1;`,
  });
  const artifacts = await Deno.makeTempDir({ prefix: "ring3-artifacts-" });
  const r = await run(
    ["*", "--jobs", "2", "--seed", "9", "--reporter", "tap", "--artifacts", artifacts],
    dir,
  );
  assert.equal(r.status, 1, r.out + r.err);
  const asserts = tapAsserts(r.out);
  assert.deepEqual(
    asserts.map((a) => [a.id, a.name.split(":")[0], a.ok]),
    [
      [1, "a_waits", true],
      [2, "b_marks", true],
      [3, "c_seed", true],
      [4, "d_skip", true],
      [5, "e_throws", false],
      [6, "f_broken", false],
    ],
  );
  assert.equal(asserts[3].skip, "not today");
  assert.equal(asserts[4].diag.kind, "error");
  assert.match(asserts[4].diag.message, /bad/);
  assert.equal(asserts[5].diag.kind, "load-error");
  assert.match(asserts[5].diag.message, /must default-export scenario/);

  const report: ScenarioReport = JSON.parse(
    await Deno.readTextFile(`${artifacts}/e_throws/report.json`),
  );
  assert.deepEqual([report.status, report.seed, report.failure?.kind], ["failed", 9, "error"]);
  const whole = JSON.parse(await Deno.readTextFile(`${artifacts}/run.json`));
  assert.deepEqual(whole.selected, [
    "a_waits",
    "b_marks",
    "c_seed",
    "d_skip",
    "e_throws",
    "f_broken",
  ]);
  assert.equal(whole.seed, 9);

  // One at a time, a waits for b in vain; with the default seed c fails too.
  delete (globalThis as unknown as Record<string, boolean>)[key];
  const serial = await run(["a_*", "b_*", "c_*", "--artifacts", artifacts], dir);
  assert.equal(serial.status, 1);
  assert.match(serial.out, /^not ok - a_waits: waits for b/m);
  assert.match(serial.out, /^not ok - c_seed: sees seed 9 .*\n {2}Error: seed 1/m);
  assert.match(serial.out, /^scenarios: 1 passed, 2 failed, 0 skipped$/m);

  const passing = await run(["b_marks", "d_skip", "--artifacts", artifacts], dir);
  assert.equal(passing.status, 0);
  assert.equal(
    (await run(["b_marks", "zzz", "--artifacts", artifacts], dir)).status,
    2,
  );
  const listed = await run(["--list"], dir);
  assert.equal(listed.status, 1); // f_broken cannot be listed
  assert.match(listed.out, /^d_skip +skipped \(skipped: not today\)$/m);
  await Deno.remove(artifacts, { recursive: true });
  await Deno.remove(dir, { recursive: true });
});

Deno.test({
  name: "a run: two scenarios' machines run at the same time; a guest failure is reported",
  ignore: !ring3Host,
  async fn() {
    const key = `ring3-test-${crypto.randomUUID()}`;
    const hello = (me: string, other: string) =>
      `export default scenario("${me} boots hello while ${other} does", async ({ boot }) => {
        const g = globalThis as unknown as Record<string, boolean>;
        const vm = await boot({ kernel: "fixtures/build/hello.elf" });
        await vm.console.expect("> ", { timeout: "5s" });
        g["${key}-${me}"] = true;
        for (let i = 0; i < 500 && !g["${key}-${other}"]; i++) {
          await new Promise((r) => setTimeout(r, 10));
        }
        if (!g["${key}-${other}"]) throw new Error("${other} never booted alongside");
        vm.console.send("x\\n");
        await vm.console.expect("bye\\n");
        if (await vm.exit() !== 3) throw new Error("wrong status");
      });`;
    const dir = await scenarioDir({
      one: hello("one", "two"),
      two: hello("two", "one"),
      waits: `export default scenario("expects what never comes", async ({ boot }) => {
        const vm = await boot({ kernel: "fixtures/build/hello.elf", timeout: "500ms" });
        await vm.console.expect("> ", { timeout: "5s" });
        await vm.exit();
      });`,
    });
    const artifacts = await Deno.makeTempDir({ prefix: "ring3-artifacts-" });
    const r = await run(["*", "-j", "2", "--reporter", "tap", "--artifacts", artifacts], dir);
    assert.equal(r.status, 1, r.out + r.err);
    const asserts = tapAsserts(r.out);
    assert.deepEqual(asserts.map((a) => [a.name.split(":")[0], a.ok]), [
      ["one", true],
      ["two", true],
      ["waits", false],
    ]);
    const diag = asserts[2].diag;
    assert.equal(diag.error, "GuestFailureError");
    assert.equal(diag.kind, "timeout");
    assert.ok(diag.lastConsoleLines.includes("> "), JSON.stringify(diag));
    const log = await Deno.readTextFile(`${artifacts}/waits/1-hello.elf.log`);
    assert.match(log, /^ring3 hello kernel\n/);
    const result = JSON.parse(await Deno.readTextFile(`${artifacts}/waits/1-result.json`));
    assert.equal(result.failure.kind, "timeout");
    await Deno.remove(artifacts, { recursive: true });
    await Deno.remove(dir, { recursive: true });
  },
});

Deno.test("compareBackends() fails a scenario at the first line where ring3 and qemu differ", () => {
  const outcome = (transcript: string): ScenarioOutcome => ({
    name: "x",
    status: "passed",
    hostMs: 1,
    machines: [{
      kernel: "k.elf",
      pid: 1,
      transcript,
      result: {
        outcome: "exit",
        exitCode: 1,
        stats: emptyStats(),
      },
    }],
  });
  const same = compareBackends(outcome("a\nb\n"), outcome("a\nb\n"));
  assert.equal(same.status, "passed");
  assert.equal(same.machines.length, 2);
  const diff = compareBackends(outcome("a\nb\n"), outcome("a\nc\n"));
  assert.equal(diff.status, "failed");
  assert.match(diff.error!.message, /machine 1 \(k.elf\): transcripts differ at line 2/);
  const failed = compareBackends(
    { ...outcome(""), status: "failed", error: new Error("boom") },
    outcome(""),
  );
  assert.match(failed.error!.message, /^on ring3: boom/);
});

Deno.test("compareBackends() leaves transcripts alone for a scenario that says they differ", () => {
  const outcome = (transcript: string): ScenarioOutcome => ({
    name: "s",
    status: "passed",
    hostMs: 1,
    machines: [{
      kernel: "k",
      pid: 1,
      transcript,
      result: { outcome: "exit", exitCode: 1, stats: emptyStats() },
    }],
  });
  assert.equal(compareBackends(outcome("tsc=1\n"), outcome("tsc=2\n"), false).status, "passed");
  assert.equal(compareBackends(outcome("tsc=1\n"), outcome("tsc=2\n")).status, "failed");
});
