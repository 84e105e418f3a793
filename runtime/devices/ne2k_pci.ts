/**
 * The NE2000 on PCI, as QEMU's `ne2k_pci` presents it: a Realtek RTL8029 (10ec:8029, class
 * 02.00 Ethernet), one 256-port I/O BAR, INTA#. The card answers at whatever port its BAR0
 * holds while I/O decoding is on; this module moves it on the I/O bus when either changes.
 *
 * @module
 */
import { PCI_CFG, PCI_COMMAND, PciConfigSpace } from "./pci_config_space.ts";
import type { PciFunction } from "./pci_bus.ts";
import type { IoBus } from "./io_bus.ts";
import { Ne2000 } from "./ne2000.ts";

/** QEMU's ne2k_pci BAR0 size. */
export const NE2K_PCI_BAR_SIZE = 0x100;

/** The PCI function of one card, mapped onto an I/O bus through its BAR. */
export class Ne2kPci implements PciFunction {
  readonly name: string;
  readonly config = new PciConfigSpace({
    vendorId: 0x10ec,
    deviceId: 0x8029,
    classCode: 0x02,
    subclass: 0x00,
    subsystemVendorId: 0x1af4,
    subsystemId: 0x1100,
    bars: [{ index: 0, kind: "io", size: NE2K_PCI_BAR_SIZE }],
    interruptPin: 1,
  });
  readonly #bus: IoBus;
  readonly #log: (message: string) => void;
  #mappedAt: number | null = null;

  /**
   * @param nic the card behind the function
   * @param bus where its BAR is decoded
   */
  constructor(readonly nic: Ne2000, bus: IoBus, log: (message: string) => void = () => {}) {
    this.name = nic.name;
    this.#bus = bus;
    this.#log = log;
    this.config.onChange(() => this.#remap());
  }

  /** What firmware does before the kernel: BAR0 at `port`, I/O decoding on, the IRQ line. */
  assignAsFirmware(port: number, irq: number | null): void {
    this.config.poke(PCI_CFG.BAR0, port | 1, 4);
    this.config.poke(PCI_CFG.INTERRUPT_LINE, irq ?? 0xff, 1);
    this.config.poke(PCI_CFG.COMMAND, PCI_COMMAND.IO, 2);
  }

  #remap(): void {
    const at = this.config.barAddress(0);
    if (at === this.#mappedAt) return;
    if (this.#mappedAt !== null) this.#bus.detach(this.nic);
    this.#mappedAt = null;
    if (at === null) return;
    // The NE2000 decodes 32 ports; the rest of the 256-port BAR reads as nothing there.
    try {
      this.#bus.attach(at, 0x20, this.nic);
      this.#mappedAt = at;
    } catch (e) {
      // A kernel that puts the BAR over another device gets no card there, as on a real bus
      // where the two would fight; say so rather than crash the machine.
      this.#log(`${this.name}: BAR0 at 0x${at.toString(16)} not decoded: ${(e as Error).message}`);
    }
  }
}
