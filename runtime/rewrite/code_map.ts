/**
 * Where a kernel image's code is, and how it splits into ranges that a linear sweep can prove:
 * the first half of the static rewriter, with no decoding in it.
 *
 * Code is every allocated `SHF_EXECINSTR` section that a `PT_LOAD` segment carries (or every
 * `PF_X` segment when the file has no section headers). Within it:
 *
 * - each `STT_FUNC` symbol with a size is one **function** region, swept from its start; the
 *   sweep must end exactly at its end;
 * - the rest is split at every symbol, function edge, data object, the Multiboot header and
 *   every bitness-override edge into **ranges**, each swept to the next boundary. A range that
 *   starts at a code symbol, a section start or a bitness-override edge is *anchored*; one that starts only where a
 *   function or some data ends (alignment padding, usually) is not, and nothing in it is
 *   patched, because nothing proves that an instruction starts there;
 * - data objects (`STT_OBJECT`) and the Multiboot header are not swept at all.
 *
 * A flat a.out-kludge image has no sections or symbols of its own: it is mapped through the
 * ELF it was made from (the *companion*), whose code must be byte-for-byte what the flat image
 * loads at the same physical addresses.
 *
 * Addresses: `vaddr` is where the CPU executes (ELF `p_vaddr`/`sh_addr`), `paddr` where the
 * Multiboot loader puts the byte (the a.out-kludge fields if the header has them, else
 * `p_paddr`), `fileOffset` where it is in the image being rewritten.
 *
 * @module
 */

import {
  type ElfImage,
  hasElfMagic,
  parseElf,
  PF_X,
  PT_LOAD,
  SHF_ALLOC,
  SHF_EXECINSTR,
  SHN_UNDEF,
  SHT_PROGBITS,
  STT_FUNC,
  STT_NOTYPE,
  STT_OBJECT,
  STT_SECTION,
} from "../boot/elf.ts";
import { ImageFormatError } from "../boot/image_error.ts";
import { findMultibootHeader, type MultibootHeader } from "../boot/multiboot.ts";
import { RewriteError } from "./rewrite_error.ts";
import type { Bitness } from "./sweep.ts";

/** `STT_GNU_IFUNC`: an indirect function; its symbol marks code like `STT_FUNC`. */
const STT_GNU_IFUNC = 10;
/** Section indices from here up are reserved (ABS, COMMON, XINDEX, ...), not sections. */
const SHN_LORESERVE = 0xff00;

/** An address range decoded in a mode other than the image's default. */
export interface BitnessRange {
  /** First address (vaddr). */
  start: number;
  /** End address, exclusive. */
  end: number;
  /** 16, 32 or 64. */
  bits: Bitness;
}

/** Options of {@link mapCode}. */
export interface CodeMapOptions {
  /**
   * Ranges decoded in another mode, e.g. the 64-bit part of a 32-bit Multiboot image.
   * Default: none (the mode follows the ELF class; flat images are 32-bit).
   */
  bitness?: readonly BitnessRange[];
  /** The ELF a flat a.out-kludge image was made from. Required for flat images. */
  companion?: Uint8Array;
  /** Sweep whole sections of an image without symbols instead of refusing. Default: false. */
  allowStripped?: boolean;
}

/** A contiguous run of loaded code bytes with one linear address mapping. */
export interface CodeSpan {
  /** Section name, or "segment N" for a file without section headers. */
  name: string;
  /** First vaddr. */
  start: number;
  /** End vaddr, exclusive. */
  end: number;
  /** Offset of `start` in the image being rewritten. */
  fileOffset: number;
  /** Physical address of `start` as the Multiboot loader places it. */
  paddr: number;
}

/** One sub-range of a region decoded in one mode. */
export interface SweepPart {
  /** First address. */
  start: number;
  /** End address, exclusive. */
  end: number;
  /** Decoding mode. */
  bitness: Bitness;
}

/** Something that makes every site in a region unpatchable, whatever its sweep says. */
export interface RegionBlock {
  /** Machine-readable reason: "unanchored", "outside-code", "overlaps-data". */
  reason: string;
  /** Human-readable account. */
  detail: string;
}

