/**
 * How the guest clocks of machines on one network stay together (see
 * docs/design/2026-11-21-virtual-ethernet.md). Each machine runs on its own Worker with its own
 * virtual clock; a frame sent at the sender's guest time t reaches the receiver at t + latency.
 * For that to be true, a receiver must not let idle time run past a peer's clock plus the
 * latency while that peer could still send: the conservative rule of parallel discrete-event
 * simulation, with the wire latency as lookahead. Running machines are never held back.
 *
 * Shared state (one SharedArrayBuffer per network): every member's published guest time, a
 * count of frames in flight through the scenario thread, and an epoch word that members wait
 * on and that moves whenever a time or a delivery changes.
 *
 * @module
 */

/** Members one network holds. */
export const NET_MAX_MEMBERS = 32;
const INFLIGHT = 0;
const EPOCH = 1;
const HEADER_BYTES = 16;

/** A member's view of the shared clock table. */
export class NetSync {
  readonly #words: Int32Array;
  readonly #times: Float64Array;

  /**
   * @param buffer the network's shared buffer ({@link NetSync.create})
   * @param slot this member's slot, or -1 for the switch (the scenario thread)
   */
  constructor(readonly buffer: SharedArrayBuffer, readonly slot: number) {
    this.#words = new Int32Array(buffer, 0, 4);
    this.#times = new Float64Array(buffer, HEADER_BYTES, NET_MAX_MEMBERS);
  }

  /** A fresh buffer: every slot empty (+Infinity: not a member, holds nobody back). */
  static create(): SharedArrayBuffer {
    const b = new SharedArrayBuffer(HEADER_BYTES + 8 * NET_MAX_MEMBERS);
    new Float64Array(b, HEADER_BYTES, NET_MAX_MEMBERS).fill(Infinity);
    return b;
  }

  /** Guest time of member `slot` as last published (+Infinity once it left). */
  timeOf(slot: number): number {
    return this.#times[slot];
  }

  /** Publishes this member's guest time (monotonic: the clock never goes back). */
  publish(ns: number): void {
    if (this.#times[this.slot] === ns) return;
    this.#times[this.slot] = ns;
    this.#bump();
  }

  /** Sets a slot's time: 0 when a member joins, +Infinity when it leaves. */
  setTime(slot: number, ns: number): void {
    this.#times[slot] = ns;
    this.#bump();
  }

  /**
   * The latest guest time this member may idle to: the slowest other member's time plus the
   * latency; +Infinity when alone. Read before {@link inFlight}, see the design page.
   */
  idleBound(latencyNs: number): number {
    let min = Infinity;
    for (let i = 0; i < NET_MAX_MEMBERS; i++) {
      if (i !== this.slot && this.#times[i] < min) min = this.#times[i];
    }
    return min + latencyNs;
  }

  /** Frames sent and not yet in a receiver's mailbox. */
  inFlight(): number {
    return Atomics.load(this.#words, INFLIGHT);
  }

  /** A member is about to hand a frame to the switch. */
  sending(): void {
    Atomics.add(this.#words, INFLIGHT, 1);
  }

  /** The switch put a frame in every receiver's mailbox (or dropped it). */
  delivered(): void {
    Atomics.sub(this.#words, INFLIGHT, 1);
    this.#bump();
  }

  /** Waits until the epoch moves (a time, a delivery) or `timeoutMs` passes. */
  wait(timeoutMs: number): void {
    const epoch = Atomics.load(this.#words, EPOCH);
    Atomics.wait(this.#words, EPOCH, epoch, timeoutMs);
  }

  #bump(): void {
    Atomics.add(this.#words, EPOCH, 1);
    Atomics.notify(this.#words, EPOCH);
  }
}
