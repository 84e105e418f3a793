/**
 * The physical address ranges that belong to devices rather than RAM. A guest access there has
 * no host mapping, so it faults; the machine decodes the access and dispatches it here.
 *
 * @module
 */
import type { MmioDevice } from "./mmio_device.ts";
import type { AccessSize } from "./port_device.ts";

/** A device range that overlaps another. */
export class MmioConflictError extends Error {
  override name = "MmioConflictError";
}

interface Region {
  base: number;
  end: number;
  device: MmioDevice;
}

/** Device ranges of the physical address space, few and looked up linearly. */
export class MmioBus {
  readonly #regions: Region[] = [];
  readonly #logged = new Set<string>();

  /** @param log where unclaimed accesses are reported (once per page and direction) */
  constructor(private readonly log: (message: string) => void = () => {}) {}

  /**
   * Places a device at a physical base.
   *
   * @param base physical address
   * @param device the device; its `size` bytes are claimed
   * @throws {MmioConflictError} when the range overlaps another device's
   */
  attach(base: number, device: MmioDevice): void {
    const end = base + device.size;
    for (const r of this.#regions) {
      if (base < r.end && r.base < end) {
        throw new MmioConflictError(
          `${device.name} at 0x${base.toString(16)} overlaps ${r.device.name} at 0x${
            r.base.toString(16)
          }`,
        );
      }
    }
    this.#regions.push({ base, end, device });
  }

  /** Whether a device claims `physical`. */
  claims(physical: number): boolean {
    return this.#find(physical) !== undefined;
  }

  #find(physical: number): Region | undefined {
    const a = physical >>> 0;
    return this.#regions.find((r) => a >= r.base && a < r.end);
  }

  /** Reads a device register; unclaimed addresses read as all ones, as an open bus does. */
  read(physical: number, size: AccessSize): number {
    const r = this.#find(physical);
    if (r === undefined) {
      this.#unclaimed("read", physical);
      return size === 4 ? 0xffffffff : size === 2 ? 0xffff : 0xff;
    }
    return r.device.read((physical >>> 0) - r.base, size) >>> 0;
  }

  /** Writes a device register; writes to unclaimed addresses are dropped and logged once. */
  write(physical: number, value: number, size: AccessSize): void {
    const r = this.#find(physical);
    if (r === undefined) return this.#unclaimed("write", physical);
    r.device.write((physical >>> 0) - r.base, value, size);
  }

  #unclaimed(kind: string, physical: number): void {
    const key = `${kind}:${physical >>> 12}`;
    if (this.#logged.has(key)) return;
    this.#logged.add(key);
    this.log(`unclaimed MMIO ${kind} at 0x${(physical >>> 0).toString(16)}`);
  }
}