/** A range to sweep as one unit: a function, or code between two boundaries. */
export interface CodeRegion {
  /** `"function"` (an STT_FUNC symbol with a size) or `"range"` (anything else). */
  kind: "function" | "range";
  /** For reports: "function kmain", "isr_common", "section .text", "after function kmain". */
  name: string;
  /** First address. */
  start: number;
  /** End address, exclusive. */
  end: number;
  /** Sub-ranges by decoding mode, covering `[start, end)` in order. */
  parts: SweepPart[];
  /** The span the region lies in (a function is clipped to it). */
  span: CodeSpan;
  /** Set when no site in the region may be patched. */
  blocked?: RegionBlock;
}

/** What {@link mapCode} finds. */
export interface CodeMap {
  /** How the image was read. */
  format: "elf32" | "elf64" | "aout-kludge";
  /** Decoding mode outside the bitness overrides. */
  defaultBitness: Bitness;
  /** The Multiboot header, when the image has a valid one. */
  multiboot?: MultibootHeader;
  /** Loaded code. */
  spans: CodeSpan[];
  /** Regions to sweep, sorted by start. */
  regions: CodeRegion[];
  /** Code symbol addresses (function entries, labels): possible indirect branch targets. */
  symbolTargets: number[];
  /** True when no code symbol was found (only possible with `allowStripped`). */
  stripped: boolean;
  /** Things worth telling the user: code that is not loaded, and the like. */
  notes: string[];
}

const hex = (n: number): string => `0x${n.toString(16)}`;

/**
 * Finds an image's code and splits it into sweepable regions.
 *
 * @param image the kernel image (ELF32/ELF64, or a flat a.out-kludge image with a companion)
 * @param options bitness overrides, companion ELF, stripped-image policy
 * @returns spans, regions and symbol targets
 * @throws {ImageFormatError} when the image (or ELF companion) cannot be parsed
 * @throws {RewriteError} when it cannot be rewritten safely: stripped (without `allowStripped`),
 *   flat without a companion, companion mismatch, inconsistent load addresses, no code
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { mapCode } from "./code_map.ts";
 * const map = mapCode(await Deno.readFile("fixtures/build/hello.elf"));
 * assert.equal(map.format, "elf32");
 * assert.ok(map.regions.some((r) => r.name === "function kmain"));
 * ```
 */
