/**
 * The BIOS data area at 0x400 and the EBDA size word, filled as SeaBIOS leaves them for a
 * Multiboot kernel: the serial port table, the EBDA segment (where the ACPI and MP scans
 * start), conventional memory size, the equipment word and the text-mode video fields.
 *
 * Offsets follow the IBM PC/AT BIOS data area (Ralf Brown's "BIOS Data Area" table).
 *
 * @module
 */
import { FIRMWARE_LAYOUT as L, PLATFORM as P } from "./layout.ts";

/** Field offsets from 0x400. */
export const BDA = {
  COM_PORTS: 0x00,
  LPT_PORTS: 0x08,
  EBDA_SEGMENT: 0x0e,
  EQUIPMENT: 0x10,
  MEMORY_KB: 0x13,
  VIDEO_MODE: 0x49,
  VIDEO_COLUMNS: 0x4a,
  CRTC_BASE: 0x63,
  VIDEO_ROWS_MINUS_1: 0x84,
} as const;

/** Equipment word bits: an FPU, initial video 80x25 colour, the number of serial ports. */
export function equipmentWord(comPorts: number): number {
  return 0x0002 | 0x0020 | ((comPorts & 7) << 9);
}

/**
 * Writes the BDA and the EBDA's size word into RAM.
 *
 * @param ram guest physical memory
 */
export function writeBiosDataArea(ram: Uint8Array): void {
  const v = new DataView(ram.buffer, ram.byteOffset, ram.byteLength);
  const at = (off: number) => L.BDA + off;
  P.COM_PORTS.forEach((port, i) => v.setUint16(at(BDA.COM_PORTS + 2 * i), port, true));
  for (let i = 0; i < 3; i++) v.setUint16(at(BDA.LPT_PORTS + 2 * i), 0, true);
  v.setUint16(at(BDA.EBDA_SEGMENT), L.EBDA >> 4, true);
  v.setUint16(at(BDA.EQUIPMENT), equipmentWord(P.COM_PORTS.length), true);
  v.setUint16(at(BDA.MEMORY_KB), P.BASE_MEMORY_KB, true);
  v.setUint8(at(BDA.VIDEO_MODE), 3);
  v.setUint16(at(BDA.VIDEO_COLUMNS), 80, true);
  v.setUint16(at(BDA.CRTC_BASE), 0x3d4, true);
  v.setUint8(at(BDA.VIDEO_ROWS_MINUS_1), 24);
  // The EBDA starts with its own size in KiB.
  v.setUint16(L.EBDA, 1, true);
}
