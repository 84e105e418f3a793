import assert from "node:assert/strict";
import { writeFirmware } from "./firmware.ts";
import { FIRMWARE_LAYOUT as L, PLATFORM as P } from "./layout.ts";
import { sum8 } from "./bytes.ts";
import { FADT_BYTES, FADT_FIELD, INTI_LEVEL_HIGH, MADT_TYPE } from "./acpi.ts";
import { BDA } from "./bda.ts";
import { describeMemoryMap, E820_RESERVED } from "../boot/multiboot.ts";
import { RING3_CPU } from "../cpu/cpu_model.ts";
import { IOAPIC_DEFAULT_BASE } from "../devices/ioapic.ts";
import { LOCAL_APIC_DEFAULT_BASE } from "../devices/local_apic.ts";
import { PC_LAYOUT } from "../pc_board.ts";

const RAM = 4 << 20;
function ram(): { bytes: Uint8Array; v: DataView } {
  const bytes = new Uint8Array(RAM);
  writeFirmware(bytes, RING3_CPU);
  return { bytes, v: new DataView(bytes.buffer) };
}
const ascii = (b: Uint8Array, at: number, n: number) =>
  String.fromCharCode(...b.subarray(at, at + n));

/** Finds a signature on 16-byte boundaries, as a kernel's scan does. */
function scan(b: Uint8Array, from: number, to: number, sig: string): number {
  for (let a = from; a < to; a += 16) if (ascii(b, a, sig.length) === sig) return a;
  return -1;
}

/** The SDTs an RSDT or XSDT lists, by signature. */
function tables(b: Uint8Array, v: DataView, root: number, width: 4 | 8): Map<string, number> {
  const len = v.getUint32(root + 4, true);
  const m = new Map<string, number>();
  for (let at = root + 36; at < root + len; at += width) {
    const a = width === 4 ? v.getUint32(at, true) : Number(v.getBigUint64(at, true));
    m.set(ascii(b, a, 4), a);
  }
  return m;
}

Deno.test("firmware: the RSDP is found by the standard scan and both checksums hold", () => {
  const { bytes: b, v } = ram();
  const rsdp = scan(b, 0xe0000, 0x100000, "RSD PTR ");
  assert.equal(rsdp, L.RSDP);
  assert.equal(sum8(b.subarray(rsdp, rsdp + 20)), 0);
  assert.equal(b[rsdp + 15], 2);
  assert.equal(v.getUint32(rsdp + 20, true), 36);
  assert.equal(sum8(b.subarray(rsdp, rsdp + 36)), 0);
});

Deno.test("firmware: RSDT and XSDT list the same tables, and every table's checksum holds", () => {
  const { bytes: b, v } = ram();
  const rsdt = tables(b, v, v.getUint32(L.RSDP + 16, true), 4);
  const xsdt = tables(b, v, Number(v.getBigUint64(L.RSDP + 24, true)), 8);
  assert.deepEqual([...rsdt], [...xsdt]);
  assert.deepEqual([...rsdt.keys()].sort(), ["APIC", "FACP"]);
  for (const a of [L.RSDT, L.XSDT, L.FADT, L.MADT, L.DSDT]) {
    assert.equal(sum8(b.subarray(a, a + v.getUint32(a + 4, true))), 0, `table at ${a}`);
  }
  assert.equal(ascii(b, L.FACS, 4), "FACS");
  assert.equal(L.FACS % 64, 0);
});

Deno.test("firmware: the FADT names the PM block, the PM timer at 0x608 and the reset register", () => {
  const { bytes: b, v } = ram();
  const F = FADT_FIELD;
  const f = L.FADT;
  assert.equal(v.getUint32(f + 4, true), FADT_BYTES);
  assert.equal(v.getUint32(f + F.PM_TMR_BLK, true), 0x608);
  assert.equal(v.getUint32(f + F.PM_TMR_BLK, true), PC_LAYOUT.ACPI_PM + 8);
  assert.equal(v.getUint32(f + F.PM1A_EVT_BLK, true), 0x600);
  assert.equal(v.getUint32(f + F.PM1A_CNT_BLK, true), 0x604);
  assert.equal(b[f + F.PM_TMR_LEN], 4);
  assert.equal(v.getUint16(f + F.SCI_INT, true), 9);
  assert.ok(v.getUint32(f + F.FLAGS, true) & (1 << 10), "RESET_REG_SUP");
  assert.equal(b[f + F.RESET_REG], 1, "system I/O space");
  assert.equal(b[f + F.RESET_REG + 1], 8);
  assert.equal(Number(v.getBigUint64(f + F.RESET_REG + 4, true)), PC_LAYOUT.RESET_CONTROL);
  assert.equal(b[f + F.RESET_VALUE], 0x06);
  assert.equal(Number(v.getBigUint64(f + F.X_PM_TMR_BLK + 4, true)), 0x608);
  assert.equal(v.getUint32(f + F.DSDT, true), L.DSDT);
  assert.equal(Number(v.getBigUint64(f + F.X_DSDT, true)), L.DSDT);
});

