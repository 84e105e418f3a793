/**
 * The reporters on hand-built outcomes: TAP read back by tap-parser, JUnit XML by
 * fast-xml-parser, JSON by JSON.parse; assertions are on the parsed structures.
 */
import assert from "node:assert/strict";
import { Parser } from "tap-parser";
import { XMLParser, XMLValidator } from "fast-xml-parser";
import { render, type ScenarioReport, tailLines, toScenarioReport } from "./model.ts";
import { prettyReporter } from "./pretty.ts";
import { tapDescription, tapReporter, yamlLines, type YamlValue } from "./tap.ts";
import { junitReporter, xmlEscape } from "./junit.ts";
import { jsonReporter } from "./json.ts";
import { handRun, outcomes, tripleFault } from "./test_outcomes.ts";

// deno-lint-ignore no-explicit-any
type Json = any;

/** tap-parser's events: [type, payload]. */
function parseTap(text: string): { asserts: Json[]; complete: Json; events: Json[] } {
  const events = Parser.parse(text) as Json[];
  const asserts = events.filter((e) => e[0] === "assert").map((e) => e[1]);
  const complete = events.find((e) => e[0] === "complete")?.[1];
  return { asserts, complete, events };
}

const xml = new XMLParser({
  ignoreAttributes: false,
  attributeNamePrefix: "",
  parseAttributeValue: false,
  parseTagValue: false,
  trimValues: false,
  // XML's own numeric character references (&#13;) are decoded by fast-xml-parser 5 only with
  // this option on; the reporter's documents use no HTML entity.
  htmlEntities: true,
  isArray: (name) => ["testsuite", "testcase", "property"].includes(name),
});

Deno.test("toScenarioReport classifies failures and is plain JSON", () => {
  const all = outcomes();
  const r = (id: string) => toScenarioReport(id, all[id], { seed: 3, runId: "r" });
  const boom = r("boom");
  assert.equal(boom.failure?.kind, "triple-fault");
  assert.equal(boom.failure?.name, "GuestFailureError");
  assert.deepEqual(boom.failure?.report, tripleFault);
  assert.deepEqual(boom.failure?.lastConsoleLines, tripleFault.lastConsoleLines);
  assert.equal(boom.failure?.stack, undefined);
  const asserts = r("asserts");
  assert.equal(asserts.failure?.kind, "assertion");
  assert.deepEqual(asserts.failure?.lastConsoleLines, ["line 1", "line 2", "bye"]);
  assert.equal(r("ducked").failure?.kind, "halted");
  assert.equal(r("hello").failure, undefined);
  assert.equal(r("later").skipReason, "no # QEMU here");
  const thrown = toScenarioReport("x", {
    name: "x",
    status: "failed",
    error: new TypeError("oops"),
    hostMs: 1,
    machines: [],
  }, { seed: 3, runId: "r" });
  assert.equal(thrown.failure?.kind, "error");
  assert.match(thrown.failure?.stack ?? "", /TypeError: oops/);
  for (const id of Object.keys(all)) {
    const report = r(id);
    assert.deepEqual(JSON.parse(JSON.stringify(report)), report);
    assert.equal(report.seed, 3);
  }
  assert.deepEqual(tailLines("a\nb\nc", 2), ["b", "c"]);
  assert.deepEqual(tailLines("", 2), []);
});

