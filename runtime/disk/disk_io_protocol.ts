/**
 * The shared memory and messages between a machine's thread and its disk I/O Worker
 * (disk_io_worker.ts). Requests go by postMessage (sending needs no event loop); completions
 * come back through this SharedArrayBuffer, because the machine's thread never returns to its
 * event loop while the guest runs (see runtime/mailbox.ts for the numbers).
 *
 * Layout: Int32 words — [0] a completion sequence the machine waits on, then per disk
 * {@link DISK_WORDS} words: state, result, failing sector (low, high); then per disk a data
 * area of {@link DATA_BYTES} bytes that carries the sectors of a read or a write.
 *
 * @module
 */
import { MAX_REQUEST_SECTORS, SECTOR_SIZE } from "../devices/block_backend.ts";
import type { DiskFaultSpec } from "./disk_faults.ts";

/** Disks one machine can have: the four ATA positions. */
export const MAX_DISKS = 4;
/** Index of the completion sequence word. */
export const SEQ = 0;
/** Words per disk. */
export const DISK_WORDS = 4;
/** Per-disk word offsets. */
export const WORD = { STATE: 0, RESULT: 1, SECTOR_LO: 2, SECTOR_HI: 3 } as const;
/** Values of the state word. */
export const STATE = { IDLE: 0, BUSY: 1, DONE: 2 } as const;
/** Result codes. */
export const RESULT = { OK: 0, IO_ERROR: 1 } as const;
/** Bytes of the header (word area), a multiple of 8. */
export const HEADER_BYTES = 4 * (1 + MAX_DISKS * DISK_WORDS + 3);
/** Bytes of each disk's data area. */
export const DATA_BYTES = MAX_REQUEST_SECTORS * SECTOR_SIZE;
/** Bytes of the whole shared buffer. */
export const SHARED_BYTES = HEADER_BYTES + MAX_DISKS * DATA_BYTES;

/** Index of disk `d`'s word `w`. */
export function wordOf(d: number, w: number): number {
  return 1 + d * DISK_WORDS + w;
}

/** Byte offset of disk `d`'s data area. */
export function dataOffset(d: number): number {
  return HEADER_BYTES + d * DATA_BYTES;
}

/** A host file as one disk. */
export interface DiskFile {
  /** Position 0..3: primary master, primary slave, secondary master, secondary slave. */
  index: number;
  path: string;
  /** Writes go to the file; otherwise to an overlay in memory that dies with the machine. */
  writeThrough: boolean;
  /** Faults armed from power-on. */
  faults?: DiskFaultSpec[];
}

/** Machine → I/O Worker. */
export type ToDiskWorker =
  | { type: "open"; shared: SharedArrayBuffer; disks: DiskFile[] }
  | { type: "read"; disk: number; lba: number; count: number }
  | { type: "write"; disk: number; lba: number; count: number }
  | { type: "flush"; disk: number }
  | { type: "close" };

/** The disk I/O Worker and the port the machine's thread talks to it through. */
export interface DiskIoLink {
  /** The Worker (its owner terminates it when the machine has ended). */
  worker: Worker;
  /** The machine's end of the channel; transfer it to the machine's thread. */
  port: MessagePort;
}

/**
 * Starts a disk I/O Worker. Call it on a thread with a running event loop (the scenario's):
 * the machine's thread gets {@link DiskIoLink.port}.
 *
 * @returns the Worker and the machine's port
 */
export function startDiskIo(): DiskIoLink {
  const worker = new Worker(new URL("./disk_io_worker.ts", import.meta.url), {
    type: "module",
    name: "ring3 disk I/O",
  });
  const channel = new MessageChannel();
  worker.postMessage({ port: channel.port1 }, [channel.port1]);
  return { worker, port: channel.port2 };
}
