/**
 * The side table: the sidecar file that travels with a rewritten image (`OUT` +
 * {@link SIDECAR_SUFFIX}) and tells the emulator, for each patched site, what the original
 * instruction was. It is bound to its image by the image's SHA-256, so a table is never applied
 * to an image it was not made for.
 *
 * Format (`format: "ring3-rewrite"`, `version: 2`), JSON:
 *
 * ```json
 * {
 *   "format": "ring3-rewrite",
 *   "version": 2,
 *   "image": { "sha256": "<hex of the rewritten file>", "size": 21284 },
 *   "original": { "sha256": "<hex of the input file>", "path": "fixtures/build/sensitive.elf" },
 *   "options": { "privileged": false, "allowStripped": false, "bitness": [] },
 *   "patches": [
 *     { "vaddr": 1048816, "paddr": 1048816, "fileOffset": 4336, "bitness": 32, "length": 1,
 *       "bytes": "9c", "mnemonic": "pushf", "kind": "pushf", "class": "sensitive",
 *       "form": "trap", "branchTargetInside": false, "fastEligible": false }
 *   ],
 *   "skipped": [
 *     { "vaddr": 1049000, "bytes": "0fa2", "text": "cpuid", "class": "sensitive",
 *       "kind": "cpuid", "reason": "invalid-decode", "detail": "function f (...): ..." }
 *   ],
 *   "summary": { "byClass": {}, "byForm": { "trap": 1 }, "skippedByReason": {}, "fastEligible": 0 }
 * }
 * ```
 *
 * Trap form: the site's first byte is replaced by `int3` (0xCC) and the rest kept. The guest
 * traps with EIP = vaddr + 1; the emulator looks up vaddr, emulates `bytes`, and continues at
 * vaddr + length. An `int3` at an address not in the table is the guest's own breakpoint.
 *
 * Fast form (version 2, `options.form: "fast"`): an optional `fast` section holds the stub
 * window's address, the trampoline code (hex), each patched window (its original bytes, now
 * `jmp rel32` to its trampoline then int3s), the slow-path int3s inside the code (each standing
 * for its site's one-byte instruction, continuing after the int3), the sti shadow ranges and
 * the fallbacks with their reasons. See fast_form.ts and docs/design/2026-11-21-fast-form.md.
 *
 * @module
 */

import { sha256Hex } from "./_sha256.ts";
import type { SiteClass } from "./classify.ts";
import type { BitnessRange } from "./code_map.ts";
import { RewriteError } from "./rewrite_error.ts";
import type { Bitness } from "./sweep.ts";

/** `format` of every sidecar. */
export const SIDECAR_FORMAT = "ring3-rewrite";
/** The sidecar version this module writes (2 added the optional `fast` section). */
export const SIDECAR_VERSION = 2;
/** Sidecar versions this module reads. */
const READABLE_VERSIONS: readonly number[] = [1, 2];
/** Appended to the image path to name its sidecar. */
export const SIDECAR_SUFFIX = ".ring3.json";
/** The byte a trap-form patch puts at the site: `int3`. */
export const INT3 = 0xcc;

/** How a site is patched: int3 (trap) or a jump into a trampoline (fast). */
export type PatchForm = "trap" | "fast";

/** A window of the image replaced by a jump into its trampoline (the fast form). */
export interface FastWindowRecord {
  /** First byte of the window (where the jump is). */
  vaddr: number;
  /** Its physical address. */
  paddr: number;
  /** Its offset in the file. */
  fileOffset: number;
  /** Window length in bytes (at least 5: the jump, then int3s). */
  length: number;
  /** The window's original bytes, hex. */
  bytes: string;
  /** Address of its trampoline in the stub window. */
  trampoline: number;
  /** The fast-form sites inside it. */
  sites: { vaddr: number; kind: string }[];
}

