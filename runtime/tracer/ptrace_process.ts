/**
 * The ptrace platform: one guest host process, traced by the calling thread.
 *
 * Mechanism (ARCHITECTURE.md, "Execution model"): the stub is spawned with posix_spawn, stops
 * itself, and is PTRACE_SEIZEd with EXITKILL (the guest dies with its tracer), TRACESYSGOOD
 * (syscall-stops are told apart from SIGTRAPs) and TRACEEXIT. It is always resumed with
 * PTRACE_SYSEMU, so a system call made by guest code is reported and skipped, never run by the
 * host kernel. Host system calls that ring3 itself needs run at the stub's `syscall; int3`
 * gadget under PTRACE_CONT, with the guest's registers saved around them.
 *
 * Every ptrace call must come from the thread that seized the process (a Worker), and every
 * call is synchronous: a nonblocking FFI call runs on a pool thread and fails with ESRCH.
 *
 * @module
 */
import { type LibcSymbols } from "../host/libc.ts";
import { HostError, hostError } from "../host/host_error.ts";
import {
  decodeWaitStatus,
  HOST_SELECTOR,
  PTRACE,
  PTRACE_EVENT,
  PTRACE_O,
  REG,
  SIG,
  SIGINFO,
  WAIT,
} from "../host/layouts.ts";
import { executableFromBytes, killAndReap, spawnProcess } from "../host/spawn.ts";
import { RegisterFile } from "./registers.ts";
import { buildStubImage, STUB } from "./stub_image.ts";

/** Why the guest process stopped. */
export const StopKind = {
  /** A system call instruction in guest code, annulled by SYSEMU. Registers are loaded. */
  Syscall: 1,
  /** A synchronous fault (SIGSEGV, SIGTRAP, SIGILL, SIGFPE, SIGBUS). Registers are loaded; siginfo on demand. */
  Fault: 2,
  /** An asynchronous signal (the virtual clock's SIGPROF, terminal noise). Registers are not loaded. */
  Signal: 3,
  /** PTRACE_INTERRUPT or a group stop. Registers are not loaded. */
  Interrupted: 4,
  /** The process has exited or was killed; it is reaped. */
  Gone: 5,
} as const;
/** One of {@link StopKind}'s values. */
export type StopKind = typeof StopKind[keyof typeof StopKind];

/** Details of the last stop; one object reused for every stop, to keep the trap path allocation-free. */
export class StopInfo {
  kind: StopKind = StopKind.Interrupted as StopKind;
  /** Signal number for Fault and Signal stops. */
  signal = 0;
  /** siginfo si_code for Fault stops, after {@link PtraceProcess.loadSigInfo}. */
  code = 0;
  /** siginfo si_addr for Fault stops, low and high 32 bits. */
  addrLow = 0;
  addrHigh = 0;
  /** For Gone: exit code, or -signal when killed. */
  exitStatus = 0;
}

const FAULT_SIGNALS = new Set<number>([SIG.SEGV, SIG.TRAP, SIG.ILL, SIG.FPE, SIG.BUS]);

/** Options for {@link PtraceProcess.spawn}. */
export interface SpawnOptions {
  /** Host descriptors to install in the guest process: [ourFd, guestFd] pairs. */
  fds?: [number, number][];
  /** CPU to pin the tracer thread and the guest process to (ARCHITECTURE.md: 5x cheaper traps). */
  cpu?: number;
}

