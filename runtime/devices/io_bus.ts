/**
 * The x86 I/O port space: 65536 byte-wide ports, each owned by at most one device.
 *
 * Every emulated `in`/`out` goes through {@linkcode IoBus.read} or {@linkcode IoBus.write}, so
 * the lookup is a typed-array index from port to attachment, with no string keys or maps.
 *
 * @module
 */

import { accessMask, type AccessSize, type PortDevice } from "./port_device.ts";

/** Number of ports in the x86 I/O address space (0..0xffff). */
export const PORT_COUNT = 0x10000;

/** One device attached to an {@linkcode IoBus}, covering ports `base`..`base + length - 1`. */
export interface PortAttachment {
  /** First port the device answers. */
  readonly base: number;
  /** Number of consecutive ports the device answers. */
  readonly length: number;
  /** The device itself. */
  readonly device: PortDevice;
}

/** Options for {@linkcode IoBus}. */
export interface IoBusOptions {
  /**
   * Where to report accesses to ports no device owns, once per port and direction.
   *
   * @default {(message) => console.warn(`io_bus: ${message}`)}
   */
  log?: (message: string) => void;
}

/**
 * Thrown by {@linkcode IoBus.attach} when the new range overlaps a device already attached.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { IoBus, PortConflictError } from "./io_bus.ts";
 *
 * const bus = new IoBus();
 * const device = { name: "a", read: () => 0, write: () => {}, reset: () => {} };
 * bus.attach(0x60, 1, device);
 * assert.throws(() => bus.attach(0x5e, 4, { ...device, name: "b" }), PortConflictError);
 * ```
 */
export class PortConflictError extends Error {
  /** The first port both devices would answer. */
  readonly port: number;
  /** The attachment already on the bus. */
  readonly existing: PortAttachment;
  /** The attachment that was refused. */
  readonly incoming: PortAttachment;

  /**
   * @param existing The attachment already on the bus.
   * @param incoming The attachment that was refused.
   * @param port The first port both would answer.
   * @param options Standard error options (`cause`).
   */
  constructor(
    existing: PortAttachment,
    incoming: PortAttachment,
    port: number,
    options?: ErrorOptions,
  ) {
    super(
      `cannot attach "${incoming.device.name}" at ports ${range(incoming)}: port ${hex(port)} ` +
        `already belongs to "${existing.device.name}" (ports ${range(existing)})`,
      options,
    );
    this.name = "PortConflictError";
    this.port = port;
    this.existing = existing;
    this.incoming = incoming;
  }
}

// Bits of #logged: an unknown port is reported once for reads and once for writes.
const LOGGED_READ = 1;
const LOGGED_WRITE = 2;

// Slot 0 in #slotOf means "no device"; attachment i lives in slot i + 1. The table is a
// Uint16Array, so the slot numbers must stay below 0x10000.
const MAX_ATTACHMENTS = 0xffff;

/**
 * The I/O port bus: routes port accesses to attached devices.
 *
 * Unowned ports behave like a floating ISA bus: reads return all ones for the access size and
 * writes are dropped; each unowned port is logged once per direction so a kernel probing
 * hardware that is not there is visible without flooding the log.
 *
 * A multi-byte access is delivered whole to the device that owns its first port, with that
 * port's offset, even if it runs past the end of the device's range into a neighbour or into
 * unowned ports; the device decides what its upper bytes mean. This follows QEMU's rule for a
 * device's own declared access sizes (a device accepting up to 4 bytes sees one 4-byte access)
 * and leaves splitting to the device (the UART splits into byte accesses, as its QEMU model
 * declares). QEMU's address-space layer additionally cuts an access at the end of a region
 * (`address_space_translate_internal` clamps the length to the section); ring3 does not, so a
 * port range must not rely on a neighbour receiving the tail of a straddling access.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { IoBus } from "./io_bus.ts";
 *
 * const messages: string[] = [];
 * const bus = new IoBus({ log: (message) => messages.push(message) });
 * assert.equal(bus.read(0x80, 2), 0xffff);
 * assert.deepEqual(messages, ["unhandled read of port 0x80 (size 2)"]);
 * ```
 */
export class IoBus {
  // Port -> slot (attachment index + 1, or 0 for none).
  readonly #slotOf = new Uint16Array(PORT_COUNT);
  readonly #attachments: PortAttachment[] = [];
  readonly #logged = new Uint8Array(PORT_COUNT);
  readonly #log: (message: string) => void;

  /**
   * Create an empty bus.
   *
   * @param options See {@linkcode IoBusOptions}; `log` defaults to `console.warn`.
   */
  constructor(options: IoBusOptions = {}) {
    this.#log = options.log ?? ((message) => console.warn(`io_bus: ${message}`));
  }

