/**
 * The disks of one machine as the machine's thread sees them: a {@link BlockBackend} per host
 * file, served by a disk I/O Worker (disk_io_worker.ts) so that host file I/O never blocks the
 * tracer. Completions are noticed by {@link HostDisks.poll}, which the machine calls between
 * guest stops; an idle machine waits for them with {@link HostDisks.wait}.
 *
 * @module
 */
import {
  type BlockBackend,
  type BlockResult,
  MAX_REQUEST_SECTORS,
  SECTOR_SIZE,
} from "../devices/block_backend.ts";
import {
  dataOffset,
  type DiskFile,
  HEADER_BYTES,
  MAX_DISKS,
  RESULT,
  SEQ,
  SHARED_BYTES,
  STATE,
  type ToDiskWorker,
  WORD,
  wordOf,
} from "./disk_io_protocol.ts";

/** A disk file that cannot be used. */
export class DiskFileError extends Error {
  override name = "DiskFileError";
}

interface Pending {
  kind: "read" | "write" | "flush";
  lba: number;
  count: number;
  done: (r: BlockResult) => void;
  /** A write queued behind another request: its data, until it goes to the shared area. */
  data?: Uint8Array;
  /** Host time (performance.now()) it went to the Worker. */
  sentMs?: number;
}

/** Every disk of a machine and the Worker that does their host I/O. */
export class HostDisks {
  readonly #port: MessagePort;
  readonly #shared = new SharedArrayBuffer(SHARED_BYTES);
  readonly #words = new Int32Array(this.#shared, 0, HEADER_BYTES / 4);
  /** Per disk: the request the Worker has, then the ones waiting behind it. */
  readonly #queues = new Map<number, Pending[]>();
  readonly #backends = new Map<number, BlockBackend>();
  #inFlight = 0;
  /** Host-side counters for the bench and the design note. */
  readonly stats = { reads: 0, writes: 0, bytesRead: 0, bytesWritten: 0 };

  /**
   * Checks the files (their size is read now, so a missing file fails the boot) and has the
   * I/O Worker open them.
   *
   * @param files the disks, by ATA position
   * @param port the machine's end of the channel to the I/O Worker ({@link startDiskIo})
   * @throws {DiskFileError} for a missing file, a position used twice or out of range
   */
  constructor(files: DiskFile[], port: MessagePort) {
    this.#port = port;
    for (const f of files) {
      if (!Number.isInteger(f.index) || f.index < 0 || f.index >= MAX_DISKS) {
        throw new DiskFileError(`disk position ${f.index} does not exist (0..${MAX_DISKS - 1})`);
      }
      if (this.#backends.has(f.index)) {
        throw new DiskFileError(`two disks at position ${f.index}`);
      }
      let size: number;
      try {
        const st = Deno.statSync(f.path);
        if (!st.isFile) throw new Error("not a regular file");
        size = st.size;
      } catch (e) {
        throw new DiskFileError(`disk ${f.index}: cannot use ${f.path}: ${(e as Error).message}`);
      }
      if (size < SECTOR_SIZE) {
        throw new DiskFileError(`disk ${f.index}: ${f.path} is smaller than one sector`);
      }
      this.#queues.set(f.index, []);
      this.#backends.set(f.index, this.#backend(f.index, Math.ceil(size / SECTOR_SIZE)));
    }
    this.#port.postMessage({ type: "open", shared: this.#shared, disks: files });
  }

  /** The backend of the disk at ATA position `index`, if there is one. */
  backend(index: number): BlockBackend | undefined {
    return this.#backends.get(index);
  }

  /** Requests the Worker has not completed (or that were not noticed yet). */
  get inFlight(): number {
    return this.#inFlight;
  }

  /** Host milliseconds the oldest request in flight has been waiting (0 when none). */
  oldestMs(now = performance.now()): number {
    let oldest = 0;
    for (const q of this.#queues.values()) {
      if (q[0]?.sentMs !== undefined) oldest = Math.max(oldest, now - q[0].sentMs);
    }
    return oldest;
  }

