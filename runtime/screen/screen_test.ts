import assert from "node:assert/strict";
import { inflateSync } from "node:zlib";
import { crc32, encodePng } from "./png.ts";
import { readScreen, sameScreen, screenText, TEXT_BUFFER_BASE } from "./text_screen.ts";
import { CGA_PALETTE, renderScreen, screenPng } from "./render.ts";
import { FONT_8X16 } from "./font.ts";

/** Splits a PNG into chunks, checking each CRC. */
function chunks(png: Uint8Array): { type: string; data: Uint8Array }[] {
  assert.deepEqual([...png.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  const v = new DataView(png.buffer, png.byteOffset);
  const out: { type: string; data: Uint8Array }[] = [];
  for (let at = 8; at < png.length;) {
    const len = v.getUint32(at);
    const type = String.fromCharCode(...png.subarray(at + 4, at + 8));
    const data = png.subarray(at + 8, at + 8 + len);
    assert.equal(v.getUint32(at + 8 + len), crc32(png.subarray(at + 4, at + 8 + len)), type);
    out.push({ type, data });
    at += 12 + len;
  }
  return out;
}

Deno.test("crc32 matches the check value of the standard", () => {
  assert.equal(crc32(new TextEncoder().encode("123456789")), 0xcbf43926);
});

Deno.test("encodePng output decodes back to the same pixels", () => {
  const w = 3, h = 2;
  const rgb = Uint8Array.from({ length: w * h * 3 }, (_, i) => (i * 37) & 0xff);
  const c = chunks(encodePng(w, h, rgb));
  assert.deepEqual(c.map((x) => x.type), ["IHDR", "IDAT", "IEND"]);
  const ihdr = new DataView(c[0].data.buffer, c[0].data.byteOffset);
  assert.equal(ihdr.getUint32(0), w);
  assert.equal(ihdr.getUint32(4), h);
  assert.deepEqual([...c[0].data.subarray(8)], [8, 2, 0, 0, 0]);
  const raw = new Uint8Array(inflateSync(c[1].data));
  for (let y = 0; y < h; y++) {
    assert.equal(raw[y * (1 + w * 3)], 0);
    assert.deepEqual(
      [...raw.subarray(y * (1 + w * 3) + 1, (y + 1) * (1 + w * 3))],
      [...rgb.subarray(y * w * 3, (y + 1) * w * 3)],
    );
  }
  assert.throws(() => encodePng(2, 2, new Uint8Array(5)), RangeError);
});

function screenRam(text: string, attr = 0x1e): Uint8Array {
  const ram = new Uint8Array(1 << 20);
  for (let i = 0; i < 2000; i++) {
    ram[TEXT_BUFFER_BASE + 2 * i] = 0x20;
    ram[TEXT_BUFFER_BASE + 2 * i + 1] = 0x07;
  }
  [...text].forEach((ch, i) => {
    ram[TEXT_BUFFER_BASE + 2 * i] = ch.charCodeAt(0);
    ram[TEXT_BUFFER_BASE + 2 * i + 1] = attr;
  });
  return ram;
}

Deno.test("readScreen reads 80x25 cells from 0xB8000 with the start address and cursor", () => {
  const ram = screenRam("hello" + " ".repeat(75) + "second\xdb");
  const s = readScreen(ram, 0, { location: 86, start: 14, end: 15, visible: true });
  assert.equal(screenText(s).split("\n").slice(0, 3).join("|"), "hello|second█|");
  assert.deepEqual(s.cursor, { row: 1, column: 6, start: 14, end: 15 });
  const scrolled = readScreen(ram, 80, { location: 86, start: 14, end: 15, visible: true });
  assert.equal(screenText(scrolled).split("\n")[0], "second█");
  assert.deepEqual(scrolled.cursor?.row, 0);
  assert.equal(readScreen(ram, 0, { location: 0, start: 0, end: 0, visible: false }).cursor, null);
  assert.ok(sameScreen(s, readScreen(ram, 0, { location: 86, start: 14, end: 15, visible: true })));
  assert.ok(!sameScreen(s, scrolled));
});

Deno.test("the screen renders 640x400 with the glyph in the attribute's colours, and as a PNG", () => {
  const s = readScreen(screenRam("A"), 0, { location: 2000, start: 0, end: 0, visible: false });
  const { width, height, rgb } = renderScreen(s);
  assert.equal(width, 640);
  assert.equal(height, 400);
  const px = (
    x: number,
    y: number,
  ) => [...rgb.subarray((y * width + x) * 3, (y * width + x) * 3 + 3)];
  const glyph = FONT_8X16["A".charCodeAt(0)];
  const y = glyph.findIndex((row) => row !== 0);
  const x = [...Array(8).keys()].find((b) => glyph[y] & (0x80 >> b))!;
  assert.deepEqual(px(x, y), [...CGA_PALETTE[0x0e]], "yellow foreground");
  assert.deepEqual(px(0, 0), [...CGA_PALETTE[0x01]], "blue background");
  assert.deepEqual(px(8 * 5, 0), [0, 0, 0], "another cell: black");
  const png = screenPng(s);
  const idat = chunks(png).find((c) => c.type === "IDAT")!;
  assert.equal(new Uint8Array(inflateSync(idat.data)).length, 400 * (1 + 640 * 3));
});

Deno.test("every printable ASCII character has a glyph distinct from the others", () => {
  const seen = new Map<string, string>();
  for (let c = 0x21; c < 0x7f; c++) {
    const key = FONT_8X16[c].join(",");
    assert.ok(FONT_8X16[c].some((r) => r !== 0), String.fromCharCode(c));
    assert.ok(!seen.has(key), `${String.fromCharCode(c)} looks like ${seen.get(key)}`);
    seen.set(key, String.fromCharCode(c));
  }
});
