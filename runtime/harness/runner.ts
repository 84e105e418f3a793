/**
 * The scenario runner behind `deno task scenario`: reads the command line, selects scenario
 * modules by name or glob, runs them a few at a time, writes each one's artifacts, and hands
 * the reports to a reporter in name order whatever the order of completion.
 *
 * @module
 */
import { type ScreenSnapshot, screenText } from "../screen/text_screen.ts";
import { screenPng } from "../screen/render.ts";
import { parseArgs } from "node:util";
import { DEFAULT_SEED, runScenario, type Scenario, type ScenarioOutcome } from "./scenario.ts";
import {
  type Reporter,
  type RunInfo,
  type RunReport,
  type ScenarioReport,
  toScenarioReport,
} from "./reporters/model.ts";
import { prettyReporter } from "./reporters/pretty.ts";
import { tapReporter } from "./reporters/tap.ts";
import { junitReporter } from "./reporters/junit.ts";
import { jsonReporter, scenarioJson } from "./reporters/json.ts";
import { compareTranscripts, formatDivergence } from "./differential.ts";
import type { Backend } from "./scenario_vm.ts";

/** The reporters `--reporter` names. */
export const reporters: Readonly<Record<string, Reporter>> = {
  pretty: prettyReporter,
  tap: tapReporter,
  junit: junitReporter,
  json: jsonReporter,
};

/** The command line's usage text. */
export const USAGE = `usage: deno task scenario NAME|GLOB... [options]
       deno task scenario --list [NAME|GLOB...]

Runs scenarios from scenarios/NAME.ts. A GLOB ("*", "hel*", "[ab]?") selects every scenario
whose name matches it; quote it so the shell leaves it alone.

options:
  --jobs N          run N scenarios at once (default 1)
  --reporter R      pretty (default), tap (TAP version 14), junit (JUnit XML), json
  --seed N          the seed scenarios get as context.seed (default ${DEFAULT_SEED})
  --backend B       ring3 (default), qemu, or both: run each scenario on ring3 and on QEMU and
                    fail it at the first line where their transcripts differ
  --artifacts DIR   write artifacts to DIR/<scenario>/ (default artifacts/<run-id>/<scenario>/)
  --list            print the scenarios' names and descriptions
  -h, --help        print this

exit status: 0 all selected scenarios passed or were skipped, 1 one failed, 2 usage error`;

/** A mistake on the command line: exit status 2. */
export class UsageError extends Error {
  override name = "UsageError";
}

/** A scenario module that cannot be loaded or does not default-export a scenario. */
export class ScenarioLoadError extends Error {
  override name = "ScenarioLoadError";
}

/** What the command line asks for. */
export interface CliOptions {
  patterns: string[];
  jobs: number;
  reporter: string;
  seed: number;
  backend: RunBackend;
  artifacts?: string;
  list: boolean;
  help: boolean;
}

/** Where scenarios run: one backend, or both with their transcripts compared. */
export type RunBackend = Backend | "both";

/**
 * Parses the command line.
 *
 * @param args the arguments
 * @returns the options
 * @throws {UsageError} for an unknown flag, a bad value, or nothing to do
 */
export function parseCli(args: string[]): CliOptions {
  let parsed;
  try {
    parsed = parseArgs({
      args,
      allowPositionals: true,
      strict: true,
      options: {
        jobs: { type: "string", short: "j" },
        reporter: { type: "string", short: "r" },
        seed: { type: "string" },
        backend: { type: "string", short: "b" },
        artifacts: { type: "string" },
        list: { type: "boolean" },
        help: { type: "boolean", short: "h" },
      },
    });
  } catch (e) {
    throw new UsageError((e as Error).message);
  }
  const { values, positionals } = parsed;
  const jobs = values.jobs === undefined ? 1 : integer("--jobs", values.jobs);
  if (jobs < 1) throw new UsageError(`--jobs must be at least 1, not ${values.jobs}`);
  const seed = values.seed === undefined ? DEFAULT_SEED : integer("--seed", values.seed);
  const reporter = values.reporter ?? "pretty";
  if (!(reporter in reporters)) {
    throw new UsageError(
      `unknown reporter "${reporter}" (reporters: ${Object.keys(reporters).join(", ")})`,
    );
  }
  if (values.artifacts === "") throw new UsageError("--artifacts needs a folder");
  const backend = (values.backend ?? "ring3") as RunBackend;
  if (!["ring3", "qemu", "both"].includes(backend)) {
    throw new UsageError(`unknown backend "${values.backend}" (backends: ring3, qemu, both)`);
  }
  const options: CliOptions = {
    patterns: positionals,
    jobs,
    reporter,
    seed,
    backend,
    list: values.list ?? false,
    help: values.help ?? false,
  };
  if (values.artifacts !== undefined) options.artifacts = values.artifacts;
  if (!options.help && !options.list && positionals.length === 0) {
    throw new UsageError("name the scenarios to run (or --list them)");
  }
  return options;
}

