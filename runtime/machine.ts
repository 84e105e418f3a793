/**
 * A machine: guest RAM (a memfd shared with the guest process), one vCPU whose code runs
 * natively in a traced host process, the partial emulator, devices, and the virtual clock.
 * It lives on the thread that traces its guest process (a Worker, see machine_worker.ts).
 *
 * @module
 */
import { type LibcSymbols, openLibc } from "./host/libc.ts";
import { createSharedMemory, type SharedMemory } from "./host/memfd.ts";
import { HostError } from "./host/host_error.ts";
import { HOST_SELECTOR, MMAP, REG, SI_CODE, SIG, SYSCALL } from "./host/layouts.ts";
import { GuestProcessGoneError, PtraceProcess, StopKind } from "./tracer/ptrace_process.ts";
import { STUB } from "./tracer/stub_image.ts";
import { unmapHostExtras } from "./tracer/host_extras.ts";
import { PhysicalMemory } from "./memory/physical_memory.ts";
import { PagedMemory } from "./memory/paged_memory.ts";
import { type HostMapper, ShadowSpace } from "./memory/shadow_space.ts";
import { PF_ERROR } from "./memory/page_walk.ts";
import type { TranslationControls } from "./memory/translate.ts";
import { firstMappedSlotAbove } from "./memory/page_walk_long.ts";
import { RING3_CPU } from "./cpu/cpu_model.ts";
import { CR0, MSR } from "./cpu/x86.ts";
import { Emulator, Exit } from "./cpu/emulator.ts";
import { VcpuState } from "./cpu/vcpu_state.ts";
import { IoBus } from "./devices/io_bus.ts";
import { IrqLine } from "./devices/irq_line.ts";
import type { Uart16550 } from "./devices/uart16550.ts";
import { buildPcBoard } from "./pc_board.ts";
import { FaultInjector } from "./fault_plan.ts";
import type { MmioBus } from "./devices/mmio_bus.ts";
import { loadMultiboot } from "./boot/multiboot.ts";
import { writeFirmware } from "./firmware/firmware.ts";
import type { I8042 } from "./devices/i8042.ts";
import type { VgaCrtc } from "./devices/vga_crtc.ts";
import { chordScancodes, textKeystrokes } from "./devices/keymap.ts";
import { readScreen, sameScreen, type ScreenSnapshot } from "./screen/text_screen.ts";
import { openSerialBackend, type SerialBackend } from "./serial_backends.ts";
import { ImageFormatError } from "./boot/image_error.ts";
import { VirtualClock } from "./virtual_clock.ts";
import { MachineNetwork } from "./machine_network.ts";
import { ConsoleTail } from "./console_tail.ts";
import { MachineDisks } from "./disk/machine_disks.ts";
import { ConsoleWatch } from "./console_watch.ts";
import { EventRegistry } from "./event_kinds.ts";
import { type Duration, durationNs } from "./duration.ts";
import type { AppliedEvent, MachineConfig, MachineEvent, ToMachine } from "./machine_protocol.ts";
import type { Mailbox } from "./mailbox.ts";
import { GUEST_STUB_FD, StubArea } from "./stub_area.ts";
import type { FailureKind, FailureReport, RunResult, RunStats } from "./run_result.ts";

/** The guest descriptor number of the RAM memfd inside the guest process. */
const GUEST_RAM_FD = 3;
/** Interval of the guest process's CPU-time timer: the clock's tick and the preemption point. */
const CLOCK_TICK_US = 4000;
/** Host time the machine runs between looks at its mailbox (input, deadlines, stop). */
const IDLE_WAIT_MS = 20;
/** Guest time between keystrokes typed by a scenario (a fast typist: 100 keys a second). */
const KEY_INTERVAL_NS = 10_000_000;
/** Stops between looks at device timers, besides every clock tick and every idle round. */
const TIMER_CHECK_STOPS = 32;
/** siginfo si_code of a single-step SIGTRAP. */
const TRAP_TRACE = 2;
const CR4_PSE = 1 << 4;
const CR4_PAE = 1 << 5;
const EFER_NXE = 1n << 11n;
/**
 * The first linear address a guest cannot have: the tracer stub lives there, and above it the
 * stub's stack, the vDSO and the host kernel's half.
 */
const GUEST_LINEAR_LIMIT = Number(STUB.BASE);

/** The paging controls of the vCPU, as the page walkers take them. */
function pagingControlsOf(s: VcpuState): TranslationControls & { enabled: boolean } {
  return {
    enabled: (s.cr0 & CR0.PG) !== 0,
    mode: s.longMode ? "4-level" : (s.cr4 & CR4_PAE) ? "pae" : "32-bit",
    cr3: s.cr3,
    writeProtect: (s.cr0 & CR0.WP) !== 0,
    pse: (s.cr4 & CR4_PSE) !== 0,
    nxe: (s.efer & EFER_NXE) !== 0n,
    physBits: RING3_CPU.physBits,
  };
}

/** What the CPU's INTR pin is wired to: acknowledging returns the vector (the INTA cycle). */
export interface InterruptController {
  acknowledge(): number;
  /** The pending interrupt is lost before the CPU takes it; returns its vector, if any. */
  discard(): number | null;
}
const SLICE_MS = 5;
/** Host time an idle networked machine waits for a peer's clock before looking again. */
const NET_WAIT_MS = 2;

