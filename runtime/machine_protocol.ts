/**
 * Messages between a scenario's thread and the Worker that runs one machine (and traces its
 * guest process). Plain data only: they are structured-cloned.
 *
 * @module
 */
import type { RunResult } from "./run_result.ts";
import type { FaultPlan } from "./fault_plan.ts";
import type { StubConfig } from "./stub_area.ts";
import type { DiskFile } from "./disk/disk_io_protocol.ts";
import type { ConsoleLimits } from "./console_watch.ts";
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
  /** Identical consecutive exceptions that end the run as a storm (default 1000). */
  exceptionStormLimit?: number;
  /** Failure patterns and the flood limit of the console. */
  console: ConsoleLimits;
  /** Faults to inject (see fault_plan.ts); default none. */
  faults?: FaultPlan;
  /**
   * How supervisor pages are kept from guest user mode (seed 002 §5.1): "process" (default) runs
   * user mode in a second host process where they are never mapped; "unmap" keeps one process
   * and unmaps them on every switch to user mode.
   */
  kernelProtection?: KernelProtection;
  /** Seed of every random choice the fault plan makes. */
  seed?: number;
  /** Disks on the ATA channels (default none). */
  disks?: DiskFile[];
  /** The channel to the disk I/O Worker, when there are disks (transferred, not cloned). */
  diskPort?: MessagePort;
  /** Backends of COM2..COM4, by line number; a line not named here is unconnected. */
  serial?: Partial<Record<2 | 3 | 4, SerialBackendSpec>>;
  /**
   * Sites the static rewriter replaced with int3, with their original bytes (fast-form slow
   * paths included: their int3s sit in the stub window).
   */
  patches: { vaddr: number; bitness: number; bytes: Uint8Array }[];
  /** Network cards (NE2000 on PCI), each on a network; default none. */
  nics?: NicConfig[];
  /** The fast form's stub window, when the image was rewritten in fast form. */
  stub?: StubConfig;
}

/** One network card: its address and its network's shared clock table (net/net_sync.ts). */
export interface NicConfig {
  mac: Uint8Array;
  sync: { buffer: SharedArrayBuffer; slot: number; latencyNs: number };
}

/** The two kernel-memory protection designs; see docs/design/2026-11-21-shadow-paging.md. */
export type KernelProtection = "process" | "unmap";

/** Scenario thread → machine Worker, once, by postMessage: build and run. */
export interface BootMessage {
  type: "boot";
  config: MachineConfig;
  /** The shared buffer of the {@link Mailbox} that carries every later {@link ToMachine}. */
  mailbox: SharedArrayBuffer;
}

/**
 * Something injected into a machine: a kind known to the machine's event registry (devices
 * register their kinds, see event_kinds.ts) and its parameters. Built in:
 * - `{ kind: "serial", text }` types on COM1;
 * - `{ kind: "irq", line: 0..15, action: "raise" | "lower" | "pulse" }` drives an ISA line;
 * - `{ kind: "spurious", irq: 7 | 15 }` makes the 8259 answer INTA with its spurious vector;
 * - `{ kind: "timer", action: "hold", for: Duration }` holds every device timer (PIT, local
 *   APIC timer, RTC) for that much guest time, then releases them (one coalesced tick);
 * - `{ kind: "timer", action: "advance", by: Duration }` jumps guest time forward;
 * - `{ kind: "keyboard", text?, chord?, intervalNs? }` types on the PS/2 keyboard, one keystroke
 *   per interval of guest time (default 10 ms);
 * - `{ kind: "disk", … }` and `{ kind: "nic", … }` arm disk faults and drop, corrupt or inject
 *   frames (see the guide).
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
  /** "skipped": the backend cannot do it (not faked); "rejected": bad kind or parameters. */
  outcome: "applied" | "skipped" | "rejected";
}

/** Scenario thread → running machine, through the mailbox (see mailbox.ts for why). */
export type ToMachine =
  | { type: "input"; bytes: Uint8Array }
  /** Bytes typed on COM2..COM4 backed by "console". */
  | { type: "serial-input"; line: number; bytes: Uint8Array }
  | { type: "deadline"; id: number; afterNs: number }
  | { type: "cancel-deadline"; id: number }
  | { type: "stop"; reason: string }
  /** A frame for network card `nic`, arriving at guest time `atNs`. */
  | { type: "frame"; nic: number; bytes: Uint8Array; atNs: number }
  /**
   * An event on the machine's timeline, at a guest time since boot (ns), that long after now
   * (`relative`), or now (null). `id` names the answer (a FromMachine "event").
   */
  | { type: "event"; id: number; atNs: number | null; relative?: boolean; event: MachineEvent }
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
  /** The timeline event `id` was applied (or skipped or rejected). */
  | { type: "event"; id: number; applied: AppliedEvent }
  | { type: "log"; message: string }
  /** Network card `nic` sent a frame at guest time `guestNs`. */
  | { type: "frame"; nic: number; bytes: Uint8Array; guestNs: number }
  | { type: "ended"; result: RunResult };
