/**
 * What a disk device sees of its storage: sectors of 512 bytes, read and written by requests
 * that complete later through a callback. The machine builds backends from host files
 * (runtime/disk/); device tests use memory. A backend never calls back from inside the call
 * that started a request, so a device may finish its own bookkeeping first.
 *
 * @module
 */

/** Bytes in one sector: every backend and device here uses 512-byte logical sectors. */
export const SECTOR_SIZE = 512;

/** How a request ended. `data` carries the sectors of a successful read. */
export type BlockResult =
  | { ok: true; data?: Uint8Array }
  | {
    ok: false;
    /** The first sector that could not be transferred (the drive reports it to the guest). */
    sector: number;
    /** Why, for logs. */
    message: string;
  };

/** A sector store behind a disk device. */
export interface BlockBackend {
  /** Size in sectors. */
  readonly sectorCount: number;
  /**
   * Reads `count` sectors from `lba`.
   *
   * @param lba first sector
   * @param count number of sectors (at most {@link MAX_REQUEST_SECTORS})
   * @param done called once with the data or the failure
   */
  read(lba: number, count: number, done: (result: BlockResult) => void): void;
  /**
   * Writes whole sectors from `lba`.
   *
   * @param lba first sector
   * @param data a multiple of {@link SECTOR_SIZE} bytes, at most {@link MAX_REQUEST_SECTORS}
   * @param done called once when the data reached the store (or failed)
   */
  write(lba: number, data: Uint8Array, done: (result: BlockResult) => void): void;
  /**
   * Makes completed writes durable (fsync for a write-through file; nothing for an overlay).
   *
   * @param done called once when done
   */
  flush(done: (result: BlockResult) => void): void;
}

/** The largest request a device issues: 256 sectors, one LBA28 command's worth (128 KiB). */
export const MAX_REQUEST_SECTORS = 256;

/**
 * A backend in memory whose requests complete when {@link MemoryBlockBackend.complete} is
 * called: for device tests, which decide when host I/O finishes.
 */
export class MemoryBlockBackend implements BlockBackend {
  /** Sectors written so far (sparse: a huge disk costs nothing until used). */
  readonly #sectors = new Map<number, Uint8Array>();
  readonly #queue: (() => void)[] = [];
  /** Requests seen, for tests: "read 0+1", "write 5+2", "flush". */
  readonly requests: string[] = [];

  /** @param sectorCount size of the zero-filled store */
  constructor(readonly sectorCount: number) {}

  /** Stores whole sectors at once (test setup). */
  put(lba: number, data: Uint8Array): void {
    for (let i = 0; i * SECTOR_SIZE < data.length; i++) {
      this.#sectors.set(lba + i, data.slice(i * SECTOR_SIZE, (i + 1) * SECTOR_SIZE));
    }
  }

  /** Reads sectors at once (test checks). */
  get(lba: number, count: number): Uint8Array {
    const out = new Uint8Array(count * SECTOR_SIZE);
    for (let i = 0; i < count; i++) {
      const s = this.#sectors.get(lba + i);
      if (s) out.set(s, i * SECTOR_SIZE);
    }
    return out;
  }

  read(lba: number, count: number, done: (result: BlockResult) => void): void {
    this.requests.push(`read ${lba}+${count}`);
    this.#queue.push(() => done({ ok: true, data: this.get(lba, count) }));
  }

  write(lba: number, data: Uint8Array, done: (result: BlockResult) => void): void {
    this.requests.push(`write ${lba}+${data.length / SECTOR_SIZE}`);
    const copy = data.slice();
    this.#queue.push(() => {
      this.put(lba, copy);
      done({ ok: true });
    });
  }

  flush(done: (result: BlockResult) => void): void {
    this.requests.push("flush");
    this.#queue.push(() => done({ ok: true }));
  }

  /** Requests started and not completed yet. */
  get pending(): number {
    return this.#queue.length;
  }

  /**
   * Completes the requests started so far, oldest first.
   *
   * @returns how many completed
   */
  complete(): number {
    const q = this.#queue.splice(0);
    for (const f of q) f();
    return q.length;
  }
}
