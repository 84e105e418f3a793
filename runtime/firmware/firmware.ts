/**
 * Writes ring3's firmware environment into guest RAM before the kernel is loaded: the BIOS data
 * area, the MP tables and the ACPI tables, at the addresses of layout.ts.
 *
 * @module
 */
import { writeBiosDataArea } from "./bda.ts";
import { buildMpConfig, buildMpFloating, type MpCpu } from "./mp_table.ts";
import { buildDsdt, buildFacs, buildFadt, buildMadt, buildRootTable, buildRsdp } from "./acpi.ts";
import { FIRMWARE_LAYOUT as L } from "./layout.ts";

/**
 * Writes every table.
 *
 * @param ram guest physical memory (at least 1 MiB)
 * @param cpu what the MP processor entry says about the CPU
 * @throws {RangeError} when RAM is too small to hold the BIOS area
 */
export function writeFirmware(ram: Uint8Array, cpu: MpCpu): void {
  if (ram.length < L.AREA_END) {
    throw new RangeError(`firmware tables need 1 MiB of RAM, got 0x${ram.length.toString(16)}`);
  }
  writeBiosDataArea(ram);
  const place: [number, Uint8Array][] = [
    [L.RSDP, buildRsdp()],
    [L.MP_FLOATING, buildMpFloating()],
    [L.MP_CONFIG, buildMpConfig(cpu)],
    [L.RSDT, buildRootTable("RSDT")],
    [L.XSDT, buildRootTable("XSDT")],
    [L.FADT, buildFadt()],
    [L.MADT, buildMadt()],
    [L.DSDT, buildDsdt()],
    [L.FACS, buildFacs()],
  ];
  const sorted = [...place].sort((a, b) => a[0] - b[0]);
  for (let i = 0; i < sorted.length; i++) {
    const [at, bytes] = sorted[i];
    const next = i + 1 < sorted.length ? sorted[i + 1][0] : L.AREA_END;
    if (at + bytes.length > next) {
      throw new RangeError(`firmware table at 0x${at.toString(16)} overruns the next one`);
    }
    ram.set(bytes, at);
  }
}
