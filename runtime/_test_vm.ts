/**
 * What the end-to-end tests of ring3 machines share: booting one for the length of a test and
 * proving that its guest process is gone afterwards. Test support, not API.
 *
 * @module
 */
import assert from "node:assert/strict";
import { Vm } from "./vm.ts";
import { hostProcess } from "./harness/host_processes.ts";

/**
 * Asserts that a guest host process no longer exists.
 *
 * @param pid the guest process
 */
export function assertGone(pid: number): void {
  const p = hostProcess(pid);
  assert.equal(p, null, `guest process ${pid} is still there: ${JSON.stringify(p)}`);
}

/**
 * Boots, runs `fn`, then stops the machine and asserts its guest process is gone.
 *
 * @param options what to boot
 * @param fn the test's body
 */
export async function withVm(
  options: Parameters<typeof Vm.start>[0],
  fn: (vm: Vm) => Promise<void>,
): Promise<void> {
  const vm = await Vm.start(options);
  try {
    await fn(vm);
  } finally {
    await vm.stop("test ended");
    assertGone(vm.pid);
  }
}
