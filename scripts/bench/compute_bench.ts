/**
 * Compute bench: the loop of fixtures/kernels/lib/compute_loop.c (32-bit integer arithmetic,
 * nothing that traps) run in the guest kernel (`computebench`, ring 0 with interrupts off), in a
 * guest user process (minios `compute=N`, ring 3 in its own address space, preempted by its
 * 100 Hz timer) and natively on the host, all pinned to one CPU. Ratios are native time / guest
 * time: 1.0 is native speed (goal >= 0.9).
 *
 * Two native references, both from scripts/bench/compute_native.c:
 * - `nativeMs`: the same C compiled by gcc -O2 for x86-64 and called directly. The loop's
 *   arithmetic is uint32_t, so it compiles to the same 32-bit ALU operations, but the encoding
 *   and register allocation are x86-64's.
 * - `native32Ms`: computebench's own i386 machine code for `compute_loop`, the same bytes at the
 *   same address, run natively in 32-bit compatibility mode through a far call. This one
 *   isolates what running under ring3 costs; minios's user copy is the same C compiled with the
 *   same flags, at another address.
 *
 * Guest times are host wall-clock times between the `compute start` and `compute done` lines
 * as the console delivers them (batched for a few milliseconds), so they include the ~14 traps
 * of printing the first line; the user run also includes minios's timer interrupts, each one a
 * round trip through ring3's emulator.
 *
 * @module
 */
import { parseElf } from "../../runtime/boot/elf.ts";
import { Vm } from "../../mod.ts";
import { timeLines } from "./line_timer.ts";

/** Options of {@link computeBench}. */
export interface ComputeBenchOptions {
  /** Host CPU to pin the native loop and the machines to. */
  cpu: number;
  /** Loop rounds (default 500000000, about a second natively). */
  n?: number;
  /** Measurements of each kind, interleaved; medians are reported (default 3). */
  rounds?: number;
}

/** What {@link computeBench} measured (medians, milliseconds). */
export interface ComputeBenchResult {
  n: number;
  rounds: number;
  /** The loop's result, equal in every run (hex). */
  checksum: string;
  /** The same C compiled for x86-64, natively. */
  nativeMs: number;
  /** computebench's i386 code for the loop, natively in compatibility mode. */
  native32Ms: number;
  /** computebench: guest kernel, ring 0. */
  kernelMs: number;
  /** minios `compute`: guest user process, ring 3, 100 Hz preemption. */
  userMs: number;
  /** nativeMs / kernelMs */
  kernelRatio: number;
  /** nativeMs / userMs */
  userRatio: number;
  /** native32Ms / kernelMs */
  kernelRatio32: number;
  /** native32Ms / userMs */
  userRatio32: number;
}

const DEFAULT_N = 500_000_000;
const root = (p: string) => new URL(`../../${p}`, import.meta.url).pathname;
const COMPUTEBENCH = root("fixtures/build/computebench.elf");
const MINIOS = root("fixtures/build/minios.elf");
const HOST = root("fixtures/build/host");

async function run(cmd: string, args: string[]): Promise<string> {
  const r = await new Deno.Command(cmd, { args, stderr: "piped", stdout: "piped" }).output();
  const out = new TextDecoder().decode(r.stdout);
  if (!r.success) {
    throw new Error(`${cmd} failed: ${new TextDecoder().decode(r.stderr)}${out}`);
  }
  return out;
}

/** Builds compute_native and extracts computebench's compute_loop bytes for it. */
async function prepareNative(): Promise<{ exe: string; code: string; addr: number }> {
  await Deno.mkdir(HOST, { recursive: true });
  const exe = `${HOST}/compute_native`;
  await run("gcc", [
    "-O2",
    "-no-pie",
    "-Wall",
    "-o",
    exe,
    new URL("./compute_native.c", import.meta.url).pathname,
  ]);
  const image = await Deno.readFile(COMPUTEBENCH);
  const elf = parseElf(image);
  const sym = elf.symbols.find((s) => s.name === "compute_loop");
  if (!sym || !sym.size) throw new Error("computebench.elf has no sized compute_loop symbol");
  const sec = elf.sections[sym.sectionIndex];
  const start = sec.offset + (sym.value - sec.addr);
  const code = `${HOST}/compute_loop32.bin`;
  await Deno.writeFile(code, image.subarray(start, start + sym.size));
  return { exe, code, addr: sym.value };
}

async function nativeRound(
  native: { exe: string; code: string; addr: number },
  n: number,
  cpu: number,
) {
  const out = await run(native.exe, [
    String(n),
    String(cpu),
    "1",
    native.code,
    `0x${native.addr.toString(16)}`,
  ]);
  const j = JSON.parse(out) as {
    checksum: string;
    ms64: number[];
    checksum32: string;
    ms32: number[];
  };
  return { ms64: j.ms64[0], ms32: j.ms32[0], checksums: [j.checksum, j.checksum32] };
}

/** Boots a kernel and times the lines `compute start` .. `compute done <hex>` in host time. */
async function guestRound(kernel: string, cmdline: string, cpu: number) {
  const vm = await Vm.start({ kernel, cmdline, cpu, timeout: "600s" });
  const timer = timeLines(vm, /compute start\n/, /compute done [0-9a-f]+\n/);
  const code = await vm.exit();
  const sum = /compute done ([0-9a-f]+)\n/.exec(timer.output)?.[1];
  if (code !== 1 || timer.ms === null || !sum) {
    throw new Error(`${kernel} ${cmdline}: status ${code}, output:\n${timer.output}`);
  }
  return { ms: timer.ms, checksum: sum };
}

const median = (a: number[]) => [...a].sort((x, y) => x - y)[a.length >> 1];
const ratio = (native: number, guest: number) => +(native / guest).toFixed(3);

/**
 * Runs the compute bench: for each round the native references, then computebench, then minios.
 *
 * @param options CPU, rounds of the loop, measurements of each kind
 * @returns medians and ratios
 * @throws {Error} when a run fails or the checksums differ
 */
export async function computeBench(options: ComputeBenchOptions): Promise<ComputeBenchResult> {
  const n = options.n ?? DEFAULT_N;
  const rounds = options.rounds ?? 3;
  const { cpu } = options;
  const native = await prepareNative();
  const ms64: number[] = [], ms32: number[] = [], kernel: number[] = [], user: number[] = [];
  const sums = new Set<string>();
  for (let i = 0; i < rounds; i++) {
    const nr = await nativeRound(native, n, cpu);
    ms64.push(nr.ms64);
    ms32.push(nr.ms32);
    nr.checksums.forEach((s) => sums.add(s));
    const k = await guestRound(COMPUTEBENCH, `n=${n}`, cpu);
    kernel.push(k.ms);
    sums.add(k.checksum);
    const u = await guestRound(MINIOS, `compute=${n}`, cpu);
    user.push(u.ms);
    sums.add(u.checksum);
  }
  if (sums.size !== 1) throw new Error(`compute bench: checksums differ: ${[...sums].join(" ")}`);
  const [nativeMs, native32Ms, kernelMs, userMs] = [ms64, ms32, kernel, user].map(median);
  return {
    n,
    rounds,
    checksum: [...sums][0],
    nativeMs: +nativeMs.toFixed(1),
    native32Ms: +native32Ms.toFixed(1),
    kernelMs: +kernelMs.toFixed(1),
    userMs: +userMs.toFixed(1),
    kernelRatio: ratio(nativeMs, kernelMs),
    userRatio: ratio(nativeMs, userMs),
    kernelRatio32: ratio(native32Ms, kernelMs),
    userRatio32: ratio(native32Ms, userMs),
  };
}