Deno.test("TAP: version 14, plan, ok/not ok in name order, YAML diagnostics, SKIP", () => {
  const run = handRun("artifacts/x");
  const text = render(tapReporter, run);
  const { asserts, complete, events } = parseTap(text);
  assert.deepEqual(events[0], ["version", 14]);
  assert.deepEqual(events[1][0], "plan");
  assert.deepEqual([events[1][1].start, events[1][1].end], [1, 5]);
  assert.deepEqual(
    asserts.map((a) => [a.id, a.ok, a.name]),
    [
      [1, false, "asserts: asserts on the exit status"],
      [2, false, 'boom: boom <triple> & "faults" # not a directive'],
      [3, false, "ducked: halts"],
      [4, true, "hello: hello echoes a line"],
      [5, true, "later: needs QEMU"],
    ],
  );
  assert.equal(asserts[3].time, 183.25);
  assert.equal(asserts[4].skip, "no # QEMU here");
  assert.equal(asserts[3].diag, null);

  const boom = asserts[1].diag;
  const expected = run.scenarios[1];
  assert.equal(boom.message, expected.failure?.message);
  assert.equal(boom.kind, "triple-fault");
  assert.equal(boom.error, "GuestFailureError");
  assert.equal(boom.severity, "fail");
  assert.equal(boom.rip, "00100a3c");
  assert.equal(boom.instruction, "lidt (%eax)  [0f 01 18]");
  assert.deepEqual(boom.lastConsoleLines, tripleFault.lastConsoleLines);
  assert.deepEqual(boom.machines, [{
    kernel: "fixtures/build/boom.elf",
    ended: `triple-fault: ${tripleFault.message}`,
    guestMs: 1,
  }]);
  assert.equal(boom.seed, 42);
  assert.equal(boom.artifacts, "artifacts/x/boom");

  const asserted = asserts[0].diag;
  assert.equal(asserted.kind, "assertion");
  assert.deepEqual(asserted.lastConsoleLines, ["line 1", "line 2", "bye"]);
  assert.equal(asserts[2].diag.kind, "halted");

  assert.equal(complete.ok, false);
  assert.deepEqual([complete.count, complete.fail, complete.skip], [5, 3, 1]);
  const comments = events.filter((e) => e[0] === "comment").map((e) => e[1]).join("");
  assert.match(comments, /seed 42/);
  assert.match(comments, /artifacts in artifacts\/x/);
});

Deno.test("TAP: a run that passes parses as ok; streamed parts make the same text", () => {
  const run = handRun();
  run.scenarios = run.scenarios.filter((s) => s.status !== "failed");
  run.selected = run.scenarios.map((s) => s.id);
  const text = render(tapReporter, run);
  const { complete } = parseTap(text);
  assert.equal(complete.ok, true);
  assert.deepEqual([complete.count, complete.pass, complete.skip], [2, 2, 1]);
  const streamed = tapReporter.begin(run) +
    run.scenarios.map((s, i) => tapReporter.scenario(s, i, run)).join("") + tapReporter.end(run);
  assert.equal(streamed, text);
});

Deno.test("TAP: YAML round-trips awkward text through tap-parser", () => {
  const diag: { [key: string]: YamlValue } = {
    message: "line1\n  indented\n\n...\n---\n  ...\nend  ",
    keep: "a\n\n",
    lead: "  leading spaces\nx",
    controls: "esc\x1b[0m\r\nz\x7f\u0085\ufeff",
    tabs: "a\tb\nc",
    list: ["x", "- y", "#z", "", "multi\nline", ": colon", "null", "123"],
    objects: [{ a: 1, b: "two\nlines" }, {}, { c: [] }],
    empty: {},
    nested: { deep: { yes: true, no: false, none: null } },
    "key with spaces": 3,
  };
  const desc = 'a # b \\ c "d"';
  const tap = [
    "TAP version 14",
    "1..1",
    `not ok 1 - ${tapDescription(desc)}`,
    "  ---",
    ...yamlLines(diag, 2),
    "  ...",
    "",
  ].join("\n");
  const { asserts, complete } = parseTap(tap);
  assert.equal(asserts.length, 1);
  assert.equal(asserts[0].name, desc);
  assert.deepEqual(asserts[0].diag, diag);
  assert.equal(complete.count, 1);
});

