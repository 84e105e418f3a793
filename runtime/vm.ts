/**
 * The scenario's handle on a running machine. The machine itself runs in a Worker
 * (machine_worker.ts); this side keeps the console transcript, turns guest-time deadlines
 * into expectations that fail, and makes sure nothing outlives the run.
 *
 * @module
 */
import { type Duration, durationNs, memoryBytes } from "./duration.ts";
import type {
  AppliedEvent,
  FromMachine,
  KernelProtection,
  MachineConfig,
  MachineEvent,
  SerialBackendSpec,
  ToMachine,
} from "./machine_protocol.ts";
import { consoleLimits } from "./console_watch.ts";
import { Keyboard, TextScreen } from "./vm_devices.ts";
import { Mailbox } from "./mailbox.ts";
import type { FaultPlan } from "./fault_plan.ts";
import { prepareKernel } from "./kernel_image.ts";
import { type DiskOption, resolveDisks } from "./disk/disk_options.ts";
import { type DiskIoLink, startDiskIo } from "./disk/disk_io_protocol.ts";
import { emptyStats, type FailureReport, formatFailure, type RunResult } from "./run_result.ts";
import type { Network, NetworkAttachment, NicOptions } from "./net/network.ts";

/** Options of {@link Vm.start}. */
export interface BootOptions {
  /** Path of a Multiboot kernel image (ELF32 or a.out kludge). */
  kernel: string;
  /** Guest RAM, e.g. "64M" (default) or a byte count. */
  memory?: string | number;
  /** Kernel command line (QEMU-style: the loader prefixes the kernel path). Default "". */
  cmdline?: string;
  /** Guest-time limit of the whole run (default "60s"). */
  timeout?: Duration;
  /** CPU to pin the machine's tracer and guest process to. Default: the last CPU allowed. */
  cpu?: number;
  /**
   * Rewrite sensitive instructions before boot (default true, which is `"fast"`): pushf/popf,
   * segment reads, cpuid, rdtsc and the like trap into the emulator instead of silently
   * misbehaving at ring 3. `"fast"` also sends cli, sti, pushf and popf into trampolines that
   * keep the virtual IF in a page shared with the runtime, so they run without a trap unless
   * an interrupt is pending; `"trap"` traps at every site. An image with its own `.ring3.json`
   * sidecar is booted as it is. false boots the bytes unmodified.
   */
  rewrite?: boolean | "trap" | "fast";
  /**
   * Pace idle guest time to host time when nothing waits on guest time (default false: an
   * idle guest's time jumps to its next timer at once). For a person at an interactive console.
   */
  paceIdle?: boolean;
  /** Faults to inject, reproducible from {@link seed} (see runtime/fault_plan.ts). */
  faults?: FaultPlan;
  /**
   * How supervisor pages are kept from guest user mode: "process" (default, a second host
   * process for user mode) or "unmap" (one process; supervisor pages unmapped on each switch
   * to user mode). Measured side by side by `deno task bench`.
   */
  kernelProtection?: KernelProtection;
  /** Seed of the fault plan's random choices (default 1). */
  seed?: number;
  /**
   * Network cards: an NE2000 on PCI (QEMU's ne2k_pci, 10ec:8029) for each entry, on the
   * {@link Network} it names. Default none.
   */
  nics?: NicOptions[];
  /**
   * ATA disks backed by host files: a path, or `{ path, writeThrough, index }`. By default the
   * guest writes to a copy-on-write overlay that is dropped at the end of the run (the file
   * never changes); `writeThrough: true` writes to the file. `index` is the ATA position as
   * QEMU's `-drive index=` numbers it (0 primary master, 1 primary slave, 2 secondary master,
   * 3 secondary slave); by default the next free one.
   */
  disks?: DiskOption[];
  /**
   * Console output that ends the run at once with a "panic" failure (strings or RegExps, matched
   * per line). Default {@link DEFAULT_FAIL_ON}: Linux's "Kernel panic - not syncing" and lines
   * starting with "panic: ". `false` checks none. Triple faults and exception storms always end
   * the run (see `exceptionStormLimit`).
   */
  failOn?: (string | RegExp)[] | false;
  /**
   * The console-flood limit: more than `bytes` of output within `window` of guest time ends
   * the run with a "console-flood" failure. Default {@link DEFAULT_CONSOLE_FLOOD} (128 KiB per
   * "8s"); `false` for none.
   */
  consoleFlood?: { bytes: number; window: Duration } | false;
  /**
   * How many identical exceptions in a row (same vector, same instruction, nothing else in
   * between) end the run as an "exception-storm" (default 1000). A triple fault always ends it.
   * ring3 only: QEMU has no such check, so a storm there runs to the guest-time limit.
   */
  exceptionStormLimit?: number;
  /**
   * Backends of COM2..COM4: `"console"` (the scenario, through {@link Vm.serial}), `{ pty: true }`
   * (a host pty; its path is in {@link Vm.ptys} and the logs), `{ file: PATH }` (output only),
   * `{ pipe: PATH }` (FIFOs PATH.in and PATH.out, as QEMU's `-serial pipe:`). Lines not named are
   * present but unconnected. COM1 is always the console.
   */
  serial?: Partial<Record<"com2" | "com3" | "com4", SerialBackendSpec>>;
}

