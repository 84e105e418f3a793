/**
 * The static rewriter proper: finds every privileged and sensitive instruction in a kernel
 * image, patches those the policy asks for in the trap form (first byte → `int3`) where the
 * instruction boundary is proven, and describes the result in a side table. Pure: bytes in,
 * bytes and a table out; the file handling is in `rewrite_file.ts`.
 *
 * Proof of a boundary (ARCHITECTURE.md: "Never patch what cannot be proven an instruction
 * boundary"): the site was reached by a linear sweep from a symbol (or a section start) that
 * decoded without an invalid instruction and ended exactly at the region's end, and every
 * other region covering the same bytes agrees. Without symbols at all (`allowStripped`) a
 * section counts only when the whole of it sweeps consistently. A site right after an `int3`
 * is never patched: it may be the tail of one of our own patches in an image whose sidecar was
 * lost.
 *
 * Idempotence: given the sidecar of an image it produced before (`previous`), the rewriter
 * restores the original bytes first and rewrites those, so rewriting its own output again
 * yields the same bytes and table, and never mistakes one of its `int3`s for the guest's.
 *
 * @module
 */

import { sha256Hex } from "./_sha256.ts";
import { SITE_CLASSES, type SiteClass } from "./classify.ts";
import { type CodeMap, type CodeMapOptions, type CodeRegion, mapCode } from "./code_map.ts";
import {
  buildStubArea,
  FAST_MNEMONICS,
  type FastKind,
  fastKindOf,
  type PlanContext,
  type PlannedWindow,
  planWindow,
} from "./fast_form.ts";
import {
  STUB_CODE_ADDRESS,
  STUB_CODE_MAX,
  STUB_WINDOW,
  VCPU_PAGE_ADDRESS,
} from "../cpu/vcpu_page.ts";
import {
  type ClassSummary,
  type FastSection,
  type FastWindowRecord,
  INT3,
  type PatchForm,
  type PatchRecord,
  restoreOriginal,
  type RewriteSummary,
  SIDECAR_FORMAT,
  SIDECAR_VERSION,
  type SideTable,
  type SiteCounts,
  type SkippedRecord,
  toHex,
  windowPatch,
} from "./side_table.ts";
import { RewriteError } from "./rewrite_error.ts";
import { emptySweep, MAX_INSTRUCTION_BYTES, type SweepResult, withSweeper } from "./sweep.ts";

/** Bytes of the call a later fast form would patch in. */
export const FAST_FORM_BYTES = 5;

/** Options of {@link rewriteImage}. */
export interface RewriteOptions extends CodeMapOptions {
  /** Also patch privileged instructions (they trap anyway). Default: false. */
  privileged?: boolean;
  /**
   * `"trap"`: int3 at every site. `"fast"`: cli, sti, pushf and popf where the bytes allow
   * become jumps into trampolines that keep the virtual IF in the vCPU page (fast_form.ts), the
   * rest trap. Default: "trap".
   */
  form?: PatchForm;
  /** Recorded as `original.path` in the side table. Default: "". */
  originalPath?: string;
  /** Recorded as `companion.path` for flat images. Default: "". */
  companionPath?: string;
  /**
   * The side table of `image` when `image` is itself a rewrite output: its bytes are restored
   * from it first (after checking the SHA-256 binding) and `original` carries over.
   */
  previous?: SideTable;
}

/** What {@link rewriteImage} returns. */
export interface RewriteResult {
  /** The rewritten image (a new array; the input is not modified). */
  output: Uint8Array;
  /** Its side table, bound to `output` by SHA-256. */
  sideTable: SideTable;
  /** The same as `sideTable.summary`. */
  summary: RewriteSummary;
}

interface Swept {
  region: CodeRegion;
  sweep: SweepResult;
}

const hex = (n: number): string => `0x${n.toString(16)}`;

