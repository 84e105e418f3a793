/**
 * End-to-end tests of the rewriter's fast form: fixture kernels rewritten with trampolines run
 * cli/sti/pushf/popf natively against the vCPU page, and trap only when an interrupt is
 * pending. Counts, not times (the bench measures time).
 */
import assert from "node:assert/strict";
import { Vm } from "./vm.ts";
import { hostProcess } from "./harness/host_processes.ts";
import type { RunStats } from "./run_result.ts";

const SENSITIVE = "fixtures/build/sensitive.elf";
const RING3_HOST = Deno.build.os === "linux" && Deno.build.arch === "x86_64";
const LOCK_KINDS = ["pushf", "popf", "cli", "sti"];

function test(name: string, fn: () => Promise<void>): void {
  Deno.test({ name, fn, ignore: !RING3_HOST });
}

async function run(
  options: Parameters<typeof Vm.start>[0],
): Promise<{ status: number; transcript: string; stats: RunStats }> {
  const vm = await Vm.start(options);
  try {
    const status = await vm.exit();
    return { status, transcript: vm.console.transcript, stats: (await vm.result()).stats };
  } finally {
    await vm.stop("test ended");
    assert.equal(hostProcess(vm.pid), null, `guest process ${vm.pid} is still there`);
  }
}

const lockTraps = (s: RunStats) => LOCK_KINDS.reduce((n, k) => n + (s.trapsByCause[k] ?? 0), 0);

test("fast form: the lock loop takes no trap for pushf/cli/popf; trap form takes three a pair", async () => {
  const pairs = 2000;
  const fast = await run({ kernel: SENSITIVE, cmdline: `lockbench=${pairs}`, rewrite: "fast" });
  assert.match(fast.transcript, new RegExp(`lockbench done ${pairs}\n`));
  assert.equal(lockTraps(fast.stats), 0, JSON.stringify(fast.stats.trapsByCause));
  assert.equal(fast.stats.fastPaths, 3 * pairs);
  const trap = await run({ kernel: SENSITIVE, cmdline: `lockbench=${pairs}`, rewrite: "trap" });
  assert.match(trap.transcript, new RegExp(`lockbench done ${pairs}\n`));
  assert.equal(lockTraps(trap.stats), 3 * pairs);
  assert.equal(trap.stats.fastPaths, undefined);
});

test("fast form: interrupts pending at sti and popf are delivered there, through the slow path", async () => {
  const fast = await run({ kernel: SENSITIVE, rewrite: "fast" });
  assert.match(fast.transcript, /sensitive: 37 passed, 0 failed\n$/, fast.transcript);
  assert.equal(fast.status, 1);
  for (
    const line of [
      "PASS irq0 waits for the sti shadow",
      "PASS irq0 delivered after sti",
      "PASS irq0 delivered at popf setting IF",
      "PASS irq0 held by popf keeping IF=0",
      "PASS irq0 delivered at the next sti",
    ]
  ) assert.ok(fast.transcript.includes(line + "\n"), line);
  assert.equal(fast.stats.interrupts, 3);
  assert.ok((fast.stats.fastPaths ?? 0) > 20, `fast paths ran: ${fast.stats.fastPaths}`);
  // The pending interrupts took the slow path (sti twice, popf once); a few sites stay in trap
  // form because a call follows them. Far fewer lock traps than in trap form.
  const trap = await run({ kernel: SENSITIVE, rewrite: "trap" });
  assert.match(trap.transcript, /sensitive: 37 passed, 0 failed\n$/);
  assert.equal(trap.transcript, fast.transcript);
  assert.ok(
    lockTraps(fast.stats) * 3 < lockTraps(trap.stats),
    `fast ${lockTraps(fast.stats)} vs trap ${lockTraps(trap.stats)}`,
  );
  assert.ok((fast.stats.trapsByCause.sti ?? 0) >= 2, "sti with an interrupt pending trapped");
  // Segment reads are served from the vCPU page's selectors, without a trap.
  for (const k of ["read cs", "read ss", "read ds", "push cs", "push ss"]) {
    assert.equal(fast.stats.trapsByCause[k] ?? 0, 0, k);
    assert.equal(trap.stats.trapsByCause[k], 1, k);
  }
});

test("fast form: under a 20 kHz timer no interrupt lands inside a cli or pushf/popf section", async () => {
  // Interrupts arrive at the clock's stops, wherever the guest is, trampolines included.
  const r = await run({ kernel: SENSITIVE, cmdline: "lockstress=8000000", rewrite: "fast" });
  assert.match(r.transcript, /lockstress: 8000000 sections, PASS no interrupt inside a section\n/);
  assert.match(r.transcript, /interrupts arrived: yes\n/);
  assert.equal(r.status, 1);
  assert.ok(r.stats.interrupts >= 5, `interrupts: ${r.stats.interrupts}`);
  assert.ok((r.stats.fastPaths ?? 0) >= 8000000 * 2, `fast paths: ${r.stats.fastPaths}`);
});
