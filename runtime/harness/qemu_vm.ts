/**
 * The QEMU backend of scenarios (issue 5): the same {@link ScenarioVm} surface as ring3's
 * {@link Vm}, with the kernel running under `qemu-system-i386` (or `qemu-system-x86_64` for an
 * ELF64 image) in TCG. COM1 is QEMU's stdio; QMP on a UNIX socket in a temporary folder stops the
 * machine, reads its guest clock and registers, and reports shutdowns.
 *
 * ## Guest time under QEMU
 *
 * Scenario timeouts are guest time. QEMU runs with `-icount shift=0,sleep=off`: its virtual
 * clock advances 1 ns per guest instruction (a 1 GHz, one-instruction-per-cycle CPU) and, when
 * the CPU halts, jumps straight to the next timer instead of sleeping in host time. That is the
 * model ring3 has (guest time is consumed CPU time; idle time jumps to the next event), and it
 * does not depend on how fast or how loaded the host is.
 *
 * QMP has no command that returns the virtual clock, so {@link QemuVm} reads it from two guest
 * devices that count it, with the machine paused for the read (`stop`, reads, `cont`; about 2 ms):
 * the RTC (`-rtc base=<ring3's RTC epoch>,clock=vm`, whole seconds, QOM property
 * `/machine.rtc-time`) and the ACPI PM timer (3.579545 MHz, 24 bits, port 0x608 where SeaBIOS
 * puts the PIIX4 PM block, read with HMP `i`). The RTC second picks the PM timer's wrap (its period
 * is 4.69 s), which gives the virtual clock to 280 ns. `query-replay`'s instruction count is a
 * lower bound that is used when the PM timer is not readable (before SeaBIOS sets it up) and
 * that shows whether the CPU ran at all between two samples.
 *
 * The clock is sampled every {@link POLL_MS} ms of host time while an expectation waits
 * ({@link IDLE_POLL_MS} otherwise), and once as soon as an expectation starts, so its deadline
 * counts from the guest time it started at. A deadline is noticed at the first sample at or past
 * it: output the guest printed in between still matches. For a busy guest that is a few ms of
 * guest time (measured here: TCG with icount runs 210-240 M guest instructions per host second,
 * so busy guest time runs at about a quarter of host time, and a "5s" timeout of a spinning
 * guest takes about 20 s of host time; the pauses for sampling cost less than the run-to-run
 * noise). An idle guest's time races (0.4 s of guest time per host ms with SeaBIOS's 18.2 Hz
 * PIT), so its deadlines can be noticed that much late.
 *
 * Two differences from ring3's clock are compensated. QEMU's RTC keeps a timer armed up to a
 * day ahead, so a guest idle with no timer of its own jumps up to a day at once; idle time that
 * passes while the scenario is not blocked on guest time (no expectation waiting, no
 * `result()`/`exit()`) therefore does not count towards the run's limit. And when the CPU is
 * halted with no timer armed at all, QEMU's clock stands still; after {@link FROZEN_MS} ms of
 * host time like that, guest time jumps to the earliest waiting deadline (the run's limit only
 * once the scenario waits for the end), as ring3's does. A guest that sets its RTC, or moves
 * the PIIX4 PM block, makes the clock wrong.
 *
 * @module
 */
import { type BootOptions, GuestFailureError, SerialConsole } from "../vm.ts";
import type { AppliedEvent, MachineEvent, ToMachine } from "../machine_protocol.ts";
import { type Duration, durationNs, memoryBytes } from "../duration.ts";
import { consoleLimits, ConsoleWatch } from "../console_watch.ts";
import type { FaultPlan } from "../fault_plan.ts";
import { emptyStats, type FailureKind, type FailureReport, type RunResult } from "../run_result.ts";
import { RTC_DEFAULT_EPOCH_MS } from "../devices/mc146818.ts";
import { resolveDisks } from "../disk/disk_options.ts";
import { driveArgs, prepareQemuDrives, type QemuDrive } from "./qemu_disks.ts";
import { QmpClient, QmpError, type QmpEvent } from "./qmp.ts";
import type { ScenarioVm } from "./scenario_vm.ts";
import { Keyboard, TextScreen } from "../vm_devices.ts";
import { qemuKeystrokes, qemuSerialArgs, screenFromText } from "./qemu_devices.ts";

/** Host ms between guest-clock samples while an expectation waits. */
export const POLL_MS = 20;
/** Host ms between guest-clock samples otherwise (the run's limit is still enforced). */
export const IDLE_POLL_MS = 100;
/** Host ms a halted CPU's clock must stand still before guest time jumps to a deadline. */
export const FROZEN_MS = 200;
/** Host ms the machine gets to quit through QMP before it is killed. */
const QUIT_GRACE_MS = 3000;
const PM_TIMER_HZ = 3579545;
const PM_TIMER_PORT = 0x608;
const PM_TIMER_PERIOD = 2 ** 24;
const REPORT_LINES = 10;
/** Clock samples between screen reads while no screen expectation waits. */
const SCREEN_EVERY = 5;

/** QEMU system emulator flavour. */
export type QemuArch = "i386" | "x86_64";

