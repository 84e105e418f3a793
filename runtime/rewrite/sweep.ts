/**
 * Linear-sweep disassembly of one address range with iced-x86: every instruction boundary, the
 * classified instructions found (see {@link classifyCode}), the direct branch targets, and
 * whether the sweep is consistent: no invalid decode, and the last instruction ends exactly at
 * the end of the range. Only a consistent sweep from a trusted start (a symbol) proves
 * instruction boundaries; deciding that is the caller's job.
 *
 * After an invalid decode the sweep goes on from the next byte, so that a report can still list
 * the candidate instructions in the unproven rest (which the caller must not patch).
 *
 * @module
 */

import iced from "iced-x86";
import { type Classification, classifyCode, isCandidateCode } from "./classify.ts";

const { Decoder, DecoderOptions, DecoderError, FlowControl, Formatter, FormatterSyntax, OpKind } =
  iced;

/** Decoding mode of a range. */
export type Bitness = 16 | 32 | 64;

/** Longest x86 instruction. */
export const MAX_INSTRUCTION_BYTES = 15;

/** A classified instruction found by a sweep. */
export interface SweepSite extends Classification {
  /** Address of its first byte. */
  vaddr: number;
  /** Its length in bytes. */
  length: number;
  /** Mode it was decoded in. */
  bitness: Bitness;
  /** Its bytes (a copy). */
  bytes: Uint8Array;
  /** AT&T syntax, as objdump prints it. */
  text: string;
  /** Whether control flows on to the next instruction (no branch, call, return, interrupt). */
  flowNext: boolean;
  /** Whether the instruction just before it in the sweep is an `int3`. */
  afterInt3: boolean;
}

/** Why a sweep does not prove its instruction boundaries. */
export interface SweepFailure {
  /** `"invalid-decode"` (bytes that are no instruction: data in code?) or `"overrun"`. */
  reason: "invalid-decode" | "overrun";
  /** Address where it went wrong. */
  vaddr: number;
  /** Human-readable account: address, bytes, the instruction that overran. */
  detail: string;
}

/** What a sweep of one range (or several adjacent ranges, see {@link Sweeper.sweep}) found. */
export interface SweepResult {
  /** Start address of every decoded instruction, ascending (the unproven part included). */
  starts: number[];
  /** Length of each instruction in {@link starts}. */
  lengths: number[];
  /**
   * Per instruction: 1 when it is unclassified and control flows on to the next instruction
   * (so a later fast-form patch could cover it), else 0.
   */
  plain: number[];
  /** Classified instructions, in address order. */
  sites: SweepSite[];
  /** Targets of direct near jumps, conditional jumps and calls (unsorted, may repeat). */
  targets: number[];
  /** The first failure, or undefined for a consistent sweep. */
  failure?: SweepFailure;
}

/** An empty {@link SweepResult} to accumulate into. */
export function emptySweep(): SweepResult {
  return { starts: [], lengths: [], plain: [], sites: [], targets: [] };
}

const hex = (n: number): string => `0x${n.toString(16)}`;
const hexBytes = (b: Uint8Array): string =>
  Array.from(b, (x) => x.toString(16).padStart(2, "0")).join(" ");

const NEAR_BRANCH_KINDS: ReadonlySet<number> = new Set([
  OpKind.NearBranch16,
  OpKind.NearBranch32,
  OpKind.NearBranch64,
]);
const BRANCH_FLOWS: ReadonlySet<number> = new Set([
  FlowControl.UnconditionalBranch,
  FlowControl.ConditionalBranch,
  FlowControl.Call,
  FlowControl.XbeginXabortXend,
]);

/**
 * Sweeps ranges with one reusable decoder state. Holds wasm objects: call {@link free} when
 * done (or use {@link withSweeper}).
 */
export class Sweeper {
  readonly #instr = new iced.Instruction();
  readonly #formatter = new Formatter(FormatterSyntax.Gas);