/**
 * Rewrites a kernel image: every sensitive site (and, with `privileged`, every privileged one)
 * whose boundary is proven gets the trap form; the rest are reported with the reason.
 *
 * @param image the kernel image: ELF32/ELF64, or a flat a.out-kludge image with `companion`
 * @param options policy, bitness overrides, companion, paths to record, previous side table
 * @returns the output bytes, side table and summary
 * @throws {ImageFormatError} when the image cannot be parsed (truncated, not x86, ...)
 * @throws {RewriteError} when it cannot be rewritten safely (stripped without
 *   `allowStripped`, flat without companion, `previous` not matching, ...)
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { rewriteImage } from "./rewrite_image.ts";
 * const image = await Deno.readFile("fixtures/build/sensitive.elf").catch(() => undefined);
 * if (image !== undefined) {
 *   const { output, sideTable } = rewriteImage(image, { originalPath: "sensitive.elf" });
 *   for (const p of sideTable.patches) assert.equal(output[p.fileOffset], 0xcc);
 * }
 * ```
 */
export function rewriteImage(image: Uint8Array, options: RewriteOptions = {}): RewriteResult {
  const privileged = options.privileged ?? false;
  const allowStripped = options.allowStripped ?? false;
  const original = options.previous === undefined
    ? image
    : restoreOriginal(image, options.previous);
  const originalPath = options.previous?.original.path ?? options.originalPath ?? "";

  const map = mapCode(original, options);
  const swept = withSweeper((sweeper) =>
    map.regions.map((region): Swept => {
      const sweep = emptySweep();
      const span = region.span;
      const spanEndOffset = span.fileOffset + (span.end - span.start);
      for (const part of region.parts) {
        const from = span.fileOffset + (part.start - span.start);
        const to = Math.min(spanEndOffset, from + (part.end - part.start) + MAX_INSTRUCTION_BYTES);
        sweeper.sweep(original.subarray(from, to), part.start, part.end, part.bitness, sweep);
      }
      return { region, sweep };
    })
  );

  // Without symbols a section is proven only as a whole.
  if (map.stripped) {
    for (const span of map.spans) {
      const mine = swept.filter((s) => s.region.span === span);
      const bad = mine.find((s) => s.sweep.failure !== undefined);
      if (bad === undefined) continue;
      for (const s of mine) {
        s.sweep.failure ??= {
          ...bad.sweep.failure!,
          detail: `the rest of stripped ${span.name} does not sweep consistently: ` +
            bad.sweep.failure!.detail,
        };
      }
    }
  }

  const proven = (s: Swept) => s.region.blocked === undefined && s.sweep.failure === undefined;
  const targets = sortedUnique([
    ...map.symbolTargets,
    ...swept.filter(proven).flatMap((s) => s.sweep.targets),
  ]);
  const coverers = overlapIndex(swept);

  const form = options.form ?? "trap";
  const fast = form === "fast"
    ? planFast(swept, original, targets, coverers, map.spans)
    : undefined;

  const wanted = (c: SiteClass) => c === "sensitive" || privileged;
  const patches: PatchRecord[] = [];
  const skipped: SkippedRecord[] = [];
  const counts = emptyCounts();
  const skippedByReason: Record<string, number> = {};
  const seen = new Set<number>();
  const output = original.slice();

  for (const s of swept) {
    for (const site of s.sweep.sites) {
      if (seen.has(site.vaddr)) continue;
      seen.add(site.vaddr);
      const count = (field: keyof SiteCounts) => {
        const c = counts[site.class];
        c[field]++;
        c.byMnemonic[site.kind] ??= { found: 0, patched: 0, skipped: 0, left: 0 };
        c.byMnemonic[site.kind][field]++;
      };
      count("found");
      if (fast?.covered.has(site.vaddr)) {
        count("patched");
        continue;
      }
      if (!wanted(site.class)) {
        count("left");
        continue;
      }
      const verdict = site.afterInt3
        ? {
          reason: "after-int3",
          detail: `an int3 directly precedes ${hex(site.vaddr)}: it may be the tail of a site ` +
            "patched by an earlier rewrite whose sidecar is missing",
        }
        : judge(site.vaddr, site.length, s, coverers(site.vaddr, site.length));
      if (verdict !== undefined) {
        count("skipped");
        skippedByReason[verdict.reason] = (skippedByReason[verdict.reason] ?? 0) + 1;
        skipped.push({
          vaddr: site.vaddr,
          bytes: toHex(site.bytes),
          text: site.text,
          class: site.class,
          kind: site.kind,
          reason: verdict.reason,
          detail: verdict.detail,
        });
        continue;
      }
      count("patched");
      const span = s.region.span;
      const fileOffset = span.fileOffset + (site.vaddr - span.start);
      const inside = hasTargetIn(targets, site.vaddr + 1, site.vaddr + site.length);
      output[fileOffset] = INT3;
      patches.push({
        vaddr: site.vaddr,
        paddr: span.paddr + (site.vaddr - span.start),
        fileOffset,
        bitness: site.bitness,
        length: site.length,
        bytes: toHex(site.bytes),
        mnemonic: site.text,
        kind: site.kind,
        class: site.class,
        form: "trap",
        branchTargetInside: inside,
        fastEligible: !inside && fastEligible(s.sweep, site.vaddr, site.flowNext, targets),
      });
    }
  }
  patches.sort((a, b) => a.vaddr - b.vaddr);
  skipped.sort((a, b) => a.vaddr - b.vaddr);
  if (fast !== undefined) {
    for (const w of fast.section.windows) output.set(fromHexStrict(w), w.fileOffset);
  }

  const summary: RewriteSummary = {
    format: map.format,
    multiboot: map.multiboot !== undefined,
    stripped: map.stripped,
    policy: { privileged, allowStripped, ...(form === "fast" ? { form } : {}) },
    regions: {
      functions: swept.filter((s) => s.region.kind === "function").length,
      ranges: swept.filter((s) => s.region.kind === "range").length,
      unanchored: swept.filter((s) => s.region.blocked?.reason === "unanchored").length,
      unproven: swept.filter((s) => !proven(s) && s.region.blocked?.reason !== "unanchored")
        .length,
    },
    instructions: swept.filter(proven).reduce((n, s) => n + s.sweep.starts.length, 0),
    byClass: sortCounts(counts),
    byForm: fast === undefined
      ? { trap: patches.length }
      : { trap: patches.length, fast: fast.covered.size },
    skippedByReason: sortKeys(skippedByReason),
    fastEligible: patches.filter((p) => p.fastEligible).length,
    ...(fast === undefined ? {} : {
      fast: {
        windows: fast.section.windows.length,
        sites: fast.covered.size,
        codeBytes: fast.section.code.length / 2,
        fallbacksByReason: sortKeys(
          fast.section.fallbacks.reduce((m, f) => {
            m[f.reason] = (m[f.reason] ?? 0) + 1;
            return m;
          }, {} as Record<string, number>),
        ),
      },
    }),
    notes: map.notes,
  };
  const sideTable: SideTable = {
    format: SIDECAR_FORMAT,
    version: SIDECAR_VERSION,
    image: { sha256: sha256Hex(output), size: output.length },
    original: { sha256: sha256Hex(original), path: originalPath },
    ...(options.companion === undefined || map.format !== "aout-kludge" ? {} : {
      companion: {
        sha256: sha256Hex(options.companion),
        path: options.previous?.companion?.path ?? options.companionPath ?? "",
      },
    }),
    options: {
      privileged,
      allowStripped,
      bitness: [...(options.bitness ?? [])],
      ...(form === "fast" ? { form } : {}),
    },
    patches,
    skipped,
    ...(fast === undefined ? {} : { fast: fast.section }),
    summary,
  };
  return { output, sideTable, summary };
}

