/**
 * The JSON reporter: the run's {@link ScenarioReport}s as one JSON array, in name order. Each
 * element carries its status, duration, seed, run id, failure (kind, message, the guest's
 * report, last console lines) and its machines (kernel, RunResult, transcript, diagnostics):
 * the same object as the scenario's `report.json` artifact.
 *
 * ```json
 * [
 *   {
 *     "id": "hello",
 *     "title": "hello boots in ring3, …",
 *     "status": "passed",
 *     "durationMs": 183.2,
 *     "seed": 1,
 *     "runId": "20261121T165138Z-3f2a",
 *     "machines": [
 *       { "index": 1, "kernel": "fixtures/build/hello.elf", "pid": 4242,
 *         "result": { "outcome": "exit", "exitCode": 23, "stats": { … } },
 *         "transcript": "ring3 hello kernel\n…", "logs": [] }
 *     ],
 *     "artifactsDir": "artifacts/20261121T165138Z-3f2a/hello"
 *   }
 * ]
 * ```
 *
 * @module
 */
import type { Reporter, ScenarioReport } from "./model.ts";

/**
 * One scenario's report as JSON: what `report.json` holds.
 *
 * @param s the report
 * @returns indented JSON with a final newline
 */
export function scenarioJson(s: ScenarioReport): string {
  return JSON.stringify(s, null, 2) + "\n";
}

/** The JSON reporter: an array, so it writes everything at the end. */
export const jsonReporter: Reporter = {
  name: "json",
  begin: () => "",
  scenario: () => "",
  end: (run) => JSON.stringify(run.scenarios, null, 2) + "\n",
};