Deno.test("JUnit: well-formed, counts, failures, skips, transcripts, properties", () => {
  const run = handRun("artifacts/x");
  const text = render(junitReporter, run);
  assert.equal(XMLValidator.validate(text), true);
  const doc = xml.parse(text);
  const suites = doc.testsuites;
  assert.equal(suites.name, "ring3 scenarios");
  assert.deepEqual(
    [suites.tests, suites.failures, suites.errors, suites.skipped, suites.time],
    ["5", "3", "0", "1", "0.700"],
  );
  const suite = suites.testsuite[0];
  assert.equal(suite.tests, "5");
  assert.equal(suite.timestamp, "2026-11-21T00:00:00.000Z");
  const props = Object.fromEntries(
    suite.properties.property.map((p: Json) => [p.name, p.value]),
  );
  assert.deepEqual(props, {
    seed: "42",
    runId: "20261121T000000Z-beef",
    jobs: "2",
    artifacts: "artifacts/x",
  });
  const cases: Json[] = suite.testcase;
  assert.deepEqual(cases.map((c) => c.name), ["asserts", "boom", "ducked", "hello", "later"]);
  const byName = Object.fromEntries(cases.map((c) => [c.name, c]));

  const boom = byName.boom;
  assert.equal(boom.classname, "scenarios");
  assert.equal(boom.file, "scenarios/boom.ts");
  assert.equal(boom.time, "0.400");
  assert.equal(
    boom.properties.property[0].value,
    'boom <triple> & "faults" # not a directive',
  );
  assert.equal(boom.failure.type, "triple-fault");
  assert.equal(boom.failure.message, `triple-fault: ${tripleFault.message}`);
  const failure: string = boom.failure["#text"];
  assert.ok(failure.includes("lidt (%eax)  [0f 01 18]"));
  assert.ok(failure.includes("| esc \u241b[31mred\u241b[0m"), failure);
  assert.ok(failure.includes("seed: 42"));
  assert.ok(failure.includes("artifacts: artifacts/x/boom"));
  // The transcript: control characters as control pictures, \r kept, "]]>" as it is.
  assert.equal(
    boom["system-out"],
    "--- machine 1: fixtures/build/boom.elf (triple-fault: #DF while delivering #GP(0x0) " +
      '<&> "quoted") ---\n' +
      "boom kernel\nabout to # fault \\ here\nesc \u241b[31mred\u241b[0m\r\n\u2400\ufffd]]>\n",
  );
  assert.equal(
    boom["system-err"],
    "--- machine 1: fixtures/build/boom.elf ---\nunhandled port 0x80 <write>\n",
  );

  assert.equal(byName.asserts.failure.type, "assertion");
  assert.ok(byName.asserts.failure["#text"].includes("  | bye"));
  assert.equal(byName.ducked.failure.type, "halted");
  assert.equal(byName.hello.failure, undefined);
  assert.equal(byName.hello.skipped, undefined);
  assert.equal(
    byName.hello["system-out"],
    "--- machine 1: fixtures/build/hello.elf (exit 5) ---\nring3 hello kernel\n> you typed: hi\n",
  );
  assert.equal(byName.later.skipped.message, "no # QEMU here");
  assert.equal(byName.later["system-out"], undefined);
});

Deno.test("JUnit: escaping round-trips through an XML parser, in text and attributes", () => {
  const nasty = `a<b>&c"d'e\r\nf\tg ]]> <!-- x --> <![CDATA[y]]> &amp;`;
  const doc = `<r a="${xmlEscape(nasty, true)}">${xmlEscape(nasty)}</r>`;
  assert.equal(XMLValidator.validate(doc), true);
  const parsed = xml.parse(doc).r;
  assert.equal(parsed.a, nasty);
  assert.equal(parsed["#text"], nasty);
  assert.equal(xmlEscape("\x00\x07\x1b\ud800"), "\u2400\u2407\u241b\ufffd");
});

