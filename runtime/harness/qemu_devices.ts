/**
 * How the QEMU backend presents the PC devices of a scenario: keyboard events as QMP
 * `input-send-event` key events (QEMU's "number" key codes are set 1 scancodes, extended keys
 * 0x80 | code), the text screen from a dump of 0xB8000 and the CRTC registers, and COM2..COM4 as
 * `-serial` chardevs.
 *
 * @module
 */
import type { BootOptions } from "../vm.ts";
import type { MachineEvent } from "../machine_protocol.ts";
import { chordScancodes, textKeystrokes } from "../devices/keymap.ts";
import { type ScreenSnapshot, TEXT_COLUMNS, TEXT_ROWS } from "../screen/text_screen.ts";

/** One QMP InputEvent of type key. */
export interface QmpKeyEvent {
  type: "key";
  data: { down: boolean; key: { type: "number"; data: number } };
}

/**
 * Set 1 bytes of one keystroke to QMP key events.
 *
 * @param bytes make/break codes, 0xE0-prefixed for extended keys
 * @returns the events, in order
 */
export function scancodesToQmp(bytes: number[]): QmpKeyEvent[] {
  const out: QmpKeyEvent[] = [];
  for (let i = 0; i < bytes.length; i++) {
    let b = bytes[i];
    let ext = 0;
    if (b === 0xe0 && i + 1 < bytes.length) {
      ext = 0x80;
      b = bytes[++i];
    }
    out.push({
      type: "key",
      data: { down: (b & 0x80) === 0, key: { type: "number", data: ext | (b & 0x7f) } },
    });
  }
  return out;
}

/**
 * A keyboard event of the timeline (vm_devices.ts) as the keys of QMP `send-key` commands, one
 * list per keystroke (the keys held together, modifiers first). `send-key` holds them for its
 * `hold-time` on QEMU's virtual clock and queues later keystrokes behind, so typing is paced in
 * guest time there too; plain `input-send-event` is not (and QEMU drops input while stopped).
 *
 * @param e `{ kind: "keyboard", text }` or `{ kind: "keyboard", chord }`
 * @returns QEMU key numbers per keystroke
 */
export function qemuKeystrokes(e: MachineEvent): number[][] {
  const strokes = typeof e.text === "string"
    ? textKeystrokes(e.text)
    : [chordScancodes(String(e.chord))];
  return strokes.map((bytes) =>
    scancodesToQmp(bytes).filter((k) => k.data.down).map((k) => k.data.key.data)
  );
}

/**
 * A snapshot from the 4000 bytes shown (read from 0xB8000 + 2 * start) and the CRTC registers.
 *
 * @param cells character/attribute pairs
 * @param start the CRTC start address the cells were read from
 * @param crtc cursor location and Cursor Start/End registers (NaN where a read failed)
 * @returns the snapshot
 */
export function screenFromText(
  cells: Uint8Array,
  start = 0,
  crtc?: { location: number; shape: number[] },
): ScreenSnapshot {
  const [cs, ce] = crtc?.shape ?? [NaN, NaN];
  const rel = (crtc?.location ?? NaN) - start;
  const visible = Number.isFinite(rel) && Number.isFinite(cs) && !(cs & 0x20) &&
    (cs & 0x1f) <= (ce & 0x1f) && rel >= 0 && rel < TEXT_COLUMNS * TEXT_ROWS;
  return {
    columns: TEXT_COLUMNS,
    rows: TEXT_ROWS,
    cells: cells.slice(0, 4000),
    cursor: visible
      ? {
        row: Math.floor(rel / TEXT_COLUMNS),
        column: rel % TEXT_COLUMNS,
        start: cs & 0x1f,
        end: ce & 0x1f,
      }
      : null,
  };
}

/**
 * `-serial` arguments for COM2..COM4 (COM1 is `-serial stdio`): a pty, a file, or QEMU's own
 * pipe:PATH (PATH.in/PATH.out), with `null` for lines in between. "console" is refused: QEMU's
 * lines reach the scenario only through COM1's stdio.
 *
 * @param serial the boot option
 * @returns arguments to append
 * @throws {RangeError} for a "console" line
 */
export function qemuSerialArgs(serial: BootOptions["serial"]): string[] {
  if (!serial) return [];
  const specs = [serial.com2, serial.com3, serial.com4];
  const last = specs.findLastIndex((s) => s !== undefined);
  const args: string[] = [];
  for (let i = 0; i <= last; i++) {
    const s = specs[i];
    let dev = "null";
    if (s === "console") {
      throw new RangeError(
        `com${i + 2}: "console" is not available on the QEMU backend; use a pty`,
      );
    } else if (s !== undefined && "pty" in s) dev = "pty";
    else if (s !== undefined && "file" in s) dev = `file:${s.file}`;
    else if (s !== undefined && "pipe" in s) dev = `pipe:${s.pipe}`;
    args.push("-serial", dev);
  }
  return args;
}
