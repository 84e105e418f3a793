/**
 * End-to-end tests of the first slice: real fixture kernels booted as traced host processes.
 * Every test checks that the guest processes it created are gone when it ends.
 */
import assert from "node:assert/strict";
import { GuestFailureError, Vm } from "./vm.ts";
import { hostProcess } from "./harness/host_processes.ts";
import { qemuBinary, runQemu } from "./harness/qemu_run.ts";

const HELLO = "fixtures/build/hello.elf";
const SPIN = "fixtures/build/spin.elf";
const SYSRAW = "fixtures/build/sysraw.elf";
const FAULT = "fixtures/build/fault.elf";
const TRAPBENCH_BIN = "fixtures/build/trapbench.bin";
const SENSITIVE = "fixtures/build/sensitive.elf";
const RING3_HOST = Deno.build.os === "linux" && Deno.build.arch === "x86_64";
if (!RING3_HOST) {
  console.log(`ring3 needs a Linux x86-64 host; skipping its tests on ${Deno.build.os}`);
}
const NO_QEMU = !RING3_HOST || qemuBinary() === null;
if (NO_QEMU) console.log("qemu-system-i386 not installed: skipping the QEMU comparison tests");

/** Deno.test, ignored where ring3 cannot run. */
function test(
  nameOrDef: string | Deno.TestDefinition,
  fn?: () => Promise<void>,
): void {
  const def = typeof nameOrDef === "string" ? { name: nameOrDef, fn: fn! } : nameOrDef;
  Deno.test({ ...def, ignore: def.ignore || !RING3_HOST });
}

