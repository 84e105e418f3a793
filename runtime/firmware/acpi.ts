/**
 * ACPI tables (specification 6.x, with ACPI 2.0 structures): RSDP, RSDT and XSDT, the FADT
 * (PM1 event/control blocks and the PM timer of the PIIX4 PM block, the reset register at
 * 0xCF9), the MADT (local APIC, IOAPIC, the IRQ 0 → GSI 2 override and the level-triggered SCI
 * on IRQ 9, as QEMU's pc machine declares them; NMI on LINT1), a minimal DSDT holding only \_S5,
 * and the FACS.
 *
 * @module
 */
import { TableBytes } from "./bytes.ts";
import { FIRMWARE_LAYOUT as L, OEM, PLATFORM as P } from "./layout.ts";

/** Size of every system description table header. */
export const SDT_HEADER_BYTES = 36;
/** FADT size at revision 3 (ACPI 2.0 layout with the X_ fields). */
export const FADT_BYTES = 244;
export const FADT_REVISION = 3;
/** FADT field offsets used by ring3 and its tests. */
export const FADT_FIELD = {
  FIRMWARE_CTRL: 36,
  DSDT: 40,
  SCI_INT: 46,
  SMI_CMD: 48,
  PM1A_EVT_BLK: 56,
  PM1A_CNT_BLK: 64,
  PM_TMR_BLK: 76,
  PM1_EVT_LEN: 88,
  PM1_CNT_LEN: 89,
  PM_TMR_LEN: 91,
  IAPC_BOOT_ARCH: 109,
  FLAGS: 112,
  RESET_REG: 116,
  RESET_VALUE: 128,
  X_FIRMWARE_CTRL: 132,
  X_DSDT: 140,
  X_PM1A_EVT_BLK: 148,
  X_PM1A_CNT_BLK: 172,
  X_PM_TMR_BLK: 208,
} as const;
/** FADT flags: WBINVD, PROC_C1, SLP_BUTTON, RTC_S4, RESET_REG_SUP (no TMR_VAL_EXT: 24 bits). */
export const FADT_FLAGS = (1 << 0) | (1 << 2) | (1 << 5) | (1 << 7) | (1 << 10);
/** IAPC_BOOT_ARCH: legacy devices present, an 8042 present. */
export const IAPC_BOOT_ARCH = 0x0003;
/** MADT structure types. */
export const MADT_TYPE = { LOCAL_APIC: 0, IOAPIC: 1, OVERRIDE: 2, LOCAL_APIC_NMI: 4 } as const;
/** MPS INTI flags: active high (01), level-triggered (11 << 2). */
export const INTI_LEVEL_HIGH = 0x000d;

function header(t: TableBytes, signature: string, revision: number): TableBytes {
  return t.ascii(0, signature).u32(4, t.bytes.length).u8(8, revision)
    .ascii(10, OEM.ID, 6).ascii(16, OEM.TABLE_ID, 8).u32(24, OEM.REVISION)
    .ascii(28, OEM.CREATOR, 4).u32(32, 1);
}

/** A Generic Address Structure in system I/O space. */
function ioGas(t: TableBytes, at: number, port: number, bytes: number): void {
  t.u8(at, 1).u8(at + 1, bytes * 8).u8(at + 2, 0).u8(at + 3, bytes === 4 ? 3 : bytes)
    .u64(at + 4, port);
}

/** RSDP (ACPI 2.0, 36 bytes) pointing at both RSDT and XSDT. */
export function buildRsdp(): Uint8Array {
  return new TableBytes(36).ascii(0, "RSD PTR ").ascii(9, OEM.ID, 6).u8(15, 2)
    .u32(16, L.RSDT).u32(20, 36).u64(24, L.XSDT)
    .checksum(8, 0, 20).checksum(32, 0, 36).bytes;
}

/** RSDT (32-bit pointers) or XSDT (64-bit) listing FADT and MADT. */
export function buildRootTable(kind: "RSDT" | "XSDT"): Uint8Array {
  const entries = [L.FADT, L.MADT];
  const width = kind === "RSDT" ? 4 : 8;
  const t = header(new TableBytes(SDT_HEADER_BYTES + width * entries.length), kind, 1);
  entries.forEach((a, i) => {
    const at = SDT_HEADER_BYTES + i * width;
    if (width === 4) t.u32(at, a);
    else t.u64(at, a);
  });
  return t.checksum(9).bytes;
}

