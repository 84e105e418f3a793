/**
 * A US keyboard in scancode set 1: characters and named keys to make/break codes, as a PC
 * keyboard behind an i8042 with translation on delivers them (break = make | 0x80; keys of the
 * extended block are prefixed with 0xE0).
 *
 * @module
 */

/** Make codes of the named keys (set 1). Extended keys carry the 0xE0 prefix as a second byte. */
export const KEYS: Readonly<Record<string, number | readonly [0xe0, number]>> = {
  Escape: 0x01,
  Backspace: 0x0e,
  Tab: 0x0f,
  Enter: 0x1c,
  Control: 0x1d,
  Shift: 0x2a,
  ShiftRight: 0x36,
  Alt: 0x38,
  Space: 0x39,
  CapsLock: 0x3a,
  F1: 0x3b,
  F2: 0x3c,
  F3: 0x3d,
  F4: 0x3e,
  F5: 0x3f,
  F6: 0x40,
  F7: 0x41,
  F8: 0x42,
  F9: 0x43,
  F10: 0x44,
  F11: 0x57,
  F12: 0x58,
  ArrowUp: [0xe0, 0x48],
  ArrowLeft: [0xe0, 0x4b],
  ArrowRight: [0xe0, 0x4d],
  ArrowDown: [0xe0, 0x50],
  Home: [0xe0, 0x47],
  End: [0xe0, 0x4f],
  PageUp: [0xe0, 0x49],
  PageDown: [0xe0, 0x51],
  Insert: [0xe0, 0x52],
  Delete: [0xe0, 0x53],
};

// The main block row by row: each string lists the unshifted then shifted character per key,
// starting at the make code given.
const ROWS: readonly [number, string, string][] = [
  [0x02, "1234567890-=", "!@#$%^&*()_+"],
  [0x10, "qwertyuiop[]", "QWERTYUIOP{}"],
  [0x1e, "asdfghjkl;'`", 'ASDFGHJKL:"~'],
  [0x2b, "\\zxcvbnm,./", "|ZXCVBNM<>?"],
];

/** Make code and whether Shift is held, per character. */
const CHARS: ReadonlyMap<string, { code: number; shift: boolean }> = (() => {
  const m = new Map<string, { code: number; shift: boolean }>();
  for (const [first, plain, shifted] of ROWS) {
    for (let i = 0; i < plain.length; i++) {
      m.set(plain[i], { code: first + i, shift: false });
      m.set(shifted[i], { code: first + i, shift: true });
    }
  }
  m.set(" ", { code: 0x39, shift: false });
  m.set("\n", { code: 0x1c, shift: false });
  m.set("\r", { code: 0x1c, shift: false });
  m.set("\t", { code: 0x0f, shift: false });
  m.set("\b", { code: 0x0e, shift: false });
  m.set("\x1b", { code: 0x01, shift: false });
  return m;
})();

/** A character or key name with no scancode in this keymap. */
export class KeymapError extends RangeError {
  override name = "KeymapError";
}

function strokes(code: number | readonly number[]): { make: number[]; brk: number[] } {
  const bytes = typeof code === "number" ? [code] : [...code];
  const last = bytes.length - 1;
  return { make: bytes, brk: bytes.map((b, i) => i === last ? b | 0x80 : b) };
}

/**
 * The scancodes of typing one character: Shift around it when needed, make then break.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { charScancodes } from "./keymap.ts";
 * assert.deepEqual(charScancodes("a"), [0x1e, 0x9e]);
 * assert.deepEqual(charScancodes("A"), [0x2a, 0x1e, 0x9e, 0xaa]);
 * ```
 * @param ch one character
 * @returns set 1 bytes
 * @throws {KeymapError} for a character a US keyboard cannot type
 */
export function charScancodes(ch: string): number[] {
  const k = CHARS.get(ch);
  if (k === undefined) {
    throw new KeymapError(
      `no key types ${JSON.stringify(ch)} on the US keymap (printable ASCII, \\n, \\t, \\b, Esc)`,
    );
  }
  const { make, brk } = strokes(k.code);
  return k.shift ? [0x2a, ...make, ...brk, 0xaa] : [...make, ...brk];
}

/**
 * The scancodes of pressing and releasing a key chord such as "Control+c", "Shift+Tab", "F1"
 * or "a": modifiers go down first and up last.
 *
 * @param chord key names from {@link KEYS} or single characters, joined with "+"
 * @returns set 1 bytes
 * @throws {KeymapError} for an unknown key
 */
export function chordScancodes(chord: string): number[] {
  const parts = chord === "+" ? ["+"] : chord.split("+").map((p) => p === "" ? "+" : p);
  const down: number[] = [];
  const up: number[][] = [];
  for (const p of parts) {
    const named = KEYS[p];
    let code: number | readonly number[];
    if (named !== undefined) code = named;
    else if (p.length === 1 && CHARS.has(p.toLowerCase())) code = CHARS.get(p.toLowerCase())!.code;
    else if (p.length === 1 && CHARS.has(p)) code = CHARS.get(p)!.code;
    else {throw new KeymapError(
        `unknown key "${p}" in "${chord}" (known: ${Object.keys(KEYS).join(", ")}, or a character)`,
      );}
    const s = strokes(code);
    down.push(...s.make);
    up.unshift(s.brk);
  }
  return [...down, ...up.flat()];
}

/**
 * The keystrokes of a text, one array of scancodes per character (so a caller can pace them).
 *
 * @param text characters to type
 * @returns one set 1 sequence per character
 * @throws {KeymapError} naming the first character with no key
 */
export function textKeystrokes(text: string): number[][] {
  return [...text].map(charScancodes);
}
