/**
 * The TAP reporter: TAP version 14, one test point per scenario in name order, a YAML
 * diagnostics block under each failure, `# SKIP` for skipped scenarios.
 *
 * ```text
 * TAP version 14
 * 1..2
 * # ring3 scenarios: run 20261121T165138Z-3f2a, seed 1, 2 jobs
 * not ok 1 - boom: boom triple-faults # time=400.12ms
 *   ---
 *   message: |-
 *     triple-fault: #DF while delivering #GP
 *       rip: 0x00100a3c
 *   severity: fail
 *   kind: triple-fault
 *   error: GuestFailureError
 *   lastConsoleLines:
 *     - "boom kernel"
 *   ...
 * ok 2 - hello: hello boots in ring3, … # time=183.20ms
 * # seed 1; artifacts in artifacts/20261121T165138Z-3f2a
 * # scenarios: 1 passed, 1 failed, 0 skipped
 * ```
 *
 * @module
 */
import {
  countStatuses,
  describeResult,
  type Reporter,
  type RunInfo,
  type ScenarioReport,
  skippedEventsLine,
} from "./model.ts";

/** A value the YAML writer can write. */
export type YamlValue =
  | string
  | number
  | boolean
  | null
  | undefined
  | YamlValue[]
  | { [key: string]: YamlValue };

/**
 * Writes a mapping as block YAML. Single-line strings are written double-quoted (JSON's
 * escapes are YAML's), multi-line printable strings as literal blocks, anything unprintable
 * escaped; entries whose value is undefined are left out.
 *
 * @param map the mapping
 * @param indent spaces before each top-level key
 * @returns lines without newlines
 */
export function yamlLines(map: { [key: string]: YamlValue }, indent = 0): string[] {
  const pad = " ".repeat(indent);
  const lines: string[] = [];
  for (const [key, value] of Object.entries(map)) {
    if (value === undefined) continue;
    const k = /^[A-Za-z_][A-Za-z0-9_]*$/.test(key) ? key : quote(key);
    lines.push(...node(`${pad}${k}:`, value, indent));
  }
  return lines;
}

/** The lines of `head` (a key, or a "-" of a sequence item) followed by its value. */
function node(head: string, value: YamlValue, indent: number): string[] {
  if (Array.isArray(value)) {
    if (value.length === 0) return [`${head} []`];
    const lines = [head];
    const pad = " ".repeat(indent + 2);
    for (const item of value) {
      if (item !== null && typeof item === "object" && !Array.isArray(item)) {
        const inner = yamlLines(item, indent + 4);
        if (inner.length === 0) lines.push(`${pad}- {}`);
        else {
          // The first key goes on the "- " line, the others line up under it.
          lines.push(`${pad}- ${inner[0].slice(indent + 4)}`, ...inner.slice(1));
        }
      } else {
        lines.push(...node(`${pad}-`, item ?? null, indent + 2));
      }
    }
    return lines;
  }
  if (value !== null && typeof value === "object") {
    const inner = yamlLines(value, indent + 2);
    return inner.length === 0 ? [`${head} {}`] : [head, ...inner];
  }
  if (typeof value === "string" && value.includes("\n") && printable.test(value)) {
    // A literal block: the text as it is. "+" keeps trailing newlines, "-" strips the last;
    // the explicit indentation lets the first line start with spaces.
    const keep = value.endsWith("\n");
    const body = keep ? value.slice(0, -1) : value;
    const pad = " ".repeat(indent + 2);
    return [`${head} |2${keep ? "+" : "-"}`, ...body.split("\n").map((l) => pad + l)];
  }
  return [`${head} ${scalar(value ?? null)}`];
}

/** YAML's printable characters, tab and newline included, carriage return not. */
const printable =
  /^[\t\n\x20-\x7e\x85\xa0-\ud7ff\ue000-\ufefe\uff00-\ufffd\u{10000}-\u{10ffff}]*$/u;

