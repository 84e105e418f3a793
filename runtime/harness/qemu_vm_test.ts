import assert from "node:assert/strict";
import { ExpectTimeoutError, GuestFailureError, type Vm } from "../vm.ts";
import { buildAoutKludge, buildElf } from "../boot/_test_images.ts";
import { hostProcess } from "./host_processes.ts";
import {
  kernelArch,
  parseQemuRegisters,
  qemuArgs,
  qemuSystemBinary,
  QemuVm,
  unwrapPmTimer,
} from "./qemu_vm.ts";
import { runScenario, type Scenario, scenario } from "./scenario.ts";
import { prepareQemuDrives } from "./qemu_disks.ts";
import type { ScenarioVm } from "./scenario_vm.ts";
import helloScenario from "../../scenarios/hello.ts";

const NO_QEMU = qemuSystemBinary("i386") === null;
const NO_QEMU64 = qemuSystemBinary("x86_64") === null;
const LINUX = Deno.build.os === "linux";
if (NO_QEMU) console.log("qemu-system-i386 not installed: skipping the QEMU backend tests");
else if (NO_QEMU64) console.log("qemu-system-x86_64 not installed: skipping the 64-bit QEMU test");

const HELLO = "fixtures/build/hello.elf";
const SPIN = "fixtures/build/spin.elf";

// Compile-time: ring3's Vm is a ScenarioVm as it is, so scenarios run on either backend.
const vmIsScenarioVm: (vm: Vm) => ScenarioVm = (vm) => vm;

function qemuTest(name: string, fn: () => Promise<void>, ignore = NO_QEMU): void {
  Deno.test({ name, ignore, fn });
}

/** A flat Multiboot image whose code starts 32 bytes in (after the a.out-kludge header). */
async function flatImage(code: number[]): Promise<string> {
  const body = new Uint8Array(256);
  body.set(code, 32);
  const path = await Deno.makeTempFile({ prefix: "ring3-qemu-test-", suffix: ".bin" });
  await Deno.writeFile(
    path,
    buildAoutKludge({ loadAddr: 0x100000, body, entryAddr: 0x100020, flags: 0x2 }),
  );
  return path;
}

Deno.test("kernelArch: ELF64 needs qemu-system-x86_64; ELF32 and flat images qemu-system-i386", () => {
  assert.equal(typeof vmIsScenarioVm, "function");
  const segments = [{ paddr: 0x100000, data: new Uint8Array(16) }];
  assert.equal(kernelArch(buildElf({ entry: 0x100000, segments })), "i386");
  assert.equal(kernelArch(buildElf({ class: 64, entry: 0x100000, segments })), "x86_64");
  assert.equal(
    kernelArch(buildAoutKludge({ loadAddr: 0x100000, body: new Uint8Array(64) })),
    "i386",
  );
  assert.equal(kernelArch(new Uint8Array(0)), "i386");
});

Deno.test("parseQemuRegisters reads EIP, CPL, IF, HLT and the mode from `info registers`", () => {
  const i386 = [
    "EAX=2badb002 EBX=00009500 ECX=00100020 EDX=00000511",
    "EIP=00100022 EFL=00000206 [-----P-] CPL=0 II=0 A20=1 SMM=0 HLT=1",
    "CS =0008 00000000 ffffffff 00cf9a00 DPL=0 CS32 [-R-]",
    "CR0=80000011 CR2=00000000 CR3=00000000 CR4=00000000",
    "EFER=0000000000000000",
  ].join("\n");
  assert.deepEqual(parseQemuRegisters(i386), {
    rip: "100022",
    cpl: 0,
    interruptFlag: true,
    halted: true,
    mode: "protected mode, 32-bit, CPL 0, paging, IF=1",
  });
  const x64 = [
    "RIP=ffffffff80001234 RFL=00000046 [---Z-P-] CPL=3 II=0 A20=1 SMM=0 HLT=0",
    "CS =0033 0000000000000000 ffffffff 00a0fb00 DPL=3 CS64 [-RA]",
    "CR0=80000011 CR2=0000000000000000 CR3=0000000000001000 CR4=00000020",
    "EFER=0000000000000500",
  ].join("\n");
  assert.deepEqual(parseQemuRegisters(x64), {
    rip: "ffffffff80001234",
    cpl: 3,
    interruptFlag: false,
    halted: false,
    mode: "long mode, 64-bit, CPL 3, paging, IF=0",
  });
  assert.equal(parseQemuRegisters("Error: no CPU"), null);
});

