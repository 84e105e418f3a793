/**
 * `deno task scenario` as a subprocess: real runs of scenarios/hello.ts read back through
 * tap-parser, fast-xml-parser and JSON.parse, the artifacts, and the exit statuses.
 */
import assert from "node:assert/strict";
import { Parser } from "tap-parser";
import { XMLParser, XMLValidator } from "fast-xml-parser";

const ring3Host = Deno.build.os === "linux" && Deno.build.arch === "x86_64";
const root = new URL("../", import.meta.url);

// deno-lint-ignore no-explicit-any
type Json = any;

/** Runs the runner from the project root. */
async function scenario(...args: string[]): Promise<{ code: number; out: string; err: string }> {
  const { code, stdout, stderr } = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "scripts/scenario.ts", ...args],
    cwd: root,
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).output();
  const decoder = new TextDecoder();
  return { code, out: decoder.decode(stdout), err: decoder.decode(stderr) };
}

async function withArtifacts(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "ring3-artifacts-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

Deno.test({
  name: "scenario hello (pretty): ok line, summary, artifacts, exit 0",
  ignore: !ring3Host,
  fn: () =>
    withArtifacts(async (dir) => {
      const r = await scenario("hello", "--artifacts", dir);
      assert.equal(r.code, 0, r.out + r.err);
      const lines = r.out.split("\n");
      assert.match(lines[0], /^ok - hello: hello boots in ring3, .* \(\d+\.\d\ds\)$/);
      assert.ok(lines.includes("scenarios: 1 passed, 0 failed, 0 skipped"), r.out);
      assert.ok(r.out.includes(`artifacts in ${dir}`));

      const report = JSON.parse(await Deno.readTextFile(`${dir}/hello/report.json`));
      assert.equal(report.status, "passed");
      assert.equal(report.seed, 1);
      assert.equal(report.machines.length, 1);
      const log = await Deno.readTextFile(`${dir}/hello/1-hello.elf.log`);
      assert.equal(log, report.machines[0].transcript);
      assert.match(log, /^ring3 hello kernel\n[^]*you typed: hello ring3\nbye\n$/);
      const result = JSON.parse(await Deno.readTextFile(`${dir}/hello/1-result.json`));
      assert.deepEqual(result, report.machines[0].result);
      assert.equal(result.outcome, "exit");
      assert.equal(result.exitCode, 23);
      const run = JSON.parse(await Deno.readTextFile(`${dir}/run.json`));
      assert.deepEqual(run.selected, ["hello"]);
      assert.deepEqual(run.scenarios, [report]);
    }),
});

Deno.test({
  name: "scenario 'hel*' --reporter tap --seed 7 --jobs 2: TAP 14 that tap-parser reads as ok",
  ignore: !ring3Host,
  async fn() {
    const r = await scenario("hel*", "--reporter", "tap", "--seed", "7", "--jobs", "2");
    // Default artifacts folder: artifacts/<run-id>/, named in a TAP comment.
    const where = /^# seed 7; artifacts in (artifacts\/\d{8}T\d{6}Z-[0-9a-f]{4})$/m.exec(r.out);
    assert.ok(where, r.out);
    const runDir = new URL(`${where[1]}/`, root);
    try {
      assert.equal(r.code, 0, r.out + r.err);
      const events = Parser.parse(r.out) as Json[];
      assert.deepEqual(events[0], ["version", 14]);
      const asserts = events.filter((e) => e[0] === "assert").map((e) => e[1]);
      assert.equal(asserts.length, 1);
      assert.equal(asserts[0].ok, true);
      assert.match(asserts[0].name, /^hello: hello boots in ring3/);
      assert.ok(asserts[0].time > 0);
      const complete = events.find((e) => e[0] === "complete")[1];
      assert.deepEqual([complete.ok, complete.count, complete.pass], [true, 1, 1]);
      assert.deepEqual([complete.plan.start, complete.plan.end], [1, 1]);
      const report = JSON.parse(await Deno.readTextFile(new URL("hello/report.json", runDir)));
      assert.equal(report.seed, 7);
    } finally {
      await Deno.remove(runDir, { recursive: true });
    }
  },
});

Deno.test({
  name: "scenario hello --reporter junit: well-formed JUnit XML with the transcript",
  ignore: !ring3Host,
  fn: () =>
    withArtifacts(async (dir) => {
      const r = await scenario("hello", "--reporter", "junit", "--artifacts", dir);
      assert.equal(r.code, 0, r.out + r.err);
      assert.equal(XMLValidator.validate(r.out), true);
      assert.match(r.err, new RegExp(`artifacts: ${dir}`));
      const doc = new XMLParser({
        ignoreAttributes: false,
        attributeNamePrefix: "",
        parseTagValue: false,
        trimValues: false,
        htmlEntities: true,
      }).parse(r.out);
      const suite = doc.testsuites.testsuite;
      assert.deepEqual(
        [suite.tests, suite.failures, suite.skipped, suite.errors],
        ["1", "0", "0", "0"],
      );
      assert.equal(suite.properties.property.find((p: Json) => p.name === "seed").value, "1");
      const tc = suite.testcase;
      assert.equal(tc.name, "hello");
      assert.equal(tc.classname, "scenarios");
      assert.equal(tc.failure, undefined);
      assert.ok(Number(tc.time) > 0);
      assert.match(
        tc["system-out"],
        /^--- machine 1: fixtures\/build\/hello\.elf \(exit 23\) ---\nring3 hello kernel\n[^]*> you typed: hello ring3\nbye\n$/,
      );
    }),
});

Deno.test({
  name: "scenario hello --reporter json: an array of outcomes with the machine's result",
  ignore: !ring3Host,
  fn: () =>
    withArtifacts(async (dir) => {
      const r = await scenario("hello", "--reporter", "json", "--artifacts", dir, "--seed", "3");
      assert.equal(r.code, 0, r.out + r.err);
      const reports = JSON.parse(r.out);
      assert.equal(reports.length, 1);
      const [hello] = reports;
      assert.deepEqual([hello.id, hello.status, hello.seed], ["hello", "passed", 3]);
      assert.ok(hello.durationMs > 0);
      assert.equal(hello.failure, undefined);
      assert.equal(hello.machines[0].kernel, "fixtures/build/hello.elf");
      assert.equal(hello.machines[0].result.exitCode, 23);
      assert.ok(hello.machines[0].result.stats.guestNs > 0);
      assert.equal(hello.artifactsDir, `${dir}/hello`);
      assert.deepEqual(
        JSON.parse(await Deno.readTextFile(`${dir}/hello/report.json`)),
        hello,
      );
    }),
});

Deno.test("scenario: usage errors exit 2 with a clear message; --list and --help exit 0", async () => {
  const unknown = await scenario("nope");
  assert.equal(unknown.code, 2);
  assert.match(unknown.err, /no scenario named "nope" \(scenarios: .*hello/);
  assert.equal(unknown.out, "");
  const glob = await scenario("zz*");
  assert.equal(glob.code, 2);
  assert.match(glob.err, /no scenario matches "zz\*"/);
  const flag = await scenario("hello", "--bogus");
  assert.equal(flag.code, 2);
  assert.match(flag.err, /Unknown option '--bogus'/);
  const reporter = await scenario("hello", "--reporter", "xml");
  assert.equal(reporter.code, 2);
  assert.match(reporter.err, /unknown reporter "xml" \(reporters: pretty, tap, junit, json\)/);
  const jobs = await scenario("hello", "--jobs", "many");
  assert.equal(jobs.code, 2);
  assert.match(jobs.err, /--jobs takes a non-negative integer, not "many"/);
  assert.equal((await scenario()).code, 2);

  const list = await scenario("--list");
  assert.equal(list.code, 0, list.err);
  assert.match(list.out, /^hello +hello boots in ring3, reports its memory/m);
  const help = await scenario("--help");
  assert.equal(help.code, 0);
  assert.match(help.out, /--reporter R +pretty \(default\), tap/);
});
