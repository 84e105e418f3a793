/**
 * Messages between a scenario's thread and the Worker that runs one machine (and traces its
 * guest process). Plain data only: they are structured-cloned.
 *
 * @module
 */
import type { RunResult } from "./run_result.ts";
import type { FaultPlan } from "./fault_plan.ts";
import type { ScreenSnapshot } from "./screen/text_screen.ts";

/**
 * What backs a serial line besides COM1 (the console): the scenario ("console"), a host pty a
 * person attaches to, a file that receives the output, or QEMU-style FIFOs `PATH.in` (guest
 * input) and `PATH.out` (guest output).
 */
export type SerialBackendSpec =
  | "console"
  | { pty: true }
  | { file: string }
  | { pipe: string };

/** What a machine is made of, as the Worker needs it. */
export interface MachineConfig {
  /** The kernel image's bytes. */
  kernel: Uint8Array<ArrayBuffer>;
  /** The path the image came from (Multiboot passes it as the start of the command line, as QEMU does). */
  kernelPath: string;
  /** Guest RAM in bytes. */
  memoryBytes: number;
  /** Kernel command line after the path. */
  cmdline: string;
  /** Guest-time limit for the whole run, nanoseconds. */
  timeoutNs: number;
  /** CPU to pin the tracer and the guest to; undefined leaves placement to the host. */
  cpu?: number;
  /** How many console lines a failure report keeps. */
  reportLines: number;
  /**
   * Pace idle guest time to host time while the scenario is not blocked on guest time (an
   * interactive console): an idle guest waits for the host clock instead of racing ahead.
   */
  paceIdle?: boolean;
  /** Faults to inject (see fault_plan.ts); default none. */
  faults?: FaultPlan;
  /** Seed of every random choice the fault plan makes. */
  seed?: number;
  /** Backends of COM2..COM4, by line number; a line not named here is unconnected. */
  serial?: Partial<Record<2 | 3 | 4, SerialBackendSpec>>;
  /** Sites the static rewriter replaced with int3, with their original bytes. */
  patches: { vaddr: number; bitness: number; bytes: Uint8Array }[];
}

/** Scenario thread → machine Worker, once, by postMessage: build and run. */
export interface BootMessage {
  type: "boot";
  config: MachineConfig;
  /** The shared buffer of the {@link Mailbox} that carries every later {@link ToMachine}. */
  mailbox: SharedArrayBuffer;
}

/**
 * Something injected into a machine: a kind known to the machine's event registry (devices
 * register their kinds) and its parameters. Built in: `{ kind: "serial", text }` types on COM1;
 * `{ kind: "irq", line: 0..15, action: "raise" | "lower" | "pulse" }` drives an ISA interrupt
 * line (a pulse on a line with no pending cause is a spurious interrupt);
 * `{ kind: "keyboard", text?, chord?, intervalNs? }` types on the PS/2 keyboard, one keystroke
 * per interval of guest time (default 10 ms).
 */
export interface MachineEvent {
  kind: string;
  [parameter: string]: unknown;
}

/** An event as the machine applied it. */
export interface AppliedEvent {
  guestNs: number;
  kind: string;
  detail: string;
}

/** Scenario thread → running machine, through the mailbox (see mailbox.ts for why). */
export type ToMachine =
  | { type: "input"; bytes: Uint8Array }
  /** Bytes typed on COM2..COM4 backed by "console". */
  | { type: "serial-input"; line: number; bytes: Uint8Array }
  | { type: "deadline"; id: number; afterNs: number }
  | { type: "cancel-deadline"; id: number }
  | { type: "stop"; reason: string }
  /** An event on the machine's timeline, at a guest time since boot (ns) or now (null). */
  | { type: "event"; atNs: number | null; event: MachineEvent }
  /** The scenario now waits for the run to end: idle guest time may run to the limit. */
  | { type: "waiting" };

/** Machine Worker → scenario thread. */
export type FromMachine =
  /** `ptys`: the slave path of each pty-backed line, by line number. */
  | { type: "started"; pid: number; ptys: Record<number, string> }
  | { type: "console"; bytes: Uint8Array; guestNs: number }
  | { type: "serial"; line: number; bytes: Uint8Array; guestNs: number }
  /** The text screen changed. */
  | { type: "screen"; screen: ScreenSnapshot; guestNs: number }
  | { type: "deadline"; id: number; guestNs: number }
  | { type: "log"; message: string }
  | { type: "ended"; result: RunResult };
