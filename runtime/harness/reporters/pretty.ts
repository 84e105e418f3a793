/**
 * The pretty reporter, for people at a terminal: one line per scenario, the details of each
 * failure indented below its line, and a closing summary.
 *
 * ```text
 * ok - hello: hello boots in ring3, … (0.18s)
 * not ok - boom: boom triple-faults (0.40s)
 *   triple-fault: #DF while delivering #GP
 *   …
 *   artifacts: artifacts/20261121T165138Z-3f2a/boom
 * seed 1, 1 job, 0.62s; artifacts in artifacts/20261121T165138Z-3f2a
 * rerun the failures: deno task scenario boom --seed 1
 * scenarios: 1 passed, 1 failed, 0 skipped
 * ```
 *
 * @module
 */
import { formatFailure } from "../../run_result.ts";
import { countStatuses, type Reporter, type ScenarioReport, skippedEventsLine } from "./model.ts";

/**
 * One scenario's lines.
 *
 * @param s the report
 * @returns its lines, each ending in a newline
 */
export function prettyScenario(s: ScenarioReport): string {
  const secs = (s.durationMs / 1000).toFixed(2);
  const skipped = s.machines.flatMap((m) => skippedEventsLine(m) ?? []).map(indent);
  if (s.status === "passed") {
    return [`ok - ${s.id}: ${s.title} (${secs}s)`, ...skipped].join("\n") + "\n";
  }
  if (s.status === "skipped") return `ok - ${s.id} # SKIP ${s.skipReason ?? ""}\n`;
  const lines = [`not ok - ${s.id}: ${s.title} (${secs}s)`];
  const f = s.failure;
  const message = (f?.stack ?? f?.message ?? "failed").trimEnd();
  lines.push(indent(message));
  if (f && !f.report && f.kind !== "expect-timeout" && f.lastConsoleLines.length > 0) {
    lines.push(indent("last console lines:"));
    for (const l of f.lastConsoleLines) lines.push(indent(`  | ${l}`));
  }
  for (const m of s.machines) {
    if (
      m.result.outcome === "failure" && m.result.failure.kind !== "stopped" &&
      !message.includes(m.result.failure.message)
    ) {
      lines.push(indent(`machine ${m.index} ${m.kernel}: ${formatFailure(m.result.failure)}`));
    }
  }
  lines.push(...skipped);
  if (s.artifactsDir) lines.push(indent(`artifacts: ${s.artifactsDir}`));
  return lines.join("\n") + "\n";
}

/** The pretty reporter. */
export const prettyReporter: Reporter = {
  name: "pretty",
  begin: () => "",
  scenario: (s) => prettyScenario(s),
  end(run) {
    const c = countStatuses(run.scenarios);
    const jobs = `${run.jobs} job${run.jobs === 1 ? "" : "s"}`;
    const where = run.artifactsDir ? `; artifacts in ${run.artifactsDir}` : "";
    const failed = run.scenarios.filter((s) => s.status === "failed").map((s) => s.id);
    const rerun = failed.length > 0
      ? `rerun the failures: deno task scenario ${failed.join(" ")} --seed ${run.seed}\n`
      : "";
    return `seed ${run.seed}, ${jobs}, ${(run.durationMs / 1000).toFixed(2)}s${where}\n` + rerun +
      `scenarios: ${c.passed} passed, ${c.failed} failed, ${c.skipped} skipped\n`;
  },
};

function indent(s: string): string {
  return s.split("\n").map((l) => l === "" ? l : `  ${l}`).join("\n");
}