export function mapCode(image: Uint8Array, options: CodeMapOptions = {}): CodeMap {
  const multiboot = tryMultibootHeader(image);
  let elf: ElfImage;
  let spans: { span: CodeSpan; sectionIndex?: number }[];
  let format: CodeMap["format"];
  const notes: string[] = [];

  if (hasElfMagic(image)) {
    elf = parseElf(image);
    format = elf.class === 64 ? "elf64" : "elf32";
    spans = elfSpans(elf, image, multiboot, notes);
  } else {
    if (multiboot === undefined) {
      const first = Array.from(image.subarray(0, 4), (b) => b.toString(16).padStart(2, "0"));
      throw new RewriteError(
        `unknown image format: not ELF (the first bytes are ${first.join(" ") || "missing"}) ` +
          "and no valid Multiboot header in the first 8192 bytes",
        { reason: "unknown-format" },
      );
    }
    if (multiboot.address === undefined) {
      throw new RewriteError(
        `unknown image format: not ELF, and its Multiboot header (file offset ` +
          `${hex(multiboot.offset)}) has no a.out-kludge address fields, so nothing says where ` +
          "its bytes are loaded",
        { reason: "unknown-format" },
      );
    }
    if (options.companion === undefined) {
      throw new RewriteError(
        `flat a.out-kludge image (Multiboot header at file offset ${hex(multiboot.offset)}, ` +
          `load_addr ${hex(multiboot.address.loadAddr)}): it has no sections or symbols, so ` +
          "instruction boundaries cannot be proven; give the ELF it was made from as its companion",
        { reason: "needs-companion" },
      );
    }
    let companion: ElfImage;
    try {
      companion = parseElf(options.companion);
    } catch (e) {
      if (!(e instanceof ImageFormatError)) throw e;
      throw new RewriteError(`companion ELF: ${e.message}`, { reason: "bad-companion", cause: e });
    }
    elf = companion;
    format = "aout-kludge";
    spans = companionSpans(companion, options.companion, image, multiboot, notes);
  }

  const defaultBitness: Bitness = elf.class === 64 && format !== "aout-kludge" ? 64 : 32;
  const overrides = checkBitness(options.bitness ?? []);
  if (format === "elf64" && multiboot !== undefined && overrides.length === 0) {
    notes.push(
      "ELF64 image with a Multiboot header: Multiboot enters it in 32-bit mode, yet all of its " +
        "code is decoded as 64-bit; give the 32-bit ranges (the entry stub) as bitness overrides",
    );
  }
  if (spans.length === 0) {
    throw new RewriteError(
      "no loaded executable code: no SHF_EXECINSTR section (or PF_X segment) lies inside a " +
        "PT_LOAD segment",
      { reason: "no-code" },
    );
  }

  const headerRange = multiboot === undefined ? undefined : headerVaddrRange(multiboot, spans);
  const codeSymbols = elf.symbols.filter((s) =>
    s.sectionIndex !== SHN_UNDEF && s.sectionIndex < SHN_LORESERVE &&
    (s.type === STT_FUNC || s.type === STT_GNU_IFUNC || s.type === STT_NOTYPE ||
      s.type === STT_SECTION)
  );
  const objects = elf.symbols.filter((s) =>
    s.type === STT_OBJECT && s.sectionIndex !== SHN_UNDEF && s.sectionIndex < SHN_LORESERVE
  );
  const inSpan = (
    s: { value: number; sectionIndex: number },
    x: { span: CodeSpan; sectionIndex?: number },
  ) =>
    (x.sectionIndex === undefined || s.sectionIndex === x.sectionIndex) &&
    s.value >= x.span.start && s.value < x.span.end;

  const stripped = !spans.some((x) => codeSymbols.some((s) => inSpan(s, x)));
  if (stripped && !options.allowStripped) {
    const where = spans.map((x) => `${x.span.name} ${hex(x.span.start)} - ${hex(x.span.end)}`);
    throw new RewriteError(
      `stripped image: cannot prove instruction boundaries in ${where.join(", ")} ` +
        "(no symbols; allowStripped patches only sections that sweep consistently)",
      { reason: "stripped" },
    );
  }

  const regions: CodeRegion[] = [];
  const symbolTargets = new Set<number>();
  for (const x of spans) {
    const syms = codeSymbols.filter((s) => inSpan(s, x));
    for (const s of syms) symbolTargets.add(s.value);
    const objs = objects.filter((s) => inSpan(s, x));
    regions.push(
      ...spanRegions(x.span, syms, objs, headerRange, overrides, defaultBitness, stripped),
    );
  }
  regions.sort((a, b) => a.start - b.start || a.end - b.end);

  return {
    format,
    defaultBitness,
    ...(multiboot === undefined ? {} : { multiboot }),
    spans: spans.map((x) => x.span),
    regions,
    symbolTargets: [...symbolTargets].sort((a, b) => a - b),
    stripped,
    notes,
  };
}

/** The valid Multiboot header, or undefined when there is none (fine for an ELF). */
function tryMultibootHeader(image: Uint8Array): MultibootHeader | undefined {
  try {
    return findMultibootHeader(image);
  } catch (e) {
    if (e instanceof ImageFormatError) return undefined;
    throw e;
  }
}

/** Where the a.out-kludge fields load the file: file offset and size of the loaded bytes. */
function kludgeLoad(
  image: Uint8Array,
  header: MultibootHeader,
): { fileOffset: number; size: number; paddr: number } | undefined {
  const a = header.address;
  if (a === undefined) return undefined;
  const bad = (what: string): never => {
    throw new RewriteError(`Multiboot a.out kludge: ${what}`, {
      reason: "inconsistent-load-address",
    });
  };
  if (a.headerAddr < a.loadAddr || a.headerAddr - a.loadAddr > header.offset) {
    bad(
      `header_addr ${hex(a.headerAddr)} and load_addr ${hex(a.loadAddr)} do not fit the header's ` +
        `file offset ${hex(header.offset)}`,
    );
  }
  const fileOffset = header.offset - (a.headerAddr - a.loadAddr);
  if (a.loadEndAddr !== 0 && a.loadEndAddr < a.loadAddr) {
    bad(`load_end_addr ${hex(a.loadEndAddr)} is below load_addr ${hex(a.loadAddr)}`);
  }
  const size = a.loadEndAddr === 0 ? image.length - fileOffset : a.loadEndAddr - a.loadAddr;
  if (fileOffset + size > image.length) {
    bad(
      `load_addr..load_end_addr (${hex(size)} bytes from file offset ${hex(fileOffset)}) runs ` +
        `past the end of the file (${hex(image.length)})`,
    );
  }
  return { fileOffset, size, paddr: a.loadAddr };
}