Deno.test("unwrapPmTimer: the RTC second picks the PM timer's 4.69 s wrap", () => {
  const hz = 3579545;
  for (const t of [0.25, 4.8, 82.059, 3600.999]) {
    const ticks = Math.floor(t * hz);
    const ns = unwrapPmTimer(Math.floor(t), ticks % 2 ** 24);
    assert.ok(Math.abs(ns - ticks * 1e9 / hz) < 1, `t=${t}: ${ns}`);
  }
});

qemuTest(
  "QemuVm runs hello's steps: banner, Multiboot lines, typed line, exit status 23",
  async () => {
    const vm = await QemuVm.start({ kernel: HELLO, memory: "64M", cmdline: "greeting=hi" });
    try {
      assert.equal(vm.arch, "i386");
      assert.ok(vm.pid > 0);
      await vm.console.expect("ring3 hello kernel\n", { timeout: "5s" });
      await vm.console.expect("multiboot: flags=0x24f mem_lower=639KiB mem_upper=64384KiB\n");
      await vm.console.expect(`cmdline: ${HELLO} greeting=hi\n`);
      await vm.console.expect("> ");
      vm.console.send("hello ring3\n");
      await vm.console.expect("you typed: hello ring3\nbye\n");
      assert.equal(await vm.exit(), 23);
      const r = await vm.result();
      assert.equal(r.outcome, "exit");
      assert.ok(r.stats.guestNs > 0, "guest time was sampled");
    } finally {
      await vm.stop();
    }
  },
);

qemuTest("scenarios/hello.ts passes through runScenario on the qemu backend", async () => {
  const out = await runScenario(helloScenario, { backend: "qemu" });
  assert.equal(out.status, "passed", out.error?.stack);
  assert.equal(out.machines.length, 1);
  const m = out.machines[0];
  assert.equal(m.backend, "qemu");
  assert.deepEqual(m.result.outcome === "exit" && m.result.exitCode, 23);
  assert.match(m.transcript, /^ring3 hello kernel\n/);
  if (LINUX) assert.equal(hostProcess(m.pid), null, `QEMU ${m.pid} outlived the scenario`);
});

qemuTest("a boot option's backend wins over the run's", async () => {
  let seen: ScenarioVm | undefined;
  const s: Scenario = scenario("qemu by boot option", async ({ boot }) => {
    seen = await boot({ kernel: SPIN, backend: "qemu" });
    await seen.console.expect("spinning\n");
  });
  const out = await runScenario(s, { backend: "ring3" });
  assert.equal(out.status, "passed", out.error?.stack);
  assert.ok(seen instanceof QemuVm);
  assert.equal(out.machines[0].backend, "qemu");
  const r = out.machines[0].result;
  assert.equal(r.outcome === "failure" && r.failure.kind, "stopped");
});

qemuTest(
  "spin: an expectation times out after its guest-time limit; the run limit is a timeout",
  async () => {
    const vm = await QemuVm.start({ kernel: SPIN });
    try {
      await vm.console.expect("spinning\n", { timeout: "5s" });
      const before = vm.guestNs;
      await assert.rejects(vm.console.expect("never printed", { timeout: "200ms" }), (e) => {
        assert.ok(e instanceof ExpectTimeoutError, String(e));
        return true;
      });
      const elapsed = vm.guestNs - before;
      // Noticed at the first clock sample past the deadline: a few ms of busy guest time late.
      assert.ok(elapsed >= 200e6 && elapsed < 500e6, `${elapsed / 1e6} ms of guest time`);
    } finally {
      await vm.stop();
    }

    const limited = await QemuVm.start({ kernel: SPIN, timeout: "300ms" });
    const r = await limited.result();
    assert.equal(r.outcome, "failure");
    if (r.outcome !== "failure") return;
    assert.equal(r.failure.kind, "timeout", r.failure.message);
    assert.match(r.failure.message, /guest-time limit of 0\.3 s/);
    assert.ok(r.failure.guestNs >= 300e6);
    assert.ok(r.failure.rip && /^10[0-9a-f]{4}$/.test(r.failure.rip), r.failure.rip);
    assert.match(r.failure.mode ?? "", /^protected mode, 32-bit, CPL 0/);
    assert.deepEqual(r.failure.lastConsoleLines, ["spinning"]);
    await assert.rejects(limited.exit(), GuestFailureError);
  },
);

