/**
 * A machine's disks: host files behind fault layers, and the "disk" kind of timeline event.
 * The machine builds one of these, hands {@link MachineDisks.backend} to the board's ATA
 * channels, polls it between guest stops and waits on it when idle.
 *
 * @module
 */
import type { BlockBackend } from "../devices/block_backend.ts";
import type { DeviceClock } from "../devices/device_clock.ts";
import type { DiskFile } from "./disk_io_protocol.ts";
import { describeRule, DiskFaults, parseDiskFault } from "./disk_faults.ts";
import { DiskFileError, HostDisks } from "./host_disks.ts";

/** Host milliseconds an idle guest waits for one host disk request before its time moves on. */
export const HOST_IO_PATIENCE_MS = 10_000;

/** Every disk of a machine. */
export class MachineDisks {
  readonly #host: HostDisks | null;
  readonly #faults = new Map<number, DiskFaults>();
  readonly #backends = new Map<number, BlockBackend>();

  /**
   * @param files the disks
   * @param port the channel to the disk I/O Worker (required when there are disks)
   * @param clock guest time
   * @param log fired faults, for the event log
   * @param patienceMs see {@link MachineDisks.busy}
   * @throws {DiskFileError} for a file that cannot be used
   */
  constructor(
    files: DiskFile[],
    port: MessagePort | undefined,
    clock: DeviceClock,
    private readonly log: (detail: string) => void,
    private readonly patienceMs = HOST_IO_PATIENCE_MS,
  ) {
    if (files.length > 0 && !port) throw new DiskFileError("disks given without a disk I/O port");
    this.#host = files.length > 0 ? new HostDisks(files, port!) : null;
    for (const f of files) {
      const faults = new DiskFaults(`disk ${f.index}`, clock, log);
      this.#faults.set(f.index, faults);
      this.#backends.set(f.index, faults.wrap(this.#host!.backend(f.index)!));
      for (const spec of f.faults ?? []) {
        const rule = parseDiskFault(spec as unknown as Record<string, unknown>);
        faults.add(rule);
        log(`disk ${f.index}: ${describeRule(rule)} (armed at boot)`);
      }
    }
  }

  /** The backend at ATA position `index` (0 primary master … 3 secondary slave). */
  backend(index: number): BlockBackend | undefined {
    return this.#backends.get(index);
  }

  /**
   * Host requests not completed yet: an idle guest waits for them before time moves on. A
   * request older than {@link HOST_IO_PATIENCE_MS} stops counting, so a wedged host file (or a
   * dead I/O Worker) cannot hold guest time still forever: the drive stays busy, the guest's own
   * timeouts and the run's limit take over.
   */
  get busy(): boolean {
    const host = this.#host;
    if (host === null || host.inFlight === 0) return false;
    if (host.oldestMs() < this.patienceMs) return true;
    if (!this.#gaveUp) {
      this.#gaveUp = true;
      this.log(`disks: host I/O outstanding for ${this.patienceMs / 1000} s; guest time moves on`);
    }
    return false;
  }

  #gaveUp = false;

  /** Delivers host completions (cheap when nothing is in flight). */
  poll(): void {
    this.#host?.poll();
  }

  /**
   * Waits in host time for a host completion.
   *
   * @param timeoutMs at most this long
   */
  wait(timeoutMs: number): void {
    this.#host?.wait(timeoutMs);
  }

  /** Host I/O counters. */
  get stats(): { reads: number; writes: number; bytesRead: number; bytesWritten: number } {
    return this.#host?.stats ?? { reads: 0, writes: 0, bytesRead: 0, bytesWritten: 0 };
  }

  /**
   * Applies a `{ kind: "disk" }` timeline event: `{ disk = 0, action, sector, count = 1,
   * times = 1 | "always", delay (delay-*), keep (tear-write) }`, or `action: "clear"`.
   *
   * @param e the event's parameters
   * @returns what was armed, for the event log
   * @throws {RangeError} for a bad event
   */
  applyEvent(e: Record<string, unknown>): string {
    const disk = Number(e.disk ?? 0);
    const faults = this.#faults.get(disk);
    if (!faults) {
      throw new RangeError(
        `no disk ${e.disk ?? 0} (disks: ${[...this.#faults.keys()].join(", ") || "none"})`,
      );
    }
    const action = String(e.action);
    if (action === "clear") {
      faults.clear();
      return `disk ${disk}: faults cleared`;
    }
    const rule = parseDiskFault(e);
    faults.add(rule);
    return `disk ${disk}: ${describeRule(rule)}`;
  }

  /** Ends the I/O Worker; an overlay is dropped. */
  close(): void {
    this.#host?.close();
  }
}
