/**
 * End-to-end tests of PAE and long mode. Long mode: the 64-bit fixture kernel enters long mode from its Multiboot
 * entry and runs its self-test (kernel checks, then user tasks: page faults, #DE, #UD, NX, a
 * syscall storm, timer fairness) under ring3, and prints the same lines as under
 * qemu-system-x86_64.
 */
import assert from "node:assert/strict";
import { GuestFailureError } from "./vm.ts";
import { withVm } from "./_test_vm.ts";
import { qemuBinary, runQemu } from "./harness/qemu_run.ts";

const LONGMODE = "fixtures/build/longmode.elf";
const RING3_HOST = Deno.build.os === "linux" && Deno.build.arch === "x86_64";
const NO_QEMU64 = !RING3_HOST || qemuBinary("x86_64") === null;
if (NO_QEMU64) {
  console.log("qemu-system-x86_64 not installed: skipping the long-mode QEMU comparison");
}

Deno.test({
  name: "longmode enters long mode and passes its self-test under ring3",
  ignore: !RING3_HOST,
  async fn() {
    await withVm({ kernel: LONGMODE, timeout: "60s" }, async (vm) => {
      const status = await vm.exit();
      const out = vm.console.transcript;
      assert.match(out, /selftest: 12 passed, 0 failed\n/, out);
      assert.equal(status, 1);
      const s = (await vm.result()).stats;
      const t = s.trapsByCause;
      assert.ok(t["syscall"] >= 10000, `syscalls delivered: ${JSON.stringify(t)}`);
      assert.ok(t["swapgs"] >= 20000, "the syscall entry's swapgs pair was emulated");
      assert.ok(t["sysret"] >= 10000, "getpid returned with sysretq");
      assert.ok(t["#PF"] >= 3, "user page faults were delivered to the guest");
      assert.ok(s.interrupts >= 100, "timer interrupts preempted the user tasks");
      assert.ok((s.privilegeSwitches ?? 0) > 1000, "user mode ran in its own host process");
    });
  },
});

Deno.test({
  name: "longmode prints the same self-test lines under ring3 as under qemu-system-x86_64",
  ignore: NO_QEMU64,
  async fn() {
    const q = await runQemu({ kernel: LONGMODE, arch: "x86_64", timeoutMs: 120000 });
    assert.ok(!q.timedOut, q.output);
    await withVm({ kernel: LONGMODE, timeout: "60s" }, async (vm) => {
      assert.equal(await vm.exit(), q.status);
      const lines = (s: string) => s.split("\n").filter((l) => /^(PASS|FAIL|selftest:)/.test(l));
      assert.ok(lines(q.output).length >= 13, q.output);
      assert.deepEqual(lines(vm.console.transcript), lines(q.output));
      assert.equal(vm.console.transcript, q.output);
    });
  },
});

const PAE = "fixtures/build/pae.elf";
const NO_QEMU32 = !RING3_HOST || qemuBinary("i386") === null;

Deno.test({
  name:
    "pae: a 32-bit kernel with PAE paging, NX and sysexit/sysenter passes its checks under ring3",
  ignore: !RING3_HOST,
  async fn() {
    await withVm({ kernel: PAE, timeout: "30s" }, async (vm) => {
      assert.equal(await vm.exit(), 1, vm.console.transcript);
      assert.match(vm.console.transcript, /pae: 7 passed, 0 failed\n/);
      const s = (await vm.result()).stats;
      assert.equal(s.guestPageFaults, 3, "write-protect, NX and not-present faults delivered");
      assert.equal(s.trapsByCause["sysexit"], 1);
      assert.equal(s.trapsByCause["sysenter"], 1);
      assert.equal(s.privilegeSwitches, 2, "to the user-mode host process and back");
    });
  },
});

Deno.test({
  name: "pae prints the same lines under ring3 as under qemu-system-i386 -cpu max",
  ignore: NO_QEMU32,
  async fn() {
    const q = await runQemu({ kernel: PAE, cpu: "max" });
    await withVm({ kernel: PAE, timeout: "30s" }, async (vm) => {
      assert.equal(await vm.exit(), q.status);
      assert.equal(vm.console.transcript, q.output);
    });
  },
});

Deno.test({
  name: "with kernelProtection 'unmap', one host process keeps kernel memory from user tasks",
  ignore: !RING3_HOST,
  async fn() {
    // Unrewritten, so user-mode `syscall` arrives as a SYSEMU stop rather than at an int3 site.
    const options = {
      kernel: LONGMODE,
      timeout: "60s",
      kernelProtection: "unmap" as const,
      rewrite: false,
    };
    await withVm(options, async (vm) => {
      assert.equal(await vm.exit(), 1, vm.console.transcript);
      assert.match(vm.console.transcript, /PASS kernel-memory-unreachable\n/);
      assert.match(vm.console.transcript, /selftest: 12 passed, 0 failed\n/);
      const s = (await vm.result()).stats;
      assert.ok((s.privilegeSwitches ?? 0) > 1000);
      assert.ok((s.hostSyscalls ?? 0) > 10000, "supervisor pages unmapped on every switch");
      assert.ok(s.trapsByCause["syscall"] >= 10001, "syscall as SYSEMU stops");
    });
  },
});

Deno.test({
  name: "a 64-bit guest that maps the tracer stub's slot ends with a classified report",
  ignore: !RING3_HOST,
  async fn() {
    // Under QEMU the same kernel reads 0x7f0000000000 and exits; under ring3 the host process
    // keeps its stub there, so the mapping is refused before guest code can use it.
    await withVm({ kernel: LONGMODE, cmdline: "kind=stub", timeout: "10s" }, async (vm) => {
      const err = await vm.exit().then(() => null, (e) => e);
      assert.ok(err instanceof GuestFailureError, String(err));
      assert.equal(err.report.kind, "unsupported-mode");
      assert.match(err.report.message, /map 0x7f0000000000: .* below 0x7f0000000000/);
      assert.match(err.report.mode ?? "", /long mode, 64-bit/);
      assert.doesNotMatch(vm.console.transcript, /stub probe/);
    });
  },
});

Deno.test({
  name: "the guest process keeps no host stack or vDSO that 64-bit guest code could reach",
  ignore: !RING3_HOST,
  async fn() {
    await withVm({ kernel: "fixtures/build/spin.elf", timeout: "10s" }, async (vm) => {
      await vm.console.expect("spinning\n", { timeout: "5s" });
      const maps = Deno.readTextFileSync(`/proc/${vm.pid}/maps`);
      assert.doesNotMatch(maps, /\[(stack|vdso|vvar)\]/, maps);
      assert.match(maps, /^7f0000000000-/m, "the stub itself stays");
    });
  },
});