/** The run ended without the guest exiting by itself. */
export class GuestFailureError extends Error {
  override name = "GuestFailureError";
  /** @param report what happened */
  constructor(readonly report: FailureReport) {
    super(formatFailure(report));
  }
}

/** An expectation was not met within its guest-time limit. */
export class ExpectTimeoutError extends Error {
  override name = "ExpectTimeoutError";
  /**
   * @param pattern what was expected
   * @param timeout the guest-time limit
   * @param tail what the guest printed last
   */
  constructor(readonly pattern: string | RegExp, timeout: Duration, tail: string) {
    super(
      `no match for ${String(pattern)} within ${
        typeof timeout === "number" ? `${timeout}ms` : timeout
      } of guest time; the console ends with:\n${tail}`,
    );
  }
}

/** Options of {@link SerialConsole.type}. */
export interface TypeOptions {
  /** Guest time between two characters (default "10ms", about a fast typist). */
  interval?: Duration;
}

/** Puts an event on a machine's timeline `afterNs` of guest time from now; resolves when applied. */
export type ScheduleEvent = (event: MachineEvent, afterNs: number) => Promise<AppliedEvent>;

/** Options of {@link SerialConsole.expect}. */
export interface ExpectOptions {
  /** Guest-time limit (default "10s"). */
  timeout?: Duration;
}

interface Waiter {
  pattern: string | RegExp;
  timeout: Duration;
  deadlineId: number;
  resolve: (m: RegExpExecArray) => void;
  reject: (e: Error) => void;
}

/** A serial line of a machine as a scenario sees it: a transcript to match, a line to type on. */
export class SerialConsole {
  #text = "";
  #cursor = 0;
  #waiters: Waiter[] = [];
  readonly #nextDeadlineId: () => number;
  #ended: Error | null = null;
  #listeners: ((text: string, guestNs: number) => void)[] = [];

  /**
   * @internal
   * @param send_ where requests to the machine go
   * @param schedule_ puts events on the machine's timeline (for paced typing); null for a line
   *   that cannot be typed on that way (COM2..COM4)
   * @param nextDeadlineId allocates deadline ids unique across one machine's waiters
   */
  constructor(
    private readonly send_: (m: ToMachine) => void,
    private readonly schedule_: ScheduleEvent | null,
    nextDeadlineId?: () => number,
  ) {
    let n = 1;
    this.#nextDeadlineId = nextDeadlineId ?? (() => n++);
  }

  /**
   * Calls `listener` with each chunk of output as it arrives, with the guest time it was flushed
   * at (output is batched for a few milliseconds of host time).
   *
   * @param listener receives text and guest nanoseconds
   */
  onOutput(listener: (text: string, guestNs: number) => void): void {
    this.#listeners.push(listener);
  }

  /** Everything the guest printed so far. */
  get transcript(): string {
    return this.#text;
  }

