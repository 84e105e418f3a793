/**
 * What reporters report: a run of scenarios as plain, JSON-safe data. The runner turns each
 * {@link ScenarioOutcome} into a {@link ScenarioReport} with {@link toScenarioReport}; a
 * {@link Reporter} turns reports into text. Reporters are pure functions of these values, so
 * tests can feed them outcomes built by hand.
 *
 * @module
 */
import { screenText } from "../../screen/text_screen.ts";
import type { FailureReport, RunResult } from "../../run_result.ts";
import type { ScenarioOutcome } from "../scenario.ts";

/** What a run is, before any scenario has run. */
export interface RunInfo {
  /** Names a run; default artifacts go to `artifacts/<runId>/`. */
  runId: string;
  /** The seed every scenario got (`--seed N`); rerunning with it reproduces the run. */
  seed: number;
  /** Scenarios run at once (`--jobs N`). */
  jobs: number;
  /** When the run started, ISO 8601. */
  startedAt: string;
  /** The selected scenarios' names (module names, sorted): reports follow this order. */
  selected: string[];
  /** Where artifacts go, when they are written. */
  artifactsDir?: string;
}

/** A whole run: its {@link RunInfo} and its scenarios' reports, in {@link RunInfo.selected} order. */
export interface RunReport extends RunInfo {
  /** Host wall time of the whole run, milliseconds. */
  durationMs: number;
  scenarios: ScenarioReport[];
}

/**
 * A failure kind: one of the guest's {@link FailureReport} kinds, or one of the runner's own:
 * "expect-timeout" (an expectation not met in guest time), "assertion" (a failed assert),
 * "load-error" (the scenario module could not be loaded), "error" (anything else thrown).
 */
export type ReportedFailureKind =
  | FailureReport["kind"]
  | "expect-timeout"
  | "assertion"
  | "load-error"
  | "error";

/** Why a scenario failed. */
export interface ReportedFailure {
  /** The error's class name: GuestFailureError, ExpectTimeoutError, AssertionError, … */
  name: string;
  /** The error's message (several lines for a guest failure). */
  message: string;
  kind: ReportedFailureKind;
  /** The guest's classified report, when the error carries one (GuestFailureError). */
  report?: FailureReport;
  /** What the guest printed last: the report's lines, or the last machine's transcript tail. */
  lastConsoleLines: string[];
  /** For errors other than guest failures, expectation timeouts and assertions. */
  stack?: string;
}

/** One machine a scenario booted. */
export interface MachineReport {
  /** 1-based, in boot order; names the machine's artifacts (`<index>-…`). */
  index: number;
  /** The kernel image path the scenario booted. */
  kernel: string;
  /** The guest host process's pid (gone by the time of the report). */
  pid: number;
  /** How the run ended. */
  result: RunResult;
  /** Everything the guest printed on its console. */
  transcript: string;
  /** Diagnostics from the machine (unhandled ports, loader notes). */
  logs: string[];
  /** The backend that ran it ("ring3" or "qemu"). */
  backend?: string;
  /** The text screen at the end, when the machine reported one. */
  screen?: string;
}

/** One scenario's report: what the JSON reporter prints and `report.json` holds. */
export interface ScenarioReport {
  /** The module name (`scenarios/<id>.ts`): what is selected on the command line. */
  id: string;
  /** The scenario's description, the sentence given to `scenario()`. */
  title: string;
  status: "passed" | "failed" | "skipped";
  /** Host wall time, milliseconds. */
  durationMs: number;
  /** The seed the scenario got. */
  seed: number;
  runId: string;
  skipReason?: string;
  failure?: ReportedFailure;
  machines: MachineReport[];
  /** This scenario's artifacts folder, when artifacts are written. */
  artifactsDir?: string;
}

/**
 * One line naming the timeline events and faults a machine's backend skipped (it cannot do
 * them), or null when it skipped none. Reporters print it under passed scenarios too: a pass
 * with skipped events tested less, and says so.
 *
 * @param m the machine
 * @returns "machine 1 (qemu) fixtures/build/minios.elf: 3 events skipped, not supported by the
 *   qemu backend: irq ×2, fault drop-interrupt"
 */
export function skippedEventsLine(m: MachineReport): string | null {
  const skipped = (m.result.stats.events ?? []).filter((e) => e.outcome === "skipped");
  if (skipped.length === 0) return null;
  const counts = new Map<string, number>();
  for (const e of skipped) {
    const name = e.kind === "fault" ? `fault ${e.detail.split(":")[0]}` : e.kind;
    counts.set(name, (counts.get(name) ?? 0) + 1);
  }
  const what = [...counts].map(([k, n]) => n > 1 ? `${k} ×${n}` : k).join(", ");
  const backend = m.backend ?? "this";
  return `machine ${m.index}${m.backend ? ` (${m.backend})` : ""} ${m.kernel}: ${skipped.length} ` +
    `event${
      skipped.length === 1 ? "" : "s"
    } skipped, not supported by the ${backend} backend: ${what}`;
}

/** Console lines a failure shows when nothing better is known. */
export const TAIL_LINES = 10;

/**
 * Turns a scenario outcome into its report.
 *
 * @param id the module name
 * @param outcome what {@link runScenario} returned (or one built by hand)
 * @param run the run's seed and id, and the scenario's artifacts folder if any
 * @returns the report, JSON-safe
 */