  /**
   * Make `device` answer ports `base`..`base + length - 1`, at offsets 0..`length - 1`.
   *
   * @param base First port, 0..0xffff.
   * @param length Number of ports, at least 1; the range must end by 0xffff.
   * @param device The device to attach.
   * @throws {RangeError} If the range is not whole ports within 0..0xffff.
   * @throws {PortConflictError} If any port in the range already has a device.
   */
  attach(base: number, length: number, device: PortDevice): void {
    if (!Number.isInteger(base) || base < 0 || base >= PORT_COUNT) {
      throw new RangeError(`port base must be an integer in 0..0xffff, got ${base}`);
    }
    if (!Number.isInteger(length) || length < 1 || base + length > PORT_COUNT) {
      throw new RangeError(
        `port range length must be an integer from 1 to ${PORT_COUNT - base} for base ` +
          `${hex(base)}, got ${length}`,
      );
    }
    if (this.#attachments.length >= MAX_ATTACHMENTS) {
      throw new RangeError(`cannot attach more than ${MAX_ATTACHMENTS} devices to one bus`);
    }
    const incoming: PortAttachment = Object.freeze({ base, length, device });
    for (let port = base; port < base + length; port++) {
      const slot = this.#slotOf[port];
      if (slot !== 0) {
        throw new PortConflictError(this.#attachments[slot - 1], incoming, port);
      }
    }
    this.#attachments.push(incoming);
    this.#slotOf.fill(this.#attachments.length, base, base + length);
  }

  /**
   * Removes a device from every range it answers (a PCI BAR moved or decoding was turned off).
   * The slot stays allocated, so at most 0xffff attachments may ever be made on one bus.
   *
   * @param device the device to remove; unknown devices are ignored
   */
  detach(device: PortDevice): void {
    this.#attachments.forEach((a, i) => {
      if (a.device !== device) return;
      for (let port = a.base; port < a.base + a.length; port++) {
        if (this.#slotOf[port] === i + 1) this.#slotOf[port] = 0;
      }
    });
  }

  /**
   * Perform an `in` of `size` bytes from `port`.
   *
   * @param port Port number, 0..0xffff.
   * @param size Access width in bytes.
   * @returns The value read, masked to `size` (all ones if no device owns `port`).
   * @throws {RangeError} If `port` or `size` is out of range.
   */
  read(port: number, size: AccessSize): number {
    const mask = accessMask(size);
    if ((port & 0xffff) !== port) throw badPort(port);
    const slot = this.#slotOf[port];
    if (slot === 0) {
      this.#unhandled(port, LOGGED_READ, `unhandled read of port ${hex(port)} (size ${size})`);
      return mask;
    }
    const { base, device } = this.#attachments[slot - 1];
    return (device.read(port - base, size) & mask) >>> 0;
  }

  /**
   * Perform an `out` of `size` bytes to `port`; the value is masked to `size` first.
   *
   * @param port Port number, 0..0xffff.
   * @param value Value to write; bits above `size` are discarded.
   * @param size Access width in bytes.
   * @throws {RangeError} If `port` or `size` is out of range.
   */
  write(port: number, value: number, size: AccessSize): void {
    const mask = accessMask(size);
    if ((port & 0xffff) !== port) throw badPort(port);
    const masked = (value & mask) >>> 0;
    const slot = this.#slotOf[port];
    if (slot === 0) {
      this.#unhandled(
        port,
        LOGGED_WRITE,
        `unhandled write of port ${hex(port)} (size ${size}, value ${hex(masked)})`,
      );
      return;
    }
    const { base, device } = this.#attachments[slot - 1];
    device.write(port - base, masked, size);
  }

  /**
   * List the attachments, ordered by base port.
   *
   * @returns A fresh array; its entries are frozen.
   */
  devices(): PortAttachment[] {
    return this.#attachments.filter((a, i) => this.#slotOf[a.base] === i + 1)
      .sort((a, b) => a.base - b.base);
  }

  #unhandled(port: number, direction: number, message: string): void {
    if ((this.#logged[port] & direction) !== 0) return;
    this.#logged[port] |= direction;
    this.#log(message);
  }
}

function badPort(port: number): RangeError {
  return new RangeError(`port must be an integer in 0..0xffff, got ${port}`);
}

function hex(value: number): string {
  return `0x${value.toString(16)}`;
}

function range({ base, length }: PortAttachment): string {
  return length === 1 ? hex(base) : `${hex(base)}-${hex(base + length - 1)}`;
}