/** Callbacks from a running machine to whoever drives it. */
export interface MachineHooks {
  /** Bytes the guest wrote to its console (COM1). */
  console(bytes: Uint8Array, guestNs: number): void;
  /** Output of COM2..COM4 lines backed by the scenario. */
  serial?(line: number, bytes: Uint8Array, guestNs: number): void;
  /** The text screen changed. */
  screen?(screen: ScreenSnapshot, guestNs: number): void;
  /** A deadline requested through the mailbox passed. */
  deadline(id: number, guestNs: number): void;
  /** Timeline event `id` was applied, skipped or rejected. */
  event(id: number, applied: AppliedEvent): void;
  /** Diagnostics (unhandled ports, loader notes). */
  log(message: string): void;
  /** A frame network card `nic` sent. */
  frame?(nic: number, bytes: Uint8Array, guestNs: number): void;
}

/** One machine, built and traced by the calling thread. */
export class Machine {
  readonly state = new VcpuState();
  readonly clock: VirtualClock;
  readonly #libc: LibcSymbols;
  readonly #ram: SharedMemory;
  /** The host process that runs guest kernel mode (and everything while paging is off). */
  readonly #kernelProc: PtraceProcess;
  /** With paging on, guest user mode runs here, where only U/S=1 pages are ever mapped. */
  #userProc: PtraceProcess | null = null;
  /** The process running the vCPU now. */
  #proc: PtraceProcess;
  readonly #physical: PhysicalMemory;
  #mmio!: MmioBus;
  readonly #kernelSpace: ShadowSpace;
  #userSpace: ShadowSpace | null = null;
  /** The paging state the host mappings currently mirror. */
  #pagingMirrored = false;
  #pendingFlush: number | null | undefined = undefined;
  #pageFaultsMapped = 0;
  #contextSwitches = 0;
  readonly #interruptsByVector = new Map<number, number>();
  /** Kernel-memory protection by unmapping on switches instead of a user-mode process. */
  readonly #unmapProtection: boolean;
  readonly #emu: Emulator;
  readonly #uart: Uart16550;
  readonly #keyboard: I8042;
  readonly #crtc: VgaCrtc;
  #screen: ScreenSnapshot | null = null;
  #resetReason: string | null = null;
  /** COM2..COM4 (index = line number): UART, host backend, pending input and output. */
  readonly #lines = new Map<
    number,
    { uart: Uart16550; backend: SerialBackend | null; input: number[]; output: number[] }
  >();
  readonly #tail = new ConsoleTail();
  readonly #pendingInput: number[] = [];
  #consoleOut: number[] = [];
  readonly #consoleWatch: ConsoleWatch;
  readonly #consoleText = new TextDecoder();
  #result: RunResult | null = null;
  #exitCode: number | null = null;
  #stopReason: string | null = null;
  #clockTicks = 0;
  readonly #startMs = performance.now();
  readonly #siginfo = () => {
    const s = this.#proc.loadSigInfo();
    return { code: s.code, addr: s.addrLow, addrAbove4G: s.addrHigh !== 0 };
  };
  readonly #runTimeoutId = -1;
  /** The CPU's INTR pin, driven by the interrupt controller. */
  readonly #intr = new IrqLine("cpu-intr");
  #interruptController: InterruptController | null = null;
  #interruptsDelivered = 0;
  /** Resume with a single step next (an interrupt waits for the sti shadow to end). */
  #stepping = false;
  #shadowEip = -1;
  #stopsSinceTimerCheck = 0;
  /** The fast form's vCPU page and trampolines, when the image has them. */
  readonly #stub: StubArea | null;
  /** The scenario waits for the end of the run (vm.exit()). */
  #scenarioWaiting = false;
  /** Scenario deadlines pending: while any is, the scenario is blocked on guest time. */
  readonly #scenarioDeadlines = new Set<number>();
  /** The network cards' link to the switch; null without cards. */
  readonly #net: MachineNetwork | null;

  private constructor(
    readonly config: MachineConfig,
    private readonly mailbox: Mailbox<ToMachine>,
    private readonly hooks: MachineHooks,
    libc: LibcSymbols,
    ram: SharedMemory,
    proc: PtraceProcess,
    lowestMapped: number,
    entry: number,
    bootInfo: number,
    stub: StubArea | null,
  ) {
    this.#libc = libc;
    this.#stub = stub;
    // The virtual IF, IOPL and CPL live in the page the trampolines read and write.
    if (stub !== null) this.state.usePage(stub.page);
    this.#ram = ram;
    this.#kernelProc = proc;
    this.#proc = proc;
    this.#unmapProtection = config.kernelProtection === "unmap";
    this.clock = new VirtualClock(() =>
      proc.cpuTimeNs() + (this.#userProc === null ? 0 : this.#userProc.cpuTimeNs())
    );
    const physical = new PhysicalMemory(ram.bytes);
    this.#physical = physical;
    this.#kernelSpace = new ShadowSpace(
      processMapper(proc, () => this.#faults),
      false,
      GUEST_LINEAR_LIMIT,
      stub === null
        ? undefined
        : { base: stub.config.base, end: stub.config.base + stub.config.size },
    );
    const state = this.state;
    const memory = new PagedMemory(
      physical,
      () => pagingControlsOf(state),
      () => state.cpl === 3,
    );
    this.#consoleWatch = new ConsoleWatch(config.console);
    const bus = new IoBus({ log: (m) => hooks.log(m) });
    const nicConfigs = config.nics ?? [];
    this.#net = nicConfigs.length === 0 ? null : new MachineNetwork(
      nicConfigs,
      this.clock,
      (nic, bytes, ns) => hooks.frame?.(nic, bytes, ns),
    );
    const disks = new MachineDisks(
      config.disks ?? [],
      config.diskPort,
      this.clock,
      (detail) =>
        this.#eventLog.push({
          guestNs: this.clock.now(),
          kind: "disk",
          detail,
          outcome: "applied",
        }),
    );
    this.#disks = disks;
    const board = buildPcBoard({
      nics: this.#net?.boardNics(),
      disk: (i) => disks.backend(i),
      bus,
      clock: this.clock,
      intr: this.#intr,
      ramBytes: ram.size,
      events: this.#events,
      transmit: (byte) => this.#transmit(byte),
      exit: (status) => this.#exitCode = status,
      transmitSerial: (line, byte) => this.#lines.get(line)?.output.push(byte),
      reset: (reason) => this.#resetReason ??= reason,
      log: (m) => hooks.log(m),
    });
    this.#uart = board.com1;
    this.#keyboard = board.keyboard;
    this.#crtc = board.crtc;
    for (const [n, spec] of Object.entries(config.serial ?? {})) {
      const line = Number(n);
      if (spec === undefined) continue;
      const backend = openSerialBackend(line, spec);
      this.#lines.set(line, { uart: board.serial[line - 1], backend, input: [], output: [] });
      if (backend) hooks.log(`COM${line}: ${backend.description}`);
    }
    // The board registered its devices' event kinds (irq, spurious); these are the machine's.
    this.#events.register({
      kind: "serial",
      owner: "machine",
      summary: "text: characters to type on COM1",
      apply: (e) => {
        const text = typeof e.text === "string" ? e.text : "";
        for (const b of new TextEncoder().encode(text)) this.#pendingInput.push(b);
        return JSON.stringify(text);
      },
    });
    this.#events.register({
      kind: "timer",
      owner: "machine",
      summary: 'action: "hold", for: Duration | action: "advance", by: Duration',
      apply: (e) => this.#timerEvent(e),
    });
    if (this.#net !== null) {
      const net = this.#net;
      net.attach(board.nics);
      this.#events.register({
        kind: "nic",
        owner: "ne2000",
        summary: 'nic: card index, action: "drop" | "corrupt" | "inject", direction, count, frame',
        apply: (e) => net.applyEvent(e),
      });
    }
    this.#events.register({
      kind: "disk",
      owner: "ata",
      summary:
        'disk: index, action: "fail-read" | "fail-write" | "delay-read" | "delay-write" | "tear-write" | "clear", sector, count, times',
      apply: (e) => disks.applyEvent(e),
    });
    this.#events.register({
      kind: "keyboard",
      owner: "i8042",
      summary:
        'text: characters to type | chord: e.g. "Control+c", intervalNs: gap between keystrokes',
      apply: (e) => {
        const strokes = typeof e.text === "string"
          ? textKeystrokes(e.text)
          : typeof e.chord === "string"
          ? [chordScancodes(e.chord)]
          : (() => {
            throw new RangeError("a keyboard event needs text or chord");
          })();
        const gap = typeof e.intervalNs === "number" ? e.intervalNs : KEY_INTERVAL_NS;
        const t0 = this.clock.now();
        strokes.forEach((codes, i) => {
          if (i === 0) this.#keyboard.keyboardInput(codes);
          else this.clock.schedule(t0 + i * gap, () => this.#keyboard.keyboardInput(codes));
        });
        return `${strokes.length} keystroke(s) ${JSON.stringify(e.text ?? e.chord)}`;
      },
    });

    this.#interruptController = board.interruptController;
    this.#mmio = board.mmio;
    this.#faults = new FaultInjector(
      config.faults ?? [],
      config.seed ?? 1,
      (detail) =>
        this.#eventLog.push({
          guestNs: this.clock.now(),
          kind: "fault",
          detail,
          outcome: "applied",
        }),
    );
    const faults = this.#faults;
    for (const at of faults.killTimes) {
      this.clock.scheduleEvent(at, () => {
        this.#eventLog.push({
          guestNs: this.clock.now(),
          kind: "fault",
          detail: `kill-guest: SIGKILL at guest time ${(at / 1e6).toFixed(1)} ms`,
          outcome: "applied",
        });
        Deno.kill(this.#proc.pid, "SIGKILL");
      });
    }
    const io = faults.active
      ? {
        read: (port: number, size: 1 | 2 | 4) => faults.portRead(port, size, bus.read(port, size)),
        write: (port: number, value: number, size: 1 | 2 | 4) => bus.write(port, value, size),
      }
      : bus;
    this.#emu = new Emulator(this.state, stub?.withTrampolineFetch(memory) ?? memory, io, {
      lowestMappedAddress: lowestMapped,
      guestTimeNs: () => this.clock.now(),
      exceptionStormLimit: config.exceptionStormLimit,
      patches: new Map(config.patches.map((p) => [p.vaddr, p])),
      paging: true,
      mmio: {
        claims: (p) => this.#mmio.claims(p),
        read: (p, size) => this.#mmio.read(p, size),
        write: (p, v, size) => this.#mmio.write(p, v, size),
      },
      onTranslationChange: (linear) => {
        // Applied after the instruction's emulation, like the context switch below.
        this.#pendingFlush = this.#pendingFlush === undefined ? linear : null;
      },
    });
    this.state.resetForMultiboot();
    // The local APIC at its default base, enabled, on the bootstrap processor.
    this.state.msrs.set(MSR.APIC_BASE, 0xfee00900n);
    const r = proc.regs;
    for (let i = 0; i < 27; i++) r.set32(i, 0);
    r.set32(REG.rip, entry);
    r.set32(REG.cs, HOST_SELECTOR.CS32);
    for (const s of [REG.ss, REG.ds, REG.es]) r.set32(s, HOST_SELECTOR.DS);
    r.set32(REG.eflags, 0x202);
    r.set32(REG.rax, 0x2badb002);
    r.set32(REG.rbx, bootInfo);
    r.set64(REG.orig_rax, -1n);
    this.clock.addDeadline(this.#runTimeoutId, config.timeoutNs);
  }

  /**
   * Builds a machine: loads the kernel into fresh RAM, spawns and seizes the guest process,
   * maps RAM into it and starts its clock. Must run on the thread that will call {@link run}.
   *
   * @param config what to build
   * @param mailbox where requests from the scenario arrive
   * @param hooks where output goes
   * @returns the machine, ready to run
   * @throws {ImageFormatError} for an image that cannot be booted (nothing is spawned then)
   * @throws {HostError} when the host refuses a resource
   */
  static boot(config: MachineConfig, mailbox: Mailbox<ToMachine>, hooks: MachineHooks): Machine {
    const libc = openLibc();
    const ram = createSharedMemory(libc, "ring3-ram", config.memoryBytes);
    let proc: PtraceProcess | undefined;
    let stub: StubArea | null = null;
    try {
      // Before the kernel, so a kernel loaded over the BIOS area wins, as it would on a PC.
      writeFirmware(ram.bytes, RING3_CPU);
      const kernel = loadMultiboot(config.kernel, ram.bytes, {
        cmdline: config.cmdline,
        kernelPath: config.kernelPath,
      });
      for (const n of kernel.notes) hooks.log(`multiboot: ${n}`);
      if (config.stub !== undefined) stub = StubArea.create(libc, config.stub, ram.size);
      const fds: [number, number][] = [[ram.fd, GUEST_RAM_FD]];
      if (stub !== null) fds.push([stub.fd, GUEST_STUB_FD]);
      proc = PtraceProcess.spawn(libc, { fds, cpu: config.cpu });
      const lowest = mapRam(proc, ram.size);
      unmapHostExtras(proc);
      stub?.mapInto(proc);
      startClockTimer(proc);
      return new Machine(
        config,
        mailbox,
        hooks,
        libc,
        ram,
        proc,
        lowest,
        kernel.entry,
        kernel.ebx,
        stub,
      );
    } catch (e) {
      proc?.kill();
      stub?.close();
      ram.close();
      throw e;
    }
  }

  /** Slave paths of pty-backed serial lines, by line number. */
  get ptys(): Record<number, string> {
    const r: Record<number, string> = {};
    for (const [n, l] of this.#lines) if (l.backend?.ptyPath) r[n] = l.backend.ptyPath;
    return r;
  }

  /** The guest process's pid. */
  get pid(): number {
    return this.#proc.pid;
  }

  #handle(m: ToMachine): void {
    switch (m.type) {
      case "input":
        for (const b of m.bytes) this.#pendingInput.push(b);
        return;
      case "serial-input":
        this.#lines.get(m.line)?.input.push(...m.bytes);
        return;
      case "deadline":
        this.clock.addDeadline(m.id, m.afterNs);
        this.#scenarioDeadlines.add(m.id);
        return;
      case "cancel-deadline":
        this.clock.cancel(m.id);
        this.#scenarioDeadlines.delete(m.id);
        return;
      case "waiting":
        this.#scenarioWaiting = true;
        return;
      case "event": {
        const apply = () => this.#applyEvent(m.event, m.id);
        const at = m.atNs === null ? null : m.relative ? this.clock.now() + m.atNs : m.atNs;
        if (at === null || at <= this.clock.now()) apply();
        else this.clock.scheduleEvent(at, apply);
        return;
      }
      case "stop":
        this.#stopReason ??= m.reason;
        return;
      case "frame":
        this.#net?.arrive(m.nic, m.bytes, m.atNs);
        return;
    }
  }

  /** The timeline's event kinds: the board's devices and the machine register theirs. */
  readonly #events = new EventRegistry();
  readonly #faults: FaultInjector;
  readonly #eventLog: AppliedEvent[] = [];
  readonly #disks: MachineDisks;

  #applyEvent(e: MachineEvent, id: number): void {
    const r = this.#events.apply(e);
    if (r.outcome === "rejected") this.hooks.log(`event ${e.kind}: rejected: ${r.detail}`);
    const applied: AppliedEvent = { guestNs: this.clock.now(), kind: e.kind, ...r };
    this.#eventLog.push(applied);
    this.hooks.event(id, applied);
    if (this.#pendingInput.length > 0) this.#pumpInput();
  }

  /** The "timer" event kind: hold device timers back for a while, or jump guest time ahead. */
  #timerEvent(e: MachineEvent): string {
    const action = String(e.action);
    if (action === "hold") {
      const ns = durationNs(e.for as Duration);
      const until = this.clock.now() + ns;
      this.clock.holdTimers(until);
      return `device timers (PIT, local APIC, RTC) held for ${ns / 1e6} ms of guest time, ` +
        `until ${(until / 1e6).toFixed(1)} ms`;
    }
    if (action === "advance") {
      const ns = durationNs(e.by as Duration);
      this.clock.advance(ns);
      return `guest time advanced by ${ns / 1e6} ms`;
    }
    throw new RangeError(`timer action must be "hold" (with for) or "advance" (with by)`);
  }

  #transmit(byte: number): void {
    // Flushing every few KiB bounds memory and lets the flood check act mid-slice.
    if (this.#consoleOut.push(byte) >= 4096) this.#flushConsole();
  }

  #flushConsole(): void {
    this.#flushDevices();
    if (this.#consoleOut.length === 0) return;
    const bytes = new Uint8Array(this.#consoleOut);
    this.#consoleOut = [];
    this.#tail.append(bytes);
    const now = this.clock.now();
    this.hooks.console(bytes, now);
    const verdict = this.#consoleWatch.count(bytes.length, now) ??
      this.#consoleWatch.scan(this.#consoleText.decode(bytes, { stream: true }));
    if (verdict !== null) this.#fail(verdict.kind, verdict.message);
  }

  /** Serial lines 2..4 both ways, and the screen when it changed. */
  #flushDevices(): void {
    for (const [n, l] of this.#lines) {
      if (l.output.length > 0) {
        const bytes = new Uint8Array(l.output);
        l.output = [];
        if (l.backend) l.backend.write(bytes);
        else this.hooks.serial?.(n, bytes, this.clock.now());
      }
      const got = l.backend?.poll();
      if (got && got.length > 0) l.input.push(...got);
      const room = l.uart.canReceive();
      if (room > 0 && l.input.length > 0) {
        l.uart.receive(new Uint8Array(l.input.splice(0, room)));
      }
    }
    if (this.hooks.screen) {
      const snap = readScreen(this.#ram.bytes, this.#crtc.startAddress(), this.#crtc.cursor());
      if (!sameScreen(this.#screen, snap)) {
        this.#screen = snap;
        this.hooks.screen(snap, this.clock.now());
      }
    }
  }

  #pumpInput(): void {
    const room = this.#uart.canReceive();
    if (room === 0) return;
    const n = Math.min(room, this.#pendingInput.length);
    this.#uart.receive(new Uint8Array(this.#pendingInput.splice(0, n)));
  }

  /**
   * Runs the guest until it exits, fails, times out or is stopped. The thread stays in this
   * loop: requests arrive through the mailbox, polled between slices of a few milliseconds.
   *
   * @returns how the run ended
   */
  run(): Promise<RunResult> {
    try {
      while (this.#result === null) {
        const sliceEnd = performance.now() + SLICE_MS;
        while (this.#result === null && !this.state.halted && performance.now() < sliceEnd) {
          this.#step();
        }
        this.#flushConsole();
        if (this.mailbox.pending) { for (const m of this.mailbox.drain()) this.#handle(m); }
        if (this.#result === null) this.#checkDeadlines();
        this.#net?.publish(this.clock.now());
        if (this.#result === null && this.state.halted) this.#idle();
        if (this.#stopReason !== null && this.#result === null) {
          this.#fail("stopped", `stopped by the harness: ${this.#stopReason}`);
        }
      }
    } catch (e) {
      this.#flushConsole();
      if (!(e instanceof HostError)) {
        this.#shutdown();
        return Promise.reject(e);
      }
      if (e instanceof GuestProcessGoneError) this.#fail("guest-died", e.message);
      else this.#fail("host-error", e.message);
    }
    this.#flushConsole();
    this.#shutdown();
    return Promise.resolve(this.#result!);
  }

  #step(): void {
    const proc = this.#proc;
    const state = this.state;
    if (this.#pendingInput.length > 0) this.#pumpInput();
    const stepping = this.#stepping;
    this.#stepping = false;
    // The trampolines take their slow path at sti/popf only when this says so.
    if (this.#stub !== null) this.#stub.page.pending = this.#intr.level;
    const kind = stepping ? proc.step() : proc.run();
    if (
      (kind === StopKind.Fault || kind === StopKind.Syscall) && this.#faults.active &&
      this.#faults.killNow()
    ) {
      // Mid-trap: the stop is being handled when the process dies under the tracer.
      Deno.kill(proc.pid, "SIGKILL");
    }
    // At least one guest instruction ran (or is the one that trapped now, which is emulated
    // before any delivery), so the one-instruction shadow of sti or mov ss is over. An
    // asynchronous stop can land before that instruction: keep the shadow then.
    if (state.interruptShadow) {
      const async = kind === StopKind.Signal || kind === StopKind.Interrupted;
      if (!async || proc.loadRegs().eip !== this.#shadowEip) state.interruptShadow = false;
    }
    let exit: Exit = Exit.Resume;
    switch (kind) {
      case StopKind.Fault:
        if (stepping && proc.stop.signal === SIG.TRAP && proc.loadSigInfo().code === TRAP_TRACE) {
          break; // the single step we asked for: nothing to emulate
        }
        if (this.#pagingMirrored && proc.stop.signal === SIG.SEGV) {
          const si = proc.loadSigInfo();
          if (si.code !== SI_CODE.KERNEL) {
            exit = this.#shadowFault(si.addrLow, si.addrHigh, si.code === SI_CODE.SEGV_ACCERR);
            break;
          }
        }
        exit = this.#emu.handleFault(proc.regs, proc.stop.signal, this.#siginfo);
        break;
      case StopKind.Syscall:
        exit = this.#emu.handleSyscall(
          proc.regs,
          proc.regs.get32(REG.orig_rax),
          state.code64
            ? proc.regs.ripHigh * 2 ** 32 + proc.regs.eip >= GUEST_LINEAR_LIMIT
            : proc.regs.ripAbove4G,
          proc.regs.u32[2 * REG.orig_rax + 1],
        );
        break;
      case StopKind.Signal:
        if (proc.stop.signal === SIG.PROF) {
          this.#clockTicks++;
          this.#runTimers();
          this.#checkDeadlines();
        }
        break;
      case StopKind.Interrupted:
        break;
      case StopKind.Gone:
        this.#fail(
          "guest-died",
          `the guest process ended unexpectedly (${
            proc.stop.exitStatus < 0
              ? `signal ${-proc.stop.exitStatus}`
              : `status ${proc.stop.exitStatus}`
          })`,
        );
        return;
    }
    if (this.#exitCode !== null) {
      this.#finish({ outcome: "exit", exitCode: this.#exitCode, stats: this.#stats() });
      return;
    }
    if (this.#resetReason !== null) {
      // As QEMU with -no-reboot: a reset ends the run, classified, instead of rebooting.
      this.#fail("reset", `the guest reset the machine (${this.#resetReason})`);
      return;
    }
    if (exit === Exit.Fatal) {
      const f = this.#emu.fatal!;
      this.#fail(f.kind, f.message, f.instruction);
      return;
    }
    this.#applyPendingChanges();
    if (state.interruptShadow) this.#shadowEip = this.#proc.loadRegs().eip;
    if (++this.#stopsSinceTimerCheck >= TIMER_CHECK_STOPS) this.#runTimers();
    this.#deliverInterrupt();
  }

  #runTimers(): void {
    this.#stopsSinceTimerCheck = 0;
    this.#disks.poll();
    if (this.clock.timerDue()) this.clock.runDueTimers();
  }

  /** Delivers the interrupt controller's pending interrupt if the virtual CPU accepts it now. */
  #deliverInterrupt(): void {
    const controller = this.#interruptController;
    if (controller === null || !this.#intr.level) return;
    // Stopped in a fast sti past its pending check (IF about to be 1, or 1 with the instruction
    // after sti still to run): step through, so the interrupt comes after that instruction.
    if (
      this.#stub !== null && this.#proc === this.#kernelProc &&
      this.#stub.inStiShadow(this.#proc.loadRegs().eip)
    ) {
      this.#stepping = true;
      return;
    }
    if (!this.state.interruptFlag) return;
    if (this.state.interruptShadow) {
      // Come back after exactly one more instruction, when the shadow is over.
      this.#stepping = true;
      return;
    }
    if (this.#faults.active && this.#faults.interruptsHeld(this.clock.now())) return;
    if (this.#faults.active && this.#faults.drop()) {
      this.#faults.dropped(controller.discard());
      return;
    }
    const vector = controller.acknowledge();
    const times = this.#faults.active && this.#faults.duplicate(vector) ? 2 : 1;
    for (let i = 0; i < times && this.#result === null; i++) {
      this.#interruptsDelivered++;
      this.#interruptsByVector.set(vector, (this.#interruptsByVector.get(vector) ?? 0) + 1);
      if (this.#emu.deliverExternal(this.#proc.loadRegs(), vector) === Exit.Fatal) {
        const f = this.#emu.fatal!;
        this.#fail(f.kind, f.message, f.instruction);
      }
    }
    this.#applyPendingChanges();
  }

  /**
   * A host fault on an address with paging on: map the page if the guest's tables allow the
   * access, else deliver the guest's own #PF.
   */
  #shadowFault(addrLow: number, addrHigh: number, onMapped: boolean): Exit {
    const regs = this.#proc.regs;
    const rip = regs.ripHigh * 2 ** 32 + regs.eip;
    if (addrHigh !== 0 && !this.state.longMode) {
      this.#fail(
        "unmapped-memory",
        `guest touched a host address above 4 GiB at eip 0x${regs.eip.toString(16)}`,
      );
      return Exit.Fatal;
    }
    const addr = addrHigh * 2 ** 32 + addrLow;
    const space = this.#activeSpace();
    if (space === this.#kernelSpace && this.#stub?.contains(addr)) {
      this.#fail(
        "unmapped-memory",
        `guest kernel code at rip 0x${rip.toString(16)} wrote to 0x${
          addr.toString(16)
        }, inside the window ring3 reserves for fast-form trampolines; boot with rewrite: "trap"`,
      );
      return Exit.Fatal;
    }
    // A fault at rip on a page mapped without execute rights is a fetch (NX); otherwise a
    // fault on a page we mapped read-only can only be a write.
    const fetch = addr === rip && (!onMapped || space.mappedNoExec(addr));
    const write = !fetch && onMapped && space.mappedReadOnly(addr);
    const r = space.fill(this.#physical, this.#pagingControls(), addr, write, fetch);
    if (r.kind === "unmappable") {
      this.#fail(
        "unsupported-mode",
        `guest linear address 0x${addr.toString(16)} (rip 0x${rip.toString(16)}) lies at or ` +
          `above 0x${r.limit.toString(16)}, where the host process keeps the tracer stub and ` +
          `the host kernel: ring3 gives a 64-bit guest the low half below that`,
      );
      return Exit.Fatal;
    }
    if (r.kind === "mapped") {
      this.#pageFaultsMapped++;
      return Exit.Resume;
    }
    if (r.kind === "outside-ram" && this.#mmio.claims(r.physical)) {
      return this.#emu.emulateMmio(regs, r.physical);
    }
    if (r.kind === "outside-ram") {
      this.#fail(
        "unmapped-memory",
        `guest linear 0x${addr.toString(16)} maps to physical 0x${r.physical.toString(16)}, ` +
          `which is not backed by RAM or a device`,
      );
      return Exit.Fatal;
    }
    const w = !fetch && (write || this.#emu.writesMemoryAt(rip)) ? PF_ERROR.W : 0;
    return this.#emu.raisePageFault(regs, addr, r.errorCode | w);
  }

  #pagingControls(): TranslationControls {
    return pagingControlsOf(this.state);
  }

  #activeSpace(): ShadowSpace {
    return this.#proc === this.#kernelProc ? this.#kernelSpace : this.#userSpace!;
  }

  /**
   * After an instruction or a delivery: mirror paging changes into host mappings and move the
   * vCPU to the host process for its privilege level. Deferred to here because the emulator
   * is still writing the registers of the process it started with.
   */
  #applyPendingChanges(): void {
    const paging = (this.state.cr0 & CR0.PG) !== 0;
    // Any invalidation (CR3 load, invlpg, paging on or off) rechecks the stub window's page
    // directory entry; only a full one (new tables) rechecks the reserved long-mode slots.
    const flushed = paging !== this.#pagingMirrored || this.#pendingFlush !== undefined;
    const fullFlush = paging !== this.#pagingMirrored || this.#pendingFlush === null;
    if (paging !== this.#pagingMirrored) {
      this.#kernelSpace.flushAll();
      this.#userSpace?.flushAll();
      if (paging) {
        // The identity map of RAM used while paging was off goes; pages come back on demand.
        this.#kernelProc.inject(SYSCALL.munmap, 0, this.#ram.size);
      } else {
        mapRam(this.#kernelProc, this.#ram.size);
      }
      this.#pagingMirrored = paging;
      this.#pendingFlush = undefined;
    } else if (this.#pendingFlush !== undefined && paging) {
      if (this.#pendingFlush === null) {
        this.#kernelSpace.flushAll();
        this.#userSpace?.flushAll();
      } else {
        this.#kernelSpace.flushPage(this.#pendingFlush);
        this.#userSpace?.flushPage(this.#pendingFlush);
      }
    }
    if (this.#stub !== null && paging && flushed) {
      const conflict = this.#stub.pageTableConflict(
        (a) => this.#physical.read32(a),
        this.state.cr3,
        pagingControlsOf(this.state).mode,
      );
      if (conflict !== undefined) this.#fail("unsupported-mode", conflict);
    }
    this.#pendingFlush = undefined;
    if (paging && this.state.longMode && fullFlush) this.#checkReservedSlots();
    if (this.#unmapProtection) {
      // One process: user mode gets the same space with supervisor pages taken out first.
      const user = paging && this.state.cpl === 3;
      if (user !== this.#kernelSpace.userMode) {
        if (user) this.#kernelSpace.hideSupervisorPages();
        this.#kernelSpace.userMode = user;
        this.#contextSwitches++;
      }
      return;
    }
    const want = paging && this.state.cpl === 3 ? this.#ensureUserProc() : this.#kernelProc;
    if (want !== this.#proc) {
      const from = this.#proc;
      want.regs.copyFrom(from.loadRegs());
      from.transferFpuTo(want);
      this.#proc = want;
      this.#contextSwitches++;
    }
  }

  /**
   * A 64-bit guest's tables must leave the top of the low half (the tracer stub's 512 GiB slot
   * and what lies above it) and the high half unmapped: native accesses there would reach host
   * memory without faulting. Checked whenever the guest's translations are reloaded.
   */
  #checkReservedSlots(): void {
    const at = firstMappedSlotAbove(this.#physical, this.state.cr3, GUEST_LINEAR_LIMIT);
    if (at === null) return;
    const where = at < 0
      ? `the high half (0x${BigInt.asUintN(64, BigInt(at)).toString(16)})`
      : `0x${at.toString(16)}`;
    this.#fail(
      "unsupported-mode",
      `the guest's page tables (CR3 0x${this.state.cr3.toString(16)}) map ${where}: ring3 ` +
        `gives a 64-bit guest only linear addresses below 0x${
          GUEST_LINEAR_LIMIT.toString(16)
        }; the host process keeps its tracer stub there and the host kernel owns the high half ` +
        `(a higher-half kernel cannot run yet)`,
    );
  }

  #ensureUserProc(): PtraceProcess {
    if (this.#userProc === null) {
      const p = PtraceProcess.spawn(this.#libc, {
        fds: [[this.#ram.fd, GUEST_RAM_FD]],
        cpu: this.config.cpu,
      });
      unmapHostExtras(p);
      startClockTimer(p);
      this.#userProc = p;
      this.#userSpace = new ShadowSpace(
        processMapper(p, () => this.#faults),
        true,
        GUEST_LINEAR_LIMIT,
      );
    }
    return this.#userProc;
  }

  #checkDeadlines(): void {
    for (const id of this.clock.due()) {
      if (id === this.#runTimeoutId) {
        const halted = this.state.halted;
        this.#fail(
          halted ? "halted" : "timeout",
          halted
            ? `the guest halted (hlt with IF=${
              this.state.interruptFlag ? 1 : 0
            }) and nothing woke ` +
              `it before the run's guest-time limit of ${this.config.timeoutNs / 1e9} s`
            : `the guest ran past the run's guest-time limit of ${this.config.timeoutNs / 1e9} s`,
        );
        return;
      }
      this.#scenarioDeadlines.delete(id);
      this.hooks.deadline(id, this.clock.now());
    }
  }

  /**
   * One round of waiting in hlt. Input may raise an interrupt; otherwise guest time jumps to
   * the next event — a device timer, or a scenario deadline while the scenario is blocked on
   * one — and when nothing at all is due, the thread waits for the scenario in host time.
   */
  #idle(): void {
    if (!this.state.interruptFlag) {
      this.#fail(
        "halted",
        "the guest executed hlt with interrupts disabled (IF=0): it can never run again",
      );
      return;
    }
    if (this.#pendingInput.length > 0) this.#pumpInput();
    this.#runTimers();
    this.#deliverInterrupt();
    if (!this.state.halted || this.#result !== null) return;
    if (this.#disks.busy) {
      // Host disk I/O in flight: wait for it in host time rather than let guest time run on,
      // so the guest sees the drive's latency however slow the host file is.
      this.#flushConsole();
      this.#disks.wait(IDLE_WAIT_MS);
      return;
    }
    const blocked = this.#scenarioWaiting || this.#scenarioDeadlines.size > 0;
    let next = this.clock.nextEventAt(this.#runTimeoutId, blocked);
    if (this.#net !== null) {
      // On a network, idle time runs no further than the peers' clocks allow.
      const limit = this.#net.limitIdle(this.clock.now(), next, () => this.mailbox.pending);
      if (limit === "wait") {
        this.#flushConsole();
        this.#net.wait(NET_WAIT_MS);
        return;
      }
      next = limit;
    }
    if (next !== null && this.config.paceIdle && !blocked) {
      const aheadMs = (next - this.clock.now()) / 1e6;
      if (aheadMs > 0.5) {
        this.#flushConsole();
        this.mailbox.wait(Math.min(aheadMs, IDLE_WAIT_MS));
        if (this.mailbox.pending) return;
      }
    }
    if (next !== null) {
      this.clock.skipTo(next);
      this.#runTimers();
      this.#checkDeadlines();
      this.#deliverInterrupt();
      return;
    }
    this.#flushConsole();
    this.mailbox.wait(IDLE_WAIT_MS);
  }

  #stats(): RunStats {
    return {
      resumes: this.#kernelProc.resumes + (this.#userProc?.resumes ?? 0),
      hostSyscalls: this.#kernelProc.injected + (this.#userProc?.injected ?? 0),
      guestPageFaults: this.#emu.trapCounts.get("#PF") ?? 0,
      interruptsByVector: Object.fromEntries(
        [...this.#interruptsByVector].map(([v, n]) => [`0x${v.toString(16)}`, n]),
      ),
      trapsByCause: Object.fromEntries(this.#emu.trapCounts),
      clockTicks: this.#clockTicks,
      interrupts: this.#interruptsDelivered,
      shadowPageFills: this.#pageFaultsMapped,
      privilegeSwitches: this.#contextSwitches,
      ...(this.#stub === null ? {} : { fastPaths: this.#stub.page.fastRuns }),
      events: [...this.#eventLog],
      guestNs: this.clock.now(),
      hostMs: performance.now() - this.#startMs,
    };
  }

  #fail(kind: FailureKind, message: string, instruction?: { bytes: string; text: string }): void {
    if (this.#result !== null) return;
    this.#flushConsole();
    const regsKnown = !this.#proc.gone;
    const failure: FailureReport = {
      kind,
      message,
      instruction,
      rip: regsKnown
        ? (this.#proc.loadRegs().ripHigh * 2 ** 32 + this.#proc.regs.eip).toString(16)
        : undefined,
      mode: this.state.describeMode(),
      lastConsoleLines: this.#tail.lastLines(this.config.reportLines),
      guestNs: this.clock.now(),
    };
    this.#finish({ outcome: "failure", failure, stats: this.#stats() });
  }

  #finish(result: RunResult): void {
    if (this.#result === null) this.#result = result;
  }

  #shutdown(): void {
    this.#net?.leave();
    this.#kernelProc.kill();
    this.#userProc?.kill();
    this.#stub?.close();
    this.#disks.close();
    for (const l of this.#lines.values()) l.backend?.close();
    this.#ram.close();
    void this.#libc;
  }
}

/**
 * Maps guest RAM at guest-physical 0 in the guest process. Page 0 needs CAP_SYS_RAWIO below
 * vm.mmap_min_addr; without it RAM is mapped from the first page the host allows, and a
 * guest touching below it gets a report saying why.
 */
function mapRam(proc: PtraceProcess, size: number): number {
  const prot = MMAP.PROT_READ | MMAP.PROT_WRITE | MMAP.PROT_EXEC;
  const flags = MMAP.MAP_SHARED | MMAP.MAP_FIXED;
  let start = 0;
  let r = proc.inject(SYSCALL.mmap, 0, size, prot, flags, GUEST_RAM_FD, 0);
  if (r === -1n /* EPERM */ || r === -13n /* EACCES */) {
    start = readMmapMinAddr();
    r = proc.inject(SYSCALL.mmap, start, size - start, prot, flags, GUEST_RAM_FD, start);
  }
  if (r !== BigInt(start)) {
    throw new HostError(
      "mmap (in guest process)",
      Number(-r),
      `guest RAM at 0x${start.toString(16)}`,
    );
  }
  return start;
}

function readMmapMinAddr(): number {
  try {
    return Number(Deno.readTextFileSync("/proc/sys/vm/mmap_min_addr").trim()) || 4096;
  } catch {
    return 65536;
  }
}

/** Host mapping calls for a shadow space, run inside the guest process as injected syscalls. */
function processMapper(proc: PtraceProcess, faults: () => FaultInjector): HostMapper {
  const check = (r: bigint, what: string) => {
    if (r < 0n) throw new HostError(`${what} (in guest process)`, Number(-r), "shadow mapping");
  };
  return {
    map(linear, length, prot, physical) {
      if (faults().active && faults().failMmap()) {
        throw new HostError("mmap (in guest process)", 12, "refused by the fault plan");
      }
      check(
        proc.inject(
          SYSCALL.mmap,
          linear,
          length,
          prot,
          MMAP.MAP_SHARED | MMAP.MAP_FIXED,
          GUEST_RAM_FD,
          physical,
        ),
        "mmap",
      );
    },
    protect(linear, length, prot) {
      check(proc.inject(SYSCALL.mprotect, linear, length, prot), "mprotect");
    },
    unmap(linear, length) {
      check(proc.inject(SYSCALL.munmap, linear, length), "munmap");
    },
  };
}

/** Arms ITIMER_PROF in the guest process: it preempts a looping guest and ticks the clock. */
function startClockTimer(proc: PtraceProcess): void {
  const itv = new BigInt64Array([0n, BigInt(CLOCK_TICK_US), 0n, BigInt(CLOCK_TICK_US)]);
  proc.writeMemory(STUB.SCRATCH, new Uint8Array(itv.buffer));
  const ITIMER_PROF = 2;
  const r = proc.inject(SYSCALL.setitimer, ITIMER_PROF, STUB.SCRATCH, 0);
  if (r !== 0n) throw new HostError("setitimer (in guest process)", Number(-r), "ITIMER_PROF");
}

export { ImageFormatError };
