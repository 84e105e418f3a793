/**
 * A virtual Ethernet segment for the machines of one scenario: a learning switch on the
 * scenario's thread, an optional pcap capture, and the shared clock table that keeps the
 * members' guest times within one wire latency of each other (net_sync.ts). Frames travel
 * machine Worker → scenario thread (postMessage) → receiving Worker (its mailbox); nothing
 * reaches the host network. On the QEMU backend the same object hands out `-netdev socket`
 * arguments instead (two machines, 127.0.0.1 only).
 *
 * @module
 */
import { type Duration, durationNs } from "../duration.ts";
import { EthernetSwitch, formatMac, parseMac } from "./ethernet_switch.ts";
import { PcapWriter } from "./pcap.ts";
import { NET_MAX_MEMBERS, NetSync } from "./net_sync.ts";

/** Options of {@link network}. */
export interface NetworkOptions {
  /** Write every frame the switch sees to this pcap file (guest-time stamps). Default: none. */
  pcap?: string;
  /**
   * Wire latency: a frame sent at guest time t arrives at t + latency on the receiver's clock.
   * Also how far one member's idle clock may run ahead of the others'. Default "100us".
   */
  latency?: Duration;
  /** A name for logs. Default "net0". */
  name?: string;
}

/** A network card's place on a network, in boot options. */
export interface NicOptions {
  network: Network;
  /** "52:54:00:12:34:56"; default 52:54:00:12:34:NN with NN the member number + 0x56. */
  mac?: string;
}

/** A frame as the switch saw it. */
export interface SwitchedFrame {
  /** Sender's guest time when it left the card, ns. */
  guestNs: number;
  /** Port it came in on (the order machines joined). */
  from: number;
  /** Ports it went out of. */
  to: number[];
  frame: Uint8Array;
}

/** What a ring3 machine gives the network to receive frames. */
export interface NetworkMember {
  /** Puts a frame on the machine's timeline at guest time `atNs`. */
  deliver(frame: Uint8Array, atNs: number): void;
}

/** What a ring3 machine's card needs to join (structured-cloned into its Worker). */
export interface NetworkAttachment {
  port: number;
  mac: Uint8Array;
  sync: { buffer: SharedArrayBuffer; slot: number; latencyNs: number };
}

/**
 * A network: create it, then name it in each machine's `nics`.
 *
 * @example Two machines on one segment
 * ```ts ignore
 * import { network, scenario } from "./mod.ts";
 * export default scenario("ping", async ({ boot }) => {
 *   const net = network({ pcap: "ping.pcap" });
 *   const a = await boot({ kernel: "fixtures/build/minios.elf", cmdline: "ip=10.0.0.1",
 *     nics: [{ network: net }] });
 *   const b = await boot({ kernel: "fixtures/build/minios.elf", cmdline: "ip=10.0.0.2",
 *     nics: [{ network: net }] });
 *   a.console.send("ping 10.0.0.2\r");
 *   await a.console.expect(/reply from 10.0.0.2/);
 * });
 * ```
 */
export class Network {
  readonly name: string;
  /** The capture file, if any. */
  readonly pcapPath: string | undefined;
  readonly latencyNs: number;
  readonly #switch = new EthernetSwitch();
  readonly #pcap: PcapWriter | null;
  readonly #sync: NetSync;
  readonly #members: (NetworkMember | null)[] = [];
  readonly #frames: SwitchedFrame[] = [];
  #listeners: ((f: SwitchedFrame) => void)[] = [];
  #qemuMembers = 0;
  #qemuPort = 0;
  #closed = false;

  /** @param options capture file, latency, name */
  constructor(options: NetworkOptions = {}) {
    this.name = options.name ?? "net0";
    this.latencyNs = durationNs(options.latency ?? "100us");
    if (!(this.latencyNs > 0)) throw new RangeError("a network's latency must be above zero");
    this.pcapPath = options.pcap;
    this.#pcap = options.pcap ? new PcapWriter(options.pcap) : null;
    this.#sync = new NetSync(NetSync.create(), -1);
  }