/** Code spans of an ELF image: executable sections (or PF_X segments) inside PT_LOADs. */
function elfSpans(
  elf: ElfImage,
  image: Uint8Array,
  multiboot: MultibootHeader | undefined,
  notes: string[],
): { span: CodeSpan; sectionIndex?: number }[] {
  const loads = elf.programHeaders.filter((p) => p.type === PT_LOAD && p.filesz > 0);
  const kludge = multiboot === undefined ? undefined : kludgeLoad(image, multiboot);
  const out: { span: CodeSpan; sectionIndex?: number }[] = [];

  const place = (name: string, vaddr: number, offset: number, size: number, index?: number) => {
    const seg = loads.find((p) => p.offset <= offset && offset + size <= p.offset + p.filesz);
    if (seg === undefined) {
      notes.push(`${name} (${hex(vaddr)}, ${size} bytes) is in no PT_LOAD segment: not rewritten`);
      return;
    }
    if (seg.vaddr + (offset - seg.offset) !== vaddr) {
      throw new RewriteError(
        `${name} is at ${hex(vaddr)} but PT_LOAD segment ${seg.index} maps its file offset ` +
          `${hex(offset)} to ${hex(seg.vaddr + (offset - seg.offset))}`,
        { reason: "inconsistent-load-address" },
      );
    }
    let paddr = seg.paddr + (offset - seg.offset);
    if (kludge !== undefined) {
      if (offset >= kludge.fileOffset && offset + size <= kludge.fileOffset + kludge.size) {
        const kp = kludge.paddr + (offset - kludge.fileOffset);
        if (kp !== paddr) {
          throw new RewriteError(
            `${name}: the a.out-kludge fields load it at ${hex(kp)} but its PT_LOAD segment ` +
              `${seg.index} says p_paddr ${hex(paddr)}`,
            { reason: "inconsistent-load-address" },
          );
        }
        paddr = kp;
      } else {
        notes.push(
          `${name} lies outside what the a.out-kludge header loads; its paddr follows p_paddr`,
        );
      }
    }
    out.push({
      span: { name, start: vaddr, end: vaddr + size, fileOffset: offset, paddr },
      ...(index === undefined ? {} : { sectionIndex: index }),
    });
  };

  if (elf.sections.length > 0) {
    for (const s of elf.sections) {
      if (s.type !== SHT_PROGBITS || s.size === 0) continue;
      if ((s.flags & (SHF_ALLOC | SHF_EXECINSTR)) !== (SHF_ALLOC | SHF_EXECINSTR)) continue;
      place(s.name || `section ${s.index}`, s.addr, s.offset, s.size, s.index);
    }
  } else {
    for (const p of loads) {
      if ((p.flags & PF_X) === 0) continue;
      place(`segment ${p.index}`, p.vaddr, p.offset, p.filesz);
    }
  }
  checkDisjoint(out.map((x) => x.span));
  return out;
}

/** Code spans of a flat image, from its companion ELF, checked byte for byte. */
function companionSpans(
  companion: ElfImage,
  companionBytes: Uint8Array,
  image: Uint8Array,
  multiboot: MultibootHeader,
  notes: string[],
): { span: CodeSpan; sectionIndex?: number }[] {
  const kludge = kludgeLoad(image, multiboot)!;
  const own = elfSpans(companion, companionBytes, undefined, notes);
  const out: { span: CodeSpan; sectionIndex?: number }[] = [];
  for (const x of own) {
    const { span } = x;
    const size = span.end - span.start;
    const offset = kludge.fileOffset + (span.paddr - kludge.paddr);
    if (span.paddr < kludge.paddr || offset + size > kludge.fileOffset + kludge.size) {
      notes.push(
        `companion ${span.name} (paddr ${hex(span.paddr)}) is not in what the flat image loads`,
      );
      continue;
    }
    const mine = image.subarray(offset, offset + size);
    const theirs = companionBytes.subarray(span.fileOffset, span.fileOffset + size);
    const at = mine.findIndex((b, i) => b !== theirs[i]);
    if (at >= 0) {
      throw new RewriteError(
        `the companion ELF does not match the flat image: ${span.name} differs at vaddr ` +
          `${hex(span.start + at)} (paddr ${hex(span.paddr + at)}, flat file offset ` +
          `${hex(offset + at)}): ${hex(mine[at])} in the image, ${hex(theirs[at])} in the ELF`,
        { reason: "companion-mismatch" },
      );
    }
    out.push({ ...x, span: { ...span, fileOffset: offset } });
  }
  return out;
}