/** An int3 in the trampoline area standing for a site's original instruction (the slow path). */
export interface SlowPathRecord {
  /** Address of the int3 (in the stub window). */
  vaddr: number;
  /** The site's address in the image. */
  site: number;
  /** Normalised mnemonic. */
  kind: string;
  /** The original instruction, hex (one byte). */
  bytes: string;
}

/**
 * The fast form's part of a sidecar: where the stub window is, the trampoline code the runtime
 * maps there, and what the emulator and the machine need to know about it.
 */
export interface FastSection {
  /** The reserved guest-linear window (vCPU page first, then code). */
  window: { base: number; size: number };
  /** Address of the vCPU page. */
  vcpuPage: number;
  /** Address of `code`'s first byte. */
  codeBase: number;
  /** The trampoline code, hex. */
  code: string;
  /** Patched windows, ascending. */
  windows: FastWindowRecord[];
  /** Slow-path int3s in the code. */
  slowPaths: SlowPathRecord[];
  /** `[from, to)` code ranges after a sti's IF store in which an interrupt must wait. */
  shadows: [number, number][];
  /** Fast-form candidates left in trap form (or trapping natively), each with the reason. */
  fallbacks: SkippedRecord[];
}

/** One patched site, as stored in the sidecar. */
export interface PatchRecord {
  /** Address the CPU executes the instruction at (ELF p_vaddr-based). */
  vaddr: number;
  /** Physical address the Multiboot loader puts it at. */
  paddr: number;
  /** Offset of its first byte in the rewritten file. */
  fileOffset: number;
  /** Mode it executes in. */
  bitness: Bitness;
  /** Instruction length in bytes. */
  length: number;
  /** The original instruction bytes, hex. */
  bytes: string;
  /** The original instruction in AT&T syntax. */
  mnemonic: string;
  /** Normalised mnemonic the report groups by, e.g. "push %sreg". */
  kind: string;
  /** Why it is patched. */
  class: SiteClass;
  /** How it is patched. */
  form: PatchForm;
  /** Whether a direct branch target falls strictly inside the instruction's bytes. */
  branchTargetInside: boolean;
  /** Whether a 5-byte fast-form patch could replace it (not done yet; see the summary). */
  fastEligible: boolean;
}

/** A site the policy wanted patched but that could not be proven safe. */
export interface SkippedRecord {
  /** Address of the would-be instruction. */
  vaddr: number;
  /** Its bytes, hex. */
  bytes: string;
  /** Its AT&T text. */
  text: string;
  /** Its class. */
  class: SiteClass;
  /** Normalised mnemonic. */
  kind: string;
  /** Machine-readable reason, e.g. "invalid-decode", "overrun", "unanchored". */
  reason: string;
  /** Human-readable account: which region, which address went wrong. */
  detail: string;
}

/** Counts of sites of one class or mnemonic. */
export interface SiteCounts {
  /** Sites found by the sweeps. */
  found: number;
  /** Sites patched. */
  patched: number;
  /** Sites the policy wanted but that could not be proven. */
  skipped: number;
  /** Sites left alone by policy (privileged ones without `privileged: true`). */
  left: number;
}

/** {@link SiteCounts} for a class, with a breakdown by normalised mnemonic. */
export interface ClassSummary extends SiteCounts {
  /** Counts per normalised mnemonic, keys sorted. */
  byMnemonic: Record<string, SiteCounts>;
}

