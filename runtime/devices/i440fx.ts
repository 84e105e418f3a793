/**
 * The i440FX host bridge (PMC), function 00:00.0 of QEMU's `pc` machine: what a kernel finds
 * first when it probes PCI. Only its identity is modelled; memory-controller registers (PAM,
 * SMRAM) read as zero and accept writes, as a BIOS-less boot never relies on them.
 *
 * @module
 */
import { PciConfigSpace } from "./pci_config_space.ts";
import type { PciFunction } from "./pci_bus.ts";

/** Builds the host bridge function (8086:1237, class 06.00.00). */
export function i440fxHostBridge(): PciFunction {
  const config = new PciConfigSpace({
    vendorId: 0x8086,
    deviceId: 0x1237,
    revision: 0x02,
    classCode: 0x06,
    subclass: 0x00,
    subsystemVendorId: 0x1af4,
    subsystemId: 0x1100,
  });
  config.allowWrites(0x40, 0x100);
  return { name: "i440fx", config };
}