  /** Every frame the switch forwarded so far, in arrival order. */
  get frames(): readonly SwitchedFrame[] {
    return this.#frames;
  }

  /** Calls `listener` for every frame the switch forwards from now on. */
  onFrame(listener: (f: SwitchedFrame) => void): void {
    this.#listeners = [...this.#listeners, listener];
  }

  /** The switch's learned addresses ("52:54:00:12:34:56" → port). */
  addressTable(): Map<string, number> {
    return this.#switch.table();
  }

  /**
   * Joins a ring3 machine's card. Its clock slot starts at guest time 0.
   *
   * @internal
   */
  join(member: NetworkMember, mac: string | undefined): NetworkAttachment {
    if (this.#qemuMembers > 0) {
      throw new RangeError(`${this.name}: ring3 and QEMU machines cannot share one network`);
    }
    const port = this.#switch.addPort();
    if (port >= NET_MAX_MEMBERS) {
      throw new RangeError(`${this.name}: at most ${NET_MAX_MEMBERS} cards on one network`);
    }
    this.#members[port] = member;
    this.#sync.setTime(port, 0);
    return {
      port,
      mac: mac ? parseMac(mac) : defaultMac(port),
      sync: { buffer: this.#sync.buffer, slot: port, latencyNs: this.latencyNs },
    };
  }

  /**
   * A member's run ended: it holds nobody's clock back any more.
   *
   * @internal
   */
  leave(port: number): void {
    this.#members[port] = null;
    this.#sync.setTime(port, Infinity);
  }

  /**
   * A frame left a card (the machine counted it in flight before posting it).
   *
   * @internal
   */
  send(from: number, frame: Uint8Array, guestNs: number): void {
    try {
      if (this.#closed) return;
      const to = this.#switch.forward(from, frame);
      this.#pcap?.write(guestNs, frame);
      const record: SwitchedFrame = { guestNs, from, to, frame };
      this.#frames.push(record);
      for (const l of this.#listeners) l(record);
      for (const port of to) this.#members[port]?.deliver(frame, guestNs + this.latencyNs);
    } finally {
      this.#sync.delivered();
    }
  }

  /**
   * QEMU arguments for the next QEMU machine's card: the first listens, the second connects
   * (QEMU's socket netdev joins exactly two). The first also dumps to the pcap file.
   *
   * @internal
   */
  async qemuArgs(mac: string | undefined): Promise<string[]> {
    if (this.#members.length > 0) {
      throw new RangeError(`${this.name}: ring3 and QEMU machines cannot share one network`);
    }
    const n = this.#qemuMembers++;
    if (n >= 2) {
      throw new RangeError(
        `${this.name}: the QEMU backend joins two machines per network (socket netdev)`,
      );
    }
    if (n === 0) this.#qemuPort = await freeTcpPort();
    const id = `${this.name}`;
    const where = `127.0.0.1:${this.#qemuPort}`;
    const args = [
      "-netdev",
      `socket,id=${id},${n === 0 ? "listen" : "connect"}=${where}`,
      "-device",
      `ne2k_pci,netdev=${id},mac=${mac ?? formatMac(defaultMac(n))}`,
    ];
    if (n === 0 && this.pcapPath) {
      // This file is QEMU's: close ours so the two do not interleave.
      this.#pcap?.close();
      args.push("-object", `filter-dump,id=${id}-dump,netdev=${id},file=${this.pcapPath}`);
    }
    return args;
  }

  /** Closes the capture file; frames sent later are not forwarded. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#qemuMembers === 0) this.#pcap?.close();
  }
}

/**
 * Creates a network for the machines of a scenario.
 *
 * @param options capture file, wire latency
 * @returns the network; name it in `boot({ nics: [{ network }] })`
 */
export function network(options: NetworkOptions = {}): Network {
  return new Network(options);
}

function defaultMac(n: number): Uint8Array {
  return new Uint8Array([0x52, 0x54, 0x00, 0x12, 0x34, (0x56 + n) & 0xff]);
}

async function freeTcpPort(): Promise<number> {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  await Promise.resolve();
  return port;
}
