/**
 * The keyboard and the text screen of a ring3 machine as a scenario drives them: typing is
 * paced in guest time by the machine, and the screen is whatever the machine last reported
 * (it sends a snapshot whenever the text or the cursor changes).
 *
 * @module
 */
import { type Duration, durationNs } from "./duration.ts";
import type { MachineEvent, ToMachine } from "./machine_protocol.ts";
import { type ScreenSnapshot, screenText } from "./screen/text_screen.ts";
import { screenPng } from "./screen/render.ts";
import { chordScancodes, textKeystrokes } from "./devices/keymap.ts";
import type { TypeOptions } from "./vm.ts";

/** The PS/2 keyboard behind the i8042 (scancode set 1, US layout). */
export class Keyboard {
  /** @internal */
  constructor(private readonly inject: (e: MachineEvent) => void) {}

  /**
   * Types text, one keystroke per interval of guest time, Shift where the character needs it.
   *
   * @param text printable ASCII, "\n" (Enter), "\t", "\b", "\x1b"
   * @param options pacing
   * @throws {KeymapError} for a character the US keymap cannot type
   */
  type(text: string, options: TypeOptions = {}): void {
    textKeystrokes(text); // refuse bad input here, in the scenario, with the character named
    this.inject({
      kind: "keyboard",
      text,
      ...(options.interval !== undefined ? { intervalNs: durationNs(options.interval) } : {}),
    });
  }

  /**
   * Presses and releases a key or chord: "Enter", "Control+c", "Shift+Tab", "F1", "a".
   *
   * @param chord key names of keymap.ts's KEYS or characters, joined by "+"
   * @throws {KeymapError} for an unknown key
   */
  press(chord: string): void {
    chordScancodes(chord);
    this.inject({ kind: "keyboard", chord });
  }
}

/** Options of {@link TextScreen.expect}. */
export interface ScreenExpectOptions {
  /** Guest-time limit (default "10s"). */
  timeout?: Duration;
}

/** The screen did not show a pattern in time. */
export class ScreenTimeoutError extends Error {
  override name = "ScreenTimeoutError";
  /**
   * @param pattern what was expected
   * @param screen the screen's text at the deadline
   */
  constructor(readonly pattern: string | RegExp, readonly screen: string) {
    super(`the screen did not show ${String(pattern)} in time; it shows:\n${screen}`);
  }
}

interface ScreenWaiter {
  pattern: string | RegExp;
  deadlineId: number;
  resolve: (m: RegExpExecArray) => void;
  reject: (e: Error) => void;
}

/** The CGA/VGA text screen (80x25 at 0xB8000). */
export class TextScreen {
  #snapshot: ScreenSnapshot | null = null;
  #waiters: ScreenWaiter[] = [];
  #ended: Error | null = null;

  /** @internal */
  constructor(
    private readonly send: (m: ToMachine) => void,
    private readonly nextDeadlineId: () => number,
  ) {}

  /** An expectation is waiting (a backend that polls the screen polls it more often then). */
  get waiting(): boolean {
    return this.#waiters.length > 0;
  }

  /** The last snapshot (null before the machine reported one). */
  get snapshot(): ScreenSnapshot | null {
    return this.#snapshot;
  }

  /** The screen's text: 25 lines, trailing spaces trimmed (empty before the first report). */
  text(): string {
    return this.#snapshot === null ? "" : screenText(this.#snapshot);
  }

  /** The cursor's row and column, or null when hidden. */
  cursor(): { row: number; column: number } | null {
    const c = this.#snapshot?.cursor;
    return c ? { row: c.row, column: c.column } : null;
  }

  /**
   * Waits until the whole screen's text matches (not consuming: the same text matches again).
   *
   * @param pattern a string to find or a regular expression
   * @param options guest-time limit
   * @returns the match
   * @throws {ScreenTimeoutError} when guest time runs out first, with the screen's text
   */
  expect(pattern: string | RegExp, options: ScreenExpectOptions = {}): Promise<RegExpExecArray> {
    const m = this.#match(pattern);
    if (m) return Promise.resolve(m);
    if (this.#ended) return Promise.reject(this.#ended);
    return new Promise((resolve, reject) => {
      const deadlineId = this.nextDeadlineId();
      this.#waiters.push({ pattern, deadlineId, resolve, reject });
      this.send({
        type: "deadline",
        id: deadlineId,
        afterNs: durationNs(options.timeout ?? "10s"),
      });
    });
  }

  /** The screen as a PNG (640x400), or null before the first report. */
  png(): Uint8Array | null {
    return this.#snapshot === null ? null : screenPng(this.#snapshot);
  }

  /**
   * Saves the screen as `BASE.txt` and `BASE.png`.
   *
   * @param base path without extension
   * @returns the two paths
   */
  async save(base: string): Promise<{ text: string; png: string }> {
    const paths = { text: `${base}.txt`, png: `${base}.png` };
    await Deno.writeTextFile(paths.text, this.text() + "\n");
    const png = this.png();
    if (png) await Deno.writeFile(paths.png, png);
    return paths;
  }

  #match(pattern: string | RegExp): RegExpExecArray | null {
    const text = this.text();
    if (typeof pattern === "string") {
      const i = text.indexOf(pattern);
      return i < 0 ? null : Object.assign([pattern], { index: i, input: text }) as RegExpExecArray;
    }
    return new RegExp(pattern.source, pattern.flags.replace("g", "").replace("y", "")).exec(text);
  }

  /** @internal A new snapshot arrived. */
  update(s: ScreenSnapshot): void {
    this.#snapshot = s;
    this.#waiters = this.#waiters.filter((w) => {
      const m = this.#match(w.pattern);
      if (!m) return true;
      this.send({ type: "cancel-deadline", id: w.deadlineId });
      w.resolve(m);
      return false;
    });
  }

  /** @internal A deadline passed (ids not ours are ignored). */
  deadline(id: number): void {
    this.#waiters = this.#waiters.filter((w) => {
      if (w.deadlineId !== id) return true;
      w.reject(new ScreenTimeoutError(w.pattern, this.text()));
      return false;
    });
  }

  /** @internal The run ended. */
  end(error: Error): void {
    this.#ended = error;
    for (const w of this.#waiters) w.reject(error);
    this.#waiters = [];
  }
}