/**
 * Why a site may not be patched, or undefined when it may: every region covering its bytes
 * must be unblocked, consistently swept, and have an instruction of the same length there.
 */
function judge(
  vaddr: number,
  length: number,
  own: Swept,
  covering: Swept[],
): { reason: string; detail: string } | undefined {
  for (const s of [own, ...covering.filter((c) => c !== own)]) {
    const r = s.region;
    const where = `${r.name} (${hex(r.start)}-${hex(r.end)})`;
    if (r.blocked !== undefined) return r.blocked;
    if (s.sweep.failure !== undefined) {
      return { reason: s.sweep.failure.reason, detail: `${where}: ${s.sweep.failure.detail}` };
    }
    const i = indexOf(s.sweep.starts, vaddr);
    if (i < 0 || s.sweep.lengths[i] !== length) {
      return {
        reason: "conflicting-sweeps",
        detail: `${where} decodes the bytes at ${hex(vaddr)} differently`,
      };
    }
  }
  return undefined;
}

/**
 * Whether a 5-byte patch at `vaddr` would be safe as far as control flow is visible: the
 * instruction is 5 bytes or more, or it and the unclassified instructions that follow it in the
 * same basic block make up 5 bytes, and no known branch target lies strictly inside them.
 */
function fastEligible(
  sweep: SweepResult,
  vaddr: number,
  flowNext: boolean,
  targets: number[],
): boolean {
  let i = indexOf(sweep.starts, vaddr);
  let covered = sweep.lengths[i];
  if (covered < FAST_FORM_BYTES && !flowNext) return false;
  while (covered < FAST_FORM_BYTES) {
    i++;
    if (i >= sweep.starts.length || sweep.starts[i] !== vaddr + covered) return false;
    if (sweep.plain[i] !== 1) return false;
    covered += sweep.lengths[i];
  }
  return !hasTargetIn(targets, vaddr + 1, vaddr + covered);
}