/** What a rewrite did, in numbers. */
export interface RewriteSummary {
  /** How the image was read: "elf32", "elf64" or "aout-kludge". */
  format: string;
  /** Whether it has a valid Multiboot header. */
  multiboot: boolean;
  /** Whether it had no code symbols (rewritten under `allowStripped`). */
  stripped: boolean;
  /** The policy applied. */
  policy: { privileged: boolean; allowStripped: boolean; form?: PatchForm };
  /**
   * Regions swept: function regions; other ranges; how many of those ranges were unanchored
   * (alignment padding, usually: never patched); how many anchored regions did not prove out.
   */
  regions: { functions: number; ranges: number; unanchored: number; unproven: number };
  /** Instructions decoded in proven regions. */
  instructions: number;
  /** Counts per class. */
  byClass: Record<SiteClass, ClassSummary>;
  /** Sites per form (fast: sites inside fast-form windows). */
  byForm: Partial<Record<PatchForm, number>>;
  /** Skipped sites per reason, keys sorted. */
  skippedByReason: Record<string, number>;
  /** Trap-form sites that are 5 bytes or have 5 bytes of plain code after them. */
  fastEligible: number;
  /** The fast form's figures, when it was asked for. */
  fast?: {
    /** Windows patched with a jump. */
    windows: number;
    /** Sites inside them. */
    sites: number;
    /** Bytes of trampoline code. */
    codeBytes: number;
    /** Fast-form candidates left in trap form, by reason (keys sorted). */
    fallbacksByReason: Record<string, number>;
  };
  /** Remarks: code that is not loaded, and the like. */
  notes: string[];
}

/** The whole sidecar. */
export interface SideTable {
  /** Always {@link SIDECAR_FORMAT}. */
  format: typeof SIDECAR_FORMAT;
  /** {@link SIDECAR_VERSION}, or 1 for a table written before the fast form. */
  version: number;
  /** The rewritten image this table belongs to. */
  image: { sha256: string; size: number };
  /** The input it was made from. */
  original: { sha256: string; path: string };
  /** The companion ELF of a flat image. */
  companion?: { sha256: string; path: string };
  /** The options the rewrite ran with. */
  options: {
    privileged: boolean;
    allowStripped: boolean;
    bitness: BitnessRange[];
    /** The form asked for (absent: trap). */
    form?: PatchForm;
  };
  /** Trap-form patched sites, by ascending vaddr. */
  patches: PatchRecord[];
  /** The fast form's windows and trampolines, when the form asked for was fast. */
  fast?: FastSection;
  /** Sites that were not patched although the policy wanted them, by ascending vaddr. */
  skipped: SkippedRecord[];
  /** Counts. */
  summary: RewriteSummary;
}

/** One patched site as the emulator uses it: {@link PatchRecord} with its bytes decoded. */
export interface SideTableEntry extends Omit<PatchRecord, "bytes"> {
  /** The original instruction bytes. */
  bytes: Uint8Array;
}

/** Bytes as lowercase hex without separators. */
export function toHex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** Inverse of {@link toHex}; undefined for malformed text. */
export function fromHex(text: string): Uint8Array | undefined {
  if (text.length % 2 !== 0 || !/^[0-9a-f]*$/.test(text)) return undefined;
  return Uint8Array.from(
    { length: text.length / 2 },
    (_, i) => parseInt(text.slice(2 * i, 2 * i + 2), 16),
  );
}

/**
 * Serialises a side table: stable key order, one patch or skipped site per line.
 *
 * @param table the table
 * @returns JSON text ending in a newline
 */
export function formatSideTable(table: SideTable): string {
  const lines = (items: unknown[]): string =>
    items.length === 0
      ? "[]"
      : `[\n${items.map((x) => `    ${JSON.stringify(x)}`).join(",\n")}\n  ]`;
  const field = (key: string, value: string) => `  ${JSON.stringify(key)}: ${value}`;
  const parts = [
    field("format", JSON.stringify(table.format)),
    field("version", JSON.stringify(table.version)),
    field("image", JSON.stringify(table.image)),
    field("original", JSON.stringify(table.original)),
    ...(table.companion === undefined ? [] : [field("companion", JSON.stringify(table.companion))]),
    field("options", JSON.stringify(table.options)),
    field("patches", lines(table.patches)),
    field("skipped", lines(table.skipped)),
    ...(table.fast === undefined ? [] : [field("fast", formatFast(table.fast))]),
    field("summary", JSON.stringify(table.summary, null, 2).replaceAll("\n", "\n  ")),
  ];
  return `{\n${parts.join(",\n")}\n}\n`;
}

