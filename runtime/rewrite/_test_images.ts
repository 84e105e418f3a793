/**
 * Builders for the synthetic kernels the rewriter tests use: an ELF with one `.text` section
 * inside one PT_LOAD segment, made of named pieces of code with chosen symbols, optionally
 * preceded by a Multiboot header. Test-only; built on the boot tests' ELF builder.
 *
 * @module
 */

import { buildElfLayout, multibootHeader, type SymbolSpec } from "../boot/_test_images.ts";

/** One piece of `.text`. */
export interface Piece {
  /** Symbol name; no symbol when undefined. */
  name?: string;
  /** The bytes. */
  code: number[];
  /** Symbol type: STT_FUNC (2, default) or STT_NOTYPE (0), STT_OBJECT (1). */
  type?: number;
  /** Symbol size; default the code length for STT_FUNC/STT_OBJECT, 0 for STT_NOTYPE. */
  size?: number;
}

/** What {@link buildCodeElf} builds. */
export interface CodeElfSpec {
  /** The pieces of `.text`, laid out back to back. */
  pieces: Piece[];
  /** vaddr of `.text`; default 0x100000. */
  base?: number;
  /** paddr of `.text`; default `base`. */
  paddr?: number;
  /** Put a 12-byte Multiboot header first; default true. */
  multiboot?: boolean;
  /**
   * Make it a 32-byte a.out-kludge header loading exactly `.text` at `paddr` (so that `.text`
   * is also the flat image). Default false.
   */
  kludge?: boolean;
  /** 32 (default) or 64. */
  class?: 32 | 64;
  /** `"symbols"`: no symbol table; `"all"`: no section headers either. Default: neither. */
  stripped?: "symbols" | "all";
  /** e_machine override (for non-x86 tests). */
  machine?: number;
}

/** A built image and where things are in it. */
export interface CodeElf {
  /** The file. */
  bytes: Uint8Array;
  /** vaddr of each named piece. */
  at: Record<string, number>;
  /** vaddr of `.text`. */
  base: number;
  /** File offset of `.text`. */
  textOffset: number;
  /** The `.text` bytes. */
  text: Uint8Array;
}

/**
 * Builds an ELF whose `.text` (in a PT_LOAD R|X segment at `base`) is the Multiboot header
 * followed by the pieces, with one symbol per named piece.
 *
 * @param spec the pieces and layout
 * @returns the file and the addresses of the pieces
 */
export function buildCodeElf(spec: CodeElfSpec): CodeElf {
  const base = spec.base ?? 0x100000;
  const paddr = spec.paddr ?? base;
  const textLength = (spec.kludge ? 32 : 12) + spec.pieces.reduce((n, p) => n + p.code.length, 0);
  const header = spec.multiboot === false ? [] : [
    ...multibootHeader(
      spec.kludge
        ? {
          flags: 0x10002,
          address: {
            headerAddr: paddr,
            loadAddr: paddr,
            loadEndAddr: paddr + textLength,
            bssEndAddr: 0,
            entryAddr: paddr + 32,
          },
        }
        : {},
    ),
  ];
  const parts: number[] = [...header];
  const at: Record<string, number> = {};
  const symbols: SymbolSpec[] = [];
  for (const p of spec.pieces) {
    const addr = base + parts.length;
    if (p.name !== undefined) {
      at[p.name] = addr;
      const type = p.type ?? 2;
      symbols.push({
        name: p.name,
        value: addr,
        size: p.size ?? (type === 0 ? 0 : p.code.length),
        type,
        section: ".text",
      });
    }
    parts.push(...p.code);
  }
  const text = Uint8Array.from(parts);
  const layout = buildElfLayout({
    class: spec.class ?? 32,
    ...(spec.machine === undefined ? {} : { machine: spec.machine }),
    entry: base + header.length,
    segments: [{ paddr, vaddr: base, data: text, flags: 5 }],
    sections: spec.stripped === "all" ? [] : [{ name: ".text", addr: base, data: text }],
    symbols: spec.stripped === undefined ? symbols : [],
  });
  const bytes = layout.bytes;
  const textOffset = layout.segmentOffsets[0];
  if (spec.stripped !== "all") {
    // The builder stores section data apart from segment data: point .text at the segment's
    // copy, as a linker would lay it out.
    const view = new DataView(bytes.buffer);
    const sh = layout.shoff + layout.shentsize; // section 1 = .text
    if (spec.class === 64) view.setBigUint64(sh + 24, BigInt(textOffset), true);
    else view.setUint32(sh + 16, textOffset, true);
  }
  return { bytes, at, base, textOffset, text };
}

/** Hex of bytes, as the sidecar writes them. */
export function hexOf(bytes: number[] | Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}
