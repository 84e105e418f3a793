/**
 * The text a CGA/VGA colour text screen shows: 80x25 cells of (character, attribute) at
 * physical 0xB8000, from the CRTC's start address, with its cursor. Snapshots are plain data,
 * so they cross from the machine's Worker to the scenario thread.
 *
 * @module
 */

/** Where the colour text buffer is in guest physical memory. */
export const TEXT_BUFFER_BASE = 0xb8000;
/** Size of the colour text window (32 KiB: 0xB8000..0xC0000). */
export const TEXT_BUFFER_BYTES = 0x8000;
export const TEXT_COLUMNS = 80;
export const TEXT_ROWS = 25;

/** One screenful, as the adapter would display it. */
export interface ScreenSnapshot {
  columns: number;
  rows: number;
  /** columns*rows pairs of (character code, attribute), row by row. */
  cells: Uint8Array;
  /** Cursor cell relative to the top-left of the screen, or null when hidden or off screen. */
  cursor: { row: number; column: number; start: number; end: number } | null;
}

/**
 * Reads the screen from guest RAM.
 *
 * @param ram guest physical memory
 * @param startAddress the CRTC start address (cells from 0xB8000)
 * @param cursor the CRTC cursor (cells from 0xB8000)
 * @returns a fresh snapshot
 */
export function readScreen(
  ram: Uint8Array,
  startAddress: number,
  cursor: { location: number; start: number; end: number; visible: boolean },
): ScreenSnapshot {
  const bytes = TEXT_COLUMNS * TEXT_ROWS * 2;
  const cells = new Uint8Array(bytes);
  for (let i = 0; i < bytes; i++) {
    // The 32 KiB window wraps, as the adapter's address counter does.
    const a = TEXT_BUFFER_BASE + ((startAddress * 2 + i) % TEXT_BUFFER_BYTES);
    cells[i] = a < ram.length ? ram[a] : 0xff;
  }
  const rel = cursor.location - startAddress;
  const onScreen = rel >= 0 && rel < TEXT_COLUMNS * TEXT_ROWS;
  return {
    columns: TEXT_COLUMNS,
    rows: TEXT_ROWS,
    cells,
    cursor: cursor.visible && onScreen
      ? {
        row: Math.floor(rel / TEXT_COLUMNS),
        column: rel % TEXT_COLUMNS,
        start: cursor.start,
        end: cursor.end,
      }
      : null,
  };
}

/** Two snapshots show the same thing. */
export function sameScreen(a: ScreenSnapshot | null, b: ScreenSnapshot): boolean {
  if (a === null || a.cells.length !== b.cells.length) return false;
  for (let i = 0; i < a.cells.length; i++) if (a.cells[i] !== b.cells[i]) return false;
  const c = a.cursor, d = b.cursor;
  return c === null || d === null ? c === d : c.row === d.row && c.column === d.column &&
    c.start === d.start && c.end === d.end;
}

// Code page 437, 0x80..0xFF, as the VGA ROM font draws it.
const CP437_HIGH = "ÇüéâäàåçêëèïîìÄÅÉæÆôöòûùÿÖÜ¢£¥₧ƒáíóúñÑªº¿⌐¬½¼¡«»░▒▓│┤╡╢╖╕╣║╗╝╜╛┐└┴┬├─┼╞╟╚╔╩" +
  "╦╠═╬╧╨╤╥╙╘╒╓╫╪┘┌█▄▌▐▀αßΓπΣσµτΦΘΩδ∞φε∩≡±≥≤⌠⌡÷≈°∙·√ⁿ²■\u00a0";

/**
 * The character a code shows as, in Unicode (code page 437; control codes 1..31 as the
 * glyph-less space they are in most fonts' text dumps, NUL as a space).
 *
 * @param code 0..255
 * @returns one character
 */
export function cp437(code: number): string {
  if (code >= 0x20 && code < 0x7f) return String.fromCharCode(code);
  if (code >= 0x80) return CP437_HIGH[code - 0x80];
  return " ";
}

/**
 * The screen as text: one line per row, trailing spaces removed, rows joined with "\n".
 *
 * @param s a snapshot
 * @returns the text
 */
export function screenText(s: ScreenSnapshot): string {
  const lines: string[] = [];
  for (let r = 0; r < s.rows; r++) {
    let line = "";
    for (let c = 0; c < s.columns; c++) line += cp437(s.cells[(r * s.columns + c) * 2]);
    lines.push(line.trimEnd());
  }
  return lines.join("\n");
}