function formatFast(f: FastSection): string {
  const list = (items: unknown[]) =>
    items.length === 0
      ? "[]"
      : `[\n${items.map((x) => `      ${JSON.stringify(x)}`).join(",\n")}\n    ]`;
  return `{\n    "window": ${JSON.stringify(f.window)},\n    "vcpuPage": ${f.vcpuPage},\n` +
    `    "codeBase": ${f.codeBase},\n    "code": ${JSON.stringify(f.code)},\n` +
    `    "windows": ${list(f.windows)},\n    "slowPaths": ${list(f.slowPaths)},\n` +
    `    "shadows": ${JSON.stringify(f.shadows)},\n    "fallbacks": ${list(f.fallbacks)}\n  }`;
}

/**
 * Parses and validates sidecar text (structure only; see {@link checkBinding} for the image).
 *
 * @param text the sidecar's contents
 * @param source where it came from, for messages (default "sidecar")
 * @returns the table
 * @throws {RewriteError} reason `"bad-sidecar"` for anything that is not a version-1
 *   ring3-rewrite table, naming the offending field
 */
export function parseSideTable(text: string, source = "sidecar"): SideTable {
  const bad = (what: string): never => {
    throw new RewriteError(`${source}: ${what}`, { reason: "bad-sidecar" });
  };
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    throw new RewriteError(`${source}: not JSON (${(e as Error).message})`, {
      reason: "bad-sidecar",
      cause: e,
    });
  }
  const isObject = (x: unknown): x is Record<string, unknown> =>
    typeof x === "object" && x !== null && !Array.isArray(x);
  const isCount = (x: unknown) => Number.isSafeInteger(x) && (x as number) >= 0;
  const isSha = (x: unknown) => typeof x === "string" && /^[0-9a-f]{64}$/.test(x);
  if (!isObject(json)) return bad("not a JSON object");
  if (json.format !== SIDECAR_FORMAT) {
    return bad(`format is ${JSON.stringify(json.format)}, not "${SIDECAR_FORMAT}"`);
  }
  if (!READABLE_VERSIONS.includes(json.version as number)) {
    return bad(
      `version ${JSON.stringify(json.version)} is not supported (only ${
        READABLE_VERSIONS.join(", ")
      })`,
    );
  }
  const image = json.image;
  if (!isObject(image) || !isSha(image.sha256) || !isCount(image.size)) {
    return bad("image must be { sha256: 64 hex digits, size: byte count }");
  }
  const original = json.original;
  if (!isObject(original) || !isSha(original.sha256) || typeof original.path !== "string") {
    return bad("original must be { sha256: 64 hex digits, path: string }");
  }
  if (!Array.isArray(json.patches)) return bad("patches is not an array");
  if (!Array.isArray(json.skipped)) return bad("skipped is not an array");
  const seen = new Set<number>();
  json.patches.forEach((p: unknown, i: number) => {
    const at = `patches[${i}]`;
    if (!isObject(p)) return bad(`${at} is not an object`);
    for (const k of ["vaddr", "paddr", "fileOffset", "length"]) {
      if (!isCount(p[k])) bad(`${at}.${k} is not a non-negative integer`);
    }
    if (![16, 32, 64].includes(p.bitness as number)) bad(`${at}.bitness is not 16, 32 or 64`);
    const bytes = typeof p.bytes === "string" ? fromHex(p.bytes) : undefined;
    if (bytes === undefined || bytes.length !== p.length || bytes.length === 0) {
      bad(`${at}.bytes is not ${p.length} bytes of hex`);
    }
    if (p.form !== "trap") bad(`${at}.form ${JSON.stringify(p.form)} is unknown`);
    if (p.class !== "sensitive" && p.class !== "privileged") {
      bad(`${at}.class ${JSON.stringify(p.class)} is unknown`);
    }
    if (typeof p.mnemonic !== "string") bad(`${at}.mnemonic is not a string`);
    if (seen.has(p.vaddr as number)) bad(`${at}.vaddr ${p.vaddr} is patched twice`);
    seen.add(p.vaddr as number);
  });
  if (json.fast !== undefined) {
    const f = json.fast;
    if (!isObject(f)) return bad("fast is not an object");
    const w = f.window;
    if (!isObject(w) || !isCount(w.base) || !isCount(w.size)) {
      bad("fast.window must be { base, size }");
    }
    if (typeof f.code !== "string" || fromHex(f.code) === undefined) bad("fast.code is not hex");
    for (const k of ["windows", "slowPaths", "shadows", "fallbacks"]) {
      if (!Array.isArray(f[k])) bad(`fast.${k} is not an array`);
    }
    (f.windows as unknown[]).forEach((x, i) => {
      const at = `fast.windows[${i}]`;
      if (!isObject(x)) return bad(`${at} is not an object`);
      for (const k of ["vaddr", "paddr", "fileOffset", "length", "trampoline"]) {
        if (!isCount(x[k])) bad(`${at}.${k} is not a non-negative integer`);
      }
      const b = typeof x.bytes === "string" ? fromHex(x.bytes) : undefined;
      if (b === undefined || b.length !== x.length) bad(`${at}.bytes is not ${x.length} bytes`);
    });
    (f.slowPaths as unknown[]).forEach((x, i) => {
      const at = `fast.slowPaths[${i}]`;
      if (!isObject(x) || !isCount(x.vaddr) || !isCount(x.site)) bad(`${at} is malformed`);
      const b = typeof (x as Record<string, unknown>).bytes === "string"
        ? fromHex((x as Record<string, unknown>).bytes as string)
        : undefined;
      if (b === undefined || b.length !== 1) bad(`${at}.bytes is not one byte of hex`);
    });
  }
  return json as unknown as SideTable;
}

