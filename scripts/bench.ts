/**
 * `deno task bench [--json]`: ring3's figures, as ratios taken in one run against a reference.
 *
 * 1. Trap round trip: trapbench's `out %al,$0x80` loop under the full runtime (Worker tracer,
 *    decode, port bus) against a minimal C ptrace tracer running the same bytes, both pinned to
 *    one CPU. Goal: ratio <= 1.2.
 * 2. hello from boot to exit, with host round trips and traps by cause.
 * 3. The lock loop (pushf; cli; counter++; popf) rewritten in trap form and in fast form: lock
 *    traps per 1000 pairs (goal 0 in fast form) and the time per pair.
 * 3. Disk throughput: minios's ATA PIO driver reading and writing a host file, against a plain
 *    host read of the same bytes.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { parseElf } from "../runtime/boot/elf.ts";
import { findMultibootHeader } from "../runtime/boot/multiboot.ts";
import { type KernelProtection, Vm } from "../mod.ts";
import { computeBench } from "./bench/compute_bench.ts";
import { timeLines } from "./bench/line_timer.ts";
import { pingBench } from "./bench/ping_bench.ts";
import { diskBench } from "./bench/disk_bench.ts";
import { openLibc } from "../runtime/host/libc.ts";
import { allowedCpus } from "../runtime/tracer/ptrace_process.ts";

const { values } = parseArgs({ args: Deno.args, options: { json: { type: "boolean" } } });

const TRAPS = 100000;
const ROUNDS = 3;
const cpus = allowedCpus(openLibc());
const cpu = cpus[cpus.length - 1];

async function buildReference(): Promise<string> {
  const src = new URL("./bench/trap_reference.c", import.meta.url).pathname;
  const out = new URL("../fixtures/build/host/trap_reference", import.meta.url).pathname;
  await Deno.mkdir(out.slice(0, out.lastIndexOf("/")), { recursive: true });
  const r = await new Deno.Command("gcc", { args: ["-O2", "-o", out, src] }).output();
  if (!r.success) throw new Error(`gcc failed: ${new TextDecoder().decode(r.stderr)}`);
  return out;
}

async function referenceTrapUs(exe: string): Promise<number> {
  const elf = parseElf(await Deno.readFile("fixtures/build/trapbench.elf"));
  const body = elf.symbols.find((s) => s.name === "trap_loop_body");
  if (!body) throw new Error("trapbench.elf has no trap_loop_body symbol");
  const header = findMultibootHeader(await Deno.readFile("fixtures/build/trapbench.bin"));
  const load = header.address!.loadAddr;
  const r = await new Deno.Command(exe, {
    args: [
      "fixtures/build/trapbench.bin",
      `0x${load.toString(16)}`,
      `0x${body.value.toString(16)}`,
      String(TRAPS),
      String(cpu),
    ],
  }).output();
  if (!r.success) throw new Error(`trap_reference failed: ${new TextDecoder().decode(r.stderr)}`);
  return JSON.parse(new TextDecoder().decode(r.stdout)).usPerTrap;
}

async function runtimeTrapUs(): Promise<{ us: number; traps: Record<string, number> }> {
  const vm = await Vm.start({ kernel: "fixtures/build/trapbench.bin", cpu });
  const timer = timeLines(vm, /trapbench start\n/, /trapbench done\n/);
  const code = await vm.exit();
  if (code !== 1 || timer.ms === null) {
    throw new Error(`trapbench failed: status ${code}, ${timer.output}`);
  }
  const r = await vm.result();
  return { us: timer.ms * 1000 / TRAPS, traps: r.stats.trapsByCause };
}

async function helloBootToExit() {
  const vm = await Vm.start({ kernel: "fixtures/build/hello.elf", cpu });
  const t0 = performance.now();
  vm.console.send("bench\n");
  const code = await vm.exit();
  const ms = performance.now() - t0;
  const r = await vm.result();
  if (code !== 11) throw new Error(`hello exited with ${code}`);
  return {
    hostMs: ms,
    guestMs: r.stats.guestNs / 1e6,
    resumes: r.stats.resumes,
    trapsByCause: r.stats.trapsByCause,
  };
}

/** The lock loop in one rewrite form: lock traps (pushf, popf, cli, sti) and time per pair. */
async function lockBench(form: "trap" | "fast", pairs: number) {
  const vm = await Vm.start({
    kernel: "fixtures/build/sensitive.elf",
    cmdline: `lockbench=${pairs}`,
    cpu,
    timeout: "600s",
    rewrite: form,
  });
  const timer = timeLines(vm, /lockbench start/, /lockbench done/);
  const code = await vm.exit();
  const r = await vm.result();
  if (code !== 1 || timer.ms === null) {
    throw new Error(`lockbench (${form} form) failed: status ${code}, ${timer.output}`);
  }
  const lockTraps = ["pushf", "popf", "cli", "sti"].reduce(
    (n, k) => n + (r.stats.trapsByCause[k] ?? 0),
    0,
  );
  return {
    pairs,
    lockTraps,
    trapsPer1000Pairs: +(lockTraps / pairs * 1000).toFixed(1),
    usPerPair: +(timer.ms * 1000 / pairs).toFixed(4),
    fastPaths: r.stats.fastPaths ?? 0,
  };
}

