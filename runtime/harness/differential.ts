/**
 * Differential runs (`deno task scenario --backend both`): the same scenario on ring3 and on
 * QEMU should print the same thing. {@link compareTranscripts} finds where two console
 * transcripts part.
 *
 * @module
 */

/** Where two transcripts first differ. */
export interface TranscriptDivergence {
  /** 1-based line number. */
  line: number;
  /** 1-based column of the first differing character (past the end when one line is a prefix). */
  column: number;
  /** That line of the first transcript without its newline; null when it has no such line. */
  a: string | null;
  /** That line of the second transcript; null when it has no such line. */
  b: string | null;
  /** Whether each of the two lines ends with a newline (an unfinished last line does not). */
  aTerminated: boolean;
  bTerminated: boolean;
}

/**
 * Splits text into lines that keep their "\n" (the last one may lack it).
 *
 * @param text a transcript
 * @returns its lines
 */
function lines(text: string): string[] {
  return text.match(/[^\n]*\n|[^\n]+$/g) ?? [];
}

/**
 * Compares two console transcripts line by line.
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { compareTranscripts } from "./differential.ts";
 *
 * assert.equal(compareTranscripts("a\nb\n", "a\nb\n"), null);
 * assert.deepEqual(compareTranscripts("a\nb\n", "a\nc\n")?.line, 2);
 * ```
 * @param a one transcript (e.g. ring3's)
 * @param b the other (e.g. QEMU's)
 * @returns null when they are equal, else the first line where they differ
 */
export function compareTranscripts(a: string, b: string): TranscriptDivergence | null {
  if (a === b) return null;
  const la = lines(a);
  const lb = lines(b);
  for (let i = 0; i < Math.max(la.length, lb.length); i++) {
    const x = la[i];
    const y = lb[i];
    if (x === y) continue;
    let column = 0;
    if (x !== undefined && y !== undefined) {
      while (column < x.length && column < y.length && x[column] === y[column]) column++;
    }
    const strip = (s: string | undefined) => s === undefined ? null : s.replace(/\n$/, "");
    return {
      line: i + 1,
      column: column + 1,
      a: strip(x),
      b: strip(y),
      aTerminated: x?.endsWith("\n") ?? false,
      bTerminated: y?.endsWith("\n") ?? false,
    };
  }
  return null;
}

/**
 * Describes a divergence for people.
 *
 * @param d what {@link compareTranscripts} returned
 * @param names labels of the two sides (default "ring3" and "qemu")
 * @returns a few lines of text
 */
export function formatDivergence(
  d: TranscriptDivergence,
  names: [string, string] = ["ring3", "qemu"],
): string {
  const show = (s: string | null, terminated: boolean) =>
    s === null
      ? "(no such line: the transcript ends before it)"
      : `${JSON.stringify(s)}${terminated ? "" : " (no newline)"}`;
  const w = Math.max(names[0].length, names[1].length);
  return [
    `transcripts differ at line ${d.line}, column ${d.column}:`,
    `  ${names[0].padEnd(w)} | ${show(d.a, d.aTerminated)}`,
    `  ${names[1].padEnd(w)} | ${show(d.b, d.bTerminated)}`,
  ].join("\n");
}
