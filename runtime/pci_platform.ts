/**
 * The PCI side of the PC board: configuration mechanism #1 at 0xCF8, the i440FX host bridge,
 * the PIIX3 ISA bridge and IDE function, and the NE2000 cards, placed and pre-assigned as
 * QEMU's `pc` machine and its firmware leave them (ring3 boots with no BIOS, so the board does
 * what SeaBIOS would: PIRQ routing, BARs, interrupt lines, I/O decoding on).
 *
 * @module
 */
import type { IoBus } from "./devices/io_bus.ts";
import type { IrqLine } from "./devices/irq_line.ts";
import type { PortDevice } from "./devices/port_device.ts";
import { PCI_CONFIG_PORT, PCI_CONFIG_PORT_COUNT, PciBus } from "./devices/pci_bus.ts";
import { i440fxHostBridge } from "./devices/i440fx.ts";
import { piix3Ide, Piix3IsaBridge, piix4Pm } from "./devices/piix3.ts";
import { PciConfigSpace } from "./devices/pci_config_space.ts";
import { Ne2000 } from "./devices/ne2000.ts";
import { Ne2kPci } from "./devices/ne2k_pci.ts";

/** Where the PCI functions sit and where firmware puts their BARs. */
export const PCI_LAYOUT = {
  HOST_BRIDGE: { device: 0, function: 0 },
  ISA_BRIDGE: { device: 1, function: 0 },
  IDE: { device: 1, function: 1 },
  PM: { device: 1, function: 3 },
  VGA: { device: 2, function: 0 },
  /** The first NIC's slot; QEMU's pc puts VGA at 2 and the first -device after it. */
  FIRST_NIC_SLOT: 3,
  /** SeaBIOS assigns I/O BARs from 0xC000 up. */
  NIC_IO_BASE: 0xc000,
  /** Where the IDE bus-master BAR goes (0xC000 is taken by the NICs here). */
  IDE_BM_BASE: 0xd000,
} as const;

/** One network card. */
export interface NicOptions {
  /** Station address, six bytes. */
  mac: Uint8Array;
  /** A frame the guest sent. */
  transmit: (frame: Uint8Array) => void;
}

/** What the PCI platform is built on. */
export interface PciPlatformOptions {
  bus: IoBus;
  /** The board's ISA interrupt line of IRQ n (shared with the 8259 and the IOAPIC). */
  isa: (irq: number) => IrqLine;
  nics: NicOptions[];
  log: (message: string) => void;
  /** The reset control register that shares the configuration ports (byte 0xCF9). */
  resetControl?: PortDevice;
}

/**
 * Builds and wires the PCI functions.
 *
 * @returns the PCI bus and the cards
 */
export function buildPciPlatform(o: PciPlatformOptions): { pci: PciBus; nics: Ne2000[] } {
  const pci = new PciBus(o.resetControl);
  o.bus.attach(PCI_CONFIG_PORT, PCI_CONFIG_PORT_COUNT, pci);
  pci.register(PCI_LAYOUT.HOST_BRIDGE, i440fxHostBridge());
  const isaBridge = new Piix3IsaBridge(o.isa);
  isaBridge.routeAsFirmware();
  pci.register(PCI_LAYOUT.ISA_BRIDGE, isaBridge);
  const ide = piix3Ide();
  ide.config.poke(0x20, PCI_LAYOUT.IDE_BM_BASE | 1, 4);
  pci.register(PCI_LAYOUT.IDE, ide);
  pci.register(PCI_LAYOUT.PM, piix4Pm());
  pci.register(PCI_LAYOUT.VGA, stdVgaIdentity());
  const nics = o.nics.map((n, i) => {
    const slot = PCI_LAYOUT.FIRST_NIC_SLOT + i;
    const name = `ne2k_pci.${i}`;
    const nic = new Ne2000({
      name,
      mac: n.mac,
      irq: isaBridge.intx(slot, 1, name),
      transmit: n.transmit,
      log: o.log,
    });
    const fn = new Ne2kPci(nic, o.bus, o.log);
    pci.register({ device: slot, function: 0 }, fn);
    fn.assignAsFirmware(PCI_LAYOUT.NIC_IO_BASE + 0x100 * i, isaBridge.irqFor(slot, 1));
    return nic;
  });
  return { pci, nics };
}

/**
 * QEMU's standard VGA (1234:1111, class 03.00) as a PCI identity only: BAR0 is the 16 MiB
 * framebuffer and BAR2 the 4 KiB MMIO block, declared so sizing reads back what QEMU shows, but
 * no memory decodes behind them (the text screen at 0xB8000 is a legacy ISA range). It keeps
 * slot 2 as QEMU has it, so `lspci` reads the same on both backends.
 */
function stdVgaIdentity() {
  const config = new PciConfigSpace({
    vendorId: 0x1234,
    deviceId: 0x1111,
    revision: 0x02,
    classCode: 0x03,
    subclass: 0x00,
    subsystemVendorId: 0x1af4,
    subsystemId: 0x1100,
    bars: [{ index: 0, kind: "memory", size: 16 << 20 }, { index: 2, kind: "memory", size: 4096 }],
  });
  // Where SeaBIOS puts them under QEMU; memory decoding stays off (nothing answers there).
  config.poke(0x10, 0xfd000008, 4);
  config.poke(0x18, 0xfebf0000, 4);
  return { name: "std-vga", config };
}
