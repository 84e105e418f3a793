/**
 * How a run ended, as plain data: it crosses from the machine's Worker to the scenario, goes
 * into reports, and is compared across backends.
 *
 * @module
 */

/** Classes of run-ending failures. */
export type FailureKind =
  | "unsupported-instruction"
  | "invalid-instruction"
  | "unsupported-mode"
  | "triple-fault"
  | "exception-storm"
  | "unmapped-memory"
  | "host-syscall"
  | "halted"
  | "timeout"
  | "guest-died"
  | "image-error"
  | "host-error"
  | "panic"
  | "console-flood"
  | "stopped"
  /** The guest reset the machine (i8042 0xFE, 0xCF9): the run ends, as QEMU's -no-reboot. */
  | "reset";

/** A classified report of why a run ended without the guest choosing to exit. */
export interface FailureReport {
  kind: FailureKind;
  /** What happened, concretely. */
  message: string;
  /** The instruction involved, when there is one. */
  instruction?: { bytes: string; text: string };
  /** Guest EIP (hex) at the end, when known. */
  rip?: string;
  /** CPU mode at the end ("protected mode, 32-bit, CPL 0, IF=0"). */
  mode?: string;
  /** The last lines the guest printed. */
  lastConsoleLines: string[];
  /** Guest time at the end, in nanoseconds. */
  guestNs: number;
}

/** Counters of one run. */
export interface RunStats {
  /** Host round trips into the guest process. */
  resumes: number;
  /** Traps handled by the emulator, by cause. */
  trapsByCause: Record<string, number>;
  /** Virtual clock ticks (host SIGPROF stops). */
  clockTicks: number;
  /** External interrupts delivered to the guest. */
  interrupts: number;
  /** Host faults that became shadow mappings of guest pages. */
  shadowPageFills?: number;
  /** Fast-form sequences (cli, sti, pushf, popf) the trampolines ran without a trap. */
  fastPaths?: number;
  /**
   * Switches between guest kernel and user mode with paging on: host process changes, or
   * supervisor pages hidden, depending on the protection design.
   */
  privilegeSwitches?: number;
  /** Host system calls injected into the guest processes (mmap, munmap, mprotect, …). */
  hostSyscalls?: number;
  /** Guest page faults delivered (#PF), beside the shadow fills the guest never sees. */
  guestPageFaults?: number;
  /** External interrupts delivered, by vector ("0x20": n). */
  interruptsByVector?: Record<string, number>;
  /**
   * Timeline events and faults as they were applied, in guest-time order. `outcome` is
   * "skipped" for one the backend cannot do (reported, not faked) and "rejected" for bad
   * parameters or an unknown kind; absent means applied.
   */
  events?: {
    guestNs: number;
    kind: string;
    detail: string;
    outcome?: "applied" | "skipped" | "rejected";
  }[];
  /** Guest time at the end, nanoseconds. */
  guestNs: number;
  /** Host wall time from boot to end, milliseconds. */
  hostMs: number;
}

/**
 * Statistics of a run that counted nothing: a boot that failed before the guest ran, or a
 * backend that does not count traps.
 *
 * @param overrides the figures that are known
 * @returns the statistics
 */
export function emptyStats(overrides: Partial<RunStats> = {}): RunStats {
  return {
    resumes: 0,
    trapsByCause: {},
    clockTicks: 0,
    interrupts: 0,
    guestNs: 0,
    hostMs: 0,
    ...overrides,
  };
}

/** The end of a run. */
export type RunResult =
  | { outcome: "exit"; exitCode: number; stats: RunStats }
  | { outcome: "failure"; failure: FailureReport; stats: RunStats };

/**
 * Formats a failure report for people.
 *
 * @param f the report
 * @returns several lines of text
 */
export function formatFailure(f: FailureReport): string {
  const lines = [`${f.kind}: ${f.message}`];
  if (f.instruction) lines.push(`  instruction: ${f.instruction.text}  [${f.instruction.bytes}]`);
  if (f.rip) lines.push(`  rip: 0x${f.rip}`);
  if (f.mode) lines.push(`  mode: ${f.mode}`);
  lines.push(`  guest time: ${(f.guestNs / 1e6).toFixed(1)} ms`);
  if (f.lastConsoleLines.length) {
    lines.push("  last console lines:");
    for (const l of f.lastConsoleLines) lines.push(`    | ${l}`);
  }
  return lines.join("\n");
}
