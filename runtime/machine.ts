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
import { PtraceProcess, StopKind } from "./tracer/ptrace_process.ts";
import { STUB } from "./tracer/stub_image.ts";
import { PhysicalMemory } from "./memory/physical_memory.ts";
import { PagedMemory } from "./memory/paged_memory.ts";
import { type HostMapper, ShadowSpace } from "./memory/shadow_space.ts";
import { PF_ERROR } from "./memory/page_walk.ts";
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
import { RING3_CPU } from "./cpu/cpu_model.ts";
import type { I8042 } from "./devices/i8042.ts";
import type { VgaCrtc } from "./devices/vga_crtc.ts";
import { chordScancodes, textKeystrokes } from "./devices/keymap.ts";
import { readScreen, sameScreen, type ScreenSnapshot } from "./screen/text_screen.ts";
import { openSerialBackend, type SerialBackend } from "./serial_backends.ts";
import { ImageFormatError } from "./boot/image_error.ts";
import { VirtualClock } from "./virtual_clock.ts";
import { ConsoleTail } from "./console_tail.ts";
import type { AppliedEvent, MachineConfig, MachineEvent, ToMachine } from "./machine_protocol.ts";
import type { Mailbox } from "./mailbox.ts";
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

/** What the CPU's INTR pin is wired to: acknowledging returns the vector (the INTA cycle). */
export interface InterruptController {
  acknowledge(): number;
}
const SLICE_MS = 5;

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
  /** Diagnostics (unhandled ports, loader notes). */
  log(message: string): void;
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
  /** The scenario waits for the end of the run (vm.exit()). */
  #scenarioWaiting = false;
  /** Scenario deadlines pending: while any is, the scenario is blocked on guest time. */
  readonly #scenarioDeadlines = new Set<number>();

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
  ) {
    this.#libc = libc;
    this.#ram = ram;
    this.#kernelProc = proc;
    this.#proc = proc;
    this.clock = new VirtualClock(() =>
      proc.cpuTimeNs() + (this.#userProc === null ? 0 : this.#userProc.cpuTimeNs())
    );
    const physical = new PhysicalMemory(ram.bytes);
    this.#physical = physical;
    this.#kernelSpace = new ShadowSpace(processMapper(proc, () => this.#faults), false);
    const state = this.state;
    const memory = new PagedMemory(
      physical,
      () => ({
        enabled: (state.cr0 & CR0.PG) !== 0,
        cr3: state.cr3,
        writeProtect: (state.cr0 & CR0.WP) !== 0,
        pse: (state.cr4 & CR4_PSE) !== 0,
      }),
      () => state.cpl === 3,
    );
    const bus = new IoBus({ log: (m) => hooks.log(m) });
    const board = buildPcBoard({
      bus,
      clock: this.clock,
      intr: this.#intr,
      ramBytes: ram.size,
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

    // The timeline's event kinds. A device adds its own here; the scheduler stays the same.
    this.#eventKinds.set("serial", (e) => {
      const text = typeof e.text === "string" ? e.text : "";
      for (const b of new TextEncoder().encode(text)) this.#pendingInput.push(b);
      return JSON.stringify(text);
    });
    this.#eventKinds.set("irq", (e) => {
      const line = board.injectIrq(Number(e.line));
      const action = String(e.action ?? "pulse");
      if (action === "raise") line.raise();
      else if (action === "lower") line.lower();
      else if (action === "pulse") line.pulse();
      else throw new RangeError(`irq action must be raise, lower or pulse, not "${action}"`);
      return `line ${e.line} ${action}`;
    });
    this.#eventKinds.set("keyboard", (e) => {
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
    });

    this.#interruptController = board.interruptController;
    this.#mmio = board.mmio;
    this.#faults = new FaultInjector(
      config.faults ?? [],
      config.seed ?? 1,
      (detail) => this.#eventLog.push({ guestNs: this.clock.now(), kind: "fault", detail }),
    );
    const faults = this.#faults;
    const io = faults.active
      ? {
        read: (port: number, size: 1 | 2 | 4) => faults.portRead(port, size, bus.read(port, size)),
        write: (port: number, value: number, size: 1 | 2 | 4) => bus.write(port, value, size),
      }
      : bus;
    this.#emu = new Emulator(this.state, memory, io, {
      lowestMappedAddress: lowestMapped,
      guestTimeNs: () => this.clock.now(),
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
    try {
      // Before the kernel, so a kernel loaded over the BIOS area wins, as it would on a PC.
      writeFirmware(ram.bytes, RING3_CPU);
      const kernel = loadMultiboot(config.kernel, ram.bytes, {
        cmdline: config.cmdline,
        kernelPath: config.kernelPath,
      });
      for (const n of kernel.notes) hooks.log(`multiboot: ${n}`);
      proc = PtraceProcess.spawn(libc, { fds: [[ram.fd, GUEST_RAM_FD]], cpu: config.cpu });
      const lowest = mapRam(proc, ram.size);
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
      );
    } catch (e) {
      proc?.kill();
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
        const apply = () => this.#applyEvent(m.event);
        if (m.atNs === null || m.atNs <= this.clock.now()) apply();
        else this.clock.schedule(m.atNs, apply);
        return;
      }
      case "stop":
        this.#stopReason ??= m.reason;
        return;
    }
  }

  readonly #eventKinds = new Map<string, (e: MachineEvent) => string>();
  readonly #faults: FaultInjector;
  readonly #eventLog: AppliedEvent[] = [];

  #applyEvent(e: MachineEvent): void {
    const kind = this.#eventKinds.get(e.kind);
    let detail: string;
    if (kind === undefined) {
      detail = `unknown event kind "${e.kind}" (known: ${[...this.#eventKinds.keys()].join(", ")})`;
    } else {
      try {
        detail = kind(e);
      } catch (err) {
        detail = `rejected: ${(err as Error).message}`;
      }
    }
    if (kind === undefined || detail.startsWith("rejected")) this.hooks.log(`event: ${detail}`);
    this.#eventLog.push({ guestNs: this.clock.now(), kind: e.kind, detail });
    if (this.#pendingInput.length > 0) this.#pumpInput();
  }

  #transmit(byte: number): void {
    this.#consoleOut.push(byte);
  }

  #flushConsole(): void {
    this.#flushDevices();
    if (this.#consoleOut.length === 0) return;
    const bytes = new Uint8Array(this.#consoleOut);
    this.#consoleOut = [];
    this.#tail.append(bytes);
    this.hooks.console(bytes, this.clock.now());
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
      this.#fail("host-error", e.message);
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
            exit = this.#shadowFault(
              si.addrLow,
              si.addrHigh !== 0,
              si.code === SI_CODE.SEGV_ACCERR,
            );
            break;
          }
        }
        exit = this.#emu.handleFault(proc.regs, proc.stop.signal, this.#siginfo);
        break;
      case StopKind.Syscall:
        exit = this.#emu.handleSyscall(
          proc.regs,
          proc.regs.get32(REG.orig_rax),
          proc.regs.ripAbove4G,
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
    if (this.clock.timerDue()) this.clock.runDueTimers();
  }

  /** Delivers the interrupt controller's pending interrupt if the virtual CPU accepts it now. */
  #deliverInterrupt(): void {
    const controller = this.#interruptController;
    if (controller === null || !this.#intr.level || !this.state.interruptFlag) return;
    if (this.state.interruptShadow) {
      // Come back after exactly one more instruction, when the shadow is over.
      this.#stepping = true;
      return;
    }
    if (this.#faults.active && this.#faults.interruptsHeld(this.clock.now())) return;
    const vector = controller.acknowledge();
    const times = this.#faults.active && this.#faults.duplicate(vector) ? 2 : 1;
    for (let i = 0; i < times && this.#result === null; i++) {
      this.#interruptsDelivered++;
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
  #shadowFault(addr: number, above4G: boolean, onMapped: boolean): Exit {
    const regs = this.#proc.regs;
    if (above4G) {
      this.#fail(
        "unmapped-memory",
        `guest touched a host address above 4 GiB at eip 0x${regs.eip.toString(16)}`,
      );
      return Exit.Fatal;
    }
    const space = this.#activeSpace();
    // A fault on a page we mapped read-only can only be a write.
    const write = onMapped && space.mappedReadOnly(addr);
    const r = space.fill(this.#physical, this.#pagingControls(), addr, write);
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
    const w = write || this.#emu.writesMemoryAt(regs.eip) ? PF_ERROR.W : 0;
    return this.#emu.raisePageFault(regs, addr, r.errorCode | w);
  }

  #pagingControls() {
    const s = this.state;
    return {
      cr3: s.cr3,
      writeProtect: (s.cr0 & CR0.WP) !== 0,
      pse: (s.cr4 & CR4_PSE) !== 0,
    };
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
    this.#pendingFlush = undefined;
    const want = paging && this.state.cpl === 3 ? this.#ensureUserProc() : this.#kernelProc;
    if (want !== this.#proc) {
      const from = this.#proc;
      want.regs.copyFrom(from.loadRegs());
      from.transferFpuTo(want);
      this.#proc = want;
      this.#contextSwitches++;
    }
  }

  #ensureUserProc(): PtraceProcess {
    if (this.#userProc === null) {
      const p = PtraceProcess.spawn(this.#libc, {
        fds: [[this.#ram.fd, GUEST_RAM_FD]],
        cpu: this.config.cpu,
      });
      startClockTimer(p);
      this.#userProc = p;
      this.#userSpace = new ShadowSpace(processMapper(p, () => this.#faults), true);
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
    const blocked = this.#scenarioWaiting || this.#scenarioDeadlines.size > 0;
    const next = this.clock.nextEventAt(this.#runTimeoutId, blocked);
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
      resumes: this.#proc.resumes,
      trapsByCause: Object.fromEntries(this.#emu.trapCounts),
      clockTicks: this.#clockTicks,
      interrupts: this.#interruptsDelivered,
      shadowPageFills: this.#pageFaultsMapped,
      privilegeSwitches: this.#contextSwitches,
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
      rip: regsKnown ? this.#proc.loadRegs().eip.toString(16) : undefined,
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
    this.#kernelProc.kill();
    this.#userProc?.kill();
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