  /**
   * Waits until the guest's output, after the previous match, matches `pattern`.
   *
   * @param pattern a string to find, or a regular expression
   * @param options guest-time limit
   * @returns the match; the next expect searches after it
   * @throws {ExpectTimeoutError} when guest time runs out first
   * @throws {GuestFailureError} when the run ends first
   */
  expect(pattern: string | RegExp, options: ExpectOptions = {}): Promise<RegExpExecArray> {
    const timeout = options.timeout ?? "10s";
    const found = this.#match(pattern);
    if (found) return Promise.resolve(found);
    if (this.#ended) return Promise.reject(this.#ended);
    return new Promise((resolve, reject) => {
      const deadlineId = this.#nextDeadlineId();
      this.#waiters.push({ pattern, timeout, deadlineId, resolve, reject });
      this.send_({ type: "deadline", id: deadlineId, afterNs: durationNs(timeout) });
    });
  }

  /**
   * Sends text to the guest's receive line.
   *
   * @param text characters to type (UTF-8)
   */
  send(text: string | Uint8Array): void {
    const bytes = typeof text === "string" ? new TextEncoder().encode(text) : text;
    this.send_({ type: "input", bytes });
  }

  /**
   * Types text one character at a time, paced in guest time, as a person or a terminal at a
   * low baud rate would: for guests that poll a one-byte receive register, or that must see
   * keystrokes arrive while they run. Each character is a "serial" event on the timeline.
   *
   * @param text characters to type
   * @param options the guest time between characters (default "10ms")
   * @returns resolves once the last character is in the UART
   */
  async type(text: string, options: TypeOptions = {}): Promise<void> {
    const schedule = this.schedule_;
    if (schedule === null) {
      throw new RangeError("type() paces input on COM1 only; use send() on this line");
    }
    const step = durationNs(options.interval ?? "10ms");
    const chars = [...text];
    const all = chars.map((ch, i) => schedule({ kind: "serial", text: ch }, i * step));
    const last = await all[all.length - 1];
    if (last && last.outcome !== "applied") {
      throw new Error(`typing stopped: ${last.detail}`);
    }
  }

  #match(pattern: string | RegExp): RegExpExecArray | null {
    const rest = this.#text.slice(this.#cursor);
    let m: RegExpExecArray | null;
    if (typeof pattern === "string") {
      const i = rest.indexOf(pattern);
      if (i < 0) return null;
      m = Object.assign([pattern], { index: i, input: rest }) as unknown as RegExpExecArray;
    } else {
      m = new RegExp(pattern.source, pattern.flags.replace("g", "").replace("y", "")).exec(rest);
      if (!m) return null;
    }
    this.#cursor += m.index + m[0].length;
    return m;
  }

  /** @internal Output arrived. */
  output(text: string, guestNs: number): void {
    this.#text += text;
    for (const l of this.#listeners) l(text, guestNs);
    this.#waiters = this.#waiters.filter((w) => {
      const m = this.#match(w.pattern);
      if (!m) return true;
      this.send_({ type: "cancel-deadline", id: w.deadlineId });
      w.resolve(m);
      return false;
    });
  }

  /** @internal A deadline passed. */
  deadline(id: number): void {
    this.#waiters = this.#waiters.filter((w) => {
      if (w.deadlineId !== id) return true;
      w.reject(new ExpectTimeoutError(w.pattern, w.timeout, this.#text.slice(-400)));
      return false;
    });
  }

  /** @internal The run ended. */
  end(error: Error): void {
    this.#ended = error;
    for (const w of this.#waiters) w.reject(error);
    this.#waiters = [];
  }
}

/** A machine running in ring3, as a scenario drives it. */
export class Vm {
  /** COM1, the console. */
  readonly console: SerialConsole;
  /** Diagnostics from the machine (unhandled ports, loader notes). */
  readonly logs: string[] = [];
  /** The backend: ring3 itself. */
  readonly backend = "ring3" as const;
  /** The PS/2 keyboard. */
  readonly keyboard: Keyboard;
  /** The CGA/VGA text screen. */
  readonly screen: TextScreen;
  /** Slave paths of pty-backed serial lines, by line number (2..4). */
  ptys: Record<number, string> = {};
  readonly #lines = new Map<number, SerialConsole>();
  #deadlineIds = 1;
  readonly #worker: Worker;
  readonly #mailbox = Mailbox.create<ToMachine>();
  readonly #result: Promise<RunResult>;
  /** The disks' I/O Worker: started here, where an event loop runs, and ended with the run. */
  readonly #diskIo: DiskIoLink | null;
  #pid = 0;
  #ended = false;
  readonly #eventWaiters = new Map<
    number,
    { kind: string; resolve: (applied: AppliedEvent) => void }
  >();
  #nextEvent = 1;