/** Index of `value` in ascending `sorted`, or -1. */
function indexOf(sorted: number[], value: number): number {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (sorted[mid] < value) lo = mid + 1;
    else hi = mid;
  }
  return lo < sorted.length && sorted[lo] === value ? lo : -1;
}

/** Whether ascending `sorted` has a value in `[from, to)`. */
function hasTargetIn(sorted: number[], from: number, to: number): boolean {
  let lo = 0;
  let hi = sorted.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (sorted[mid] < from) lo = mid + 1;
    else hi = mid;
  }
  return lo < sorted.length && sorted[lo] < to;
}

function sortedUnique(values: number[]): number[] {
  return [...new Set(values)].sort((a, b) => a - b);
}

/**
 * Finds the swept regions overlapping `[a, a + n)`. Regions are sorted by start; only function
 * regions can overlap each other, so a running maximum of ends bounds the backward scan.
 */
function overlapIndex(swept: Swept[]): (a: number, n: number) => Swept[] {
  const sorted = [...swept].sort((x, y) => x.region.start - y.region.start);
  const maxEnd: number[] = [];
  for (const s of sorted) {
    maxEnd.push(Math.max(s.region.end, maxEnd[maxEnd.length - 1] ?? 0));
  }
  return (a, n) => {
    const b = a + n;
    let lo = 0;
    let hi = sorted.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (sorted[mid].region.start < b) lo = mid + 1;
      else hi = mid;
    }
    const out: Swept[] = [];
    for (let i = lo - 1; i >= 0 && maxEnd[i] > a; i--) {
      if (sorted[i].region.end > a) out.push(sorted[i]);
    }
    return out;
  };
}

function emptyCounts(): Record<SiteClass, ClassSummary> {
  const make = (): ClassSummary => ({ found: 0, patched: 0, skipped: 0, left: 0, byMnemonic: {} });
  return { sensitive: make(), privileged: make() };
}

function sortCounts(counts: Record<SiteClass, ClassSummary>): Record<SiteClass, ClassSummary> {
  const out = {} as Record<SiteClass, ClassSummary>;
  for (const c of SITE_CLASSES) {
    out[c] = { ...counts[c], byMnemonic: sortKeys(counts[c].byMnemonic) };
  }
  return out;
}

function sortKeys<T>(record: Record<string, T>): Record<string, T> {
  return Object.fromEntries(Object.entries(record).sort(([a], [b]) => a < b ? -1 : a > b ? 1 : 0));
}

/** The bytes a window gets: see {@link windowPatch}. */
function fromHexStrict(w: FastWindowRecord): Uint8Array {
  return windowPatch(w);
}

/**
 * Plans the fast form: a window around each cli/sti/pushf/popf whose bytes allow it, the
 * trampolines, and the fallbacks (with reasons) for those that stay in trap form.
 */