/** Boots, runs `fn`, then stops the machine and asserts its guest process is gone. */
async function withVm(
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

function assertGone(pid: number): void {
  const p = hostProcess(pid);
  assert.equal(p, null, `guest process ${pid} is still there: ${JSON.stringify(p)}`);
}

test("the guest runs natively in its own host process, traced by this one", async () => {
  await withVm({ kernel: SPIN, timeout: "10s" }, async (vm) => {
    await vm.console.expect("spinning\n", { timeout: "5s" });
    const guest = hostProcess(vm.pid);
    assert.ok(guest, "guest process exists");
    assert.notEqual(vm.pid, Deno.pid);
    // Traced by a thread of this process (the machine's Worker), so TracerPid is a tid of ours.
    assert.ok(Deno.statSync(`/proc/${Deno.pid}/task/${guest.tracerPid}`), "tracer is our thread");
    assert.match(guest.exe, /ring3-stub/);
    // The spin loop burns CPU in the guest process itself, not in Deno.
    const before = guest.utimeTicks;
    await new Promise((r) => setTimeout(r, 300));
    assert.ok(hostProcess(vm.pid)!.utimeTicks > before, "guest process accumulates user time");
    // Guest RAM is the shared memfd, mapped at guest-physical 0 in the guest process.
    const maps = Deno.readTextFileSync(`/proc/${vm.pid}/maps`);
    assert.match(maps, /^0+-0*4000000 rwxs 00000000 \S+ \d+\s+\/memfd:ring3-ram/m);
  });
});

test("hello boots, echoes a typed line and exits with the status QEMU would give", async () => {
  await withVm({ kernel: HELLO, memory: "64M", cmdline: "a=b" }, async (vm) => {
    await vm.console.expect("> ", { timeout: "5s" });
    vm.console.send("hello ring3\n");
    assert.equal(await vm.exit(), 23);
    assert.equal(
      vm.console.transcript,
      "ring3 hello kernel\nmultiboot: flags=0x24f mem_lower=639KiB mem_upper=64384KiB\n" +
        `cmdline: ${HELLO} a=b\n> you typed: hello ring3\nbye\n`,
    );
    const r = await vm.result();
    assert.ok(r.stats.trapsByCause["out"] > 50, "serial output went through emulated out");
  });
});

test("a guest that loops forever is ended by its guest-time limit with a report", async () => {
  const t0 = performance.now();
  await withVm({ kernel: SPIN, timeout: "1s" }, async (vm) => {
    const err = await vm.exit().then(() => null, (e) => e);
    assert.ok(err instanceof GuestFailureError, `expected a failure, got ${err}`);
    const f = err.report;
    assert.equal(f.kind, "timeout");
    assert.match(f.message, /guest-time limit of 1 s/);
    assert.deepEqual(f.lastConsoleLines, ["spinning"]);
    assert.match(f.mode ?? "", /protected mode, 32-bit, CPL 0/);
    assert.match(f.rip ?? "", /^10[0-9a-f]{4}$/);
    assert.ok(f.guestNs >= 1e9);
  });
  assert.ok(performance.now() - t0 < 20000, "ended within a bounded host time");
});

test("expect fails on guest time, not host time, when the text never comes", async () => {
  await withVm({ kernel: SPIN, timeout: "30s" }, async (vm) => {
    const err = await vm.console.expect("never printed", { timeout: "200ms" }).then(
      () => null,
      (e) => e,
    );
    assert.ok(err instanceof Error && err.name === "ExpectTimeoutError", String(err));
    assert.match(err.message, /within 200ms of guest time[\s\S]*spinning/);
  });
});

for (const mode of ["int80", "syscall", "sysenter", "syscall64"]) {
  test(`a raw host system call from guest code (${mode}) never reaches the host`, async () => {
    const probe = await Deno.makeTempDir({ prefix: "ring3-probe-" });
    const path = `${probe}/leak`;
    try {
      // Unrewritten: the raw instructions themselves must be contained.
      const boot = { kernel: SYSRAW, cmdline: `mode=${mode} path=${path}`, rewrite: false };
      await withVm(boot, async (vm) => {
        const r = await vm.result();
        const t = vm.console.transcript;
        assert.match(t, new RegExp(`sysraw mode ${mode}\n`));
        if (mode === "int80") {
          // It is the guest kernel's own int $0x80 handler that runs, with the guest's eax.
          assert.match(t, /int80 reached guest handler eax=39\nsysraw returned eax=0x27\n/);
          assert.deepEqual(r.outcome === "exit" && r.exitCode, 1);
        } else if (mode === "sysenter") {
          // SYSENTER_CS is 0 in the virtual CPU: #GP(0), as QEMU raises.
          assert.match(t, /EXCEPTION 13 at 0x[0-9a-f]+ err=0x0\n/);
        } else {
          assert.equal(r.outcome, "failure");
          if (r.outcome === "failure") assert.equal(r.failure.kind, "host-syscall");
        }
      });
      assert.throws(() => Deno.statSync(path), Deno.errors.NotFound, `${mode} created ${path}`);
    } finally {
      await Deno.remove(probe, { recursive: true });
    }
  });
}

for (const [kind, vector] of [["ud", 6], ["de", 0], ["gp", 13]] as const) {
  test(`a guest exception (${kind}) is delivered through the guest's own IDT`, async () => {
    await withVm({ kernel: FAULT, cmdline: `kind=${kind}` }, async (vm) => {
      assert.equal(await vm.exit(), 7);
      assert.match(vm.console.transcript, new RegExp(`EXCEPTION ${vector} at 0x`));
    });
  });
}

test("the a.out-kludge image boots as well as the ELF one", async () => {
  await withVm({ kernel: TRAPBENCH_BIN }, async (vm) => {
    assert.equal(await vm.exit(), 1);
    assert.equal(vm.console.transcript, "trapbench start\ntrapbench done\n");
    assert.equal((await vm.result()).stats.trapsByCause["out"] > 100000, true);
  });
});

test("a truncated image is refused with the problem named, and nothing is spawned", async () => {
  const image = await Deno.readFile(HELLO);
  const path = await Deno.makeTempFile({ suffix: ".elf" });
  try {
    // Keep the Multiboot header but cut the file inside the segment it describes.
    const magic = new DataView(image.buffer).getUint32.bind(new DataView(image.buffer));
    let at = 0;
    while (magic(at, true) !== 0x1badb002) at += 4;
    await Deno.writeFile(path, image.subarray(0, at + 64));
    const err = await Vm.start({ kernel: path }).then(() => null, (e) => e);
    assert.ok(err instanceof GuestFailureError, String(err));
    assert.equal(err.report.kind, "image-error");
    assert.match(err.message, /truncat|past the end|extends beyond/i);
  } finally {
    await Deno.remove(path);
  }
});

test("a file that is not a Multiboot kernel is refused with a clear error", async () => {
  const err = await Vm.start({ kernel: "/bin/true" }).then(() => null, (e) => e);
  assert.ok(err instanceof GuestFailureError, String(err));
  assert.equal(err.report.kind, "image-error");
  assert.match(err.message, /no Multiboot header in the first 8192 bytes/);
});

test("a missing kernel file is refused with its path", async () => {
  await assert.rejects(
    Vm.start({ kernel: "fixtures/build/no-such.elf" }),
    /cannot read kernel image fixtures\/build\/no-such.elf/,
  );
});

test({
  name: "hello prints under ring3 exactly what it prints under qemu-system-i386",
  ignore: NO_QEMU,
  async fn() {
    const cases = [
      { cmdline: "x=1", input: "hello ring3\n", memory: 64 },
      { cmdline: "", input: "a\x7fbc\n", memory: 128 },
    ];
    for (const c of cases) {
      const q = await runQemu({
        kernel: HELLO,
        cmdline: c.cmdline,
        input: c.input,
        inputAfter: "> ",
        memoryMiB: c.memory,
      });
      await withVm({ kernel: HELLO, cmdline: c.cmdline, memory: `${c.memory}M` }, async (vm) => {
        await vm.console.expect("> ", { timeout: "5s" });
        vm.console.send(c.input);
        const status = await vm.exit();
        const why =
          `case ${JSON.stringify(c)}: qemu status ${q.status} (timed out: ${q.timedOut}), ` +
          `ring3 status ${status}`;
        assert.equal(vm.console.transcript, q.output, why);
        assert.equal(status, q.status, why);
      });
    }
  },
});

test({
  name: "exceptions print under ring3 what they print under qemu-system-i386",
  ignore: NO_QEMU,
  async fn() {
    for (const kind of ["ud", "de", "gp"]) {
      const q = await runQemu({ kernel: FAULT, cmdline: `kind=${kind}` });
      await withVm({ kernel: FAULT, cmdline: `kind=${kind}` }, async (vm) => {
        assert.equal(await vm.exit(), q.status);
        assert.equal(vm.console.transcript, q.output);
      });
    }
  },
});

test("the rewritten sensitive fixture passes every check of sensitive instructions", async () => {
  await withVm({ kernel: SENSITIVE }, async (vm) => {
    assert.equal(await vm.exit(), 1, vm.console.transcript);
    assert.match(vm.console.transcript, /sensitive: 30 passed, 0 failed\n$/);
    const traps = (await vm.result()).stats.trapsByCause;
    for (const c of ["pushf", "popf", "cpuid", "rdtsc", "read cs", "push cs", "sgdt", "lar"]) {
      assert.ok(traps[c] > 0, `${c} went through the emulator`);
    }
  });
});

test("without rewriting, the sensitive fixture fails: pushf and cpuid misbehave at ring 3", async () => {
  await withVm({ kernel: SENSITIVE, rewrite: false }, async (vm) => {
    const status = await vm.exit();
    assert.notEqual(status, 1, "some checks must fail unrewritten");
    assert.match(vm.console.transcript, /FAIL pushf after cli/);
  });
});

test({
  name: "rewritten images print under ring3 what the originals print under qemu-system-i386",
  ignore: NO_QEMU,
  async fn() {
    const cases = [
      { kernel: SENSITIVE, cmdline: "" },
      { kernel: SYSRAW, cmdline: "mode=syscall" },
      { kernel: SYSRAW, cmdline: "mode=sysenter" },
      { kernel: SYSRAW, cmdline: "mode=int80" },
      // Rewritten, the far jump to the host's 64-bit selector meets the guest's own GDT: #GP.
      { kernel: SYSRAW, cmdline: "mode=syscall64" },
    ];
    for (const c of cases) {
      const q = await runQemu({ kernel: c.kernel, cmdline: c.cmdline });
      await withVm({ kernel: c.kernel, cmdline: c.cmdline }, async (vm) => {
        const r = await vm.result();
        assert.equal(vm.console.transcript, q.output, JSON.stringify(c));
        assert.equal(r.outcome === "exit" ? r.exitCode : -1, q.status, JSON.stringify(c));
      });
    }
  },
});

const MINIOS = "fixtures/build/minios.elf";

test("minios (paging, user processes, preemption) passes its self-test under ring3", async () => {
  await withVm({ kernel: MINIOS, cmdline: "selftest", timeout: "60s" }, async (vm) => {
    const status = await vm.exit();
    assert.match(vm.console.transcript, /selftest: 11 passed, 0 failed\n/, vm.console.transcript);
    assert.equal(status, 1);
    const s = (await vm.result()).stats;
    assert.ok(s.interrupts > 50, "timer interrupts delivered");
    assert.ok((s.privilegeSwitches ?? 0) > 1000, "user mode ran in its own host process");
  });
});

test({
  name: "minios prints the same self-test lines under ring3 as under qemu-system-i386",
  ignore: NO_QEMU,
  async fn() {
    const q = await runQemu({ kernel: MINIOS, cmdline: "selftest", timeoutMs: 60000 });
    await withVm({ kernel: MINIOS, cmdline: "selftest", timeout: "60s" }, async (vm) => {
      assert.equal(await vm.exit(), q.status);
      assert.equal(vm.console.transcript, q.output);
    });
  },
});

for (const [kind, failure] of [["storm", "exception-storm"], ["triple", "triple-fault"]] as const) {
  test(`a guest that ${kind === "storm" ? "takes an exception storm" : "triple-faults"} ends with a classified report`, async () => {
    let pid = 0;
    await withVm({ kernel: FAULT, cmdline: `kind=${kind}`, timeout: "30s" }, async (vm) => {
      pid = vm.pid;
      const err = await vm.exit().then(() => null, (e) => e);
      assert.ok(err instanceof GuestFailureError, String(err));
      assert.equal(err.report.kind, failure);
      assert.match(err.report.instruction?.text ?? err.report.message, /ud2|#UD|invalid opcode/);
      assert.deepEqual(err.report.lastConsoleLines, [`fault kind ${kind}`]);
      assert.ok(err.report.guestNs < 5e9, "ended long before the guest-time limit");
    });
    assertGone(pid);
  });
}

const APIC = "fixtures/build/apic.elf";

test("the local APIC and IOAPIC work through emulated MMIO: timer, self-IPI, TPR, PIT routing", async () => {
  await withVm({ kernel: APIC, timeout: "30s" }, async (vm) => {
    assert.equal(await vm.exit(), 1, vm.console.transcript);
    assert.match(vm.console.transcript, /apic: 8 passed, 0 failed\n/);
    const t = (await vm.result()).stats.trapsByCause;
    assert.ok(t["mmio read"] > 0 && t["mmio write"] > 0);
  });
});

test({
  name: "the APIC fixture prints the same lines under ring3 as under qemu-system-i386",
  ignore: NO_QEMU,
  async fn() {
    const q = await runQemu({ kernel: APIC });
    await withVm({ kernel: APIC, timeout: "30s" }, async (vm) => {
      assert.equal(await vm.exit(), q.status);
      assert.equal(vm.console.transcript, q.output);
    });
  },
});

test("timeline events apply at their guest time: a spurious IRQ7, then typed input", async () => {
  await withVm({ kernel: MINIOS, timeout: "30s" }, async (vm) => {
    vm.at("500ms", { kind: "irq", line: 7, action: "pulse" });
    vm.at("1s", { kind: "serial", text: "run hello\r" });
    vm.inject({ kind: "no-such-kind" });
    await vm.console.expect(/hello from pid \d+\n/, { timeout: "5s" });
    vm.console.send("exit 0\r");
    assert.equal(await vm.exit(), 1);
    const events = (await vm.result()).stats.events ?? [];
    assert.deepEqual(events.map((e) => e.kind), ["no-such-kind", "irq", "serial"]);
    assert.match(events[0].detail, /unknown event kind "no-such-kind" \(known: serial, irq[,)]/);
    assert.equal(events[1].detail, "line 7 pulse");
    assert.ok(events[1].guestNs >= 0.5e9 && events[2].guestNs >= 1e9, JSON.stringify(events));
    assert.ok(events[2].guestNs - events[1].guestNs >= 0.5e9);
    assert.ok(vm.logs.some((l) => l.includes("no-such-kind")));
    // The input was typed at 1 s, so the program ran after it, not before.
    assert.doesNotMatch(vm.console.transcript, /unexpected interrupt/);
  });
});

test("a fault plan's garbage port reads are reproducible from its seed", async () => {
  const run = async (seed: number) => {
    let transcript = "";
    const faults = [{ fault: "port-garbage" as const, port: 0x3f8, count: 4 }];
    await withVm({ kernel: HELLO, faults, seed }, async (vm) => {
      await vm.console.expect("> ", { timeout: "5s" });
      vm.console.send("abcdefgh\n");
      await vm.exit();
      transcript = vm.console.transcript;
      const faultsApplied = (await vm.result()).stats.events!.filter((e) => e.kind === "fault");
      assert.equal(faultsApplied.length, 4);
    });
    return transcript;
  };
  const a = await run(7);
  assert.equal(await run(7), a, "same seed, same run");
  assert.notEqual(await run(8), a, "another seed, other garbage");
  assert.doesNotMatch(a, /you typed: abcdefgh/);
});

test("a guest killed in the middle of a trap ends as guest-died, leaving nothing behind", async () => {
  await withVm({ kernel: HELLO, faults: [{ fault: "kill-guest", afterTraps: 20 }] }, async (vm) => {
    const r = await vm.result();
    assert.equal(r.outcome, "failure");
    if (r.outcome === "failure") {
      assert.equal(r.failure.kind, "guest-died");
      assert.match(r.failure.message, /signal 9/);
    }
    assert.match(r.stats.events![0].detail, /kill-guest: SIGKILL while handling trap 20/);
  });
});

test("a refused host mapping ends the run as a classified host error", async () => {
  await withVm({
    kernel: MINIOS,
    cmdline: "selftest",
    faults: [{ fault: "fail-host-mmap", after: 10 }],
  }, async (vm) => {
    const err = await vm.exit().then(() => null, (e) => e);
    assert.ok(err instanceof GuestFailureError, String(err));
    assert.equal(err.report.kind, "host-error");
    assert.match(err.report.message, /refused by the fault plan/);
  });
});

test("minios survives a duplicated interrupt and interrupts held back for 300 ms", async () => {
  const faults = [
    { fault: "duplicate-interrupt" as const, nth: 3 },
    { fault: "delay-interrupts" as const, fromNs: 0.2e9, forNs: 0.3e9 },
  ];
  await withVm({ kernel: MINIOS, faults, seed: 3 }, async (vm) => {
    vm.at("1s", { kind: "serial", text: "run hello\r" });
    await vm.console.expect(/hello from pid \d+\n/, { timeout: "10s" });
    vm.console.send("exit 0\r");
    assert.equal(await vm.exit(), 1);
    const events = (await vm.result()).stats.events ?? [];
    assert.ok(
      events.some((e) => /duplicate-interrupt: vector 0x20 delivered twice/.test(e.detail)),
    );
  });
});