function scalar(v: string | number | boolean | null): string {
  if (typeof v === "number") return Number.isFinite(v) ? String(v) : quote(String(v));
  if (typeof v === "string") return quote(v);
  return String(v);
}

/** A double-quoted YAML scalar: JSON's escapes, plus YAML's unprintables escaped. */
function quote(s: string): string {
  return JSON.stringify(s.toWellFormed()).replace(
    /[\x7f-\x84\x86-\x9f\ufeff\ufffe\uffff]/g,
    (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`,
  );
}

/**
 * A test point's description: TAP 14 escapes "#" and "\" there, and it is one line.
 *
 * @param s text
 * @returns the escaped text
 */
export function tapDescription(s: string): string {
  return s.replace(/[\r\n]+/g, " ").replace(/\\/g, "\\\\").replace(/#/g, "\\#");
}

/**
 * The YAML diagnostics of a failed scenario.
 *
 * @param s the report
 * @returns the mapping
 */
export function failureDiagnostics(s: ScenarioReport): { [key: string]: YamlValue } {
  const f = s.failure;
  const r = f?.report;
  return {
    message: f?.message ?? "failed",
    severity: "fail",
    kind: f?.kind ?? "error",
    error: f?.name,
    rip: r?.rip,
    mode: r?.mode,
    instruction: r?.instruction ? `${r.instruction.text}  [${r.instruction.bytes}]` : undefined,
    lastConsoleLines: f?.lastConsoleLines ?? [],
    machines: s.machines.map((m) => ({
      kernel: m.kernel,
      backend: m.backend,
      ended: describeResult(m.result),
      guestMs: m.result.stats.guestNs / 1e6,
      skippedEvents: skippedEventsLine(m) ?? undefined,
    })),
    durationMs: round(s.durationMs),
    seed: s.seed,
    artifacts: s.artifactsDir,
    stack: f?.stack,
  };
}

/**
 * One scenario's test point (with its diagnostics when it failed).
 *
 * @param s the report
 * @param index its 0-based position
 * @returns lines, each ending in a newline
 */
export function tapScenario(s: ScenarioReport, index: number): string {
  const n = index + 1;
  const desc = tapDescription(`${s.id}: ${s.title}`);
  if (s.status === "skipped") {
    return `ok ${n} - ${desc} # SKIP ${tapDescription(s.skipReason ?? "")}\n`;
  }
  const time = ` # time=${round(s.durationMs).toFixed(2)}ms`;
  // Skipped events of a passed scenario: TAP comments, which consumers show and do not count.
  const skipped = s.machines.flatMap((m) => skippedEventsLine(m) ?? []).map((l) => `# ${l}`);
  if (s.status === "passed") return [`ok ${n} - ${desc}${time}`, ...skipped].join("\n") + "\n";
  const yaml = yamlLines(failureDiagnostics(s), 2);
  return [`not ok ${n} - ${desc}${time}`, "  ---", ...yaml, "  ..."].join("\n") + "\n";
}

/** The TAP reporter. */
export const tapReporter: Reporter = {
  name: "tap",
  begin(run: RunInfo) {
    const jobs = `${run.jobs} job${run.jobs === 1 ? "" : "s"}`;
    return `TAP version 14\n1..${run.selected.length}\n` +
      `# ring3 scenarios: run ${run.runId}, seed ${run.seed}, ${jobs}\n`;
  },
  scenario: (s, index) => tapScenario(s, index),
  end(run) {
    const c = countStatuses(run.scenarios);
    const where = run.artifactsDir ? `; artifacts in ${run.artifactsDir}` : "";
    return `# seed ${run.seed}${where}\n` +
      `# scenarios: ${c.passed} passed, ${c.failed} failed, ${c.skipped} skipped\n`;
  },
};

function round(ms: number): number {
  return Math.round(ms * 100) / 100;
}