export function toScenarioReport(
  id: string,
  outcome: ScenarioOutcome,
  run: { seed: number; runId: string; artifactsDir?: string },
): ScenarioReport {
  const machines: MachineReport[] = outcome.machines.map((m, i) => ({
    index: i + 1,
    kernel: m.kernel,
    pid: m.pid,
    result: m.result,
    transcript: m.transcript,
    logs: m.logs ?? [],
    ...(m.backend ? { backend: m.backend } : {}),
    ...(m.screen ? { screen: screenText(m.screen) } : {}),
  }));
  const report: ScenarioReport = {
    id,
    title: outcome.name,
    status: outcome.status,
    durationMs: outcome.hostMs,
    seed: run.seed,
    runId: run.runId,
    machines,
  };
  if (outcome.skipReason !== undefined) report.skipReason = outcome.skipReason;
  if (outcome.status === "failed") {
    report.failure = describeError(outcome.error ?? new Error("failed"), machines);
  }
  if (run.artifactsDir !== undefined) report.artifactsDir = run.artifactsDir;
  return report;
}

/**
 * Classifies an error a scenario threw. Duck-typed, so that errors from another copy of the
 * module (or built by hand) classify the same: an error with a `report` holding a string `kind`
 * and a `lastConsoleLines` array is a guest failure.
 *
 * @param error what was thrown
 * @param machines the scenario's machines, for the console tail when the error has none
 * @returns the failure
 */
export function describeError(error: Error, machines: MachineReport[] = []): ReportedFailure {
  const name = error.name || "Error";
  const report = guestReport(error);
  if (report) {
    return {
      name,
      message: error.message,
      kind: report.kind,
      report,
      lastConsoleLines: [...report.lastConsoleLines],
    };
  }
  const kind: ReportedFailureKind = name === "ExpectTimeoutError"
    ? "expect-timeout"
    : name === "AssertionError" || (error as { code?: unknown }).code === "ERR_ASSERTION"
    ? "assertion"
    : name === "ScenarioLoadError"
    ? "load-error"
    : "error";
  const failure: ReportedFailure = { name, message: error.message, kind, lastConsoleLines: [] };
  // A machine that failed by itself tells more than the scenario's error about the console.
  const failedMachine = machines.find((m) =>
    m.result.outcome === "failure" && m.result.failure.kind !== "stopped"
  );
  if (failedMachine && failedMachine.result.outcome === "failure") {
    failure.lastConsoleLines = [...failedMachine.result.failure.lastConsoleLines];
  } else if (machines.length > 0) {
    failure.lastConsoleLines = tailLines(machines[machines.length - 1].transcript, TAIL_LINES);
  }
  if (kind === "error" || kind === "load-error") {
    if (error.stack) failure.stack = error.stack;
  }
  return failure;
}

function guestReport(error: Error): FailureReport | undefined {
  const r = (error as { report?: unknown }).report;
  if (typeof r !== "object" || r === null) return undefined;
  const { kind, lastConsoleLines } = r as Partial<FailureReport>;
  if (typeof kind !== "string" || !Array.isArray(lastConsoleLines)) return undefined;
  return r as FailureReport;
}

/**
 * The last lines of a transcript, the unfinished one included.
 *
 * @param text what the guest printed
 * @param n how many lines
 * @returns lines without their newline
 */
export function tailLines(text: string, n: number): string[] {
  if (text === "") return [];
  const lines = text.split("\n");
  if (lines[lines.length - 1] === "") lines.pop();
  return lines.slice(-n);
}

/** Counts of a run, by status. */
export interface RunCounts {
  total: number;
  passed: number;
  failed: number;
  skipped: number;
}

/**
 * Counts scenarios by status.
 *
 * @param scenarios the reports
 * @returns the counts
 */
export function countStatuses(scenarios: readonly ScenarioReport[]): RunCounts {
  const counts = { total: scenarios.length, passed: 0, failed: 0, skipped: 0 };
  for (const s of scenarios) counts[s.status]++;
  return counts;
}

/**
 * A machine's ending in a few words: "exit 23", "timeout: …", "stopped".
 *
 * @param result how the run ended
 * @returns one line
 */
export function describeResult(result: RunResult): string {
  if (result.outcome === "exit") return `exit ${result.exitCode}`;
  const f = result.failure;
  return f.kind === "stopped" ? "stopped" : `${f.kind}: ${firstLine(f.message)}`;
}

/**
 * The first line of a text.
 *
 * @param text any text
 * @returns the text up to its first newline
 */
export function firstLine(text: string): string {
  const i = text.indexOf("\n");
  return i < 0 ? text : text.slice(0, i);
}

/**
 * Turns a run into text. Text for a scenario may be written as soon as it and every scenario
 * before it (in {@link RunInfo.selected} order) are done, so a reporter can stream in a fixed
 * order whatever the order of completion; a format that needs the totals first writes
 * everything in {@link Reporter.end}. `begin` + each `scenario` + `end` is the whole report.
 */
export interface Reporter {
  /** What `--reporter` calls it. */
  readonly name: string;
  /**
   * @param run the run
   * @returns text before any scenario
   */
  begin(run: RunInfo): string;
  /**
   * @param report a scenario's report
   * @param index its 0-based position in {@link RunInfo.selected}
   * @param run the run
   * @returns the scenario's text
   */
  scenario(report: ScenarioReport, index: number, run: RunInfo): string;
  /**
   * @param run the finished run
   * @returns text after every scenario
   */
  end(run: RunReport): string;
}

/**
 * The whole text of a report at once.
 *
 * @param reporter the format
 * @param run the finished run
 * @returns the text
 */
export function render(reporter: Reporter, run: RunReport): string {
  let text = reporter.begin(run);
  run.scenarios.forEach((s, i) => text += reporter.scenario(s, i, run));
  return text + reporter.end(run);
}