qemuTest("stop() quits QEMU: its process is gone and reaped, the run is 'stopped'", async () => {
  const vm = await QemuVm.start({ kernel: SPIN });
  await vm.console.expect("spinning\n", { timeout: "5s" });
  const pid = vm.pid;
  if (LINUX) assert.match(hostProcess(pid)?.exe ?? "", /qemu-system-i386/);
  const r = await vm.stop("enough");
  assert.equal(r.outcome === "failure" && r.failure.kind, "stopped");
  assert.match(r.outcome === "failure" ? r.failure.message : "", /enough/);
  if (LINUX) assert.equal(hostProcess(pid), null, `QEMU ${pid} is still there`);
  assert.equal(await vm.stop(), r, "stopping again returns the same result");
});

qemuTest("a scenario that throws still has its QEMU killed", async () => {
  let pid = 0;
  const out = await runScenario(
    scenario("throws", async ({ boot }) => {
      const vm = await boot({ kernel: SPIN });
      pid = vm.pid;
      await vm.console.expect("spinning\n");
      throw new Error("scenario failed on purpose");
    }),
    { backend: "qemu" },
  );
  assert.equal(out.status, "failed");
  assert.ok(pid > 0);
  if (LINUX) assert.equal(hostProcess(pid), null, `QEMU ${pid} outlived the scenario`);
});

qemuTest("a triple fault ends the run as 'triple-fault' with the faulting EIP", async () => {
  // lidt of a zero-limit IDT, then int3: #GP, #DF, triple fault.
  const path = await flatImage([0x0f, 0x01, 0x1d, 0x80, 0x00, 0x10, 0x00, 0xcc, 0xeb, 0xfe]);
  try {
    const vm = await QemuVm.start({ kernel: path });
    const r = await vm.result();
    assert.equal(r.outcome === "failure" && r.failure.kind, "triple-fault");
    if (r.outcome === "failure") assert.equal(r.failure.rip, "100027");
  } finally {
    await Deno.remove(path);
  }
});

qemuTest("hlt with IF=0 ends the run as 'halted', as in ring3", async () => {
  const path = await flatImage([0xfa, 0xf4, 0xeb, 0xfd]); // cli; hlt; jmp .-1
  try {
    const vm = await QemuVm.start({ kernel: path });
    const r = await vm.result();
    assert.equal(r.outcome === "failure" && r.failure.kind, "halted");
    if (r.outcome === "failure") {
      assert.match(r.failure.message, /interrupts disabled/);
      assert.match(r.failure.mode ?? "", /IF=0$/);
    }
  } finally {
    await Deno.remove(path);
  }
});

qemuTest("an image QEMU refuses makes boot reject with 'image-error'", async () => {
  const path = await Deno.makeTempFile({ prefix: "ring3-qemu-test-", suffix: ".bin" });
  await Deno.writeFile(path, new Uint8Array(8192).fill(0x5a));
  try {
    await assert.rejects(QemuVm.start({ kernel: path }), (e) => {
      assert.ok(e instanceof GuestFailureError, String(e));
      assert.equal(e.report.kind, "image-error");
      return true;
    });
  } finally {
    await Deno.remove(path);
  }
});

qemuTest("an ELF64 kernel boots on qemu-system-x86_64", async () => {
  const vm = await QemuVm.start({ kernel: "fixtures/build/longmode.elf" });
  try {
    assert.equal(vm.arch, "x86_64");
    if (LINUX) assert.match(hostProcess(vm.pid)?.exe ?? "", /qemu-system-x86_64/);
    assert.equal(await vm.exit(), 1, vm.console.transcript); // v = 0: every check passed
  } finally {
    await vm.stop();
  }
}, NO_QEMU64);

