/**
 * A machine's side of virtual Ethernet, on its Worker: the cards' frames out to the scenario
 * thread's switch and back in at their arrival time, the "nic" timeline events (drop, corrupt,
 * inject), and the rule that keeps an idle machine's clock within one wire latency of its
 * peers (runtime/net/net_sync.ts, docs/design/2026-11-21-virtual-ethernet.md).
 *
 * @module
 */
import type { DeviceClock } from "./devices/device_clock.ts";
import type { Ne2000 } from "./devices/ne2000.ts";
import type { MachineEvent, NicConfig } from "./machine_protocol.ts";
import type { NicOptions } from "./pci_platform.ts";
import { NetSync } from "./net/net_sync.ts";

/** Where the machine sends frames (to the Worker's parent). */
export type FrameSink = (nic: number, frame: Uint8Array, guestNs: number) => void;

interface Rule {
  action: "drop" | "corrupt";
  left: number;
  offset: number | null;
}

/** The cards of one machine and their link to the switch. */
export class MachineNetwork {
  readonly #clock: DeviceClock;
  readonly #configs: NicConfig[];
  readonly #sink: FrameSink;
  readonly #syncs: { sync: NetSync; latencyNs: number }[];
  #nics: Ne2000[] = [];
  /** Receive-side rules per card, applied in order. */
  readonly #rx: Rule[][];
  /** Transmit-side drop counts per card. */
  readonly #txDrop: number[];

  /**
   * @param configs the cards from the machine's config
   * @param clock the machine's guest clock
   * @param sink where transmitted frames go
   */
  constructor(configs: NicConfig[], clock: DeviceClock, sink: FrameSink) {
    this.#clock = clock;
    this.#configs = configs;
    this.#sink = sink;
    this.#syncs = configs.map((c) => ({
      sync: new NetSync(c.sync.buffer, c.sync.slot),
      latencyNs: c.sync.latencyNs,
    }));
    this.#rx = configs.map(() => []);
    this.#txDrop = configs.map(() => 0);
  }

  /** The board's card options: MACs and transmit callbacks. */
  boardNics(): NicOptions[] {
    return this.#configs.map((c, i) => ({
      mac: c.mac,
      transmit: (frame: Uint8Array) => this.#transmit(i, frame),
    }));
  }

  /** Hands over the cards the board built (same order as {@link boardNics}). */
  attach(nics: Ne2000[]): void {
    this.#nics = nics;
  }

  #transmit(nic: number, frame: Uint8Array): void {
    if (this.#txDrop[nic] > 0) {
      this.#txDrop[nic]--;
      return;
    }
    // Counted before it leaves, so a peer never idles past its arrival (net_sync.ts).
    this.#syncs[nic].sync.sending();
    this.#sink(nic, frame, this.#clock.now());
  }

  /** A frame from the switch, to arrive at guest time `atNs`. */
  arrive(nic: number, frame: Uint8Array, atNs: number): void {
    const card = this.#nics[nic];
    if (card === undefined) return;
    const land = () => {
      const f = this.#applyRules(nic, frame);
      if (f !== null) card.receive(f);
    };
    if (atNs <= this.#clock.now()) land();
    else this.#clock.schedule(atNs, land);
  }

  #applyRules(nic: number, frame: Uint8Array): Uint8Array | null {
    const rules = this.#rx[nic];
    const rule = rules[0];
    if (rule === undefined) return frame;
    if (--rule.left <= 0) rules.shift();
    if (rule.action === "drop") return null;
    const copy = new Uint8Array(frame);
    const at = Math.min(rule.offset ?? copy.length - 1, copy.length - 1);
    copy[at] ^= 0xff;
    return copy;
  }

  /**
   * The "nic" event kind: `{ kind: "nic", nic?: 0, action: "drop" | "corrupt" | "inject",
   * count?: 1, direction?: "rx" | "tx", offset?, frame?: hex }`. Drop and corrupt apply to the
   * next `count` frames the card receives (drop also to frames it sends, with direction "tx");
   * corrupt flips every bit of the byte at `offset` (default the last); inject puts a frame
   * (hex) on the card's receive side now.
   *
   * @returns what was done, for the event log
   */
  applyEvent(e: MachineEvent): string {
    const nic = Number(e.nic ?? 0);
    if (!Number.isInteger(nic) || nic < 0 || nic >= this.#configs.length) {
      throw new RangeError(`no network card ${e.nic} (the machine has ${this.#configs.length})`);
    }
    const count = Number(e.count ?? 1);
    if (!Number.isInteger(count) || count < 1) throw new RangeError(`bad count ${e.count}`);
    const action = String(e.action);
    switch (action) {
      case "drop":
        if (e.direction === "tx") this.#txDrop[nic] += count;
        else this.#rx[nic].push({ action: "drop", left: count, offset: null });
        return `card ${nic}: drop the next ${count} ${e.direction === "tx" ? "sent" : "received"}`;
      case "corrupt": {
        const offset = e.offset === undefined ? null : Number(e.offset);
        this.#rx[nic].push({ action: "corrupt", left: count, offset });
        return `card ${nic}: corrupt the next ${count} received at byte ${offset ?? "last"}`;
      }
      case "inject": {
        const hex = String(e.frame ?? "").replace(/[\s:]/g, "");
        if (!/^([0-9a-fA-F]{2})+$/.test(hex) || hex.length < 28) {
          throw new RangeError("inject needs frame: the frame's bytes in hex (14 or more)");
        }
        const bytes = new Uint8Array(hex.match(/../g)!.map((b) => parseInt(b, 16)));
        const took = this.#nics[nic].receive(bytes);
        return `card ${nic}: injected ${bytes.length} bytes${took ? "" : " (not accepted)"}`;
      }
      default:
        throw new RangeError(`nic action must be drop, corrupt or inject, not "${action}"`);
    }
  }

  /** Publishes the machine's guest time to its peers. */
  publish(now: number): void {
    for (const s of this.#syncs) s.sync.publish(now);
  }

  /**
   * How far an idle machine may let its clock run: `next` (its next event) when no peer holds
   * it back, the peers' bound when that comes first (or nothing is due) and nothing is in
   * flight, or "wait" when it must wait in host time for a peer's clock or a frame.
   *
   * @param now guest time
   * @param next the machine's next event, or null
   * @param mailboxPending whether a message (a frame, maybe) waits in the mailbox
   */
  limitIdle(
    now: number,
    next: number | null,
    mailboxPending: () => boolean,
  ): number | null | "wait" {
    let bound = Infinity;
    for (const s of this.#syncs) bound = Math.min(bound, s.sync.idleBound(s.latencyNs));
    if (bound === Infinity || (next !== null && next <= bound)) return next;
    // Nothing due (next null) still follows the peers: a machine whose clock stood still would
    // hold every peer at its time plus the latency, and their deadlines would never come.
    // Order matters: peers' times, then frames in flight, then the mailbox (net_sync.ts).
    const inFlight = this.#syncs.some((s) => s.sync.inFlight() > 0);
    if (bound > now && !inFlight && !mailboxPending()) return bound;
    return "wait";
  }

  /** Waits (host time, at most `ms`) for a peer's clock or a delivery to move. */
  wait(ms: number): void {
    this.#syncs[0]?.sync.wait(ms);
  }

  /** The run ended: hold nobody back any more. */
  leave(): void {
    for (const s of this.#syncs) s.sync.publish(Infinity);
  }
}
