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
import { HOST_SELECTOR, MMAP, REG, SIG, SYSCALL } from "./host/layouts.ts";
import { PtraceProcess, StopKind } from "./tracer/ptrace_process.ts";
import { STUB } from "./tracer/stub_image.ts";
import { PhysicalMemory } from "./memory/physical_memory.ts";
import { Emulator, Exit } from "./cpu/emulator.ts";
import { VcpuState } from "./cpu/vcpu_state.ts";
import { IoBus } from "./devices/io_bus.ts";
import { IrqLine } from "./devices/irq_line.ts";
import { Uart16550, UART_PORT_COUNT } from "./devices/uart16550.ts";
import { DebugExit } from "./devices/debug_exit.ts";
import { loadMultiboot } from "./boot/multiboot.ts";
import { ImageFormatError } from "./boot/image_error.ts";
import { VirtualClock } from "./virtual_clock.ts";
import { ConsoleTail } from "./console_tail.ts";
import type { MachineConfig, ToMachine } from "./machine_protocol.ts";
import type { Mailbox } from "./mailbox.ts";
import type { FailureKind, FailureReport, RunResult, RunStats } from "./run_result.ts";

/** The guest descriptor number of the RAM memfd inside the guest process. */
const GUEST_RAM_FD = 3;
/** Interval of the guest process's CPU-time timer: the clock's tick and the preemption point. */
const CLOCK_TICK_US = 4000;
/** Host time the machine runs between looks at its mailbox (input, deadlines, stop). */
const IDLE_WAIT_MS = 20;
/** Stops between looks at device timers, besides every clock tick and every idle round. */
const TIMER_CHECK_STOPS = 32;
/** siginfo si_code of a single-step SIGTRAP. */
const TRAP_TRACE = 2;

/** What the CPU's INTR pin is wired to: acknowledging returns the vector (the INTA cycle). */
export interface InterruptController {
  acknowledge(): number;
}
const SLICE_MS = 5;
const COM1 = 0x3f8;
const DEBUG_EXIT_PORT = 0xf4;

/** Callbacks from a running machine to whoever drives it. */
export interface MachineHooks {
  /** Bytes the guest wrote to its console (COM1). */
  console(bytes: Uint8Array, guestNs: number): void;
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
  readonly #proc: PtraceProcess;
  readonly #emu: Emulator;
  readonly #uart: Uart16550;
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
    this.#proc = proc;
    this.clock = new VirtualClock(() => proc.cpuTimeNs());
    const memory = new PhysicalMemory(ram.bytes);
    const bus = new IoBus({ log: (m) => hooks.log(m) });
    this.#uart = new Uart16550({
      name: "com1",
      irq: new IrqLine("irq4"),
      transmit: (byte) => this.#transmit(byte),
    });
    bus.attach(COM1, UART_PORT_COUNT, this.#uart);
    bus.attach(
      DEBUG_EXIT_PORT,
      4,
      new DebugExit({ onExit: (status) => this.#exitCode = status & 0xff }),
    );
    this.#emu = new Emulator(this.state, memory, bus, {
      lowestMappedAddress: lowestMapped,
      guestTimeNs: () => this.clock.now(),
    });
    this.state.resetForMultiboot();
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

  /** The guest process's pid. */
  get pid(): number {
    return this.#proc.pid;
  }

  #handle(m: ToMachine): void {
    switch (m.type) {
      case "input":
        for (const b of m.bytes) this.#pendingInput.push(b);
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
      case "stop":
        this.#stopReason ??= m.reason;
        return;
    }
  }

  #transmit(byte: number): void {
    this.#consoleOut.push(byte);
  }

  #flushConsole(): void {
    if (this.#consoleOut.length === 0) return;
    const bytes = new Uint8Array(this.#consoleOut);
    this.#consoleOut = [];
    this.#tail.append(bytes);
    this.hooks.console(bytes, this.clock.now());
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
    if (exit === Exit.Fatal) {
      const f = this.#emu.fatal!;
      this.#fail(f.kind, f.message, f.instruction);
      return;
    }
    if (state.interruptShadow) this.#shadowEip = proc.loadRegs().eip;
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
    const vector = controller.acknowledge();
    this.#interruptsDelivered++;
    if (this.#emu.deliverExternal(this.#proc.loadRegs(), vector) === Exit.Fatal) {
      const f = this.#emu.fatal!;
      this.#fail(f.kind, f.message, f.instruction);
    }
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
    this.#proc.kill();
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

/** Arms ITIMER_PROF in the guest process: it preempts a looping guest and ticks the clock. */
function startClockTimer(proc: PtraceProcess): void {
  const itv = new BigInt64Array([0n, BigInt(CLOCK_TICK_US), 0n, BigInt(CLOCK_TICK_US)]);
  proc.writeMemory(STUB.SCRATCH, new Uint8Array(itv.buffer));
  const ITIMER_PROF = 2;
  const r = proc.inject(SYSCALL.setitimer, ITIMER_PROF, STUB.SCRATCH, 0);
  if (r !== 0n) throw new HostError("setitimer (in guest process)", Number(-r), "ITIMER_PROF");
}

export { ImageFormatError };