/** The bytes a fast-form window holds in the rewritten image: jmp rel32, then int3s. */
export function windowPatch(w: { vaddr: number; length: number; trampoline: number }): Uint8Array {
  const out = new Uint8Array(w.length).fill(INT3);
  const rel = (w.trampoline - (w.vaddr + 5)) >>> 0;
  out.set([0xe9, rel & 0xff, (rel >>> 8) & 0xff, (rel >>> 16) & 0xff, rel >>> 24]);
  return out;
}

/**
 * Checks that `table` belongs to `image`: same SHA-256 and size, and an `int3` followed by the
 * original tail at every patch.
 *
 * @param image the rewritten image
 * @param table its side table
 * @throws {RewriteError} reason `"sidecar-mismatch"` naming both hashes, or `"bad-sidecar"`
 *   when the hash matches but a patch does not (a forged or hand-edited table)
 */
export function checkBinding(image: Uint8Array, table: SideTable): void {
  const actual = sha256Hex(image);
  if (actual !== table.image.sha256 || image.length !== table.image.size) {
    throw new RewriteError(
      `the sidecar does not belong to this image: image sha256 ${actual} (${image.length} ` +
        `bytes), sidecar image.sha256 ${table.image.sha256} (${table.image.size} bytes)`,
      { reason: "sidecar-mismatch" },
    );
  }
  for (const p of table.patches) {
    const original = fromHex(p.bytes)!;
    const here = image.subarray(p.fileOffset, p.fileOffset + p.length);
    const ok = here.length === p.length && here[0] === INT3 &&
      original.every((b, i) => i === 0 || here[i] === b);
    if (!ok) {
      throw new RewriteError(
        `patch at vaddr 0x${p.vaddr.toString(16)} (file offset 0x${p.fileOffset.toString(16)}) ` +
          `is not int3 plus the original tail of ${p.bytes}: the file has ${toHex(here)}`,
        { reason: "bad-sidecar" },
      );
    }
  }
  for (const w of table.fast?.windows ?? []) {
    const want = windowPatch(w);
    const here = image.subarray(w.fileOffset, w.fileOffset + w.length);
    if (here.length !== want.length || !here.every((b, i) => b === want[i])) {
      throw new RewriteError(
        `fast-form window at vaddr 0x${w.vaddr.toString(16)} is not a jump to its trampoline ` +
          `at 0x${w.trampoline.toString(16)}: the file has ${toHex(here)}`,
        { reason: "bad-sidecar" },
      );
    }
  }
}