Deno.test("JSON: an array of reports in name order", () => {
  const run = handRun("artifacts/x");
  const parsed: ScenarioReport[] = JSON.parse(render(jsonReporter, run));
  assert.deepEqual(parsed, run.scenarios);
  assert.deepEqual(parsed.map((s) => [s.id, s.status]), [
    ["asserts", "failed"],
    ["boom", "failed"],
    ["ducked", "failed"],
    ["hello", "passed"],
    ["later", "skipped"],
  ]);
  const boom = parsed[1];
  assert.equal(boom.durationMs, 400.125);
  assert.equal(boom.failure?.kind, "triple-fault");
  assert.equal(boom.machines[0].result.outcome, "failure");
  assert.equal(boom.machines[0].logs[0], "unhandled port 0x80 <write>");
  assert.equal(parsed[3].machines[0].result.outcome, "exit");
  assert.equal(parsed[3].artifactsDir, "artifacts/x/hello");
  assert.ok(parsed.every((s) => s.seed === 42 && s.runId === "20261121T000000Z-beef"));
});

Deno.test("pretty: one line per scenario, failure details, summary", () => {
  const text = render(prettyReporter, handRun("artifacts/x"));
  const lines = text.split("\n");
  assert.ok(lines.includes("ok - hello: hello echoes a line (0.18s)"), text);
  assert.ok(lines.includes("ok - later # SKIP no # QEMU here"), text);
  assert.ok(lines.includes(`not ok - boom: ${outcomes().boom.name} (0.40s)`), text);
  assert.ok(lines.includes(`  triple-fault: ${tripleFault.message}`), text);
  assert.ok(lines.includes("  artifacts: artifacts/x/boom"), text);
  assert.ok(lines.includes("  last console lines:"), text);
  assert.ok(lines.includes("rerun the failures: deno task scenario asserts boom ducked --seed 42"));
  assert.ok(lines.includes("seed 42, 2 jobs, 0.70s; artifacts in artifacts/x"), text);
  assert.equal(lines.at(-2), "scenarios: 1 passed, 3 failed, 1 skipped");
  // Name order: the first line is the first scenario's.
  assert.match(lines[0], /^not ok - asserts: /);
});

Deno.test("events a backend skipped show in pretty, TAP (read by tap-parser) and JUnit", () => {
  const skippedRun = handRun();
  const hello = skippedRun.scenarios.find((s) => s.id === "hello")!;
  const m = hello.machines[0];
  m.backend = "qemu";
  m.result = {
    ...m.result,
    stats: {
      ...m.result.stats,
      events: [
        { guestNs: 1, kind: "serial", detail: '"hi"', outcome: "applied" },
        {
          guestNs: 2,
          kind: "irq",
          detail: "skipped: not supported by qemu backend",
          outcome: "skipped",
        },
        {
          guestNs: 3,
          kind: "irq",
          detail: "skipped: not supported by qemu backend",
          outcome: "skipped",
        },
        {
          guestNs: 0,
          kind: "fault",
          detail: "drop-interrupt: skipped: not supported by qemu backend",
          outcome: "skipped",
        },
      ],
    },
  };
  const line = "machine 1 (qemu) fixtures/build/hello.elf: 3 events skipped, not supported by " +
    "the qemu backend: irq ×2, fault drop-interrupt";
  assert.ok(render(prettyReporter, skippedRun).includes(`ok - hello: hello echoes a line`));
  assert.ok(render(prettyReporter, skippedRun).includes(`  ${line}\n`));
  const { asserts, events } = parseTap(render(tapReporter, skippedRun));
  assert.equal(asserts.find((a) => a.name.startsWith("hello"))?.ok, true, "still a pass");
  assert.ok(events.some((e) => e[0] === "comment" && e[1] === `# ${line}\n`), "a TAP comment");
  const doc = xml.parse(render(junitReporter, skippedRun));
  const tc = doc.testsuites.testsuite[0].testcase.find((t: Json) => t.name === "hello");
  assert.deepEqual(
    tc.properties.property.map((p: Json) => [p.name, p.value]).slice(1),
    [["skipped-events", line]],
  );
});
