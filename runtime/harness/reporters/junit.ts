/**
 * The JUnit XML reporter, for CI systems that read test results as JUnit XML: one
 * `<testsuite>` for the run, one `<testcase>` per scenario in name order, with `<failure>` or
 * `<skipped>`, the machines' transcripts in `<system-out>` and their diagnostics in
 * `<system-err>`. The seed, run id and artifacts folder are the suite's properties.
 *
 * ```xml
 * <?xml version="1.0" encoding="UTF-8"?>
 * <testsuites name="ring3 scenarios" tests="1" failures="1" errors="0" skipped="0" time="0.412">
 *   <testsuite name="scenarios" tests="1" failures="1" errors="0" skipped="0" time="0.412" …>
 *     <properties><property name="seed" value="1"/>…</properties>
 *     <testcase classname="scenarios" name="boom" file="scenarios/boom.ts" time="0.400">
 *       <properties><property name="description" value="boom triple-faults"/></properties>
 *       <failure type="triple-fault" message="triple-fault: #DF while delivering #GP">…</failure>
 *       <system-out>--- machine 1: fixtures/build/boom.elf (triple-fault: …) ---
 * boom kernel
 * </system-out>
 *     </testcase>
 *   </testsuite>
 * </testsuites>
 * ```
 *
 * @module
 */
import { formatFailure } from "../../run_result.ts";
import {
  countStatuses,
  describeResult,
  firstLine,
  type Reporter,
  type RunReport,
  type ScenarioReport,
  skippedEventsLine,
} from "./model.ts";

/**
 * Escapes text for XML 1.0 element content or a double- or single-quoted attribute. Characters
 * XML 1.0 cannot carry at all (C0 controls other than tab, newline and carriage return, lone
 * surrogates, U+FFFE, U+FFFF) become their Unicode control pictures (U+2400 + code) or U+FFFD,
 * so a transcript with terminal escapes still makes a well-formed document; carriage returns
 * (and, in attributes, newlines and tabs) are written as character references so that parsers
 * do not normalize them away.
 *
 * @param s any text
 * @param attribute escape for an attribute value
 * @returns the escaped text
 */
export function xmlEscape(s: string, attribute = false): string {
  return s.toWellFormed().replace(
    // deno-lint-ignore no-control-regex
    /[&<>"'\r\n\t\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]/g,
    (c) => {
      switch (c) {
        case "&":
          return "&amp;";
        case "<":
          return "&lt;";
        case ">":
          return "&gt;";
        case '"':
          return attribute ? "&quot;" : c;
        case "'":
          return attribute ? "&apos;" : c;
        case "\r":
          return "&#13;";
        case "\n":
          return attribute ? "&#10;" : c;
        case "\t":
          return attribute ? "&#9;" : c;
        case "\ufffe":
        case "\uffff":
          return "\ufffd";
        default:
          return String.fromCharCode(0x2400 + c.charCodeAt(0));
      }
    },
  );
}

function attrs(map: Record<string, string | number | undefined>): string {
  return Object.entries(map)
    .filter(([, v]) => v !== undefined)
    .map(([k, v]) => ` ${k}="${xmlEscape(String(v), true)}"`)
    .join("");
}

function seconds(ms: number): string {
  return (ms / 1000).toFixed(3);
}

/**
 * The text of a failure element: the message, the machines' own failures, the console tail.
 *
 * @param s a failed scenario's report
 * @returns plain text
 */
export function failureText(s: ScenarioReport): string {
  const f = s.failure;
  const lines = [f?.stack ?? f?.message ?? "failed"];
  for (const m of s.machines) {
    if (m.result.outcome === "failure" && m.result.failure.kind !== "stopped") {
      if (!lines[0].includes(m.result.failure.message)) {
        lines.push(`machine ${m.index} ${m.kernel}: ${formatFailure(m.result.failure)}`);
      }
    }
  }
  if (f && !f.report && f.lastConsoleLines.length > 0) {
    lines.push("last console lines:", ...f.lastConsoleLines.map((l) => `  | ${l}`));
  }
  lines.push(`seed: ${s.seed}`);
  if (s.artifactsDir) lines.push(`artifacts: ${s.artifactsDir}`);
  return lines.join("\n");
}

/**
 * One scenario's `<testcase>` element.
 *
 * @param s the report
 * @returns XML, indented for its place in the document
 */
export function junitTestcase(s: ScenarioReport): string {
  const head = `    <testcase${
    attrs({
      classname: "scenarios",
      name: s.id,
      file: `scenarios/${s.id}.ts`,
      time: seconds(s.durationMs),
    })
  }>`;
  // Events a backend skipped are properties too, so a CI view shows what a pass did not test.
  const props = [`<property${attrs({ name: "description", value: s.title })}/>`];
  for (const m of s.machines) {
    const line = skippedEventsLine(m);
    if (line) props.push(`<property${attrs({ name: "skipped-events", value: line })}/>`);
  }
  const body = [`      <properties>${props.join("")}</properties>`];
  if (s.status === "skipped") {
    body.push(`      <skipped${attrs({ message: s.skipReason ?? "" })}/>`);
  } else if (s.status === "failed") {
    const f = s.failure;
    body.push(
      `      <failure${
        attrs({ type: f?.kind ?? "error", message: firstLine(f?.message ?? "failed") })
      }>${xmlEscape(failureText(s))}</failure>`,
    );
  }
  if (s.machines.length > 0) {
    const out = s.machines.map((m) =>
      `--- machine ${m.index}: ${m.kernel} (${describeResult(m.result)}) ---\n${m.transcript}` +
      (m.transcript === "" || m.transcript.endsWith("\n") ? "" : "\n")
    ).join("");
    body.push(`      <system-out>${xmlEscape(out)}</system-out>`);
    const logs = s.machines.filter((m) => m.logs.length > 0)
      .map((m) => `--- machine ${m.index}: ${m.kernel} ---\n${m.logs.join("\n")}\n`).join("");
    if (logs) body.push(`      <system-err>${xmlEscape(logs)}</system-err>`);
  }
  return [head, ...body, "    </testcase>"].join("\n") + "\n";
}

/**
 * The whole JUnit XML document of a run.
 *
 * @param run the finished run
 * @returns the document
 */
export function junitDocument(run: RunReport): string {
  const c = countStatuses(run.scenarios);
  const counts = {
    tests: c.total,
    failures: c.failed,
    errors: 0,
    skipped: c.skipped,
    time: seconds(run.durationMs),
  };
  const props = { seed: run.seed, runId: run.runId, jobs: run.jobs, artifacts: run.artifactsDir };
  return [
    `<?xml version="1.0" encoding="UTF-8"?>`,
    `<testsuites${attrs({ name: "ring3 scenarios", ...counts })}>`,
    `  <testsuite${attrs({ name: "scenarios", ...counts, timestamp: run.startedAt })}>`,
    "    <properties>",
    ...Object.entries(props).filter(([, v]) => v !== undefined).map(([name, value]) =>
      `      <property${attrs({ name, value: String(value) })}/>`
    ),
    "    </properties>",
    run.scenarios.map(junitTestcase).join("").replace(/\n$/, ""),
    "  </testsuite>",
    "</testsuites>",
  ].filter((l) => l !== "").join("\n") + "\n";
}

/** The JUnit XML reporter: the counts come first, so it writes everything at the end. */
export const junitReporter: Reporter = {
  name: "junit",
  begin: () => "",
  scenario: () => "",
  end: (run) => junitDocument(run),
};