function integer(flag: string, text: string): number {
  const n = /^(0x[0-9a-f]+|\d+)$/i.test(text) ? Number(text) : NaN;
  if (!Number.isSafeInteger(n)) {
    throw new UsageError(`${flag} takes a non-negative integer, not "${text}"`);
  }
  return n;
}

/**
 * The scenario module names in a folder: its `.ts` files but tests and `_`-prefixed helper
 * modules (shared by scenarios, as Deno std names private files), sorted.
 *
 * @param dir the folder
 * @returns module names without ".ts"
 */
export function availableScenarios(dir: URL): string[] {
  return [...Deno.readDirSync(dir)]
    .filter((e) =>
      e.isFile && e.name.endsWith(".ts") && !e.name.endsWith("_test.ts") &&
      !e.name.startsWith("_")
    )
    .map((e) => e.name.slice(0, -3))
    .sort();
}

/**
 * A glob as a regular expression over whole names: `*` any run of characters, `?` one,
 * `[abc]`/`[a-z]`/`[!abc]` one of a set; anything else stands for itself.
 *
 * @param glob the pattern
 * @returns the expression
 */
export function globToRegExp(glob: string): RegExp {
  let re = "";
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i];
    if (c === "*") re += ".*";
    else if (c === "?") re += ".";
    else if (c === "[" && glob.indexOf("]", i + 2) > 0) {
      const end = glob.indexOf("]", i + 2);
      let set = glob.slice(i + 1, end);
      const negate = set.startsWith("!") || set.startsWith("^");
      if (negate) set = set.slice(1);
      re += `[${negate ? "^" : ""}${set.replace(/[\\\]^]/g, "\\$&")}]`;
      i = end;
    } else re += c.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&");
  }
  return new RegExp(`^${re}$`);
}

/**
 * Selects scenarios by name or glob. `scenarios/NAME.ts` is taken as NAME, so a shell's own
 * expansion of `scenarios/*.ts` works too.
 *
 * @param patterns names or globs
 * @param available every scenario's name
 * @returns the selected names, sorted, each once
 * @throws {UsageError} for a name that is no scenario or a glob that matches none
 */