/** A traced guest host process made from the stub. */
export class PtraceProcess {
  /** Registers of the last Fault or Syscall stop; write them and they are set on resume. */
  readonly regs = new RegisterFile();
  /** The last stop. */
  readonly stop = new StopInfo();
  /** Number of resumes (each is one host round trip). */
  resumes = 0;
  /** Host system calls injected (each one more round trip, not counted in {@link resumes}). */
  injected = 0;
  #regsLoaded = false;
  #siginfoLoaded = false;
  #gone = false;
  readonly #status = new Int32Array(1);
  readonly #statusPtr = Deno.UnsafePointer.of(this.#status);
  readonly #siginfo = new Uint8Array(SIGINFO.SIZE);
  readonly #siginfoPtr = Deno.UnsafePointer.of(this.#siginfo);
  readonly #siginfo32 = new Int32Array(this.#siginfo.buffer);
  readonly #saved = new RegisterFile();
  readonly #fpregs = new Uint8Array(512);
  readonly #fpregsPtr = Deno.UnsafePointer.of(this.#fpregs);
  readonly #cpuClock: number;
  readonly #timespec = new BigInt64Array(2);
  readonly #timespecPtr = Deno.UnsafePointer.of(this.#timespec);

  private constructor(private readonly libc: LibcSymbols, readonly pid: number) {
    // MAKE_PROCESS_CPUCLOCK(pid, CPUCLOCK_SCHED): the process's user+system CPU time.
    this.#cpuClock = ((~pid) << 3) | 2;
  }

  /**
   * Spawns the stub, seizes it and runs it to its ready point. Must be called on the thread
   * that will trace it.
   *
   * @param libc bound symbols of the calling thread
   * @param options descriptors to pass and the CPU to pin to
   * @returns the traced process, stopped at the stub's ready int3
   */
  static spawn(libc: LibcSymbols, options: SpawnOptions = {}): PtraceProcess {
    if (options.cpu !== undefined) pinCallingThread(libc, options.cpu);
    const exe = executableFromBytes(libc, "ring3-stub", buildStubImage());
    let pid: number;
    try {
      pid = spawnProcess(libc, exe.path, ["ring3-guest"], options.fds ?? []);
    } finally {
      exe.close();
    }
    const p = new PtraceProcess(libc, pid);
    try {
      p.#seize();
    } catch (e) {
      killAndReap(libc, pid);
      throw e;
    }
    return p;
  }

