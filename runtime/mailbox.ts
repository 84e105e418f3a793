/**
 * A one-way message queue in a SharedArrayBuffer, from the scenario's thread to a machine's
 * Worker.
 *
 * Why not postMessage: the machine's thread spends its life in synchronous ptrace round trips.
 * To receive a posted message it must return to its event loop, and that costs: setTimeout(0)
 * in a Worker takes about 2.2 ms, and yielding through a MessageChannel (26 µs) starves the
 * Worker's own inbox for 70 to 430 ms (both measured, Deno 2.9.6). Polling this queue costs one
 * atomic load per slice, and an idle machine blocks on it with Atomics.wait.
 *
 * Layout: three Int32 counters (bytes written, bytes read, a notification sequence), then a
 * ring of records, each a u32 length and that many bytes of JSON.
 *
 * @module
 */

const HEADER = 16;
const WRITTEN = 0;
const READ = 1;
const SEQ = 2;

/** Raised when the consumer has fallen more than the whole ring behind. */
export class MailboxFullError extends Error {
  override name = "MailboxFullError";
}

/** One side of a mailbox (either side may construct it from the shared buffer). */
export class Mailbox<T> {
  readonly #counters: Int32Array;
  readonly #ring: Uint8Array;
  readonly #capacity: number;

  /**
   * Makes a new mailbox.
   *
   * @param capacity ring size in bytes (a power of two)
   * @returns the mailbox
   */
  static create<T>(capacity = 1 << 20): Mailbox<T> {
    if (capacity & (capacity - 1)) throw new RangeError("capacity must be a power of two");
    return new Mailbox<T>(new SharedArrayBuffer(HEADER + capacity));
  }

  /** @param buffer the shared memory, from {@link create} on the other thread */
  constructor(readonly buffer: SharedArrayBuffer) {
    this.#counters = new Int32Array(buffer, 0, 4);
    this.#ring = new Uint8Array(buffer, HEADER);
    this.#capacity = this.#ring.length;
  }

  /**
   * Appends a message and wakes a waiting consumer.
   *
   * @param message plain data (JSON-serialisable; Uint8Array is carried as a number array)
   * @throws {MailboxFullError} when the consumer is more than the ring behind
   */
  post(message: T): void {
    const data = new TextEncoder().encode(
      JSON.stringify(message, (_k, v) => v instanceof Uint8Array ? { $bytes: [...v] } : v),
    );
    const need = 4 + data.length;
    const written = Atomics.load(this.#counters, WRITTEN) >>> 0;
    const read = Atomics.load(this.#counters, READ) >>> 0;
    if (((written - read) >>> 0) + need > this.#capacity) {
      throw new MailboxFullError(`machine mailbox full (${this.#capacity} bytes unread)`);
    }
    const len = new Uint8Array(4);
    new DataView(len.buffer).setUint32(0, data.length, true);
    this.#copyIn(written, len);
    this.#copyIn(written + 4, data);
    Atomics.store(this.#counters, WRITTEN, (written + need) | 0);
    Atomics.add(this.#counters, SEQ, 1);
    Atomics.notify(this.#counters, SEQ);
  }

  /** Whether there is anything to read (one atomic load). */
  get pending(): boolean {
    return Atomics.load(this.#counters, WRITTEN) !== Atomics.load(this.#counters, READ);
  }

  /**
   * Takes every message posted so far.
   *
   * @returns them, oldest first
   */
  drain(): T[] {
    const out: T[] = [];
    let read = Atomics.load(this.#counters, READ) >>> 0;
    const written = Atomics.load(this.#counters, WRITTEN) >>> 0;
    const decoder = new TextDecoder();
    while (read !== written) {
      const len = new DataView(this.#copyOut(read, 4).buffer).getUint32(0, true);
      const text = decoder.decode(this.#copyOut(read + 4, len));
      out.push(
        JSON.parse(
          text,
          (_k, v) =>
            v && typeof v === "object" && Array.isArray(v.$bytes) ? new Uint8Array(v.$bytes) : v,
        ),
      );
      read = (read + 4 + len) >>> 0;
    }
    Atomics.store(this.#counters, READ, read | 0);
    return out;
  }

  /**
   * Blocks the calling thread until something is posted or `timeoutMs` passes. Only for a
   * Worker (the main thread may not block).
   *
   * @param timeoutMs host milliseconds
   */
  wait(timeoutMs: number): void {
    const seq = Atomics.load(this.#counters, SEQ);
    if (this.pending) return;
    Atomics.wait(this.#counters, SEQ, seq, timeoutMs);
  }

  #copyIn(at: number, bytes: Uint8Array): void {
    const start = at & (this.#capacity - 1);
    const first = Math.min(bytes.length, this.#capacity - start);
    this.#ring.set(bytes.subarray(0, first), start);
    if (first < bytes.length) this.#ring.set(bytes.subarray(first), 0);
  }

  #copyOut(at: number, length: number): Uint8Array {
    const out = new Uint8Array(length);
    const start = at & (this.#capacity - 1);
    const first = Math.min(length, this.#capacity - start);
    out.set(this.#ring.subarray(start, start + first));
    if (first < length) out.set(this.#ring.subarray(0, length - first), first);
    return out;
  }
}