/** Both forms of the lock loop, and how much faster the fast form is per pair. */
async function lockForms() {
  const trap = await lockBench("trap", 20000);
  // The fast form is so much cheaper that it needs many more pairs to be timed at all.
  const fast = await lockBench("fast", 2000000);
  return { trap, fast, timeRatioTrapOverFast: +(trap.usPerPair / fast.usPerPair).toFixed(0) };
}

/** A fixture's self-test (all checks must pass), with one kernel-memory protection design. */
async function selftest(kernel: string, kernelProtection: KernelProtection = "process") {
  const vm = await Vm.start({
    kernel,
    cmdline: "selftest",
    cpu,
    timeout: "120s",
    kernelProtection,
  });
  const t0 = performance.now();
  const code = await vm.exit();
  const ms = performance.now() - t0;
  const s = (await vm.result()).stats;
  if (code !== 1) throw new Error(`${kernel} selftest failed: ${vm.console.transcript}`);
  return {
    kernelProtection,
    hostMs: +ms.toFixed(0),
    guestMs: +(s.guestNs / 1e6).toFixed(0),
    /** Resumes plus injected host syscalls: every stop of the guest process. */
    hostRoundTrips: s.resumes + (s.hostSyscalls ?? 0),
    hostSyscalls: s.hostSyscalls ?? 0,
    interrupts: s.interrupts,
    interruptsByVector: s.interruptsByVector ?? {},
    guestPageFaults: s.guestPageFaults ?? 0,
    shadowPageFills: s.shadowPageFills,
    privilegeSwitches: s.privilegeSwitches,
    trapsByCause: s.trapsByCause,
  };
}

const exe = await buildReference();
const ref: number[] = [];
const rt: number[] = [];
let trapCauses: Record<string, number> = {};
for (let i = 0; i < ROUNDS; i++) {
  ref.push(await referenceTrapUs(exe));
  const r = await runtimeTrapUs();
  rt.push(r.us);
  trapCauses = r.traps;
}
const median = (a: number[]) => [...a].sort((x, y) => x - y)[a.length >> 1];
const hello = await helloBootToExit();
const locks = await lockForms();
const minios = await selftest("fixtures/build/minios.elf");
const miniosUnmap = await selftest("fixtures/build/minios.elf", "unmap");
const longmode = await selftest("fixtures/build/longmode.elf");
const compute = await computeBench({ cpu, rounds: 3 });
const ping = await pingBench({ count: 20, cpus: [cpu, cpus.length > 1 ? cpus[0] : cpu] });
const disk = await diskBench({ cpu, kib: 4096 });
const result = {
  host: { cpu, kernel: Deno.osRelease(), deno: Deno.version.deno },
  trapRoundTrip: {
    loop: "trapbench out %al,$0x80",
    traps: TRAPS,
    rounds: ROUNDS,
    runtimeUs: +median(rt).toFixed(3),
    referenceCUs: +median(ref).toFixed(3),
    ratio: +(median(rt) / median(ref)).toFixed(3),
    goal: 1.2,
    runtimeTrapsByCause: trapCauses,
  },
  computeBound: compute,
  lockHeavy: locks,
  miniosSelftest: minios,
  pingRoundTrip: ping,
  disk,
  kernelProtection: {
    process: minios,
    unmap: miniosUnmap,
    hostTimeRatio: +(miniosUnmap.hostMs / minios.hostMs).toFixed(2),
    roundTripRatio: +(miniosUnmap.hostRoundTrips / minios.hostRoundTrips).toFixed(2),
  },
  longmodeSelftest: longmode,
  helloBootToExit: {
    hostMs: +hello.hostMs.toFixed(1),
    guestMs: +hello.guestMs.toFixed(2),
    hostRoundTrips: hello.resumes,
    trapsByCause: hello.trapsByCause,
  },
};