/**
 * Which QEMU a kernel needs: an ELF64 file needs `qemu-system-x86_64`; ELF32 and flat images
 * (a.out kludge) boot on `qemu-system-i386`.
 *
 * @param image the kernel file's bytes (the first 5 are enough)
 * @returns the architecture
 */
export function kernelArch(image: Uint8Array): QemuArch {
  const elf = image.length > 4 && image[0] === 0x7f && image[1] === 0x45 && image[2] === 0x4c &&
    image[3] === 0x46;
  return elf && image[4] === 2 ? "x86_64" : "i386";
}

/**
 * Finds `qemu-system-<arch>` on PATH.
 *
 * @param arch i386 or x86_64
 * @returns its path, or null when it is not installed
 */
export function qemuSystemBinary(arch: QemuArch = "i386"): string | null {
  for (const dir of (Deno.env.get("PATH") ?? "/usr/bin").split(":")) {
    try {
      const p = `${dir}/qemu-system-${arch}`;
      if (Deno.statSync(p).isFile) return p;
    } catch { /* not here */ }
  }
  return null;
}

/** What {@link qemuArgs} builds a command line from. */
export interface QemuArgsOptions {
  kernel: string;
  cmdline: string;
  memoryBytes: number;
  qmpSocket: string;
  logFile: string;
  /** Network devices (`-netdev`/`-device` pairs); default none. */
  nicArgs?: string[];
  /** IDE drives (see qemu_disks.ts). */
  drives?: QemuDrive[];
  /** COM2..COM4 backends (see qemu_devices.ts). */
  serial?: BootOptions["serial"];
}

/**
 * QEMU's arguments: the devices ring3 models (COM1 on stdio, isa-debug-exit at 0xf4), a
 * deterministic virtual clock, an RTC that starts at ring3's epoch, QMP, and the reset log
 * that tells a triple fault from a deliberate reset.
 *
 * @param o paths and machine size
 * @returns the argument list
 */
export function qemuArgs(o: QemuArgsOptions): string[] {
  const epoch = new Date(RTC_DEFAULT_EPOCH_MS).toISOString().slice(0, 19);
  return [
    ...["-kernel", o.kernel, "-append", o.cmdline, "-m", `${o.memoryBytes}B`],
    // With a network, idle time passes at host speed (sleep=on): two QEMUs have no shared
    // clock, and an idle guest that warped ahead would time out before its peer answered.
    ...["-accel", "tcg", "-icount", `shift=0,sleep=${o.nicArgs?.length ? "on" : "off"}`],
    ...["-rtc", `base=${epoch},clock=vm`],
    ...["-display", "none", "-monitor", "none", "-serial", "stdio", ...qemuSerialArgs(o.serial)],
    ...["-device", "isa-debug-exit,iobase=0xf4,iosize=0x04", "-no-reboot", "-no-shutdown"],
    ...["-qmp", `unix:${o.qmpSocket},server=on,wait=off`, "-d", "cpu_reset", "-D", o.logFile],
    // No network unless a scenario names one (QEMU would otherwise add a user-mode NIC).
    ...(o.nicArgs?.length ? o.nicArgs : ["-nic", "none"]),
    ...driveArgs(o.drives ?? []),
  ];
}

/** The CPU state QEMU's `info registers` shows, reduced to what reports need. */
export interface QemuRegisters {
  /** EIP/RIP, hex without 0x. */
  rip: string;
  cpl: number;
  interruptFlag: boolean;
  /** The CPU is in hlt. */
  halted: boolean;
  /** As ring3 describes it: "protected mode, 32-bit, CPL 0, paging, IF=1". */
  mode: string;
}

/**
 * Parses HMP `info registers` output (qemu-system-i386 or -x86_64).
 *
 * @param text the output
 * @returns the registers, or null when the text is not a register dump
 */
export function parseQemuRegisters(text: string): QemuRegisters | null {
  const hex = (re: RegExp) => {
    const m = re.exec(text);
    return m ? BigInt(`0x${m[1]}`) : null;
  };
  const ip = hex(/\b[ER]IP=([0-9a-f]+)/);
  const fl = hex(/\b[ER]FL=([0-9a-f]+)/);
  const cpl = /\bCPL=(\d)/.exec(text);
  if (ip === null || fl === null || !cpl) return null;
  const cr0 = hex(/\bCR0=([0-9a-f]+)/) ?? 0n;
  const efer = hex(/\bEFER=([0-9a-f]+)/) ?? 0n;
  const cs = /^CS =.*\b(CS64|CS32|CS16)\b/m.exec(text)?.[1] ?? "CS32";
  const interruptFlag = (fl & 0x200n) !== 0n;
  const paging = cr0 & 0x80000000n ? ", paging" : "";
  let mode: string;
  if (!(cr0 & 1n)) mode = "real mode";
  else if (efer & 0x400n) {
    mode = cs === "CS64" ? "long mode, 64-bit" : `long mode (compatibility), ${cs.slice(2)}-bit`;
  } else mode = `protected mode, ${cs.slice(2)}-bit`;
  return {
    rip: ip.toString(16),
    cpl: Number(cpl[1]),
    interruptFlag,
    halted: /\bHLT=1\b/.test(text),
    mode: `${mode}, CPL ${cpl[1]}${paging}, IF=${interruptFlag ? 1 : 0}`,
  };
}