  #backend(index: number, sectorCount: number): BlockBackend {
    const submit = (p: Pending) => {
      const q = this.#queues.get(index)!;
      q.push(p);
      if (q.length === 1) this.#send(index, p);
    };
    return {
      sectorCount,
      read: (lba, count, done) => {
        checkRequest(lba, count, sectorCount);
        submit({ kind: "read", lba, count, done });
      },
      write: (lba, data, done) => {
        const count = data.length / SECTOR_SIZE;
        checkRequest(lba, count, sectorCount);
        // Copied now: the device may reuse its buffer once this returns.
        const p: Pending = { kind: "write", lba, count, done };
        const q = this.#queues.get(index)!;
        if (q.length === 0) new Uint8Array(this.#shared, dataOffset(index), data.length).set(data);
        else p.data = data.slice();
        q.push(p);
        if (q.length === 1) this.#send(index, p);
      },
      flush: (done) => submit({ kind: "flush", lba: 0, count: 0, done }),
    };
  }

  #send(index: number, p: Pending): void {
    if (p.data) new Uint8Array(this.#shared, dataOffset(index), p.data.length).set(p.data);
    p.data = undefined;
    p.sentMs = performance.now();
    Atomics.store(this.#words, wordOf(index, WORD.STATE), STATE.BUSY);
    this.#inFlight++;
    const m: ToDiskWorker = p.kind === "flush"
      ? { type: "flush", disk: index }
      : { type: p.kind, disk: index, lba: p.lba, count: p.count };
    this.#port.postMessage(m);
  }

  /**
   * Delivers the completions the Worker has posted (one atomic load per disk).
   *
   * @returns how many requests completed
   */
  poll(): number {
    if (this.#inFlight === 0) return 0;
    let n = 0;
    for (const [index, q] of this.#queues) {
      if (q.length === 0) continue;
      if (Atomics.load(this.#words, wordOf(index, WORD.STATE)) !== STATE.DONE) continue;
      const p = q.shift()!;
      this.#inFlight--;
      n++;
      const ok = this.#words[wordOf(index, WORD.RESULT)] === RESULT.OK;
      const sector = (this.#words[wordOf(index, WORD.SECTOR_LO)] >>> 0) +
        this.#words[wordOf(index, WORD.SECTOR_HI)] * 2 ** 32;
      let result: BlockResult;
      if (!ok) {
        result = { ok: false, sector, message: `host I/O error on disk ${index}` };
      } else if (p.kind === "read") {
        const bytes = p.count * SECTOR_SIZE;
        result = { ok: true, data: new Uint8Array(this.#shared, dataOffset(index), bytes).slice() };
        this.stats.reads++;
        this.stats.bytesRead += bytes;
      } else {
        if (p.kind === "write") {
          this.stats.writes++;
          this.stats.bytesWritten += p.count * SECTOR_SIZE;
        }
        result = { ok: true };
      }
      Atomics.store(this.#words, wordOf(index, WORD.STATE), STATE.IDLE);
      if (q.length > 0) this.#send(index, q[0]);
      p.done(result);
    }
    return n;
  }

  /**
   * Blocks the calling thread (a Worker) until the I/O Worker completes something or
   * `timeoutMs` passes; then delivers completions.
   *
   * @param timeoutMs host milliseconds
   * @returns how many requests completed
   */
  wait(timeoutMs: number): number {
    const seq = Atomics.load(this.#words, SEQ);
    const n = this.poll();
    if (n > 0 || this.#inFlight === 0) return n;
    Atomics.wait(this.#words, SEQ, seq, timeoutMs);
    return this.poll();
  }

  /** Ends the I/O Worker: an overlay dies with it, unwritten; the base files are closed. */
  close(): void {
    this.#port.postMessage({ type: "close" });
    this.#port.close();
  }
}

function checkRequest(lba: number, count: number, sectorCount: number): void {
  if (count < 1 || count > MAX_REQUEST_SECTORS || lba < 0 || lba + count > sectorCount) {
    throw new RangeError(`disk request ${lba}+${count} outside 0..${sectorCount} or too long`);
  }
}
