/**
 * Draws a text screen snapshot as an image, as a VGA in mode 3 shows it: 8x16 cells, the
 * 16-colour CGA palette, attribute bits 0-3 the foreground and 4-6 the background (bit 7, blink,
 * is drawn as not blinking), and the cursor as a bar over its scanlines.
 *
 * @module
 */
import { CELL_HEIGHT, CELL_WIDTH, FONT_8X16 } from "./font.ts";
import { encodePng } from "./png.ts";
import type { ScreenSnapshot } from "./text_screen.ts";

/** The CGA palette as VGA's default DAC gives it (colour 6 is brown, not dark yellow). */
export const CGA_PALETTE: readonly (readonly [number, number, number])[] = [
  [0x00, 0x00, 0x00],
  [0x00, 0x00, 0xaa],
  [0x00, 0xaa, 0x00],
  [0x00, 0xaa, 0xaa],
  [0xaa, 0x00, 0x00],
  [0xaa, 0x00, 0xaa],
  [0xaa, 0x55, 0x00],
  [0xaa, 0xaa, 0xaa],
  [0x55, 0x55, 0x55],
  [0x55, 0x55, 0xff],
  [0x55, 0xff, 0x55],
  [0x55, 0xff, 0xff],
  [0xff, 0x55, 0x55],
  [0xff, 0x55, 0xff],
  [0xff, 0xff, 0x55],
  [0xff, 0xff, 0xff],
];

/**
 * Renders a snapshot to RGB pixels.
 *
 * @param s the screen
 * @returns width, height and width*height*3 bytes
 */
export function renderScreen(
  s: ScreenSnapshot,
): { width: number; height: number; rgb: Uint8Array } {
  const width = s.columns * CELL_WIDTH;
  const height = s.rows * CELL_HEIGHT;
  const rgb = new Uint8Array(width * height * 3);
  for (let row = 0; row < s.rows; row++) {
    for (let col = 0; col < s.columns; col++) {
      const i = (row * s.columns + col) * 2;
      const glyph = FONT_8X16[s.cells[i]];
      const attr = s.cells[i + 1];
      const fg = CGA_PALETTE[attr & 0x0f];
      const bg = CGA_PALETTE[(attr >> 4) & 0x07];
      const cursorHere = s.cursor !== null && s.cursor.row === row && s.cursor.column === col;
      for (let y = 0; y < CELL_HEIGHT; y++) {
        const bar = cursorHere && y >= s.cursor!.start && y <= s.cursor!.end;
        const bits = bar ? 0xff : glyph[y];
        for (let x = 0; x < CELL_WIDTH; x++) {
          const c = bits & (0x80 >> x) ? fg : bg;
          const p = ((row * CELL_HEIGHT + y) * width + col * CELL_WIDTH + x) * 3;
          rgb[p] = c[0];
          rgb[p + 1] = c[1];
          rgb[p + 2] = c[2];
        }
      }
    }
  }
  return { width, height, rgb };
}

/**
 * The snapshot as a PNG file.
 *
 * @param s the screen
 * @returns PNG bytes (640x400 for 80x25)
 */
export function screenPng(s: ScreenSnapshot): Uint8Array {
  const { width, height, rgb } = renderScreen(s);
  return encodePng(width, height, rgb);
}