/**
 * The virtual clock from an RTC second and a PM timer reading taken together.
 *
 * @param rtcSeconds whole seconds the RTC counted since guest time 0
 * @param pmTicks the 24-bit ACPI PM timer
 * @returns guest nanoseconds
 */
export function unwrapPmTimer(rtcSeconds: number, pmTicks: number): number {
  const approx = (rtcSeconds + 0.5) * PM_TIMER_HZ;
  const k = Math.round((approx - pmTicks) / PM_TIMER_PERIOD);
  return (pmTicks + k * PM_TIMER_PERIOD) * 1e9 / PM_TIMER_HZ;
}

function haltedForGood(regs: QemuRegisters): EndCause {
  return {
    kind: "halted",
    message: "the guest executed hlt with interrupts disabled (IF=0): it can never run again",
    regs,
  };
}

interface Deadline {
  id: number;
  afterNs: number;
  /** Guest time it fires at; null until the clock was sampled after it was set. */
  at: number | null;
}

/** A timeline event waiting for its guest time. */
interface TimelineEntry {
  event: MachineEvent;
  /** Guest time it is due at; null until the clock was sampled after a relative one was set. */
  at: number | null;
  afterNs: number;
  resolve: (applied: AppliedEvent) => void;
}

/** What the QEMU backend says about an event kind it cannot do. */
const QEMU_CANNOT: Record<string, string> = {
  irq: "QEMU has no interface to drive an ISA interrupt line from outside",
  spurious: "QEMU has no interface to make the 8259 answer with a spurious vector",
  timer: "QEMU's virtual clock cannot be held back or advanced from outside",
  disk: "QEMU's blkdebug takes its rules when the drive is opened, not at a guest time",
  nic: "QEMU's socket netdev has no interface to drop, corrupt or inject frames",
};

/** What the QEMU backend says about a fault it cannot do. */
const QEMU_CANNOT_FAULT: Record<string, string> = {
  "port-garbage": "port reads are answered inside QEMU",
  "kill-guest": "QEMU has no traps to count; kill-guest with `at` kills the QEMU process",
  "fail-host-mmap": "QEMU makes no host mappings per guest page",
  "duplicate-interrupt": "QEMU delivers interrupts inside its CPU loop",
  "drop-interrupt": "QEMU delivers interrupts inside its CPU loop",
  "delay-interrupts": "QEMU delivers interrupts inside its CPU loop",
};

interface EndCause {
  kind: FailureKind | "guest-reset";
  message: string;
  regs?: QemuRegisters | null;
}

const live = new Set<Deno.ChildProcess>();
let unloadHooked = false;

/** Options of {@link QemuVm.start}: ring3's, plus where QEMU is. */
export interface QemuBootOptions extends BootOptions {
  /** The QEMU binary (default: `qemu-system-i386` or `-x86_64` on PATH, by the image). */
  qemuBinary?: string;
}

/**
 * A machine running under QEMU, as a scenario drives it. `cpu`, `rewrite` and `paceIdle` of
 * {@link BootOptions} have no meaning here and are ignored.
 */
export class QemuVm implements ScenarioVm {
  /** COM1, the console (the same class as ring3's, so expectations behave the same). */
  readonly console: SerialConsole;
  /** The PS/2 keyboard, through QMP input-send-event. */
  readonly keyboard: Keyboard;
  /** The text screen: QMP pmemsave and the CRTC over HMP, at each clock sample. */
  readonly screen: TextScreen;
  /** Slave paths of pty-backed serial lines, from QEMU's "char device redirected" notes. */
  readonly ptys: Record<number, string> = {};
  #deadlineIds = 1;
  #samples = 0;
  /** Serializes the clock sample (stop … cont) and key events: QEMU drops input while stopped. */
  #paused: Promise<unknown> = Promise.resolve();
  /** QEMU's own messages (stderr, warnings) and notes of this backend. */
  readonly logs: string[] = [];
  /** The backend: QEMU. */
  readonly backend = "qemu" as const;
  /** Which QEMU runs the kernel. */
  readonly arch: QemuArch;
  readonly #child: Deno.ChildProcess;
  readonly #dir: string;
  readonly #stdin: WritableStreamDefaultWriter<Uint8Array>;
  readonly #result: Promise<RunResult>;
  readonly #runLimitNs: number;
  readonly #t0 = performance.now();
  #qmp: QmpClient | null = null;
  #running = false;
  #cause: EndCause | null = null;
  #ended = false;
  #stderr = "";
  #guestNs = 0;
  #idleJumpNs = 0;
  #unblockedIdleNs = 0;
  #lastIcount = 0;
  #lastVirtualNs = 0;
  #frozenSince = performance.now();
  #waiting = false;
  #deadlines: Deadline[] = [];
  #wake: (() => void) | null = null;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #quitTimer: ReturnType<typeof setTimeout> | undefined;
  #timeline: TimelineEntry[] = [];
  readonly #eventLog: AppliedEvent[] = [];
  #killAt: number[] = [];
  #killedByPlan: string | null = null;
  #consoleWatch: ConsoleWatch;

