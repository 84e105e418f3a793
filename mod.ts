/**
 * ring3: kernels run as ordinary user processes, driven from TypeScript.
 *
 * Scenario authors import everything from here:
 *
 * ```ts
 * import { scenario } from "./mod.ts";
 * export default scenario("hello echoes a line", async ({ boot }) => {
 *   const vm = await boot({ kernel: "fixtures/build/hello.elf", memory: "64M" });
 *   await vm.console.expect("> ", { timeout: "5s" }); // guest time
 *   vm.console.send("hi\n");
 *   await vm.console.expect("you typed: hi");
 *   if (await vm.exit() !== 5) throw new Error("wrong exit status");
 * });
 * ```
 *
 * @module
 */
export {
  type MachineRecord,
  runScenario,
  type Scenario,
  scenario,
  type ScenarioContext,
  type ScenarioOptions,
  type ScenarioOutcome,
} from "./runtime/harness/scenario.ts";
export {
  type BootOptions,
  type ExpectOptions,
  ExpectTimeoutError,
  GuestFailureError,
  SerialConsole,
  type TypeOptions,
  Vm,
} from "./runtime/vm.ts";
export {
  type FailureKind,
  type FailureReport,
  formatFailure,
  type RunResult,
  type RunStats,
} from "./runtime/run_result.ts";
export { type Duration, durationNs } from "./runtime/duration.ts";
export { type DiskOption } from "./runtime/disk/disk_options.ts";
export {
  Network,
  network,
  type NetworkOptions,
  type NicOptions,
  type SwitchedFrame,
} from "./runtime/net/network.ts";
export { type PcapFrame, readPcap } from "./runtime/net/pcap.ts";
export { DROP_WINDOW, type Fault, FAULT_KINDS, type FaultPlan } from "./runtime/fault_plan.ts";
export {
  type AppliedEvent,
  type KernelProtection,
  type MachineEvent,
} from "./runtime/machine_protocol.ts";
export { DEFAULT_CONSOLE_FLOOD, DEFAULT_FAIL_ON } from "./runtime/console_watch.ts";
export {
  type Backend,
  type ScenarioBootOptions,
  type ScenarioConsole,
  type ScenarioVm,
} from "./runtime/harness/scenario_vm.ts";
export { QemuVm } from "./runtime/harness/qemu_vm.ts";
export {
  Keyboard,
  type ScreenExpectOptions,
  ScreenTimeoutError,
  TextScreen,
} from "./runtime/vm_devices.ts";
export { type ScreenSnapshot } from "./runtime/screen/text_screen.ts";
export { type SerialBackendSpec } from "./runtime/machine_protocol.ts";
export { KeymapError } from "./runtime/devices/keymap.ts";
export {
  compareTranscripts,
  formatDivergence,
  type TranscriptDivergence,
} from "./runtime/harness/differential.ts";
