/**
 * The PIIX3 south bridge as QEMU's `pc` machine has it: the PCI-to-ISA bridge (00:01.0,
 * 8086:7000) with its PIRQ route control registers, and the IDE function (00:01.1, 8086:7010)
 * in legacy (compatibility) mode, so a kernel that probes PCI finds the IDE controller at the
 * ISA ports 0x1F0/0x170 with IRQs 14/15. The ATA channels themselves are separate devices.
 *
 * PCI interrupt routing: a device in slot S drives INTx# (pin P = 1..4) onto PIRQ
 * ((P - 1) + (S - 1)) & 3, QEMU's `pci_slot_get_pirq` for the PIIX; PIRQRC[A..D] (0x60..0x63)
 * name the ISA IRQ each PIRQ drives, bit 7 disabling it.
 *
 * @module
 */
import { PciConfigSpace } from "./pci_config_space.ts";
import type { PciFunction } from "./pci_bus.ts";
import { IrqLine } from "./irq_line.ts";

/** Offset of PIRQRC[A] in the ISA bridge's configuration space. */
export const PIIX3_PIRQRC = 0x60;
/** What SeaBIOS programs into PIRQRC[A..D] on QEMU's pc machine: IRQs 10, 10, 11, 11. */
export const PIIX3_FIRMWARE_PIRQ_IRQS = [10, 10, 11, 11] as const;

/** The ISA bridge: its configuration space and the PCI interrupt router. */
export class Piix3IsaBridge implements PciFunction {
  readonly name = "piix3-isa";
  readonly config = new PciConfigSpace({
    vendorId: 0x8086,
    deviceId: 0x7000,
    classCode: 0x06,
    subclass: 0x01,
    multiFunction: true,
    subsystemVendorId: 0x1af4,
    subsystemId: 0x1100,
  });
  readonly #isa: (irq: number) => IrqLine;
  /** Asserted INTx sources per PIRQ. */
  readonly #asserted = [new Set<string>(), new Set<string>(), new Set<string>(), new Set<string>()];
  /** The ISA IRQ each PIRQ drove at the last update, or -1. */
  #routed = [-1, -1, -1, -1];

  /** @param isa the board's ISA interrupt line of IRQ n */
  constructor(isa: (irq: number) => IrqLine) {
    this.#isa = isa;
    this.config.allowWrites(0x40, 0x100);
    this.#resetRoutes();
    this.config.onChange(() => this.#update());
  }

  /** Power-on: every PIRQ disabled (0x80), as the datasheet says. */
  #resetRoutes(): void {
    for (let i = 0; i < 4; i++) this.config.poke(PIIX3_PIRQRC + i, 0x80, 1);
  }

  /** Programs PIRQRC as the firmware would before the kernel runs. */
  routeAsFirmware(): void {
    PIIX3_FIRMWARE_PIRQ_IRQS.forEach((irq, i) => this.config.poke(PIIX3_PIRQRC + i, irq, 1));
  }

  /** The ISA IRQ a slot's pin reaches under the current routing, or null when disabled. */
  irqFor(slot: number, pin: number): number | null {
    const r = this.config.read(PIIX3_PIRQRC + pirqOf(slot, pin), 1);
    return (r & 0x80) !== 0 ? null : r & 0x0f;
  }

  /**
   * The INTx# line of a device in `slot`, pin `pin` (1 = INTA#). Several devices may share a
   * PIRQ: the PIRQ is asserted while any of them asserts it.
   */
  intx(slot: number, pin: number, name: string): IrqLine {
    const line = new IrqLine(`${name}-int${"abcd"[pin - 1]}`);
    const pirq = pirqOf(slot, pin);
    line.connect((level) => {
      if (level) this.#asserted[pirq].add(line.name);
      else this.#asserted[pirq].delete(line.name);
      this.#update();
    });
    return line;
  }

  reset(): void {
    this.config.reset();
    this.#resetRoutes();
  }

  #update(): void {
    const want = new Map<number, boolean>();
    const routed = [-1, -1, -1, -1];
    for (let p = 0; p < 4; p++) {
      const r = this.config.read(PIIX3_PIRQRC + p, 1);
      if ((r & 0x80) !== 0 || (r & 0x0f) < 3) continue;
      routed[p] = r & 0x0f;
      want.set(routed[p], (want.get(routed[p]) ?? false) || this.#asserted[p].size > 0);
    }
    // Lines no longer driven by any PIRQ drop.
    for (const old of this.#routed) if (old >= 0 && !want.has(old)) this.#isa(old).set(false);
    for (const [irq, level] of want) this.#isa(irq).set(level);
    this.#routed = routed;
  }
}

/** The PIIX3 IDE function in compatibility mode (legacy ports and IRQs 14/15). */
export function piix3Ide(): PciFunction {
  const config = new PciConfigSpace({
    vendorId: 0x8086,
    deviceId: 0x7010,
    classCode: 0x01,
    subclass: 0x01,
    // Bus-master capable, both channels fixed in compatibility mode (QEMU's piix3-ide).
    progIf: 0x80,
    subsystemVendorId: 0x1af4,
    subsystemId: 0x1100,
    // BAR4: the bus-master DMA registers (decoded by no device here; PIO only).
    bars: [{ index: 4, kind: "io", size: 16 }],
  });
  config.allowWrites(0x40, 0x100);
  return { name: "piix3-ide", config };
}

function pirqOf(slot: number, pin: number): number {
  return (pin - 1 + slot - 1) & 3;
}

/**
 * The PIIX4 power-management function QEMU's `pc` puts at 00:01.3 (8086:7113, class 06.80,
 * INTA# for the SCI): its identity and the registers firmware programs (PMBA at 0x40 = 0x600,
 * PMREGMISC at 0x80 enabling it), so a kernel probing PCI sees what it sees under QEMU. The ACPI
 * registers behind PMBA (PM timer at 0x608) belong to the firmware-tables device, not here.
 */
export function piix4Pm(): PciFunction {
  const config = new PciConfigSpace({
    vendorId: 0x8086,
    deviceId: 0x7113,
    revision: 0x03,
    classCode: 0x06,
    subclass: 0x80,
    subsystemVendorId: 0x1af4,
    subsystemId: 0x1100,
    interruptPin: 1,
  });
  config.allowWrites(0x40, 0x100);
  config.poke(0x40, PIIX4_PM_BASE | 1, 4);
  config.poke(0x80, 0x01, 1);
  // SeaBIOS routes the SCI to IRQ 9 and writes it here.
  config.poke(0x3c, 9, 1);
  return { name: "piix4-pm", config };
}

/** Where firmware puts the PIIX4 PM I/O block on QEMU's pc (SeaBIOS's PORT_ACPI_PM_BASE). */
export const PIIX4_PM_BASE = 0x600;