function planFast(
  swept: Swept[],
  original: Uint8Array,
  targets: number[],
  coverers: (a: number, n: number) => Swept[],
  spans: CodeMap["spans"],
): { section: FastSection; covered: Set<number> } {
  const spanOf = (vaddr: number) => {
    const span = spans.find((sp) => vaddr >= sp.start && vaddr < sp.end);
    if (span === undefined) {
      throw new RangeError(`fast form: 0x${vaddr.toString(16)} is not in code`);
    }
    return span;
  };
  const bytesAt = (vaddr: number, n: number) => {
    const span = spanOf(vaddr);
    const off = span.fileOffset + (vaddr - span.start);
    return original.subarray(off, off + n);
  };
  const taken = new Set<number>();
  const covered = new Set<number>();
  const windows: (PlannedWindow & { span: CodeMap["spans"][number] })[] = [];
  const fallbacks: SkippedRecord[] = [];
  const seen = new Set<number>();
  for (const s of swept) {
    const sites = new Map(s.sweep.sites.map((x) => [x.vaddr, x]));
    const fastAt = (vaddr: number): FastKind | undefined => {
      const x = sites.get(vaddr);
      if (x === undefined || x.afterInt3 || x.bitness !== 32) return undefined;
      return FAST_MNEMONICS.has(x.kind) ? fastKindOf(x.bytes) : undefined;
    };
    const part32 = (vaddr: number) =>
      s.region.parts.some((p) => p.bitness === 32 && vaddr >= p.start && vaddr < p.end);
    const ctx: PlanContext = {
      starts: s.sweep.starts,
      lengths: s.sweep.lengths,
      bytesAt,
      fastAt,
      classifiedAt: (vaddr) => fastAt(vaddr) === undefined ? sites.get(vaddr)?.kind : undefined,
      unproven: (vaddr, length) => {
        if (!part32(vaddr)) return `0x${vaddr.toString(16)} is not in 32-bit code`;
        const v = judge(vaddr, length, s, coverers(vaddr, length));
        return v === undefined ? undefined : v.detail;
      },
      targetIn: (from, to) => hasTargetIn(targets, from, to),
      taken: (vaddr) => taken.has(vaddr),
    };
    for (const site of s.sweep.sites) {
      if (!FAST_MNEMONICS.has(site.kind) || seen.has(site.vaddr)) continue;
      seen.add(site.vaddr);
      if (covered.has(site.vaddr)) continue;
      const fallback = (reason: string, detail: string) =>
        fallbacks.push({
          vaddr: site.vaddr,
          bytes: toHex(site.bytes),
          text: site.text,
          class: site.class,
          kind: site.kind,
          reason,
          detail,
        });
      if (fastAt(site.vaddr) === undefined) {
        fallback(
          site.afterInt3 ? "after-int3" : "encoding",
          site.afterInt3
            ? "an int3 directly precedes it"
            : `${site.text}: the trampolines implement only the 32-bit one-byte IF forms ` +
              "and segment reads into a register or onto the stack",
        );
        continue;
      }
      const i = indexOf(s.sweep.starts, site.vaddr);
      const r = i < 0
        ? { reason: "conflicting-sweeps", detail: "not an instruction start of its sweep" }
        : planWindow(ctx, i);
      if (!("window" in r)) {
        fallback(r.reason, r.detail);
        continue;
      }
      const w = r.window;
      for (const ins of w.instructions) {
        taken.add(ins.vaddr);
        if (ins.fast !== undefined) covered.add(ins.vaddr);
      }
      windows.push({ ...w, span: spanOf(w.start) });
    }
  }
  windows.sort((a, b) => a.start - b.start);
  const area = buildStubArea(windows, bytesAt, STUB_CODE_ADDRESS);
  if (area.code.length > STUB_CODE_MAX) {
    throw new RewriteError(
      `the fast form needs ${area.code.length} bytes of trampolines, more than the stub ` +
        `window's ${STUB_CODE_MAX}; rewrite with form "trap"`,
      { reason: "stub-window-full" },
    );
  }
  const records: FastWindowRecord[] = windows.map((w, k) => ({
    vaddr: w.start,
    paddr: w.span.paddr + (w.start - w.span.start),
    fileOffset: w.span.fileOffset + (w.start - w.span.start),
    length: w.end - w.start,
    bytes: toHex(bytesAt(w.start, w.end - w.start)),
    trampoline: area.trampolines[k].address,
    sites: w.instructions.filter((x) => x.fast !== undefined).map((x) => ({
      vaddr: x.vaddr,
      kind: x.fast!,
    })),
  }));
  fallbacks.sort((a, b) => a.vaddr - b.vaddr);
  return {
    covered,
    section: {
      window: { base: STUB_WINDOW.base, size: STUB_WINDOW.size },
      vcpuPage: VCPU_PAGE_ADDRESS,
      codeBase: STUB_CODE_ADDRESS,
      code: toHex(area.code),
      windows: records,
      slowPaths: area.slowPaths.map((p) => ({
        vaddr: p.vaddr,
        site: p.site,
        kind: p.kind,
        bytes: toHex(Uint8Array.of(p.byte)),
      })),
      shadows: area.shadows,
      fallbacks,
    },
  };
}
