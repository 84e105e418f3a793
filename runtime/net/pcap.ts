/**
 * The classic libpcap capture format (what tshark, Wireshark and tcpdump read): a 24-byte file
 * header, then per frame a 16-byte record header and the bytes. ring3 writes the
 * nanosecond-resolution variant (magic 0xA1B23C4D), little-endian, link type 1 (Ethernet),
 * with guest time as the timestamp.
 *
 * @module
 */

/** Magic of nanosecond-resolution captures, as written in the file's byte order. */
export const PCAP_MAGIC_NS = 0xa1b23c4d;
/** Magic of microsecond-resolution captures (QEMU's filter-dump writes these). */
export const PCAP_MAGIC_US = 0xa1b2c3d4;
/** LINKTYPE_ETHERNET. */
export const PCAP_LINKTYPE_ETHERNET = 1;
const SNAPLEN = 65535;

/** The 24-byte file header. */
export function pcapFileHeader(): Uint8Array {
  const b = new Uint8Array(24);
  const v = new DataView(b.buffer);
  v.setUint32(0, PCAP_MAGIC_NS, true);
  v.setUint16(4, 2, true);
  v.setUint16(6, 4, true);
  v.setInt32(8, 0, true); // thiszone
  v.setUint32(12, 0, true); // sigfigs
  v.setUint32(16, SNAPLEN, true);
  v.setUint32(20, PCAP_LINKTYPE_ETHERNET, true);
  return b;
}

/**
 * One record: header and frame.
 *
 * @param timeNs timestamp in nanoseconds (guest time)
 * @param frame the Ethernet frame, destination first, no FCS
 */
export function pcapRecord(timeNs: number, frame: Uint8Array): Uint8Array {
  const length = Math.min(frame.length, SNAPLEN);
  const b = new Uint8Array(16 + length);
  const v = new DataView(b.buffer);
  const sec = Math.floor(timeNs / 1e9);
  v.setUint32(0, sec, true);
  v.setUint32(4, Math.floor(timeNs - sec * 1e9), true);
  v.setUint32(8, length, true);
  v.setUint32(12, frame.length, true);
  b.set(frame.subarray(0, length), 16);
  return b;
}

/** Writes a capture to a file as frames come (each record is written whole). */
export class PcapWriter {
  readonly #file: Deno.FsFile;
  #frames = 0;

  /** Creates (or truncates) `path` and writes the file header. */
  constructor(readonly path: string) {
    this.#file = Deno.openSync(path, { write: true, create: true, truncate: true });
    this.#write(pcapFileHeader());
  }

  /** Frames written so far. */
  get frames(): number {
    return this.#frames;
  }

  /** Appends a frame stamped `timeNs`. */
  write(timeNs: number, frame: Uint8Array): void {
    this.#write(pcapRecord(timeNs, frame));
    this.#frames++;
  }

  /** Closes the file. */
  close(): void {
    this.#file.close();
  }

  #write(bytes: Uint8Array): void {
    let done = 0;
    while (done < bytes.length) done += this.#file.writeSync(bytes.subarray(done));
  }
}

/** A frame read back from a capture. */
export interface PcapFrame {
  timeNs: number;
  frame: Uint8Array;
}

/**
 * Parses a capture (either byte order, micro- or nanosecond resolution).
 *
 * @throws {Error} for a file that is not a pcap capture or is cut short
 */
export function readPcap(bytes: Uint8Array): { linkType: number; frames: PcapFrame[] } {
  if (bytes.length < 24) throw new Error(`not a pcap file: ${bytes.length} bytes`);
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let little = true;
  let magic = v.getUint32(0, true);
  if (magic !== PCAP_MAGIC_NS && magic !== PCAP_MAGIC_US) {
    magic = v.getUint32(0, false);
    little = false;
  }
  if (magic !== PCAP_MAGIC_NS && magic !== PCAP_MAGIC_US) {
    throw new Error(`not a pcap file: magic 0x${v.getUint32(0, true).toString(16)}`);
  }
  const scale = magic === PCAP_MAGIC_NS ? 1 : 1000;
  const frames: PcapFrame[] = [];
  let at = 24;
  while (at < bytes.length) {
    if (at + 16 > bytes.length) throw new Error(`pcap record header cut short at byte ${at}`);
    const sec = v.getUint32(at, little);
    const frac = v.getUint32(at + 4, little);
    const length = v.getUint32(at + 8, little);
    if (at + 16 + length > bytes.length) throw new Error(`pcap record cut short at byte ${at}`);
    frames.push({
      timeNs: sec * 1e9 + frac * scale,
      frame: bytes.slice(at + 16, at + 16 + length),
    });
    at += 16 + length;
  }
  return { linkType: v.getUint32(20, little), frames };
}
