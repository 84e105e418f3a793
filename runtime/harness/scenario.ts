/**
 * Scenarios: TypeScript functions that boot machines and check what they do. A scenario module
 * default-exports the value {@link scenario} returns; the runner (scripts/scenario.ts) or a
 * test calls {@link runScenario}.
 *
 * @module
 */
import type { RunResult } from "../run_result.ts";
import type { ScreenSnapshot } from "../screen/text_screen.ts";
import {
  type Backend,
  bootScenarioVm,
  type ScenarioBootOptions,
  type ScenarioVm,
} from "./scenario_vm.ts";

/** What a scenario function gets. */
export interface ScenarioContext {
  /**
   * Boots a machine (ring3's Vm or a QemuVm, by `options.backend`, else the run's backend);
   * it is stopped when the scenario ends, whatever happens.
   */
  boot(options: ScenarioBootOptions): Promise<ScenarioVm>;
  /**
   * The run's seed (`deno task scenario --seed N`, {@link DEFAULT_SEED} otherwise), for a
   * scenario that makes choices (inputs, orders, timings) to derive them from, so that a run
   * can be reproduced. Reports print it. It does not change how machines boot.
   */
  readonly seed: number;
}

/** The seed of a run that names none: fixed, so that runs are reproducible by default. */
export const DEFAULT_SEED = 1;

/** Options of {@link runScenario}. */
export interface RunScenarioOptions {
  /** Passed to the scenario as {@link ScenarioContext.seed}; default {@link DEFAULT_SEED}. */
  seed?: number;
  /** The backend of machines whose boot options name none (default "ring3"). */
  backend?: Backend;
}

/** Options of a scenario. */
export interface ScenarioOptions {
  /** Why the scenario is skipped, if it is (reported, not run). */
  skip?: string;
  /**
   * Whether `--backend both` compares the two backends' transcripts (default true). false for a
   * scenario whose output legitimately differs: it prints guest clock readings, or injects events
   * that one backend skips. Both runs must still pass.
   */
  compareTranscripts?: boolean;
}

/** A named scenario. */
export interface Scenario {
  readonly name: string;
  readonly fn: (context: ScenarioContext) => Promise<void>;
  readonly options: ScenarioOptions;
}

/**
 * Declares a scenario.
 *
 * @example
 * ```ts
 * import { scenario } from "../../mod.ts";
 * export default scenario("hello echoes", async ({ boot }) => {
 *   const vm = await boot({ kernel: "fixtures/build/hello.elf" });
 *   await vm.console.expect("> ", { timeout: "5s" });
 *   vm.console.send("hi\n");
 *   await vm.console.expect("you typed: hi");
 * });
 * ```
 * @param name what it shows, as a sentence
 * @param fn the body
 * @param options skip
 * @returns the scenario, to default-export
 */
export function scenario(
  name: string,
  fn: (context: ScenarioContext) => Promise<void>,
  options: ScenarioOptions = {},
): Scenario {
  return { name, fn, options };
}

/** What happened to one machine of a scenario run. */
export interface MachineRecord {
  kernel: string;
  /** The guest host process's pid (gone by the time the outcome is returned). */
  pid: number;
  transcript: string;
  result: RunResult;
  /** Diagnostics from the machine (unhandled ports, loader notes): {@link ScenarioVm.logs}. */
  logs?: string[];
  /** The backend that ran it. */
  backend?: Backend;
  /** The text screen at the end (written as `<n>-screen.txt` and `.png` artifacts). */
  screen?: ScreenSnapshot;
}

/** The outcome of running a scenario. */
export interface ScenarioOutcome {
  name: string;
  status: "passed" | "failed" | "skipped";
  error?: Error;
  skipReason?: string;
  hostMs: number;
  machines: MachineRecord[];
}

/**
 * Runs a scenario: calls its function, then stops every machine it booted and waits for each
 * to end, so that no guest process outlives the run.
 *
 * @param s the scenario
 * @param runOptions the seed, the backend
 * @returns what happened
 */
export async function runScenario(
  s: Scenario,
  runOptions: RunScenarioOptions = {},
): Promise<ScenarioOutcome> {
  if (s.options.skip) {
    return { name: s.name, status: "skipped", skipReason: s.options.skip, hostMs: 0, machines: [] };
  }
  const t0 = performance.now();
  const booted: { vm: ScenarioVm; kernel: string; backend: Backend }[] = [];
  let error: Error | undefined;
  try {
    await s.fn({
      boot: async (options) => {
        const backend = options.backend ?? runOptions.backend ?? "ring3";
        const vm = await bootScenarioVm(options, backend);
        booted.push({ vm, kernel: options.kernel, backend });
        return vm;
      },
      seed: runOptions.seed ?? DEFAULT_SEED,
    });
  } catch (e) {
    error = e instanceof Error ? e : new Error(String(e));
  }
  const machines: MachineRecord[] = [];
  for (const { vm, kernel, backend } of booted) {
    const result = await vm.stop("the scenario ended");
    machines.push({
      kernel,
      pid: vm.pid,
      transcript: vm.console.transcript,
      result,
      logs: [...vm.logs],
      backend,
      // A screen nothing was ever written to is left out of the artifacts.
      screen: vm.screen.text().trim() !== "" ? vm.screen.snapshot! : undefined,
    });
  }
  return {
    name: s.name,
    status: error ? "failed" : "passed",
    error,
    hostMs: performance.now() - t0,
    machines,
  };
}
