/**
 * Where ring3's firmware tables live in guest physical memory, and the machine facts they
 * describe, in one place. Everything sits in the BIOS area 0xF0000..0x100000, which the
 * Multiboot memory map already reports reserved (runtime/boot/multiboot.ts), so a kernel never
 * takes it for free RAM; the ACPI RSDP and the MP floating pointer must be there (or in the
 * EBDA) to be found by the standard scans.
 *
 * | address  | what                                            |
 * |----------|-------------------------------------------------|
 * | 0x00400  | BIOS data area (COM/LPT ports, EBDA, memory size) |
 * | 0x9FC00  | EBDA (1 KiB; only its size word is written)       |
 * | 0xF0000  | ACPI RSDP (ACPI 2.0, 36 bytes)                    |
 * | 0xF0040  | MP floating pointer (16 bytes)                    |
 * | 0xF0100  | MP configuration table                           |
 * | 0xF1000  | RSDT, XSDT, FADT, MADT, DSDT, FACS (below)        |
 *
 * @module
 */

/** Physical addresses of the tables. */
export const FIRMWARE_LAYOUT = {
  BDA: 0x400,
  EBDA: 0x9fc00,
  /** The reserved BIOS area the tables live in. */
  AREA_START: 0xf0000,
  AREA_END: 0x100000,
  RSDP: 0xf0000,
  MP_FLOATING: 0xf0040,
  MP_CONFIG: 0xf0100,
  RSDT: 0xf1000,
  XSDT: 0xf1040,
  FADT: 0xf1100,
  MADT: 0xf1200,
  DSDT: 0xf1300,
  /** 64-byte aligned, as the FACS must be. */
  FACS: 0xf1400,
} as const;

/** The platform the tables describe: QEMU's pc machine as ring3 builds it (pc_board.ts). */
export const PLATFORM = {
  LOCAL_APIC_BASE: 0xfee00000,
  LOCAL_APIC_ID: 0,
  IOAPIC_BASE: 0xfec00000,
  /** The IOAPIC's ID register at reset (ioapic.ts): the tables name the same ID. */
  IOAPIC_ID: 0,
  IOAPIC_VERSION: 0x20,
  /** ISA IRQ 0 (the PIT) is wired to IOAPIC input 2, as on QEMU's pc machine. */
  IRQ0_GSI: 2,
  /** The ACPI SCI, level-triggered active high, as QEMU's MADT declares it. */
  SCI_IRQ: 9,
  /** The PIIX4 PM block (acpi_pm.ts) and its registers. */
  PM_BASE: 0x600,
  PM1_EVT_LEN: 4,
  PM1_CNT_LEN: 2,
  PM_TMR_LEN: 4,
  /** The PIIX reset control register (reset_control.ts) and the value that resets. */
  RESET_PORT: 0xcf9,
  RESET_VALUE: 0x06,
  /** APM control port that ACPI_ENABLE/DISABLE would be written to (QEMU's 0xB2). */
  SMI_CMD: 0xb2,
  /** CMOS century register index. */
  RTC_CENTURY: 0x32,
  /** Serial ports present, in BDA order: COM1..COM4. */
  COM_PORTS: [0x3f8, 0x2f8, 0x3e8, 0x2e8],
  /** Conventional memory in KiB below the EBDA (the BDA's INT 12h answer). */
  BASE_MEMORY_KB: 639,
} as const;

/** OEM identity in every table header. */
export const OEM = { ID: "RING3 ", TABLE_ID: "RING3PC ", REVISION: 1, CREATOR: "RNG3" } as const;