if (values.json) {
  console.log(JSON.stringify(result, null, 2));
} else {
  const t = result.trapRoundTrip;
  console.log(`ring3 bench (CPU ${cpu}, Linux ${result.host.kernel}, Deno ${result.host.deno})\n`);
  console.log("trap round trip (median of 3 rounds of 100000 traps, same loop, same CPU)");
  console.log(`  runtime (Worker tracer + emulator)  ${t.runtimeUs.toFixed(2)} µs/trap`);
  console.log(`  reference C tracer                  ${t.referenceCUs.toFixed(2)} µs/trap`);
  console.log(`  ratio runtime/C                     ${t.ratio.toFixed(3)}   (goal <= ${t.goal})`);
  console.log(`  runtime traps by cause: ${fmtCauses(t.runtimeTrapsByCause)}\n`);
  const h = result.helloBootToExit;
  console.log("hello, boot to exit (one line typed at once)");
  console.log(
    `  host time ${h.hostMs} ms, guest time ${h.guestMs} ms, ${h.hostRoundTrips} host round trips`,
  );
  console.log(`  traps by cause: ${fmtCauses(h.trapsByCause)}`);
  const c = result.computeBound;
  console.log("\ncompute-bound loop (same C loop; ratio = native time / guest time, goal >= 0.9)");
  console.log(
    `  native x86-64 ${c.nativeMs.toFixed(1)} ms, native 32-bit ${c.native32Ms.toFixed(1)} ms`,
  );
  console.log(
    `  guest kernel ${c.kernelMs.toFixed(1)} ms: ratio ${c.kernelRatio.toFixed(3)} ` +
      `(${c.kernelRatio32.toFixed(3)} vs the same 32-bit code)`,
  );
  console.log(
    `  guest user process ${c.userMs.toFixed(1)} ms: ratio ${c.userRatio.toFixed(3)} ` +
      `(${c.userRatio32.toFixed(3)} vs the same 32-bit code)`,
  );
  const l = result.lockHeavy;
  console.log("\nlock-heavy loop (sensitive lockbench: pushf; cli; counter++; popf)");
  for (const [name, f] of [["trap", l.trap], ["fast", l.fast]] as const) {
    console.log(
      `  ${name} form: ${f.pairs} pairs, ${f.trapsPer1000Pairs} traps per 1000 lock pairs, ` +
        `${f.usPerPair} µs per pair, ${f.fastPaths} fast sequences`,
    );
  }
  console.log(`  time per pair, trap form / fast form: ${l.timeRatioTrapOverFast}x`);
  printSelftest("minios self-test (paging, user processes, 100 Hz preemption)", minios);
  printSelftest("longmode self-test (64-bit, 4-level paging, user tasks, syscall)", longmode);
  const k = result.kernelProtection;
  console.log("\nkernel-memory protection designs on the minios self-test (seed 002 §5.1)");
  for (const r of [k.process, k.unmap]) {
    console.log(
      `  ${r.kernelProtection.padEnd(8)} host ${r.hostMs} ms, ${r.hostRoundTrips} round trips, ` +
        `${r.hostSyscalls} host syscalls, ${r.shadowPageFills} shadow fills, ` +
        `${r.privilegeSwitches} switches`,
    );
  }
  console.log(
    `  unmap/process: host time x${k.hostTimeRatio}, round trips x${k.roundTripRatio}`,
  );
  const p = result.pingRoundTrip;
  console.log(`\nping between two minios machines on one network (${p.count} echoes, guest time)`);
  console.log(
    `  mean ${p.meanRttGuestUs} us (min ${p.minRttGuestUs}, max ${p.maxRttGuestUs}), ` +
      `${p.received}/${p.count} answered, wire latency ${p.wireLatencyUs} us each way, host ${p.hostMs} ms`,
  );
  console.log(`  traps by cause (pinging machine): ${fmtCauses(p.trapsByCause)}`);
  const d = result.disk;
  console.log(`\ndisk (minios diskbench ${d.kib}: ATA PIO, READ/WRITE MULTIPLE of 16 sectors)`);
  console.log(
    `  guest read  ${d.guestRead.mbPerHostS} MB/s host time (${d.guestRead.hostMs} ms), ` +
      `${d.guestRead.mbPerGuestS} MB/s guest time`,
  );
  console.log(
    `  guest write ${d.guestWrite.mbPerHostS} MB/s host time (${d.guestWrite.hostMs} ms), ` +
      `${d.guestWrite.mbPerGuestS} MB/s guest time (overlay)`,
  );
  console.log(
    `  plain host read of the same bytes ${d.hostRead.mbPerS} MB/s: ratio guest/host read ` +
      `${d.readRatio}`,
  );
  console.log(`  traps by cause: ${fmtCauses(d.trapsByCause)}`);
}

function printSelftest(title: string, m: Awaited<ReturnType<typeof selftest>>): void {
  console.log(`\n${title}`);
  console.log(
    `  host ${m.hostMs} ms, guest ${m.guestMs} ms, ${m.hostRoundTrips} host round trips ` +
      `(${m.hostSyscalls} injected host syscalls)`,
  );
  console.log(
    `  page faults: ${m.guestPageFaults} delivered to the guest, ${m.shadowPageFills} shadow ` +
      `fills; ${m.privilegeSwitches} privilege switches`,
  );
  console.log(`  interrupts: ${m.interrupts} (${fmtCauses(m.interruptsByVector)})`);
  console.log(`  traps by cause: ${fmtCauses(m.trapsByCause)}`);
}

function fmtCauses(c: Record<string, number>): string {
  return Object.entries(c).sort((a, b) => b[1] - a[1]).map(([k, v]) => `${k}=${v}`).join(" ");
}