  #seize(): void {
    const { libc, pid } = this;
    // The stub stops itself; wait for that group stop before becoming its tracer.
    if (libc.waitpid(pid, this.#statusPtr, WAIT.WUNTRACED) !== pid) {
      throw hostError(libc, "waitpid", `stub ${pid} before seize`);
    }
    const st = decodeWaitStatus(this.#status[0]);
    if (st.kind !== "stopped") {
      throw new HostError(
        "spawn",
        0,
        `stub exited before it could be traced (${JSON.stringify(st)})`,
      );
    }
    const options = PTRACE_O.TRACESYSGOOD | PTRACE_O.EXITKILL | PTRACE_O.TRACEEXIT;
    if (libc.ptrace_int(PTRACE.SEIZE, pid, 0n, BigInt(options)) !== 0) {
      throw hostError(libc, "ptrace(PTRACE_SEIZE)", `pid ${pid}`);
    }
    libc.kill(pid, SIG.CONT);
    // Run to the ready int3, passing over the SIGCONT and group-stop notifications.
    for (let i = 0; i < 16; i++) {
      if (libc.waitpid(pid, this.#statusPtr, WAIT.WALL) !== pid) {
        throw hostError(libc, "waitpid", `stub ${pid}`);
      }
      const s = decodeWaitStatus(this.#status[0]);
      if (s.kind !== "stopped") {
        this.#gone = true;
        throw new HostError("spawn", 0, `stub died during start-up (${JSON.stringify(s)})`);
      }
      if (s.event === 0 && s.signal === SIG.TRAP) {
        this.#getRegs();
        const rip = this.regs.get64(REG.rip);
        if (rip === STUB.READY + 1n) return;
        throw new HostError("spawn", 0, `stub trapped at unexpected rip 0x${rip.toString(16)}`);
      }
      this.libc.ptrace_int(PTRACE.CONT, pid, 0n, 0n);
    }
    throw new HostError("spawn", 0, "stub did not reach its ready point");
  }

  /** Whether the process has exited and been reaped. */
  get gone(): boolean {
    return this.#gone;
  }

  /**
   * Loads siginfo of the current Fault stop into {@link stop} (code, address). Separate from
   * the stop itself because the common trap, a privileged instruction's #GP, does not need it:
   * that saves a host round trip per trap.
   */
  loadSigInfo(): StopInfo {
    if (this.#siginfoLoaded) return this.stop;
    const { libc, pid, stop } = this;
    if (libc.ptrace_ptr(PTRACE.GETSIGINFO, pid, null, this.#siginfoPtr) !== 0) {
      throw this.#requestFailed("ptrace(PTRACE_GETSIGINFO)", `pid ${pid}`);
    }
    const si = this.#siginfo32;
    stop.code = si[SIGINFO.code >> 2];
    stop.addrLow = si[SIGINFO.addr >> 2] >>> 0;
    stop.addrHigh = si[(SIGINFO.addr >> 2) + 1] >>> 0;
    this.#siginfoLoaded = true;
    return stop;
  }

  /**
   * The error for a failed request on this process. ESRCH there means the process died under
   * us (killed mid-trap): it is reaped here, so the caller learns how it ended.
   */
  #requestFailed(what: string, detail: string): HostError {
    const e = hostError(this.libc, what, detail);
    if (e.code !== "ESRCH" || this.#wait() !== StopKind.Gone) return e;
    return new GuestProcessGoneError(what, this.stop.exitStatus);
  }

  /** Loads the registers if this stop did not already load them. */
  loadRegs(): RegisterFile {
    if (!this.#regsLoaded) this.#getRegs();
    return this.regs;
  }

  #getRegs(): void {
    if (this.libc.ptrace_ptr(PTRACE.GETREGS, this.pid, null, this.regs.pointer) !== 0) {
      throw this.#requestFailed("ptrace(PTRACE_GETREGS)", `pid ${this.pid}`);
    }
    this.regs.dirty = false;
    this.#regsLoaded = true;
  }

  #setRegs(): void {
    if (this.libc.ptrace_ptr(PTRACE.SETREGS, this.pid, null, this.regs.pointer) !== 0) {
      throw this.#requestFailed("ptrace(PTRACE_SETREGS)", `pid ${this.pid}`);
    }
    this.regs.dirty = false;
  }

  /**
   * Resumes the guest under SYSEMU and waits for its next stop, which is described in
   * {@link stop}. Modified registers are written first. Signals are never passed on: the
   * guest process has no handlers, and every fault is the emulator's business.
   */
  run(): StopKind {
    return this.#resume(PTRACE.SYSEMU);
  }

  /**
   * Like {@link run}, but stops again after one guest instruction (a SIGTRAP Fault stop with
   * si_code TRAP_TRACE) unless that instruction traps first. Used to deliver an interrupt that
   * became deliverable at sti, which holds interrupts off for exactly one instruction.
   */
  step(): StopKind {
    return this.#resume(PTRACE.SYSEMU_SINGLESTEP);
  }

  #resume(request: number): StopKind {
    const { libc, pid, stop } = this;
    if (this.#gone) return stop.kind = StopKind.Gone;
    if (this.regs.dirty) {
      try {
        this.#setRegs();
      } catch (e) {
        // Killed under us (ESRCH): the wait below reports how it ended.
        if (!(e instanceof HostError) || e.code !== "ESRCH") throw e;
      }
    }
    this.#regsLoaded = false;
    this.resumes++;
    // ESRCH here means the process died under us; waitpid below tells how.
    libc.ptrace_int(request, pid, 0n, 0n);
    return this.#wait();
  }

  #wait(): StopKind {
    const { libc, pid, stop } = this;
    for (;;) {
      const r = libc.waitpid(pid, this.#statusPtr, WAIT.WALL);
      if (r !== pid) {
        const e = hostError(libc, "waitpid", `guest ${pid}`);
        if (e.code === "EINTR") continue;
        if (e.code === "ECHILD") {
          this.#gone = true;
          stop.exitStatus = -SIG.KILL;
          return stop.kind = StopKind.Gone;
        }
        throw e;
      }
      const status = this.#status[0];
      if ((status & 0x7f) === 0) {
        this.#gone = true;
        stop.exitStatus = (status >> 8) & 0xff;
        return stop.kind = StopKind.Gone;
      }
      if ((status & 0xff) !== 0x7f) {
        this.#gone = true;
        stop.exitStatus = -(status & 0x7f);
        return stop.kind = StopKind.Gone;
      }
      const sig = (status >> 8) & 0xff;
      const event = (status >>> 16) & 0xff;
      if (sig === (SIG.TRAP | 0x80)) {
        this.#getRegs();
        return stop.kind = StopKind.Syscall;
      }
      if (event === PTRACE_EVENT.EXIT) {
        // About to exit (killed, or the kernel decided so): let it, and report the real status.
        libc.ptrace_int(PTRACE.CONT, pid, 0n, 0n);
        continue;
      }
      if (event !== 0) return stop.kind = StopKind.Interrupted;
      stop.signal = sig;
      if (FAULT_SIGNALS.has(sig)) {
        this.#getRegs();
        this.#siginfoLoaded = false;
        return stop.kind = StopKind.Fault;
      }
      return stop.kind = StopKind.Signal;
    }
  }

  /**
   * Runs one host system call inside the guest process at the stub's gadget and restores the
   * guest's registers. Only for ring3's own needs (mmap, munmap, mprotect, setitimer, …).
   *
   * @param nr x86-64 system call number
   * @param args up to six arguments
   * @returns the raw return value (negative errno on failure)
   */
  inject(nr: number, ...args: (number | bigint)[]): bigint {
    const { libc, pid, regs } = this;
    this.injected++;
    this.loadRegs();
    this.#saved.copyFrom(regs);
    const argSlots = [REG.rdi, REG.rsi, REG.rdx, REG.r10, REG.r8, REG.r9];
    regs.set64(REG.rip, STUB.GADGET);
    regs.set32(REG.cs, HOST_SELECTOR.CS64);
    regs.set32(REG.ss, HOST_SELECTOR.DS);
    regs.set32(REG.rax, nr);
    regs.set64(REG.orig_rax, -1n);
    args.forEach((a, i) => regs.set64(argSlots[i], BigInt(a)));
    this.#setRegs();
    libc.ptrace_int(PTRACE.CONT, pid, 0n, 0n);
    let result: bigint | undefined;
    for (let guard = 0; guard < 64 && result === undefined; guard++) {
      const kind = this.#wait();
      if (kind === StopKind.Gone) {
        throw new GuestProcessGoneError(`injected syscall ${nr}`, this.stop.exitStatus);
      }
      if (kind === StopKind.Fault && this.stop.signal === SIG.TRAP) {
        const rip = this.regs.get64(REG.rip);
        if (rip !== STUB.GADGET + 3n) {
          throw new HostError(
            "injected syscall",
            0,
            `trap at 0x${rip.toString(16)}, not the gadget`,
          );
        }
        result = BigInt.asIntN(64, this.regs.get64(REG.rax));
        break;
      }
      if (kind === StopKind.Fault) {
        throw new HostError(
          "injected syscall",
          0,
          `signal ${this.stop.signal} at 0x${
            this.regs.get64(REG.rip).toString(16)
          } during syscall ${nr}`,
        );
      }
      // A timer signal or interrupt arrived meanwhile: keep going, the clock reads CPU time.
      libc.ptrace_int(PTRACE.CONT, pid, 0n, 0n);
    }
    if (result === undefined) {
      throw new HostError("injected syscall", 0, `syscall ${nr} did not finish`);
    }
    regs.copyFrom(this.#saved);
    this.#setRegs();
    this.#regsLoaded = true;
    return result;
  }

  /**
   * Copies bytes into the guest process's address space (for injected syscall arguments).
   *
   * @param address host-virtual address in the guest process
   * @param data bytes to write
   */
  writeMemory(address: bigint, data: Uint8Array<ArrayBuffer>): void {
    const local = new BigUint64Array([
      BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(data))),
      BigInt(data.length),
    ]);
    const remote = new BigUint64Array([address, BigInt(data.length)]);
    const n = this.libc.process_vm_writev(
      this.pid,
      new Uint8Array(local.buffer),
      1n,
      new Uint8Array(remote.buffer),
      1n,
      0n,
    );
    if (Number(n) !== data.length) {
      throw hostError(
        this.libc,
        "process_vm_writev",
        `${data.length} bytes at 0x${address.toString(16)}`,
      );
    }
  }

  /**
   * Copies the x87/SSE state (the 512-byte FXSAVE area) from this process to another, when
   * the vCPU moves between host processes.
   *
   * @param to the process that runs the vCPU next
   */
  transferFpuTo(to: PtraceProcess): void {
    const buf = this.#fpregs;
    if (this.libc.ptrace_ptr(PTRACE.GETFPREGS, this.pid, null, this.#fpregsPtr) !== 0) {
      throw this.#requestFailed("ptrace(PTRACE_GETFPREGS)", `pid ${this.pid}`);
    }
    to.#fpregs.set(buf);
    if (to.libc.ptrace_ptr(PTRACE.SETFPREGS, to.pid, null, to.#fpregsPtr) !== 0) {
      throw to.#requestFailed("ptrace(PTRACE_SETFPREGS)", `pid ${to.pid}`);
    }
  }

  /** Asks a running guest to stop (PTRACE_INTERRUPT); the next {@link run} wait sees it. */
  interrupt(): void {
    this.libc.ptrace_int(PTRACE.INTERRUPT, this.pid, 0n, 0n);
  }

  /**
   * CPU time the guest process has used, user and system, in nanoseconds.
   *
   * @returns nanoseconds
   */
  cpuTimeNs(): number {
    if (this.#gone) return 0;
    if (this.libc.clock_gettime(this.#cpuClock, this.#timespecPtr) !== 0) return 0;
    return Number(this.#timespec[0]) * 1e9 + Number(this.#timespec[1]);
  }

  /** Kills and reaps the process. Idempotent. */
  kill(): void {
    if (this.#gone) return;
    this.#gone = true;
    killAndReap(this.libc, this.pid);
  }
}

/**
 * Pins the calling thread (and the processes it spawns afterwards) to one CPU.
 *
 * @param libc bound symbols
 * @param cpu CPU number
 */
export function pinCallingThread(libc: LibcSymbols, cpu: number): void {
  const mask = new Uint8Array(128);
  mask[cpu >> 3] = 1 << (cpu & 7);
  if (libc.sched_setaffinity(0, 128n, mask) !== 0) {
    throw hostError(libc, "sched_setaffinity", `cpu ${cpu}`);
  }
}

/**
 * The CPUs this process may run on.
 *
 * @param libc bound symbols
 * @returns CPU numbers
 */
export function allowedCpus(libc: LibcSymbols): number[] {
  const mask = new Uint8Array(128);
  if (libc.sched_getaffinity(0, 128n, mask) !== 0) return [0];
  const cpus: number[] = [];
  for (let i = 0; i < 1024; i++) if (mask[i >> 3] & (1 << (i & 7))) cpus.push(i);
  return cpus;
}

/**
 * The guest process ended while the tracer was working on it (running a host syscall in it,
 * reading its registers): a SIGKILL from outside, the fault plan's kill-guest. The guest died;
 * the host did not fail.
 */
export class GuestProcessGoneError extends HostError {
  override name = "GuestProcessGoneError";
  /**
   * @param call what the tracer was doing (an injected syscall, a ptrace request)
   * @param exitStatus the process's exit status, or -signal
   */
  constructor(call: string, readonly exitStatus: number) {
    super(
      call,
      0,
      `guest process ended (${exitStatus < 0 ? `signal ${-exitStatus}` : `status ${exitStatus}`})`,
    );
  }
}
