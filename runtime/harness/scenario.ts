/**
 * Scenarios: TypeScript functions that boot machines and check what they do. A scenario module
 * default-exports the value {@link scenario} returns; the runner (scripts/scenario.ts) or a
 * test calls {@link runScenario}.
 *
 * @module
 */
import { type BootOptions, Vm } from "../vm.ts";
import type { RunResult } from "../run_result.ts";

/** What a scenario function gets. */
export interface ScenarioContext {
  /** Boots a machine; it is stopped when the scenario ends, whatever happens. */
  boot(options: BootOptions): Promise<Vm>;
}

/** Options of a scenario. */
export interface ScenarioOptions {
  /** Why the scenario is skipped, if it is (reported, not run). */
  skip?: string;
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
 * @returns what happened
 */
export async function runScenario(s: Scenario): Promise<ScenarioOutcome> {
  if (s.options.skip) {
    return { name: s.name, status: "skipped", skipReason: s.options.skip, hostMs: 0, machines: [] };
  }
  const t0 = performance.now();
  const booted: { vm: Vm; kernel: string }[] = [];
  let error: Error | undefined;
  try {
    await s.fn({
      boot: async (options) => {
        const vm = await Vm.start(options);
        booted.push({ vm, kernel: options.kernel });
        return vm;
      },
    });
  } catch (e) {
    error = e instanceof Error ? e : new Error(String(e));
  }
  const machines: MachineRecord[] = [];
  for (const { vm, kernel } of booted) {
    const result = await vm.stop("the scenario ended");
    machines.push({ kernel, pid: vm.pid, transcript: vm.console.transcript, result });
  }
  return {
    name: s.name,
    status: error ? "failed" : "passed",
    error,
    hostMs: performance.now() - t0,
    machines,
  };
}