/** Throws when two spans overlap in vaddr (a broken or hostile section table). */
function checkDisjoint(spans: CodeSpan[]): void {
  const sorted = [...spans].sort((a, b) => a.start - b.start);
  for (let i = 1; i < sorted.length; i++) {
    if (sorted[i].start < sorted[i - 1].end) {
      throw new RewriteError(
        `code sections ${sorted[i - 1].name} (${hex(sorted[i - 1].start)}-` +
          `${hex(sorted[i - 1].end)}) and ${sorted[i].name} (${hex(sorted[i].start)}-` +
          `${hex(sorted[i].end)}) overlap`,
        { reason: "inconsistent-load-address" },
      );
    }
  }
}

/** Validates bitness overrides: sane bounds, known modes, no overlaps. */
function checkBitness(ranges: readonly BitnessRange[]): BitnessRange[] {
  const sorted = [...ranges].sort((a, b) => a.start - b.start);
  for (const r of sorted) {
    if (![16, 32, 64].includes(r.bits)) {
      throw new RewriteError(`bitness override ${hex(r.start)}-${hex(r.end)}: bits ${r.bits}`, {
        reason: "bad-option",
      });
    }
    if (
      !(Number.isSafeInteger(r.start) && Number.isSafeInteger(r.end) && r.start >= 0) ||
      r.end <= r.start
    ) {
      throw new RewriteError(`bitness override ${r.start}-${r.end} is not a valid range`, {
        reason: "bad-option",
      });
    }
  }
  for (let i = 1; i < sorted.length; i++) {
    if (sorted[i].start < sorted[i - 1].end) {
      throw new RewriteError(
        `bitness overrides ${hex(sorted[i - 1].start)}-${hex(sorted[i - 1].end)} and ` +
          `${hex(sorted[i].start)}-${hex(sorted[i].end)} overlap`,
        { reason: "bad-option" },
      );
    }
  }
  return sorted;
}

/** The Multiboot header's vaddr range, if it lies in a code span. */
function headerVaddrRange(
  header: MultibootHeader,
  spans: { span: CodeSpan }[],
): { start: number; end: number } | undefined {
  for (const { span } of spans) {
    const off = header.offset - span.fileOffset;
    if (off >= 0 && off < span.end - span.start) {
      const start = span.start + off;
      return { start, end: Math.min(start + header.size, span.end) };
    }
  }
  return undefined;
}

/** Splits `[start, end)` by the bitness overrides into parts. */
function splitParts(
  start: number,
  end: number,
  overrides: BitnessRange[],
  defaultBitness: Bitness,
): SweepPart[] {
  const parts: SweepPart[] = [];
  let at = start;
  while (at < end) {
    const inside = overrides.find((r) => r.start <= at && at < r.end);
    if (inside !== undefined) {
      const stop = Math.min(end, inside.end);
      parts.push({ start: at, end: stop, bitness: inside.bits });
      at = stop;
    } else {
      const next = overrides.find((r) => r.start > at);
      const stop = Math.min(end, next === undefined ? end : next.start);
      parts.push({ start: at, end: stop, bitness: defaultBitness });
      at = stop;
    }
  }
  return parts;
}