/** The FADT ("FACP"). */
export function buildFadt(): Uint8Array {
  const F = FADT_FIELD;
  const pm = P.PM_BASE;
  const t = header(new TableBytes(FADT_BYTES), "FACP", FADT_REVISION)
    .u32(F.FIRMWARE_CTRL, L.FACS).u32(F.DSDT, L.DSDT)
    .u16(F.SCI_INT, P.SCI_IRQ).u32(F.SMI_CMD, P.SMI_CMD).u8(52, 0xf1).u8(53, 0xf0)
    .u32(F.PM1A_EVT_BLK, pm).u32(F.PM1A_CNT_BLK, pm + 4).u32(F.PM_TMR_BLK, pm + 8)
    .u8(F.PM1_EVT_LEN, P.PM1_EVT_LEN).u8(F.PM1_CNT_LEN, P.PM1_CNT_LEN)
    .u8(F.PM_TMR_LEN, P.PM_TMR_LEN)
    // C2/C3 latencies above 100/1000 µs say "not supported".
    .u16(96, 0x0fff).u16(98, 0x0fff)
    .u8(108, P.RTC_CENTURY).u16(F.IAPC_BOOT_ARCH, IAPC_BOOT_ARCH).u32(F.FLAGS, FADT_FLAGS)
    .u8(F.RESET_VALUE, P.RESET_VALUE)
    .u64(F.X_FIRMWARE_CTRL, L.FACS).u64(F.X_DSDT, L.DSDT);
  ioGas(t, F.RESET_REG, P.RESET_PORT, 1);
  ioGas(t, F.X_PM1A_EVT_BLK, pm, P.PM1_EVT_LEN);
  ioGas(t, F.X_PM1A_CNT_BLK, pm + 4, P.PM1_CNT_LEN);
  ioGas(t, F.X_PM_TMR_BLK, pm + 8, P.PM_TMR_LEN);
  return t.checksum(9).bytes;
}

/** The MADT ("APIC"). */
export function buildMadt(): Uint8Array {
  const structs: [number, number[]][] = [];
  const le32 = (v: number) => [v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, v >>> 24];
  const le16 = (v: number) => [v & 0xff, v >>> 8];
  structs.push([MADT_TYPE.LOCAL_APIC, [0, P.LOCAL_APIC_ID, ...le32(1)]]);
  structs.push([MADT_TYPE.IOAPIC, [P.IOAPIC_ID, 0, ...le32(P.IOAPIC_BASE), ...le32(0)]]);
  structs.push([MADT_TYPE.OVERRIDE, [0, 0, ...le32(P.IRQ0_GSI), ...le16(0)]]);
  structs.push([MADT_TYPE.OVERRIDE, [0, P.SCI_IRQ, ...le32(P.SCI_IRQ), ...le16(INTI_LEVEL_HIGH)]]);
  structs.push([MADT_TYPE.LOCAL_APIC_NMI, [0xff, ...le16(0), 1]]);
  const body = structs.flatMap(([type, b]) => [type, b.length + 2, ...b]);
  const t = header(new TableBytes(SDT_HEADER_BYTES + 8 + body.length), "APIC", 3)
    .u32(36, P.LOCAL_APIC_BASE).u32(40, 1 /* PCAT_COMPAT: 8259s present */)
    .bytesAt(44, Uint8Array.from(body));
  return t.checksum(9).bytes;
}

/** AML of `Name (_S5, Package () { Zero, Zero })`: S5 is sleep type 0 on QEMU's PIIX4. */
const DSDT_AML = [0x08, 0x5f, 0x53, 0x35, 0x5f, 0x12, 0x04, 0x02, 0x00, 0x00];

/** A minimal DSDT. */
export function buildDsdt(): Uint8Array {
  return header(new TableBytes(SDT_HEADER_BYTES + DSDT_AML.length), "DSDT", 2)
    .bytesAt(SDT_HEADER_BYTES, Uint8Array.from(DSDT_AML)).checksum(9).bytes;
}

/** The FACS (no checksum; 64 bytes). */
export function buildFacs(): Uint8Array {
  return new TableBytes(64).ascii(0, "FACS").u32(4, 64).bytes;
}
