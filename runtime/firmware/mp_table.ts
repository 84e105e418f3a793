/**
 * The Intel MultiProcessor Specification 1.4 tables: the floating pointer structure and the
 * configuration table with one processor, the ISA bus, the IOAPIC and the interrupt
 * assignments (ISA IRQ n on IOAPIC input n, except IRQ 0 on input 2 as on QEMU's pc machine;
 * ExtINT on LINT0 and NMI on LINT1 of every local APIC).
 *
 * @module
 */
import { TableBytes } from "./bytes.ts";
import { FIRMWARE_LAYOUT as L, PLATFORM as P } from "./layout.ts";

/** Entry types and sizes of the configuration table (MP spec table 4-3). */
export const MP_ENTRY = {
  PROCESSOR: { type: 0, size: 20 },
  BUS: { type: 1, size: 8 },
  IOAPIC: { type: 2, size: 8 },
  IO_INTERRUPT: { type: 3, size: 8 },
  LOCAL_INTERRUPT: { type: 4, size: 8 },
} as const;
/** Size of the configuration table header. */
export const MP_HEADER_BYTES = 44;
/** Interrupt types of interrupt entries. */
const INT = { INT: 0, NMI: 1, SMI: 2, EXTINT: 3 } as const;

/** The CPU identity the processor entry carries (from the virtual CPU model). */
export interface MpCpu {
  family: number;
  model: number;
  stepping: number;
  features1Edx: number;
}

/** ISA IRQs with an I/O interrupt entry: all but 2, the 8259 cascade, which has no source. */
export function mpIsaIrqs(): number[] {
  return [...Array(16).keys()].filter((i) => i !== 2);
}

/**
 * Builds the configuration table.
 *
 * @param cpu the processor entry's signature and features
 * @returns the table's bytes, checksummed
 */
export function buildMpConfig(cpu: MpCpu): Uint8Array {
  const irqs = mpIsaIrqs();
  const entries = 1 + 1 + 1 + irqs.length + 2;
  const length = MP_HEADER_BYTES + MP_ENTRY.PROCESSOR.size + MP_ENTRY.BUS.size +
    MP_ENTRY.IOAPIC.size + (irqs.length + 2) * 8;
  const t = new TableBytes(length)
    .ascii(0, "PCMP").u16(4, length).u8(6, 4)
    .ascii(8, "RING3", 8).ascii(16, "PC", 12)
    .u32(28, 0).u16(32, 0).u16(34, entries).u32(36, P.LOCAL_APIC_BASE);
  let at = MP_HEADER_BYTES;
  const signature = (cpu.family << 8) | (cpu.model << 4) | cpu.stepping;
  t.u8(at, MP_ENTRY.PROCESSOR.type).u8(at + 1, P.LOCAL_APIC_ID).u8(at + 2, 0x14)
    .u8(at + 3, 0x03 /* enabled, bootstrap processor */).u32(at + 4, signature)
    .u32(at + 8, cpu.features1Edx);
  at += MP_ENTRY.PROCESSOR.size;
  t.u8(at, MP_ENTRY.BUS.type).u8(at + 1, 0).ascii(at + 2, "ISA", 6);
  at += MP_ENTRY.BUS.size;
  t.u8(at, MP_ENTRY.IOAPIC.type).u8(at + 1, P.IOAPIC_ID).u8(at + 2, P.IOAPIC_VERSION)
    .u8(at + 3, 0x01 /* enabled */).u32(at + 4, P.IOAPIC_BASE);
  at += MP_ENTRY.IOAPIC.size;
  for (const irq of irqs) {
    // Flags 0: polarity and trigger conform to the bus (ISA: edge, active high).
    t.u8(at, MP_ENTRY.IO_INTERRUPT.type).u8(at + 1, INT.INT).u16(at + 2, 0).u8(at + 4, 0)
      .u8(at + 5, irq).u8(at + 6, P.IOAPIC_ID).u8(at + 7, irq === 0 ? P.IRQ0_GSI : irq);
    at += 8;
  }
  for (const [type, lint] of [[INT.EXTINT, 0], [INT.NMI, 1]]) {
    t.u8(at, MP_ENTRY.LOCAL_INTERRUPT.type).u8(at + 1, type).u16(at + 2, 0).u8(at + 4, 0)
      .u8(at + 5, 0).u8(at + 6, 0xff /* every local APIC */).u8(at + 7, lint);
    at += 8;
  }
  return t.checksum(7).bytes;
}

/**
 * Builds the 16-byte floating pointer structure that points at the configuration table.
 *
 * @param configAddress physical address of the configuration table
 * @returns its bytes, checksummed
 */
export function buildMpFloating(configAddress: number = L.MP_CONFIG): Uint8Array {
  return new TableBytes(16).ascii(0, "_MP_").u32(4, configAddress).u8(8, 1).u8(9, 4)
    .u8(11, 0 /* a configuration table is present: no default configuration */)
    .checksum(10).bytes;
}
