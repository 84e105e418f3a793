/**
 * A learning Ethernet switch: it learns which port each source address lives behind and sends
 * a frame to that port only; broadcast, multicast and unknown destinations flood every other
 * port. Pure logic (no I/O, no time), so the network and the tests share it.
 *
 * @module
 */

/** Formats six bytes as "52:54:00:12:34:56". */
export function formatMac(mac: Uint8Array): string {
  return [...mac.subarray(0, 6)].map((b) => b.toString(16).padStart(2, "0")).join(":");
}

/**
 * Parses "52:54:00:12:34:56".
 *
 * @throws {RangeError} for anything else
 */
export function parseMac(text: string): Uint8Array {
  const parts = text.split(":");
  if (parts.length !== 6 || parts.some((p) => !/^[0-9a-fA-F]{2}$/.test(p))) {
    throw new RangeError(`a MAC address looks like 52:54:00:12:34:56, got "${text}"`);
  }
  return new Uint8Array(parts.map((p) => parseInt(p, 16)));
}

/**
 * The forwarding table.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { EthernetSwitch } from "./ethernet_switch.ts";
 *
 * const sw = new EthernetSwitch();
 * const a = sw.addPort(), b = sw.addPort(), c = sw.addPort();
 * const fromA = new Uint8Array(14);
 * fromA.set([2, 0, 0, 0, 0, 2], 0); // to b, not yet known
 * fromA.set([2, 0, 0, 0, 0, 1], 6);
 * assert.deepEqual(sw.forward(a, fromA), [b, c]); // flooded
 * const fromB = new Uint8Array(14);
 * fromB.set([2, 0, 0, 0, 0, 1], 0);
 * fromB.set([2, 0, 0, 0, 0, 2], 6);
 * assert.deepEqual(sw.forward(b, fromB), [a]); // learned
 * ```
 */
export class EthernetSwitch {
  readonly #table = new Map<string, number>();
  #ports = 0;

  /** Adds a port and returns its number. */
  addPort(): number {
    return this.#ports++;
  }

  /** The learned addresses and their ports. */
  table(): Map<string, number> {
    return new Map(this.#table);
  }

  /**
   * Learns the frame's source and decides where it goes.
   *
   * @param from the port it came in on
   * @param frame destination, source, …
   * @returns the ports to send it out of (never `from`)
   */
  forward(from: number, frame: Uint8Array): number[] {
    if (frame.length < 14) return [];
    const src = frame.subarray(6, 12);
    // A multicast source is invalid: never learn it.
    if ((src[0] & 1) === 0) this.#table.set(formatMac(src), from);
    const dst = frame.subarray(0, 6);
    if ((dst[0] & 1) === 0) {
      const port = this.#table.get(formatMac(dst));
      if (port !== undefined) return port === from ? [] : [port];
    }
    const all: number[] = [];
    for (let p = 0; p < this.#ports; p++) if (p !== from) all.push(p);
    return all;
  }
}