  /** The networks this machine's cards joined, and the cards' ports on them. */
  #links: { network: Network; port: number }[] = [];

  private constructor(config: MachineConfig, links: { network: Network; port: number }[] = []) {
    this.#links = links;
    this.#worker = new Worker(new URL("./machine_worker.ts", import.meta.url), {
      type: "module",
      name: `ring3 ${config.kernelPath}`,
    });
    const nextId = () => this.#deadlineIds++;
    this.console = new SerialConsole(
      (m) => this.#post(m),
      (event, afterNs) => this.#schedule(event, afterNs, true),
      nextId,
    );
    this.#diskIo = config.disks?.length ? startDiskIo() : null;
    this.keyboard = new Keyboard((event) => this.inject(event));
    this.screen = new TextScreen((m) => this.#post(m), nextId);
    for (const n of [2, 3, 4]) {
      if (config.serial?.[n as 2 | 3 | 4] !== "console") continue;
      this.#lines.set(
        n,
        new SerialConsole(
          (m) =>
            this.#post(
              m.type === "input" ? { type: "serial-input", line: n, bytes: m.bytes } : m,
            ),
          null,
          nextId,
        ),
      );
    }
    const decoders = new Map<number, TextDecoder>();
    const decoder = new TextDecoder();
    let started: () => void;
    const startedP = new Promise<void>((r) => started = r);
    this.#result = new Promise<RunResult>((resolve) => {
      this.#worker.onmessage = (e: MessageEvent<FromMachine>) => {
        const m = e.data;
        switch (m.type) {
          case "started":
            this.#pid = m.pid;
            this.ptys = m.ptys;
            started();
            break;
          case "console":
            this.console.output(decoder.decode(m.bytes, { stream: true }), m.guestNs);
            break;
          case "serial": {
            const d = decoders.get(m.line) ?? new TextDecoder();
            decoders.set(m.line, d);
            this.#lines.get(m.line)?.output(d.decode(m.bytes, { stream: true }), m.guestNs);
            break;
          }
          case "screen":
            this.screen.update(m.screen);
            break;
          case "deadline":
            this.console.deadline(m.id);
            this.screen.deadline(m.id);
            for (const l of this.#lines.values()) l.deadline(m.id);
            break;
          case "event":
            this.#eventWaiters.get(m.id)?.resolve(m.applied);
            this.#eventWaiters.delete(m.id);
            break;
          case "log":
            this.logs.push(m.message);
            break;
          case "frame": {
            const link = this.#links[m.nic];
            link?.network.send(link.port, m.bytes, m.guestNs);
            break;
          }
          case "ended":
            this.#ended = true;
            this.#leaveNetworks();
            for (const [, w] of this.#eventWaiters) {
              w.resolve({
                guestNs: m.result.stats.guestNs,
                kind: w.kind,
                detail: "the run ended before the event's time",
                outcome: "rejected",
              });
            }
            this.#eventWaiters.clear();
            started();
            this.#worker.terminate();
            this.#diskIo?.worker.terminate();
            {
              const end = m.result.outcome === "failure"
                ? new GuestFailureError(m.result.failure)
                : new Error(`the guest exited with status ${m.result.exitCode}`);
              this.console.end(end);
              this.screen.end(end);
              for (const l of this.#lines.values()) l.end(end);
            }
            resolve(m.result);
            break;
        }
      };
      this.#worker.onerror = (e) => {
        e.preventDefault();
        this.#ended = true;
        this.#leaveNetworks();
        this.#worker.terminate();
        this.#diskIo?.worker.terminate();
        const failure: FailureReport = {
          kind: "host-error",
          message: `machine worker crashed: ${e.message}`,
          lastConsoleLines: this.console.transcript.split("\n").slice(-10),
          guestNs: 0,
        };
        this.console.end(new GuestFailureError(failure));
        this.screen.end(new GuestFailureError(failure));
        for (const l of this.#lines.values()) l.end(new GuestFailureError(failure));
        started();
        resolve({
          outcome: "failure",
          failure,
          stats: emptyStats(),
        });
      };
    });
    const diskPort = this.#diskIo?.port;
    this.#worker.postMessage(
      { type: "boot", config: { ...config, diskPort }, mailbox: this.#mailbox.buffer },
      diskPort ? [diskPort] : [],
    );
    this.started = startedP;
  }

  /** Resolves once the guest process exists (or the boot failed). */
  readonly started: Promise<void>;

  /**
   * Boots a machine.
   *
   * @param options kernel, memory, command line, limits
   * @returns the running machine
   * @throws {GuestFailureError} when the machine cannot be built; `report.kind` is "image-error"
   *   for an image that is not a bootable Multiboot kernel, with the problem named
   */
  static async start(options: BootOptions): Promise<Vm> {
    let kernel: Uint8Array<ArrayBuffer>;
    try {
      kernel = await Deno.readFile(options.kernel) as Uint8Array<ArrayBuffer>;
    } catch (e) {
      throw new Error(
        `cannot read kernel image ${options.kernel}: ${(e as Error).message}` +
          (options.kernel.startsWith("fixtures/")
            ? " (build fixtures with `deno task fixtures`)"
            : ""),
        { cause: e },
      );
    }
    const prepared = await prepareKernel(options.kernel, kernel, { rewrite: options.rewrite });
    // Cards join their networks before the Worker exists: the clock slots go in the config.
    let self: Vm | null = null;
    const pending: { nic: number; bytes: Uint8Array; atNs: number }[] = [];
    const attachments: NetworkAttachment[] = (options.nics ?? []).map((n, nic) =>
      n.network.join({
        deliver: (bytes, atNs) => {
          if (self) self.#post({ type: "frame", nic, bytes, atNs });
          else pending.push({ nic, bytes, atNs });
        },
      }, n.mac)
    );
    const links = attachments.map((a, i) => ({ network: options.nics![i].network, port: a.port }));
    const vm = new Vm({
      nics: attachments.map((a) => ({ mac: a.mac, sync: a.sync })),
      kernel: prepared.bytes,
      patches: prepared.patches,
      ...(prepared.stub === undefined ? {} : { stub: prepared.stub }),
      paceIdle: options.paceIdle ?? false,
      kernelProtection: options.kernelProtection,
      faults: options.faults,
      seed: options.seed,
      console: consoleLimits(options.failOn, options.consoleFlood),
      exceptionStormLimit: options.exceptionStormLimit,
      kernelPath: options.kernel,
      memoryBytes: memoryBytes(options.memory ?? "64M"),
      cmdline: options.cmdline ?? "",
      timeoutNs: durationNs(options.timeout ?? "60s"),
      cpu: options.cpu,
      reportLines: 10,
      disks: await resolveDisks(options.disks ?? []),
      serial: serialConfig(options.serial),
    }, links);
    self = vm;
    for (const f of pending) vm.#post({ type: "frame", ...f });
    await vm.started;
    if (vm.pid === 0) {
      // The machine could not be built (bad image, host refused a resource): say why now.
      const r = await vm.result();
      if (r.outcome === "failure") throw new GuestFailureError(r.failure);
    }
    return vm;
  }

  /**
   * A serial line as a scenario sees it: 1 is {@link Vm.console}; 2..4 need
   * `serial: { comN: "console" }` at boot.
   *
   * @param line 1..4
   * @returns its console
   * @throws {RangeError} for a line not backed by the scenario
   */
  serial(line: number): SerialConsole {
    if (line === 1) return this.console;
    const l = this.#lines.get(line);
    if (!l) {
      throw new RangeError(
        `COM${line} is not connected to the scenario: boot with serial: { com${line}: "console" }`,
      );
    }
    return l;
  }

  /** The guest host process's pid (0 if it never started). */
  get pid(): number {
    return this.#pid;
  }

  #leaveNetworks(): void {
    for (const l of this.#links) l.network.leave(l.port);
  }

  #post(m: ToMachine): void {
    if (!this.#ended) this.#mailbox.post(m);
  }

  /**
   * How the run ended, without telling the machine the caller is waiting: an idle guest then
   * waits in host time for input (an interactive console) instead of letting guest time run to
   * the limit.
   */
  get finished(): Promise<RunResult> {
    return this.#result;
  }

  /** How the run ended; resolves when it does. The guest's idle time may run ahead meanwhile. */
  result(): Promise<RunResult> {
    this.#post({ type: "waiting" });
    return this.#result;
  }

  /**
   * Waits for the guest to exit through the debug-exit port.
   *
   * @returns the exit status, (v << 1) | 1 for a write of v, as QEMU's isa-debug-exit gives
   * @throws {GuestFailureError} when the run ended any other way
   */
  async exit(): Promise<number> {
    this.#post({ type: "waiting" });
    const r = await this.#result;
    if (r.outcome === "exit") return r.exitCode;
    throw new GuestFailureError(r.failure);
  }

  /**
   * Puts an event on the machine's timeline at a guest time since boot; it is applied when the
   * guest clock gets there (at once if it already has). See {@link MachineEvent} for the kinds.
   *
   * @example
   * ```ts ignore
   * vm.at("1s", { kind: "serial", text: "run hello\r" });
   * await vm.at("1500ms", { kind: "spurious", irq: 7 }); // resolves when applied
   * ```
   * @param time guest time since boot
   * @param event what happens
   * @returns resolves when the machine applies it: `outcome` "applied", or "rejected" (unknown
   *   kind, bad parameters, or the run ended first); on QEMU "skipped" when QEMU cannot do it
   */
  at(time: Duration, event: MachineEvent): Promise<AppliedEvent> {
    return this.#schedule(event, durationNs(time), false);
  }

  /**
   * Applies an event as soon as the machine sees it.
   *
   * @param event what happens
   * @returns the event as applied (see {@link at})
   */
  inject(event: MachineEvent): Promise<AppliedEvent> {
    return this.#schedule(event, null, false);
  }

  #schedule(event: MachineEvent, atNs: number | null, relative: boolean): Promise<AppliedEvent> {
    if (this.#ended) {
      return Promise.resolve({
        guestNs: 0,
        kind: event.kind,
        detail: "the run has ended",
        outcome: "rejected",
      });
    }
    const id = this.#nextEvent++;
    const p = new Promise<AppliedEvent>((resolve) =>
      this.#eventWaiters.set(id, { kind: event.kind, resolve })
    );
    this.#post({ type: "event", id, atNs, relative, event });
    return p;
  }

  /**
   * Ends the run now (the guest process is killed) and waits for the end.
   *
   * @param reason recorded in the report
   * @returns how the run ended
   */
  async stop(reason = "stopped by the scenario"): Promise<RunResult> {
    this.#post({ type: "stop", reason });
    // A guest that never traps still returns to the tracer on its clock tick (a few ms of its
    // CPU time); the host-time guard covers a tracer that is wedged anyway.
    const guard = setTimeout(() => {
      if (!this.#ended && this.#pid > 0) {
        try {
          Deno.kill(this.#pid, "SIGKILL");
        } catch { /* already gone */ }
      }
    }, 5000);
    try {
      return await this.#result;
    } finally {
      clearTimeout(guard);
    }
  }
}

function serialConfig(o: BootOptions["serial"]): MachineConfig["serial"] {
  if (o === undefined) return undefined;
  const r: NonNullable<MachineConfig["serial"]> = {};
  for (const [name, spec] of Object.entries(o)) {
    const m = /^com([234])$/.exec(name);
    if (!m) {
      throw new RangeError(`serial lines are com2..com4 (COM1 is the console), not "${name}"`);
    }
    if (spec !== undefined) r[Number(m[1]) as 2 | 3 | 4] = spec;
  }
  return r;
}