  private constructor(
    child: Deno.ChildProcess,
    dir: string,
    arch: QemuArch,
    runLimitNs: number,
    watch: ConsoleWatch,
  ) {
    this.#child = child;
    this.#dir = dir;
    this.arch = arch;
    this.#runLimitNs = runLimitNs;
    this.#consoleWatch = watch;
    this.#stdin = child.stdin.getWriter();
    const nextId = () => this.#deadlineIds++;
    this.console = new SerialConsole(
      (m) => this.#fromConsole(m),
      (event, afterNs) => this.#schedule(event, null, afterNs),
      nextId,
    );
    this.keyboard = new Keyboard((e) => this.#keyboardEvent(e));
    this.screen = new TextScreen((m) => this.#fromConsole(m), nextId);
    live.add(child);
    if (!unloadHooked) {
      unloadHooked = true;
      globalThis.addEventListener("unload", () => {
        for (const c of live) {
          try {
            c.kill("SIGKILL");
          } catch { /* gone */ }
        }
      });
    }
    const stdout = this.#pumpStdout();
    const stderr = this.#pumpStderr();
    this.#result = child.status.then(async (status) => {
      live.delete(child);
      this.#ended = true;
      this.#wake?.();
      clearTimeout(this.#timer);
      clearTimeout(this.#quitTimer);
      await Promise.all([stdout, stderr]).catch(() => {});
      await this.#stdin.close().catch(() => {});
      this.#qmp?.close();
      await this.#qmp?.closed;
      const log = await Deno.readTextFile(`${dir}/qemu.log`).catch(() => "");
      await Deno.remove(dir, { recursive: true }).catch(() => {});
      for (const t of this.#timeline) {
        t.resolve({
          guestNs: this.#guestNs,
          kind: t.event.kind,
          detail: "the run ended before the event's time",
          outcome: "rejected",
        });
      }
      this.#timeline = [];
      const r = this.#classify(status, log);
      const end = r.outcome === "failure"
        ? new GuestFailureError(r.failure)
        : new Error(`the guest exited with status ${r.exitCode}`);
      this.console.end(end);
      this.screen.end(end);
      return r;
    });
  }

  /**
   * Boots a kernel under QEMU.
   *
   * @param options as for ring3's {@link Vm.start}, plus the QEMU binary
   * @returns the running machine
   * @throws {Error} when QEMU is not installed or the image cannot be read
   * @throws {GuestFailureError} "image-error" when QEMU refuses the image
   */
  static async start(options: QemuBootOptions): Promise<QemuVm> {
    let image: Uint8Array;
    try {
      image = await Deno.readFile(options.kernel);
    } catch (e) {
      throw new Error(
        `cannot read kernel image ${options.kernel}: ${(e as Error).message}` +
          (options.kernel.startsWith("fixtures/")
            ? " (build fixtures with `deno task fixtures`)"
            : ""),
        { cause: e },
      );
    }
    const arch = kernelArch(image);
    const binary = options.qemuBinary ?? qemuSystemBinary(arch);
    if (!binary) {
      throw new Error(
        `qemu-system-${arch} is not installed (needed for ${options.kernel} on the QEMU backend)`,
      );
    }
    const disks = await resolveDisks(options.disks ?? []);
    const dir = await Deno.makeTempDir({ prefix: "ring3-qemu-" });
    const diskNotes: string[] = [];
    const drives = await prepareQemuDrives(disks, dir, (m) => diskNotes.push(m));
    const args = qemuArgs({
      drives,
      kernel: options.kernel,
      cmdline: options.cmdline ?? "",
      memoryBytes: memoryBytes(options.memory ?? "64M"),
      qmpSocket: `${dir}/qmp.sock`,
      logFile: `${dir}/qemu.log`,
      nicArgs: (await Promise.all((options.nics ?? []).map((n) => n.network.qemuArgs(n.mac))))
        .flat(),
      serial: options.serial,
    });
    let child: Deno.ChildProcess;
    try {
      child = new Deno.Command(binary, { args, stdin: "piped", stdout: "piped", stderr: "piped" })
        .spawn();
    } catch (e) {
      await Deno.remove(dir, { recursive: true }).catch(() => {});
      throw e;
    }
    const vm = new QemuVm(
      child,
      dir,
      arch,
      durationNs(options.timeout ?? "60s"),
      new ConsoleWatch(consoleLimits(options.failOn, options.consoleFlood)),
    );
    vm.#planFaults(options.faults ?? []);
    vm.logs.push(
      `${binary} ${args.map((a) => /[\s"']/.test(a) ? JSON.stringify(a) : a).join(" ")}`,
      ...diskNotes,
    );
    try {
      const qmp = await QmpClient.connect(`${dir}/qmp.sock`, { gone: vm.#result });
      vm.#qmp = qmp;
      qmp.onEvent((e) => vm.#onEvent(e));
      const status = await qmp.execute<{ status: string }>("query-status");
      vm.#running = true;
      if (status.status === "shutdown") vm.#onEvent({ event: "SHUTDOWN", data: { guest: true } });
    } catch {
      // QEMU refused the image (or died): it exits by itself; the result says why.
      vm.#kill();
      const r = await vm.#result;
      if (r.outcome === "failure") throw new GuestFailureError(r.failure);
      return vm;
    }
    if (
      options.serial &&
      Object.values(options.serial).some((b) =>
        b !== undefined && typeof b === "object" && "pty" in b
      )
    ) {
      // QEMU names each pty on stdout (#pumpStdout takes the notes out of COM1's transcript).
      const want = Object.values(options.serial).filter((b) =>
        typeof b === "object" && "pty" in b
      ).length;
      for (let i = 0; i < 100 && Object.keys(vm.ptys).length < want; i++) {
        await new Promise((r) => setTimeout(r, 20));
      }
    }
    vm.#clockLoop();
    return vm;
  }

  /** QEMU's pid (0 once it could not be started). */
  get pid(): number {
    return this.#child.pid;
  }

  /** Guest nanoseconds at the last clock sample. */
  get guestNs(): number {
    return this.#guestNs;
  }

  /** How the run ended, without telling the machine that the caller waits for it. */
  get finished(): Promise<RunResult> {
    return this.#result;
  }

  /** How the run ended; resolves when it does. An idle guest's time may run to the limit. */
  result(): Promise<RunResult> {
    this.#waiting = true;
    this.#kick();
    return this.#result;
  }

  /**
   * Waits for the guest to exit through isa-debug-exit.
   *
   * @returns QEMU's exit status, ((v << 1) | 1) & 0xff
   * @throws {GuestFailureError} when the run ended any other way
   */
  async exit(): Promise<number> {
    const r = await this.result();
    if (r.outcome === "exit") return r.exitCode;
    throw new GuestFailureError(r.failure);
  }

  /**
   * Ends the run now (QMP `quit`, SIGKILL if QEMU does not go) and waits for the end.
   *
   * @param reason recorded in the report
   * @returns how the run ended
   */
  stop(reason = "stopped by the scenario"): Promise<RunResult> {
    this.#finish({ kind: "stopped", message: `stopped by the harness: ${reason}` });
    return this.#result;
  }

  // --- timeline and faults ---------------------------------------------------------------------

  /**
   * Puts an event on the timeline. Only "serial" is something QEMU can do from outside (bytes on
   * COM1's chardev, at the first clock sample at or past the event's guest time); every other
   * kind is recorded as skipped, with why, and never faked.
   *
   * @param time guest time since boot
   * @param event the event
   * @returns the event as applied or skipped
   */
  at(time: Duration, event: MachineEvent): Promise<AppliedEvent> {
    return this.#schedule(event, durationNs(time), 0);
  }

  /**
   * Applies an event now (see {@link at}).
   *
   * @param event the event
   * @returns the event as applied or skipped
   */
  inject(event: MachineEvent): Promise<AppliedEvent> {
    return this.#schedule(event, null, 0);
  }

  #log(kind: string, detail: string, outcome: AppliedEvent["outcome"]): AppliedEvent {
    const e: AppliedEvent = { guestNs: this.#guestNs, kind, detail, outcome };
    this.#eventLog.push(e);
    if (outcome !== "applied") this.logs.push(`event ${kind}: ${detail}`);
    return e;
  }

  #schedule(event: MachineEvent, atNs: number | null, afterNs: number): Promise<AppliedEvent> {
    if (this.#ended || this.#cause) {
      return Promise.resolve({
        guestNs: this.#guestNs,
        kind: event.kind,
        detail: "the run has ended",
        outcome: "rejected",
      });
    }
    if (event.kind !== "serial") {
      const why = QEMU_CANNOT[event.kind] ?? "the kind is not known to the QEMU backend";
      return Promise.resolve(
        this.#log(event.kind, `skipped: not supported by qemu backend (${why})`, "skipped"),
      );
    }
    if (atNs === null && afterNs === 0) return Promise.resolve(this.#apply(event));
    return new Promise((resolve) => {
      this.#timeline.push({ event, at: atNs, afterNs, resolve });
      this.#kick();
    });
  }

  #apply(event: MachineEvent): AppliedEvent {
    const text = typeof event.text === "string" ? event.text : "";
    this.#stdin.write(new TextEncoder().encode(text)).catch(() => {});
    return this.#log(event.kind, JSON.stringify(text), "applied");
  }

  /** Applies the timeline events due at the last clock sample, in time order. */
  #runTimeline(): void {
    for (const t of this.#timeline) if (t.at === null) t.at = this.#guestNs + t.afterNs;
    const due = this.#timeline.filter((t) => t.at! <= this.#guestNs).sort((a, b) => a.at! - b.at!);
    if (due.length === 0) return;
    this.#timeline = this.#timeline.filter((t) => !due.includes(t));
    for (const t of due) t.resolve(this.#apply(t.event));
  }

  /** The fault plan on QEMU: kill-guest at a guest time kills QEMU; the rest are skipped. */
  #planFaults(plan: FaultPlan): void {
    for (const f of plan) {
      if (f.fault === "kill-guest" && f.at !== undefined) {
        this.#killAt.push(durationNs(f.at));
        continue;
      }
      this.#log(
        "fault",
        `${f.fault}: skipped: not supported by qemu backend (${QEMU_CANNOT_FAULT[f.fault]})`,
        "skipped",
      );
    }
  }

  #checkKill(): void {
    const at = this.#killAt.find((t) => t <= this.#guestNs);
    if (at === undefined) return;
    this.#killAt = [];
    this.#killedByPlan = `kill-guest: SIGKILL to QEMU at guest time ${
      (this.#guestNs / 1e6).toFixed(1)
    } ms`;
    this.#log("fault", this.#killedByPlan, "applied");
    this.#kill();
  }

  // --- devices ----------------------------------------------------------------------------------

  /**
   * A serial line: 1 is {@link QemuVm.console}; QEMU backs the others with ptys, files or pipes
   * only (see qemu_devices.ts), not with the scenario.
   *
   * @param line 1..4
   * @returns the console of line 1
   * @throws {RangeError} for another line
   */
  serial(line: number): SerialConsole {
    if (line === 1) return this.console;
    throw new RangeError(
      `COM${line} cannot be the scenario's console on the QEMU backend: use { pty: true }`,
    );
  }

  #keyboardEvent(e: MachineEvent): void {
    const strokes = qemuKeystrokes(e);
    const holdMs = typeof e.intervalNs === "number" ? Math.max(1, e.intervalNs / 1e6) : 10;
    const qmp = this.#qmp;
    if (this.#ended || !qmp) return;
    // Between clock samples: QEMU drops input events while the machine is stopped.
    const send = this.#paused.then(async () => {
      for (const keys of strokes) {
        await qmp.execute("send-key", {
          keys: keys.map((n) => ({ type: "number", data: n })),
          "hold-time": holdMs,
        }).catch((err) => this.logs.push(`keyboard: ${(err as Error).message}`));
      }
    });
    this.#paused = send;
  }

  /** Reads the text screen (machine paused by the caller). */
  async #readScreen(): Promise<void> {
    const q = this.#qmp!;
    const inb = async (port: number) =>
      parseInt(/=\s*0x([0-9a-f]+)/.exec(await q.hmp(`i /b 0x${port.toString(16)}`))?.[1] ?? "", 16);
    // The CRTC's registers sit behind its index port: save the index, read, put it back. The
    // machine is stopped, so the guest never sees the index change.
    const index = await inb(0x3d4);
    const reg = async (i: number) => {
      await q.hmp(`o /b 0x3d4 0x${i.toString(16)}`);
      return await inb(0x3d5);
    };
    const crtc = {
      start: ((await reg(0x0c)) << 8) | await reg(0x0d),
      location: ((await reg(0x0e)) << 8) | await reg(0x0f),
      shape: [await reg(0x0a), await reg(0x0b)],
    };
    if (Number.isFinite(index)) await q.hmp(`o /b 0x3d4 0x${index.toString(16)}`);
    const file = `${this.#dir}/screen.bin`;
    const start = Number.isFinite(crtc.start) ? crtc.start : 0;
    await q.execute("pmemsave", { val: 0xb8000 + 2 * start, size: 4000, filename: file });
    this.screen.update(screenFromText(await Deno.readFile(file), start, crtc));
  }

  // --- console ---------------------------------------------------------------------------------

  #fromConsole(m: ToMachine): void {
    if (this.#ended) return;
    switch (m.type) {
      case "input":
        this.#stdin.write(m.bytes).catch(() => {});
        break;
      case "deadline":
        this.#deadlines.push({ id: m.id, afterNs: m.afterNs, at: null });
        this.#kick();
        break;
      case "cancel-deadline":
        this.#deadlines = this.#deadlines.filter((d) => d.id !== m.id);
        break;
      case "waiting":
        this.#waiting = true;
        break;
      case "stop":
        this.#finish({ kind: "stopped", message: `stopped by the harness: ${m.reason}` });
        break;
    }
  }

  async #pumpStdout(): Promise<void> {
    const decoder = new TextDecoder();
    for await (const chunk of this.#child.stdout) {
      const text = decoder.decode(chunk, { stream: true }).replace(
        /char device redirected to (\S+) \(label serial(\d)\)\r?\n/g,
        (_, path: string, n: string) => {
          this.ptys[Number(n) + 1] = path;
          return "";
        },
      );
      if (text) this.console.output(text, this.#guestNs);
      const verdict = this.#consoleWatch.count(text.length, this.#guestNs) ??
        this.#consoleWatch.scan(text);
      if (verdict) this.#finish({ kind: verdict.kind, message: verdict.message });
    }
    const rest = decoder.decode();
    if (rest) this.console.output(rest, this.#guestNs);
  }

  async #pumpStderr(): Promise<void> {
    const decoder = new TextDecoder();
    let partial = "";
    for await (const chunk of this.#child.stderr) {
      const text = decoder.decode(chunk, { stream: true });
      this.#stderr += text;
      const lines = (partial + text).split("\n");
      partial = lines.pop()!;
      for (const l of lines) if (l) this.logs.push(l);
    }
    if (partial) this.logs.push(partial);
  }

  // --- guest clock -----------------------------------------------------------------------------

  #kick(): void {
    this.#wake?.();
  }

  async #clockLoop(): Promise<void> {
    while (!this.#ended && !this.#cause) {
      await this.#tick().catch((e) => {
        // A closed connection means QEMU is exiting; its status says why.
        if (e instanceof QmpError) this.logs.push(`guest clock: ${e.message}`);
      });
      if (this.#ended || this.#cause) break;
      await new Promise<void>((resolve) => {
        this.#wake = resolve;
        const busy = this.#deadlines.length > 0 || this.#timeline.length > 0 ||
          this.#killAt.length > 0;
        this.#timer = setTimeout(resolve, busy ? POLL_MS : IDLE_POLL_MS);
      });
      clearTimeout(this.#timer);
      this.#wake = null;
    }
  }

  /** Samples the guest clock with the machine paused: instruction count, RTC, PM timer. */
  #sample(): Promise<{ icount: number; virtualNs: number } | null> {
    const run = this.#paused.then(() => this.#samplePaused());
    this.#paused = run.catch(() => {});
    return run;
  }

  async #samplePaused(): Promise<{ icount: number; virtualNs: number } | null> {
    const q = this.#qmp!;
    await q.execute("stop");
    try {
      const [replay, rtc, pm] = await Promise.all([
        q.execute<{ icount?: number }>("query-replay"),
        q.execute<Record<string, number>>("qom-get", { path: "/machine", property: "rtc-time" }),
        q.hmp(`i /w 0x${PM_TIMER_PORT.toString(16)}`),
      ]);
      const icount = replay.icount ?? 0;
      const rtcSeconds = (Date.UTC(
        rtc.tm_year + 1900,
        rtc.tm_mon,
        rtc.tm_mday,
        rtc.tm_hour,
        rtc.tm_min,
        rtc.tm_sec,
      ) - RTC_DEFAULT_EPOCH_MS) / 1000;
      const floor = Math.max(icount, rtcSeconds * 1e9);
      const pmText = /=\s*0x([0-9a-f]+)/.exec(pm)?.[1];
      const pmTicks = pmText === undefined ? -1 : parseInt(pmText, 16);
      let virtualNs = floor;
      if (pmTicks >= 0 && pmTicks < PM_TIMER_PERIOD) {
        const t = unwrapPmTimer(rtcSeconds, pmTicks);
        // Virtual time is the instruction count plus idle jumps, never less; a reading that
        // disagrees (a guest that reprogrammed its RTC or PM block) falls back to the bound.
        if (t >= icount - 1000 && Math.abs(t - (rtcSeconds + 0.5) * 1e9) <= 0.6e9) virtualNs = t;
      }
      // Seven HMP round trips and a dump: every sample while a screen expectation waits, else
      // every SCREEN_EVERY samples, which keeps vm.screen and the artifact fresh enough.
      if (this.screen.waiting || this.#samples++ % SCREEN_EVERY === 0) {
        await this.#readScreen().catch(() => {/* QEMU is going away */});
      }
      return { icount, virtualNs };
    } finally {
      await q.execute("cont").catch(() => {/* shut down or gone: the event says why */});
    }
  }

  async #tick(): Promise<void> {
    if (!this.#running) return;
    const s = await this.#sample();
    if (!s || this.#cause) return;
    const hostNow = performance.now();
    const blocked = this.#waiting || this.#deadlines.length > 0 || this.#timeline.length > 0;
    if (!blocked) {
      // Idle time while the scenario is not blocked on guest time does not count towards the
      // run's limit: QEMU's RTC keeps a timer armed up to a day ahead, which ring3's does not,
      // so a guest waiting for input with no timer of its own would jump past the limit at once.
      const idle = s.virtualNs - this.#lastVirtualNs - (s.icount - this.#lastIcount);
      if (idle > 0) this.#unblockedIdleNs += idle;
    }
    this.#guestNs = Math.max(this.#guestNs, s.virtualNs + this.#idleJumpNs);
    for (const d of this.#deadlines) if (d.at === null) d.at = this.#guestNs + d.afterNs;
    if (s.icount === this.#lastIcount) {
      // Not one instruction since the last sample: the CPU is in hlt.
      const regs = parseQemuRegisters(await this.#qmp!.hmp("info registers"));
      if (this.#cause) return;
      if (regs?.halted && !regs.interruptFlag) {
        this.#finish(haltedForGood(regs));
        return;
      }
      // A CPU that is not in hlt was only not scheduled by a loaded host: its clock has not
      // stopped, it has not run yet.
      if (s.virtualNs !== this.#lastVirtualNs || !regs?.halted) this.#frozenSince = hostNow;
      else if (hostNow - this.#frozenSince >= FROZEN_MS) this.#jumpIdle();
    } else {
      this.#frozenSince = hostNow;
    }
    this.#lastIcount = s.icount;
    this.#lastVirtualNs = s.virtualNs;
    this.#runTimeline();
    this.#checkKill();
    if (this.#cause || this.#ended) return;
    const due = this.#deadlines.filter((d) => d.at !== null && d.at <= this.#guestNs);
    if (due.length) {
      this.#deadlines = this.#deadlines.filter((d) => !due.includes(d));
      for (const d of due) {
        this.console.deadline(d.id);
        this.screen.deadline(d.id);
      }
    }
    if (this.#guestNs >= this.#limitAt()) {
      const regs = parseQemuRegisters(await this.#qmp!.hmp("info registers").catch(() => ""));
      const limit = `the run's guest-time limit of ${this.#runLimitNs / 1e9} s`;
      this.#finish(
        regs?.halted && !regs.interruptFlag ? haltedForGood(regs) : regs?.halted
          ? {
            kind: "halted",
            message: `the guest halted (hlt with IF=${regs.interruptFlag ? 1 : 0}) and nothing ` +
              `woke it before ${limit}`,
            regs,
          }
          : { kind: "timeout", message: `the guest ran past ${limit}`, regs },
      );
    }
  }

  /** Guest time at which the run's limit is reached. */
  #limitAt(): number {
    return this.#runLimitNs + this.#unblockedIdleNs;
  }

  /** A halted CPU with no timer armed: guest time jumps to the next deadline, as in ring3. */
  #jumpIdle(): void {
    const ats = [...this.#deadlines, ...this.#timeline].flatMap((d) => d.at === null ? [] : [d.at]);
    ats.push(...this.#killAt);
    if (this.#waiting) ats.push(this.#limitAt());
    if (!ats.length) return;
    const next = Math.min(...ats);
    if (next <= this.#guestNs) return;
    this.#idleJumpNs += next - this.#guestNs;
    this.#guestNs = next;
  }

  // --- the end ---------------------------------------------------------------------------------

  #onEvent(e: QmpEvent): void {
    if (e.event !== "SHUTDOWN" || e.data?.guest !== true || this.#cause) return;
    const reason = String(e.data?.reason ?? "");
    // -no-shutdown keeps QEMU paused after the shutdown, so the registers can still be read.
    this.#qmp!.hmp("info registers").catch(() => "").then((text) => {
      const regs = parseQemuRegisters(text);
      if (reason === "guest-reset") {
        this.#finish({ kind: "guest-reset", message: "", regs });
      } else if (reason === "guest-panic") {
        this.#finish({ kind: "guest-died", message: "the guest reported a panic (pvpanic)", regs });
      } else {
        this.#finish({
          kind: "halted",
          message: `the guest shut the machine down (QEMU SHUTDOWN, reason ${reason})`,
          regs,
        });
      }
    });
  }

  #finish(cause: EndCause): void {
    if (this.#ended || this.#cause) return;
    this.#cause = cause;
    this.#kick();
    if (!this.#qmp) {
      this.#kill();
      return;
    }
    this.#qmp.execute("quit").catch(() => {});
    this.#quitTimer = setTimeout(() => this.#kill(), QUIT_GRACE_MS);
  }

  #kill(): void {
    try {
      this.#child.kill("SIGKILL");
    } catch { /* already gone */ }
  }

  #classify(status: Deno.CommandStatus, log: string): RunResult {
    const stats = emptyStats({
      guestNs: this.#guestNs,
      hostMs: performance.now() - this.#t0,
      events: [...this.#eventLog],
    });
    const qemuError = /^qemu(-system-\w+)?: .*$/m.exec(this.#stderr)?.[0];
    // isa-debug-exit: QEMU exits with ((v << 1) | 1) & 0xff, always odd. Status 1 is also how
    // QEMU fails; its message on stderr tells the two apart.
    if (status.signal === null && status.code % 2 === 1 && !(status.code === 1 && qemuError)) {
      return { outcome: "exit", exitCode: status.code, stats };
    }
    const fail = (kind: FailureKind, message: string, regs?: QemuRegisters | null): RunResult => {
      const lines = this.console.transcript.split("\n");
      if (lines.length && lines[lines.length - 1] === "") lines.pop();
      const failure: FailureReport = {
        kind,
        message,
        lastConsoleLines: lines.slice(-REPORT_LINES),
        guestNs: this.#guestNs,
      };
      if (regs) {
        failure.rip = regs.rip;
        failure.mode = regs.mode;
      }
      return { outcome: "failure", failure, stats };
    };
    if (this.#killedByPlan !== null && !this.#cause) {
      return fail(
        "guest-died",
        `the QEMU process was killed by the fault plan (${this.#killedByPlan})`,
      );
    }
    const c = this.#cause;
    if (c?.kind === "guest-reset" || (!c && status.code === 0 && status.signal === null)) {
      // -no-reboot turns a reset into a shutdown; QEMU logs "Triple fault" (-d cpu_reset) when
      // the reset is one. Without a SHUTDOWN event (QMP gone) a clean exit is taken as one too.
      return /^Triple fault$/m.test(log) || !c
        ? fail(
          "triple-fault",
          "triple fault: an exception could not be delivered (QEMU shut down on the reset, " +
            "-no-reboot)",
          c?.regs,
        )
        : fail(
          "reset",
          "the guest reset the machine (QEMU SHUTDOWN, reason guest-reset; -no-reboot)",
          c.regs,
        );
    }
    if (c) return fail(c.kind as FailureKind, c.message, c.regs);
    if (!this.#running) {
      return fail("image-error", qemuError ?? `QEMU could not boot the image: ${this.#stderr}`);
    }
    return fail(
      "host-error",
      `QEMU ended unexpectedly (${
        status.signal ? `signal ${status.signal}` : `status ${status.code}`
      })${qemuError ? `: ${qemuError}` : ""}`,
    );
  }
}