  /**
   * Decodes `[start, end)` linearly and appends what it finds to `into`.
   *
   * @param window the bytes at `start`; may extend past `end` (up to
   *   {@link MAX_INSTRUCTION_BYTES} more is useful) so that an instruction crossing `end` is
   *   seen whole and reported as an overrun rather than as an invalid decode
   * @param start address of `window[0]`
   * @param end end of the range (exclusive); `end - start <= window.length`
   * @param bitness decoding mode
   * @param into the result to append to; its `failure` is set only if still unset
   * @returns `into`
   */
  sweep(
    window: Uint8Array,
    start: number,
    end: number,
    bitness: Bitness,
    into: SweepResult = emptySweep(),
  ): SweepResult {
    if (end - start > window.length || end < start) {
      throw new RangeError(
        `sweep of ${hex(start)}-${hex(end)} needs ${
          end - start
        } bytes, window has ${window.length}`,
      );
    }
    if (end === start) return into;
    const fail = (f: SweepFailure): void => {
      if (into.failure === undefined) into.failure = f;
    };
    const instr = this.#instr;
    const decoder = new Decoder(bitness, window, DecoderOptions.None);
    try {
      decoder.ip = BigInt(start);
      let pos = start;
      let previousCode = -1;
      while (pos < end) {
        decoder.decodeOut(instr);
        const length = instr.length;
        if (instr.isInvalid) {
          const truncated = decoder.lastError === DecoderError.NoMoreBytes;
          const shown = window.subarray(pos - start, Math.min(pos - start + 8, window.length));
          fail({
            reason: truncated ? "overrun" : "invalid-decode",
            vaddr: pos,
            detail: truncated
              ? `instruction at ${hex(pos)} (${hexBytes(shown)}) runs past the end of the code`
              : `invalid instruction at ${hex(pos)} (${hexBytes(shown)}): data in code?`,
          });
          // Resynchronise one byte on, for the report's sake.
          previousCode = -1;
          pos++;
          decoder.position = pos - start;
          decoder.ip = BigInt(pos);
          continue;
        }
        const code = instr.code;
        let classification: Classification | undefined;
        if (isCandidateCode(code)) {
          classification = classifyCode(code, code === iced.Code.Int_imm8 ? instr.immediate8 : 0);
        }
        const flow = instr.flowControl;
        if (pos + length > end) {
          fail({
            reason: "overrun",
            vaddr: pos,
            detail: `${this.#formatter.format(instr)} at ${hex(pos)} (${length} bytes) runs past ` +
              `the end of the range at ${hex(end)}`,
          });
          break;
        }
        into.starts.push(pos);
        into.lengths.push(length);
        into.plain.push(classification === undefined && flow === FlowControl.Next ? 1 : 0);
        if (BRANCH_FLOWS.has(flow) && NEAR_BRANCH_KINDS.has(instr.op0Kind)) {
          into.targets.push(Number(instr.nearBranchTarget));
        }
        if (classification !== undefined) {
          into.sites.push({
            ...classification,
            vaddr: pos,
            length,
            bitness,
            bytes: window.slice(pos - start, pos - start + length),
            text: this.#formatter.format(instr),
            flowNext: flow === FlowControl.Next,
            afterInt3: previousCode === iced.Code.Int3,
          });
        }
        previousCode = code;
        pos += length;
      }
    } finally {
      decoder.free();
    }
    return into;
  }

  /** Releases the wasm objects. The sweeper must not be used afterwards. */
  free(): void {
    this.#instr.free();
    this.#formatter.free();
  }
}

/**
 * Runs `fn` with a fresh {@link Sweeper} and frees it afterwards.
 *
 * @param fn what to do with the sweeper
 * @returns what `fn` returns
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { withSweeper } from "./sweep.ts";
 * // push %ebp; pushf; pop %ebp; ret
 * const code = Uint8Array.of(0x55, 0x9c, 0x5d, 0xc3);
 * const r = withSweeper((s) => s.sweep(code, 0x1000, 0x1004, 32));
 * assert.deepEqual(r.starts, [0x1000, 0x1001, 0x1002, 0x1003]);
 * assert.equal(r.sites[0].kind, "pushf");
 * assert.equal(r.failure, undefined);
 * ```
 */
export function withSweeper<T>(fn: (sweeper: Sweeper) => T): T {
  const sweeper = new Sweeper();
  try {
    return fn(sweeper);
  } finally {
    sweeper.free();
  }
}