export function selectScenarios(patterns: string[], available: string[]): string[] {
  const selected = new Set<string>();
  for (const raw of patterns) {
    const p = raw.replace(/^(\.\/)?scenarios\//, "").replace(/\.ts$/, "");
    const isGlob = /[*?[]/.test(p);
    const matches = isGlob
      ? available.filter((n) => globToRegExp(p).test(n))
      : available.filter((n) => n === p);
    if (matches.length === 0) {
      throw new UsageError(
        `${isGlob ? "no scenario matches" : "no scenario named"} "${raw}" (scenarios: ${
          available.join(", ") || "none"
        })`,
      );
    }
    for (const m of matches) selected.add(m);
  }
  return [...selected].sort();
}

/**
 * Loads a scenario module's default export.
 *
 * @param dir the scenarios folder
 * @param id the module name
 * @returns the scenario
 * @throws {ScenarioLoadError} when the module does not load or exports no scenario
 */
export async function loadScenario(dir: URL, id: string): Promise<Scenario> {
  let mod: { default?: unknown };
  try {
    mod = await import(new URL(`${id}.ts`, dir).href);
  } catch (e) {
    throw new ScenarioLoadError(`scenarios/${id}.ts does not load: ${(e as Error).message}`, {
      cause: e,
    });
  }
  const s = mod.default as Partial<Scenario> | undefined;
  if (!s || typeof s.name !== "string" || typeof s.fn !== "function" || !s.options) {
    throw new ScenarioLoadError(
      `scenarios/${id}.ts must default-export scenario(name, fn) from mod.ts`,
    );
  }
  return s as Scenario;
}

/**
 * A new run id: the UTC start time to the second and a few random hex digits, so that ids
 * sort by time and two runs in the same second differ.
 *
 * @param now the start
 * @returns e.g. "20261121T165138Z-3f2a"
 */
export function newRunId(now = new Date()): string {
  const stamp = now.toISOString().replace(/\.\d+Z$/, "Z").replace(/[-:]/g, "");
  const rand = crypto.getRandomValues(new Uint16Array(1))[0].toString(16).padStart(4, "0");
  return `${stamp}-${rand}`;
}

/**
 * The file name of a machine's transcript: `<index>-<kernel basename>.log`.
 *
 * @param index 1-based
 * @param kernel the kernel path
 * @returns the name
 */
export function transcriptFileName(index: number, kernel: string): string {
  const base = kernel.split("/").filter((p) => p !== "").pop() ?? "kernel";
  return `${index}-${base.replace(/[^A-Za-z0-9._-]/g, "_")}.log`;
}

/**
 * Writes a scenario's artifacts into its folder (the runner adds `run.json`, the whole
 * {@link RunReport}, to the run's folder): each machine's transcript
 * (`<n>-<kernel>.log`), RunResult (`<n>-result.json`) and final text screen (`<n>-screen.txt`,
 * `<n>-screen.png`), and the report (`report.json`).
 *
 * @param dir the scenario's folder (created)
 * @param report the scenario's report
 * @param screens each machine's final text screen, in report order (none for machines without)
 */
export async function writeArtifacts(
  dir: string,
  report: ScenarioReport,
  screens: (ScreenSnapshot | undefined)[] = [],
): Promise<void> {
  await Deno.mkdir(dir, { recursive: true });
  for (const m of report.machines) {
    await Deno.writeTextFile(`${dir}/${transcriptFileName(m.index, m.kernel)}`, m.transcript);
    await Deno.writeTextFile(
      `${dir}/${m.index}-result.json`,
      JSON.stringify(m.result, null, 2) + "\n",
    );
    const screen = screens[m.index - 1];
    if (screen) {
      await Deno.writeTextFile(`${dir}/${m.index}-screen.txt`, screenText(screen) + "\n");
      await Deno.writeFile(`${dir}/${m.index}-screen.png`, screenPng(screen));
    }
  }
  await Deno.writeTextFile(`${dir}/report.json`, scenarioJson(report));
}

/** Options of {@link runScenarios}. */
export interface RunOptions {
  /** The scenarios folder. */
  dir: URL;
  /** At most this many at once. */
  jobs: number;
  seed: number;
  /** Default "ring3". */
  backend?: RunBackend;
  runId: string;
  /** Artifacts go to `<artifactsDir>/<id>/`; none are written without it. */
  artifactsDir?: string;
  /** Called as each scenario ends, in completion order. */
  onReport?: (index: number, report: ScenarioReport) => void;
}

/**
 * Runs scenarios, at most `jobs` at once. Each one boots its own machines (their own Workers
 * and host processes), so they really run side by side.
 *
 * @param ids module names, in report order
 * @param options how
 * @returns the reports, in the order of `ids`
 */
export async function runScenarios(ids: string[], options: RunOptions): Promise<ScenarioReport[]> {
  const reports: ScenarioReport[] = new Array(ids.length);
  let next = 0;
  const worker = async () => {
    while (next < ids.length) {
      const index = next++;
      const id = ids[index];
      const artifactsDir = options.artifactsDir === undefined
        ? undefined
        : `${options.artifactsDir}/${id}`;
      const outcome = await runOne(options.dir, id, options.seed, options.backend ?? "ring3");
      const report = toScenarioReport(id, outcome, {
        seed: options.seed,
        runId: options.runId,
        artifactsDir,
      });
      if (artifactsDir !== undefined) {
        await writeArtifacts(artifactsDir, report, outcome.machines.map((m) => m.screen));
      }
      reports[index] = report;
      options.onReport?.(index, report);
    }
  };
  await Promise.all(Array.from({ length: Math.min(options.jobs, ids.length) }, worker));
  return reports;
}

async function runOne(
  dir: URL,
  id: string,
  seed: number,
  backend: RunBackend,
): Promise<ScenarioOutcome> {
  const t0 = performance.now();
  let s: Scenario;
  try {
    s = await loadScenario(dir, id);
  } catch (e) {
    const error = e instanceof Error ? e : new Error(String(e));
    return { name: id, status: "failed", error, hostMs: performance.now() - t0, machines: [] };
  }
  if (backend !== "both") return await runScenario(s, { seed, backend });
  return compareBackends(
    await runScenario(s, { seed, backend: "ring3" }),
    await runScenario(s, { seed, backend: "qemu" }),
    s.options.compareTranscripts ?? true,
  );
}

/**
 * One outcome for a scenario run on both backends: it fails when either run failed, or at the
 * first line where a machine's transcripts differ (differential testing of the emulator).
 *
 * @param a the ring3 run
 * @param b the QEMU run
 * @param compare compare transcripts (a scenario's `compareTranscripts: false` turns it off)
 * @returns the combined outcome
 */
export function compareBackends(
  a: ScenarioOutcome,
  b: ScenarioOutcome,
  compare = true,
): ScenarioOutcome {
  let error: Error | undefined;
  if (a.error) error = new Error(`on ring3: ${a.error.message}`, { cause: a.error });
  else if (b.error) error = new Error(`on qemu: ${b.error.message}`, { cause: b.error });
  else if (compare) {
    const n = Math.max(a.machines.length, b.machines.length);
    for (let i = 0; i < n && !error; i++) {
      const d = compareTranscripts(
        a.machines[i]?.transcript ?? "",
        b.machines[i]?.transcript ?? "",
      );
      if (d) {
        const kernel = a.machines[i]?.kernel ?? b.machines[i]?.kernel ?? "?";
        error = new Error(`machine ${i + 1} (${kernel}): ${formatDivergence(d)}`);
      }
    }
  }
  const skipped = a.status === "skipped" && b.status === "skipped";
  return {
    name: a.name,
    status: error ? "failed" : skipped ? "skipped" : "passed",
    error,
    skipReason: a.skipReason,
    hostMs: a.hostMs + b.hostMs,
    machines: [...a.machines, ...b.machines],
  };
}

/** Where a run's text goes. */
export interface Output {
  out(text: string): void;
  err(text: string): void;
}

/**
 * The whole command: parses `args`, runs, reports.
 *
 * @param args the command line
 * @param dir the scenarios folder
 * @param io where text goes
 * @returns the exit status: 0 all passed (skips allowed), 1 one failed, 2 usage error
 */
export async function main(args: string[], dir: URL, io: Output): Promise<number> {
  let cli: CliOptions;
  let ids: string[];
  const available = availableScenarios(dir);
  try {
    cli = parseCli(args);
    if (cli.help) {
      io.out(`${USAGE}\n\nscenarios: ${available.join(", ")}\n`);
      return 0;
    }
    ids = cli.list && cli.patterns.length === 0
      ? available
      : selectScenarios(cli.patterns, available);
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    io.err(`scenario: ${e.message}\n(deno task scenario --help prints the usage)\n`);
    return 2;
  }
  if (cli.list) return await list(dir, ids, io);

  const startedAt = new Date();
  const runId = newRunId(startedAt);
  const artifactsDir = cli.artifacts ?? `artifacts/${runId}`;
  const info: RunInfo = {
    runId,
    seed: cli.seed,
    jobs: cli.jobs,
    startedAt: startedAt.toISOString(),
    selected: ids,
    artifactsDir,
  };
  const reporter = reporters[cli.reporter];
  io.out(reporter.begin(info));
  // Reports are written in name order: each as soon as it and all before it are done.
  const done: (ScenarioReport | undefined)[] = new Array(ids.length);
  let printed = 0;
  const t0 = performance.now();
  const scenarios = await runScenarios(ids, {
    dir,
    jobs: cli.jobs,
    seed: cli.seed,
    backend: cli.backend,
    runId,
    artifactsDir,
    onReport(index, report) {
      done[index] = report;
      while (printed < ids.length && done[printed]) {
        io.out(reporter.scenario(done[printed]!, printed, info));
        printed++;
      }
    },
  });
  const run: RunReport = { ...info, durationMs: performance.now() - t0, scenarios };
  await Deno.mkdir(artifactsDir, { recursive: true });
  await Deno.writeTextFile(`${artifactsDir}/run.json`, JSON.stringify(run, null, 2) + "\n");
  io.out(reporter.end(run));
  if (reporter !== prettyReporter && reporter !== tapReporter) {
    io.err(`artifacts: ${artifactsDir}\n`);
  }
  return scenarios.some((s) => s.status === "failed") ? 1 : 0;
}

async function list(dir: URL, ids: string[], io: Output): Promise<number> {
  const width = Math.max(...ids.map((id) => id.length));
  let status = 0;
  for (const id of ids) {
    let text: string;
    try {
      const s = await loadScenario(dir, id);
      text = s.name + (s.options.skip ? ` (skipped: ${s.options.skip})` : "");
    } catch (e) {
      text = `(${(e as Error).message})`;
      status = 1;
    }
    io.out(`${id.padEnd(width)}  ${text}\n`);
  }
  return status;
}