Deno.test("firmware: the MADT has the LAPIC, the IOAPIC, IRQ0 -> GSI 2 and a level SCI", () => {
  const { bytes: b, v } = ram();
  const m = L.MADT;
  assert.equal(v.getUint32(m + 36, true), LOCAL_APIC_DEFAULT_BASE);
  const seen: string[] = [];
  for (let at = m + 44; at < m + v.getUint32(m + 4, true); at += b[at + 1]) {
    const t = b[at];
    if (t === MADT_TYPE.LOCAL_APIC) seen.push(`lapic ${b[at + 3]} flags ${b[at + 4]}`);
    if (t === MADT_TYPE.IOAPIC) {
      assert.equal(v.getUint32(at + 4, true), IOAPIC_DEFAULT_BASE);
      seen.push(`ioapic ${b[at + 2]} gsi ${v.getUint32(at + 8, true)}`);
    }
    if (t === MADT_TYPE.OVERRIDE) {
      seen.push(
        `irq${b[at + 3]} -> ${v.getUint32(at + 4, true)} flags ${v.getUint16(at + 8, true)}`,
      );
    }
    if (t === MADT_TYPE.LOCAL_APIC_NMI) seen.push(`nmi lint${b[at + 5]}`);
  }
  assert.deepEqual(seen, [
    "lapic 0 flags 1",
    "ioapic 0 gsi 0",
    "irq0 -> 2 flags 0",
    `irq9 -> 9 flags ${INTI_LEVEL_HIGH}`,
    "nmi lint1",
  ]);
});

Deno.test("firmware: the MP tables agree with the MADT (IOAPIC, IRQ0 on INTIN2)", () => {
  const { bytes: b, v } = ram();
  const fp = scan(b, 0xf0000, 0x100000, "_MP_");
  assert.equal(fp, L.MP_FLOATING);
  assert.equal(sum8(b.subarray(fp, fp + 16)), 0);
  const cfg = v.getUint32(fp + 4, true);
  assert.equal(ascii(b, cfg, 4), "PCMP");
  const len = v.getUint16(cfg + 4, true);
  assert.equal(sum8(b.subarray(cfg, cfg + len)), 0);
  assert.equal(v.getUint32(cfg + 36, true), LOCAL_APIC_DEFAULT_BASE);
  let at = cfg + 44;
  const irqs = new Map<number, number>();
  let ioapic = 0;
  for (let i = 0; i < v.getUint16(cfg + 34, true); i++) {
    if (b[at] === 0) {
      assert.equal(b[at + 3], 3, "enabled bootstrap processor");
      at += 20;
      continue;
    }
    if (b[at] === 1) assert.equal(ascii(b, at + 2, 6), "ISA   ");
    if (b[at] === 2) ioapic = v.getUint32(at + 4, true);
    if (b[at] === 3) irqs.set(b[at + 5], b[at + 7]);
    at += 8;
  }
  assert.equal(at, cfg + len);
  assert.equal(ioapic, P.IOAPIC_BASE);
  assert.equal(irqs.get(0), 2);
  assert.equal(irqs.get(4), 4);
  assert.equal(irqs.has(2), false, "the cascade has no source");
});

Deno.test("firmware: the BDA lists COM1-COM4, the EBDA, 639 KiB and a colour text screen", () => {
  const { v } = ram();
  const at = (o: number) => L.BDA + o;
  assert.deepEqual([0, 1, 2, 3].map((i) => v.getUint16(at(BDA.COM_PORTS + 2 * i), true)), [
    0x3f8,
    0x2f8,
    0x3e8,
    0x2e8,
  ]);
  assert.deepEqual(PC_LAYOUT.COM, [...P.COM_PORTS]);
  assert.equal(v.getUint16(at(BDA.EBDA_SEGMENT), true) << 4, 0x9fc00);
  assert.equal(v.getUint16(at(BDA.MEMORY_KB), true), 639);
  assert.equal((v.getUint16(at(BDA.EQUIPMENT), true) >> 9) & 7, 4);
  assert.equal(v.getUint16(at(BDA.CRTC_BASE), true), PC_LAYOUT.VGA_CRTC);
});

Deno.test("firmware: the tables lie in memory the Multiboot map reports reserved, clear of the boot info", () => {
  const map = describeMemoryMap(64 << 20);
  const reserved = (a: number, end: number) =>
    map.some((e) => e.type === E820_RESERVED && e.base <= a && end <= e.base + e.length);
  assert.ok(reserved(L.AREA_START, L.AREA_END));
  assert.ok(reserved(L.EBDA, L.EBDA + 1024));
  // Multiboot information lives at 0x9000..0xA000; the BDA is below it.
  assert.ok(L.BDA + 0x100 <= 0x9000);
});

Deno.test("firmware: too little RAM is refused with the size named", () => {
  assert.throws(() => writeFirmware(new Uint8Array(0x80000), RING3_CPU), /need 1 MiB/);
});