Deno.test("qemu drives: IDE at the disk's index, overlays with snapshot=on, faults as blkdebug", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeFile(`${dir}/x.img`, new Uint8Array(1024));
    const logs: string[] = [];
    const drives = await prepareQemuDrives(
      [
        { index: 0, path: "/tmp/a,b.img", writeThrough: false },
        { index: 3, path: "/tmp/c.img", writeThrough: true },
        {
          index: 1,
          path: `${dir}/x.img`,
          writeThrough: false,
          faults: [
            { action: "fail-read", sector: 8, count: 2 },
            { action: "tear-write", sector: 1 },
          ],
        },
      ],
      dir,
      (m) => logs.push(m),
    );
    const args = qemuArgs({
      kernel: "k.elf",
      cmdline: "",
      memoryBytes: 1 << 26,
      qmpSocket: "/tmp/q",
      logFile: "/tmp/l",
      drives,
    });
    assert.deepEqual(args.filter((_, i) => args[i - 1] === "-drive"), [
      "file=/tmp/a,,b.img,format=raw,if=ide,index=0,snapshot=on",
      "file=/tmp/c.img,format=raw,if=ide,index=3",
      `file=blkdebug:${dir}/blkdebug-1.conf:${dir}/disk-1.img,format=raw,if=ide,index=1`,
    ]);
    const conf = await Deno.readTextFile(`${dir}/blkdebug-1.conf`);
    assert.equal(conf.match(/\[inject-error\]/g)?.length, 2);
    assert.match(conf, /sector = "9"/);
    assert.match(logs[0], /skipped on the QEMU backend: disk 1 tear-write/);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

qemuTest(
  "serial events apply at their guest time on QEMU; what QEMU cannot do is skipped",
  async () => {
    const vm = await QemuVm.start({
      kernel: "fixtures/build/minios.elf",
      faults: [{ fault: "drop-interrupt" }, { fault: "port-garbage", port: 0x3f8 }],
    });
    try {
      await vm.console.expect("minios$ ", { timeout: "5s" });
      const start = vm.guestNs;
      const typed = await vm.at(`${start / 1e6 + 500}ms`, { kind: "serial", text: "clock\r" });
      assert.equal(typed.outcome, "applied");
      assert.ok(typed.guestNs >= start + 500e6, `${typed.guestNs} ns`);
      const m = await vm.console.expect(/clock: ticks=\d+ tsc-ms=(\d+)\n/);
      assert.ok(Number(m[1]) >= (start + 500e6) / 1e6 - 20, `the guest read ${m[1]} ms`);
      for (const event of [{ kind: "irq", line: 4 }, { kind: "spurious" }, { kind: "timer" }]) {
        const e = await vm.inject(event);
        assert.equal(e.outcome, "skipped");
        assert.match(e.detail, /^skipped: not supported by qemu backend \(QEMU/);
      }
      await vm.console.type("irqs\r", { interval: "5ms" });
      await vm.console.expect(/irqs: timer=\d+/);
    } finally {
      const r = await vm.stop();
      const log = r.stats.events ?? [];
      assert.deepEqual(
        log.filter((e) => e.outcome === "skipped").map((e) => e.kind),
        ["fault", "fault", "irq", "spurious", "timer"],
      );
      assert.ok(log.some((e) => e.kind === "serial" && e.detail === '"\\r"'), "type() paces bytes");
    }
  },
);

qemuTest("kill-guest at a guest time kills QEMU: guest-died, nothing left running", async () => {
  const vm = await QemuVm.start({ kernel: SPIN, faults: [{ fault: "kill-guest", at: "200ms" }] });
  const pid = vm.pid;
  const r = await vm.result();
  assert.equal(r.outcome === "failure" && r.failure.kind, "guest-died");
  assert.match(r.outcome === "failure" ? r.failure.message : "", /killed by the fault plan/);
  assert.ok(r.stats.guestNs >= 200e6);
  if (LINUX) assert.equal(hostProcess(pid), null);
});

qemuTest("a console flood and a panic line end a QEMU run classified", async () => {
  const flood = await QemuVm.start({
    kernel: SPIN,
    cmdline: "mode=flood",
    timeout: "20s",
    consoleFlood: { bytes: 64 * 1024, window: "1s" },
  });
  const r = await flood.result();
  assert.equal(r.outcome === "failure" && r.failure.kind, "console-flood");
  const panic = await QemuVm.start({ kernel: SPIN, cmdline: "mode=panic", timeout: "20s" });
  const p = await panic.result();
  assert.equal(p.outcome === "failure" && p.failure.kind, "panic");
  assert.ok(p.stats.guestNs < 20e9);
});
