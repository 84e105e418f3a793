import assert from "node:assert/strict";
import { charScancodes, chordScancodes, KeymapError, textKeystrokes } from "./keymap.ts";

Deno.test("keymap gives set 1 make and break codes, with Shift for upper case and symbols", () => {
  assert.deepEqual(charScancodes("l"), [0x26, 0xa6]);
  assert.deepEqual(charScancodes("s"), [0x1f, 0x9f]);
  assert.deepEqual(charScancodes("\n"), [0x1c, 0x9c]);
  assert.deepEqual(charScancodes(" "), [0x39, 0xb9]);
  assert.deepEqual(charScancodes("1"), [0x02, 0x82]);
  assert.deepEqual(charScancodes("!"), [0x2a, 0x02, 0x82, 0xaa]);
  assert.deepEqual(charScancodes("|"), [0x2a, 0x2b, 0xab, 0xaa]);
  assert.deepEqual(charScancodes("/"), [0x35, 0xb5]);
  assert.deepEqual(charScancodes("`"), [0x29, 0xa9]);
});

Deno.test("keymap types text one keystroke per character", () => {
  assert.deepEqual(textKeystrokes("ls\n"), [[0x26, 0xa6], [0x1f, 0x9f], [0x1c, 0x9c]]);
});

Deno.test("keymap chords put modifiers down first and up last; extended keys get 0xE0", () => {
  assert.deepEqual(chordScancodes("Control+c"), [0x1d, 0x2e, 0xae, 0x9d]);
  assert.deepEqual(chordScancodes("ArrowUp"), [0xe0, 0x48, 0xe0, 0xc8]);
  assert.deepEqual(chordScancodes("F1"), [0x3b, 0xbb]);
});

Deno.test("keymap refuses characters with no key", () => {
  assert.throws(() => charScancodes("é"), KeymapError);
  assert.throws(() => chordScancodes("Hyper+x"), /unknown key "Hyper"/);
});