/**
 * Undoes a rewrite: the original image, checked against the table's `original.sha256`.
 *
 * @param image a rewritten image
 * @param table its side table
 * @returns a new array with every patched site's original bytes back
 * @throws {RewriteError} when the binding does not hold (see {@link checkBinding}) or the
 *   restored bytes do not hash to `original.sha256`
 */
export function restoreOriginal(image: Uint8Array, table: SideTable): Uint8Array {
  checkBinding(image, table);
  const out = image.slice();
  for (const p of table.patches) out.set(fromHex(p.bytes)!, p.fileOffset);
  for (const w of table.fast?.windows ?? []) out.set(fromHex(w.bytes)!, w.fileOffset);
  const sha = sha256Hex(out);
  if (sha !== table.original.sha256) {
    throw new RewriteError(
      `restoring the original bytes gives sha256 ${sha}, not the sidecar's original.sha256 ` +
        `${table.original.sha256}`,
      { reason: "sidecar-mismatch" },
    );
  }
  return out;
}

/**
 * The table as the emulator uses it: checked against the image, keyed by vaddr.
 *
 * @param image the rewritten image
 * @param table its parsed side table
 * @returns one entry per patched site, keyed by `vaddr`
 * @throws {RewriteError} when the binding does not hold
 */
export function indexSideTable(image: Uint8Array, table: SideTable): Map<number, SideTableEntry> {
  checkBinding(image, table);
  const map = new Map<number, SideTableEntry>();
  for (const p of table.patches) map.set(p.vaddr, { ...p, bytes: fromHex(p.bytes)! });
  return map;
}

/**
 * Loads the side table of a rewritten image for the emulator, verifying the SHA-256 binding.
 *
 * Either reads `imagePath` and `imagePath` + {@link SIDECAR_SUFFIX}, or takes the image bytes
 * and the sidecar text directly.
 *
 * @returns the patched sites keyed by vaddr (a promise when given a path)
 * @throws {RewriteError} `"missing-sidecar"` (no sidecar file), `"bad-sidecar"`,
 *   `"sidecar-mismatch"` (the hashes differ; the message names both)
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { loadSideTable } from "./side_table.ts";
 * import { rewriteImage } from "./rewrite_image.ts";
 * import { formatSideTable } from "./side_table.ts";
 * const r = rewriteImage(await Deno.readFile("fixtures/build/hello.elf"));
 * const table = loadSideTable(r.output, formatSideTable(r.sideTable));
 * assert.equal(table.size, r.sideTable.patches.length);
 * ```
 */
export function loadSideTable(imagePath: string): Promise<Map<number, SideTableEntry>>;
export function loadSideTable(image: Uint8Array, sidecarText: string): Map<number, SideTableEntry>;
export function loadSideTable(
  imageOrPath: string | Uint8Array,
  sidecarText?: string,
): Promise<Map<number, SideTableEntry>> | Map<number, SideTableEntry> {
  if (typeof imageOrPath !== "string") {
    if (sidecarText === undefined) throw new TypeError("loadSideTable: sidecar text missing");
    return indexSideTable(imageOrPath, parseSideTable(sidecarText));
  }
  const path = imageOrPath;
  const sidecarPath = path + SIDECAR_SUFFIX;
  return (async () => {
    const image = await Deno.readFile(path);
    let text: string;
    try {
      text = await Deno.readTextFile(sidecarPath);
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
      throw new RewriteError(
        `${path} has no side table: ${sidecarPath} does not exist (was it rewritten?)`,
        { reason: "missing-sidecar", cause: e },
      );
    }
    return indexSideTable(image, parseSideTable(text, sidecarPath));
  })();
}