/** Functions, ranges and their blocks for one span (see the module description). */
function spanRegions(
  span: CodeSpan,
  syms: { name: string; value: number; size: number; type: number }[],
  objects: { value: number; size: number }[],
  header: { start: number; end: number } | undefined,
  overrides: BitnessRange[],
  defaultBitness: Bitness,
  stripped: boolean,
): CodeRegion[] {
  const regions: CodeRegion[] = [];
  const parts = (a: number, b: number) => splitParts(a, b, overrides, defaultBitness);
  const headerHere = header !== undefined && header.start >= span.start && header.end <= span.end
    ? header
    : undefined;

  // Functions, deduplicated by extent (aliases), clipped to the span.
  const functions = new Map<string, CodeRegion>();
  for (const s of syms) {
    if ((s.type !== STT_FUNC && s.type !== STT_GNU_IFUNC) || s.size === 0) continue;
    const key = `${s.value}:${s.size}`;
    if (functions.has(key)) continue;
    const end = Math.min(s.value + s.size, span.end);
    const region: CodeRegion = {
      kind: "function",
      name: `function ${s.name || hex(s.value)}`,
      start: s.value,
      end,
      parts: parts(s.value, end),
      span,
    };
    if (s.value + s.size > span.end) {
      region.blocked = {
        reason: "outside-code",
        detail: `${region.name} (${hex(s.value)}-${hex(s.value + s.size)}) extends past the end ` +
          `of ${span.name} at ${hex(span.end)}`,
      };
    } else if (headerHere !== undefined && s.value < headerHere.end && headerHere.start < end) {
      region.blocked = {
        reason: "overlaps-data",
        detail: `${region.name} (${hex(s.value)}-${hex(end)}) overlaps the Multiboot header at ` +
          `${hex(headerHere.start)}`,
      };
    }
    functions.set(key, region);
  }
  const fns = [...functions.values()];
  regions.push(...fns);

  // Everything else, split at every boundary.
  const anchors = new Map<number, string>();
  for (const s of syms) if (!anchors.has(s.value)) anchors.set(s.value, s.name || hex(s.value));
  const boundaries = new Set<number>([span.start, span.end]);
  for (const s of syms) boundaries.add(s.value);
  for (const f of fns) {
    boundaries.add(f.start);
    boundaries.add(f.end);
  }
  const dataRanges: { start: number; end: number }[] = [];
  for (const o of objects) {
    boundaries.add(o.value);
    dataRanges.push({ start: o.value, end: Math.min(span.end, o.value + Math.max(o.size, 1)) });
    if (o.size > 0) boundaries.add(Math.min(span.end, o.value + o.size));
  }
  if (headerHere !== undefined) {
    boundaries.add(headerHere.start);
    boundaries.add(headerHere.end);
    dataRanges.push(headerHere);
  }
  for (const r of overrides) {
    if (r.start > span.start && r.start < span.end) boundaries.add(r.start);
    if (r.end > span.start && r.end < span.end) boundaries.add(r.end);
  }
  const cuts = [...boundaries].filter((b) => b >= span.start && b <= span.end)
    .sort((a, b) => a - b);
  const insideFunction = coverage(fns);
  const insideData = coverage(dataRanges);
  const endings = new Map<number, CodeRegion>();
  for (const f of fns) if (!endings.has(f.end)) endings.set(f.end, f);
  const functionEndingAt = (a: number) => endings.get(a);

  for (let i = 0; i + 1 < cuts.length; i++) {
    const a = cuts[i];
    const b = cuts[i + 1];
    if (insideFunction(a) || insideData(a)) continue;
    const label = anchors.get(a);
    const overrideEdge = overrides.some((r) => r.start === a || r.end === a);
    const name = label !== undefined
      ? label
      : a === span.start
      ? `section ${span.name}`
      : functionEndingAt(a) !== undefined
      ? `after ${functionEndingAt(a)!.name}`
      : headerHere !== undefined && a === headerHere.end
      ? "after the Multiboot header"
      : `code at ${hex(a)}`;
    const region: CodeRegion = { kind: "range", name, start: a, end: b, parts: parts(a, b), span };
    // Without symbols every range is taken as a start; the caller then demands that the whole
    // section sweeps consistently.
    const anchored = stripped || label !== undefined || a === span.start || overrideEdge;
    if (!anchored) {
      region.blocked = {
        reason: "unanchored",
        detail: `no symbol marks ${hex(a)} (${name}) as the start of an instruction`,
      };
    }
    regions.push(region);
  }
  return regions;
}

/**
 * A membership test for the union of `ranges`, for addresses asked in ascending order (each
 * call moves a cursor forward, so a whole scan costs O(n log n) for the sort).
 */
function coverage(ranges: { start: number; end: number }[]): (a: number) => boolean {
  const union: { start: number; end: number }[] = [];
  for (const r of [...ranges].sort((x, y) => x.start - y.start)) {
    const last = union[union.length - 1];
    if (last !== undefined && r.start <= last.end) last.end = Math.max(last.end, r.end);
    else if (r.end > r.start) union.push({ start: r.start, end: r.end });
  }
  let i = 0;
  return (a: number) => {
    while (i < union.length && union[i].end <= a) i++;
    return i < union.length && union[i].start <= a;
  };
}
