/**
 * A small, strict ELF reader: the parts loaders and the static rewriter need (header, program
 * headers, named sections, symbols) for little-endian x86 images, 32- and 64-bit.
 *
 * Strict because its input is untrusted: every offset and size is checked against the file
 * before it is used, and anything truncated or self-contradictory throws {@link ImageFormatError}
 * naming the structure and the numbers involved. Values are plain numbers; a 64-bit field that
 * does not fit a number exactly (above 2^53) throws rather than silently rounding.
 *
 * @module
 */

import { ImageFormatError } from "./image_error.ts";

/** `e_ident[EI_CLASS]` of a 32-bit ELF file. */
export const ELFCLASS32 = 1;
/** `e_ident[EI_CLASS]` of a 64-bit ELF file. */
export const ELFCLASS64 = 2;
/** `e_machine` of 32-bit x86. */
export const EM_386 = 3;
/** `e_machine` of x86-64. */
export const EM_X86_64 = 62;

/** `e_type`: relocatable object. */
export const ET_REL = 1;
/** `e_type`: executable (what kernels are). */
export const ET_EXEC = 2;
/** `e_type`: shared object / position-independent executable. */
export const ET_DYN = 3;

/** `p_type`: unused entry. */
export const PT_NULL = 0;
/** `p_type`: loadable segment. */
export const PT_LOAD = 1;
/** `p_type`: dynamic-linking information. */
export const PT_DYNAMIC = 2;
/** `p_type`: interpreter path. */
export const PT_INTERP = 3;
/** `p_type`: notes. */
export const PT_NOTE = 4;
/** `p_type`: the program header table itself. */
export const PT_PHDR = 6;

/** `p_flags`: executable. */
export const PF_X = 1;
/** `p_flags`: writable. */
export const PF_W = 2;
/** `p_flags`: readable. */
export const PF_R = 4;

/** `sh_type`: unused entry. */
export const SHT_NULL = 0;
/** `sh_type`: contents defined by the program (code, data). */
export const SHT_PROGBITS = 1;
/** `sh_type`: symbol table. */
export const SHT_SYMTAB = 2;
/** `sh_type`: string table. */
export const SHT_STRTAB = 3;
/** `sh_type`: occupies no file space (.bss). */
export const SHT_NOBITS = 8;

/** `sh_flags`: writable. */
export const SHF_WRITE = 1;
/** `sh_flags`: occupies memory at run time. */
export const SHF_ALLOC = 2;
/** `sh_flags`: executable code. */
export const SHF_EXECINSTR = 4;

/** Symbol type: unspecified. */
export const STT_NOTYPE = 0;
/** Symbol type: data object. */
export const STT_OBJECT = 1;
/** Symbol type: function or other code. */
export const STT_FUNC = 2;
/** Symbol type: a section. */
export const STT_SECTION = 3;
/** Symbol type: source file name. */
export const STT_FILE = 4;

/** Symbol binding: local. */
export const STB_LOCAL = 0;
/** Symbol binding: global. */
export const STB_GLOBAL = 1;
/** Symbol binding: weak. */
export const STB_WEAK = 2;

/** Section index: undefined symbol. */
export const SHN_UNDEF = 0;
/** Section index: absolute value, not relative to a section. */
export const SHN_ABS = 0xfff1;
/** Section index: common symbol. */
export const SHN_COMMON = 0xfff2;
/** Section index escape: the real index lives elsewhere (extended numbering). */
export const SHN_XINDEX = 0xffff;

/** One program header (segment), with offsets as numbers. */
export interface ElfProgramHeader {
  /** Position in the program header table, from 0. */
  index: number;
  /** `p_type`, e.g. {@link PT_LOAD}. */
  type: number;
  /** File offset of the segment's bytes. */
  offset: number;
  /** Virtual address. */
  vaddr: number;
  /** Physical address (where Multiboot loaders put it). */
  paddr: number;
  /** Bytes present in the file. */
  filesz: number;
  /** Bytes in memory; the excess over `filesz` is zero-filled (.bss). */
  memsz: number;
  /** `p_flags`: {@link PF_R} | {@link PF_W} | {@link PF_X}. */
  flags: number;
  /** `p_align`. */
  align: number;
}

/** One section header, with its name resolved through the section-name string table. */
export interface ElfSection {
  /** Position in the section header table, from 0 (0 is the null section). */
  index: number;
  /** Name from .shstrtab, or "" when the file has none. */
  name: string;
  /** `sh_type`, e.g. {@link SHT_PROGBITS}. */
  type: number;
  /** `sh_flags`, e.g. {@link SHF_ALLOC} | {@link SHF_EXECINSTR}. */
  flags: number;
  /** Address in memory, for allocated sections. */
  addr: number;
  /** File offset of the contents (meaningless for {@link SHT_NOBITS}). */
  offset: number;
  /** Size in bytes. */
  size: number;
  /** `sh_link` (for a symbol table: the index of its string table). */
  link: number;
  /** `sh_info`. */
  info: number;
  /** `sh_addralign`. */
  addralign: number;
  /** `sh_entsize`: size of one entry for table sections, else 0. */
  entsize: number;
}

/** One symbol from a .symtab section. */
export interface ElfSymbol {
  /** Index within its symbol table (the null symbol, index 0, is not listed). */
  index: number;
  /** Name from the symbol table's string table. */
  name: string;
  /** `st_value`: usually an address. */
  value: number;
  /** `st_size`: bytes the symbol covers, 0 when unknown. */
  size: number;
  /** Low four bits of `st_info`, e.g. {@link STT_FUNC}. */
  type: number;
  /** High four bits of `st_info`, e.g. {@link STB_GLOBAL}. */
  bind: number;
  /** `st_other` (visibility). */
  other: number;
  /** `st_shndx`: the section the symbol belongs to, or {@link SHN_ABS} and the like. */
  sectionIndex: number;
}

/** What {@link parseElf} reads out of an image. All offsets refer to the parsed byte array. */
export interface ElfImage {
  /** 32 for ELFCLASS32, 64 for ELFCLASS64. */
  class: 32 | 64;
  /** `e_machine`: {@link EM_386} or {@link EM_X86_64}. */
  machine: number;
  /** `e_type`, e.g. {@link ET_EXEC}. */
  type: number;
  /** `e_entry`: the entry point's virtual address. */
  entry: number;
  /** `e_flags` (0 on x86). */
  flags: number;
  /** Program headers in table order (empty when the file has none). */
  programHeaders: ElfProgramHeader[];
  /** Section headers in table order, including the null section 0 (empty when none). */
  sections: ElfSection[];
  /** Symbols of every SHT_SYMTAB section, in table order (empty when stripped). */
  symbols: ElfSymbol[];
}

const ELF_MAGIC = [0x7f, 0x45, 0x4c, 0x46]; // "\x7fELF"
const EI_NIDENT = 16;
const PN_XNUM = 0xffff;

/** Sizes of the fixed structures per class, so one parser serves both. */
const LAYOUT = {
  32: { ehdr: 52, phdr: 32, shdr: 40, sym: 16 },
  64: { ehdr: 64, phdr: 56, shdr: 64, sym: 24 },
} as const;

const hex = (n: number): string => `0x${n.toString(16)}`;

/**
 * Whether `image` starts with the ELF magic bytes.
 *
 * @param image file contents
 * @returns true for "\x7fELF" at offset 0
 */
export function hasElfMagic(image: Uint8Array): boolean {
  return image.length >= 4 && ELF_MAGIC.every((b, i) => image[i] === b);
}

/**
 * Parses an ELF image's header, program headers, sections and symbols.
 *
 * Accepts ELFCLASS32 and ELFCLASS64, little-endian only, machine EM_386 or EM_X86_64, any
 * `e_type`. Extended numbering (more than 0xfeff sections or 0xfffe program headers) is
 * followed. Sections and symbols are optional: a stripped file simply yields empty lists.
 *
 * @param image the whole file; not modified, and not retained by the result
 * @returns the parsed structure, with every file range in it already checked to lie inside `image`
 * @throws {ImageFormatError} when the file is truncated, not ELF, not little-endian x86, or
 *   inconsistent (reason `"truncated"`, `"bad-magic"`, `"unsupported-format"`,
 *   `"inconsistent"`, or `"value-too-large"` for a 64-bit field above 2^53)
 *
 * @example
 * ```ts
 * import { parseElf, PT_LOAD } from "./elf.ts";
 * const elf = parseElf(await Deno.readFile("fixtures/build/hello.elf"));
 * const loads = elf.programHeaders.filter((p) => p.type === PT_LOAD);
 * ```
 */
export function parseElf(image: Uint8Array): ElfImage {
  const size = image.length;
  const view = new DataView(image.buffer, image.byteOffset, image.byteLength);

  const need = (what: string, offset: number, length: number): void => {
    if (offset + length > size) {
      throw new ImageFormatError(
        `${what} extends past the end of the file ` +
          `(offset ${hex(offset)} + size ${hex(length)} > file size ${hex(size)})`,
        { reason: "truncated" },
      );
    }
  };

  if (size < EI_NIDENT) {
    throw new ImageFormatError(
      size === 0
        ? "the file is empty: an ELF image needs at least a 16-byte identification and a header"
        : `ELF identification extends past the end of the file ` +
          `(offset 0x0 + size ${hex(EI_NIDENT)} > file size ${hex(size)})`,
      { reason: "truncated" },
    );
  }
  if (!hasElfMagic(image)) {
    const got = Array.from(image.subarray(0, 4), (b) => b.toString(16).padStart(2, "0"));
    throw new ImageFormatError(
      `not an ELF file: the first bytes are ${got.join(" ")}, not 7f 45 4c 46 ("\\x7fELF")`,
      { reason: "bad-magic" },
    );
  }
  const eiClass = image[4];
  if (eiClass !== ELFCLASS32 && eiClass !== ELFCLASS64) {
    throw new ImageFormatError(
      `ELF class (e_ident[EI_CLASS]) is ${eiClass}, neither ELFCLASS32 (1) nor ELFCLASS64 (2)`,
      { reason: "unsupported-format" },
    );
  }
  const bits = eiClass === ELFCLASS32 ? 32 : 64;
  const layout = LAYOUT[bits];
  const eiData = image[5];
  if (eiData !== 1) {
    throw new ImageFormatError(
      eiData === 2
        ? "big-endian ELF (e_ident[EI_DATA] = 2) is not supported: x86 images are little-endian"
        : `ELF data encoding (e_ident[EI_DATA]) is ${eiData}, not little-endian (1)`,
      { reason: "unsupported-format" },
    );
  }
  if (image[6] !== 1) {
    throw new ImageFormatError(
      `ELF identification version (e_ident[EI_VERSION]) is ${image[6]}, not EV_CURRENT (1)`,
      { reason: "inconsistent" },
    );
  }
  need(`ELF${bits} header`, 0, layout.ehdr);

  const u8 = (off: number): number => view.getUint8(off);
  const u16 = (off: number): number => view.getUint16(off, true);
  const u32 = (off: number): number => view.getUint32(off, true);
  const u64 = (off: number, field: string): number => {
    const lo = view.getUint32(off, true);
    const hi = view.getUint32(off + 4, true);
    if (hi > 0x200000 || (hi === 0x200000 && lo !== 0)) {
      const full = `0x${hi.toString(16)}${lo.toString(16).padStart(8, "0")}`;
      throw new ImageFormatError(
        `${field} is ${full}, above 2^53, which ring3 cannot represent exactly as a number`,
        { reason: "value-too-large" },
      );
    }
    return hi * 0x1_0000_0000 + lo;
  };
  // Fields that are 32 bits in ELF32 and 64 bits in ELF64 ("word or xword").
  const addr = (off32: number, off64: number, field: string): number =>
    bits === 32 ? u32(off32) : u64(off64, field);

  const machine = u16(18);
  if (machine !== EM_386 && machine !== EM_X86_64) {
    throw new ImageFormatError(
      `ELF machine (e_machine) is ${machine}, not x86: ring3 reads EM_386 (3) and EM_X86_64 (62)`,
      { reason: "unsupported-format" },
    );
  }
  const type = u16(16);
  const entry = addr(24, 24, "ELF entry point (e_entry)");
  const phoff = addr(28, 32, "program header table offset (e_phoff)");
  const shoff = addr(32, 40, "section header table offset (e_shoff)");
  const flags = u32(bits === 32 ? 36 : 48);
  const fieldBase = bits === 32 ? 42 : 54;
  const phentsize = u16(fieldBase);
  let phnum = u16(fieldBase + 2);
  const shentsize = u16(fieldBase + 4);
  let shnum = u16(fieldBase + 6);
  let shstrndx = u16(fieldBase + 8);

  // Section header 0 carries the real counts when they overflow their 16-bit header fields, so
  // the section table's position is settled before either table is read.
  const sectionTable = shoff !== 0;
  if (sectionTable) {
    if (shentsize < layout.shdr) {
      throw new ImageFormatError(
        `section header entry size (e_shentsize) is ${shentsize}, smaller than the ` +
          `${layout.shdr} bytes of an ELF${bits} section header`,
        { reason: "inconsistent" },
      );
    }
    if (shnum === 0 || shstrndx === SHN_XINDEX || phnum === PN_XNUM) {
      need("section header 0 (extended numbering)", shoff, layout.shdr);
      if (shnum === 0) shnum = addr(shoff + 20, shoff + 32, "section count (section 0 sh_size)");
      if (shstrndx === SHN_XINDEX) shstrndx = u32(shoff + (bits === 32 ? 24 : 40));
      if (phnum === PN_XNUM) phnum = u32(shoff + (bits === 32 ? 28 : 44));
    }
  } else {
    shnum = 0;
    if (phnum === PN_XNUM) {
      throw new ImageFormatError(
        "program header count is PN_XNUM (0xffff), which needs section header 0, " +
          "but the file has no section header table (e_shoff = 0)",
        { reason: "inconsistent" },
      );
    }
  }

  const programHeaders: ElfProgramHeader[] = [];
  if (phnum > 0) {
    if (phentsize < layout.phdr) {
      throw new ImageFormatError(
        `program header entry size (e_phentsize) is ${phentsize}, smaller than the ` +
          `${layout.phdr} bytes of an ELF${bits} program header`,
        { reason: "inconsistent" },
      );
    }
    need(`program header table (${phnum} entries of ${phentsize} bytes)`, phoff, phnum * phentsize);
    for (let i = 0; i < phnum; i++) {
      const p = phoff + i * phentsize;
      const what = (field: string) => `program header ${i} ${field}`;
      const ph: ElfProgramHeader = bits === 32
        ? {
          index: i,
          type: u32(p),
          offset: u32(p + 4),
          vaddr: u32(p + 8),
          paddr: u32(p + 12),
          filesz: u32(p + 16),
          memsz: u32(p + 20),
          flags: u32(p + 24),
          align: u32(p + 28),
        }
        : {
          index: i,
          type: u32(p),
          flags: u32(p + 4),
          offset: u64(p + 8, what("p_offset")),
          vaddr: u64(p + 16, what("p_vaddr")),
          paddr: u64(p + 24, what("p_paddr")),
          filesz: u64(p + 32, what("p_filesz")),
          memsz: u64(p + 40, what("p_memsz")),
          align: u64(p + 48, what("p_align")),
        };
      if (ph.filesz > 0) need(`program header ${i}`, ph.offset, ph.filesz);
      if (ph.type === PT_LOAD && ph.filesz > ph.memsz) {
        throw new ImageFormatError(
          `program header ${i} (PT_LOAD) has filesz ${hex(ph.filesz)} > memsz ${hex(ph.memsz)}`,
          { reason: "inconsistent" },
        );
      }
      programHeaders.push(ph);
    }
  }

  const sections: ElfSection[] = [];
  if (shnum > 0) {
    need(`section header table (${shnum} entries of ${shentsize} bytes)`, shoff, shnum * shentsize);
    for (let i = 0; i < shnum; i++) {
      const s = shoff + i * shentsize;
      const what = (field: string) => `section header ${i} ${field}`;
      const sh: ElfSection = {
        index: i,
        name: "",
        type: u32(s + 4),
        flags: addr(s + 8, s + 8, what("sh_flags")),
        addr: addr(s + 12, s + 16, what("sh_addr")),
        offset: addr(s + 16, s + 24, what("sh_offset")),
        size: addr(s + 20, s + 32, what("sh_size")),
        link: u32(bits === 32 ? s + 24 : s + 40),
        info: u32(bits === 32 ? s + 28 : s + 44),
        addralign: addr(s + 32, s + 48, what("sh_addralign")),
        entsize: addr(s + 36, s + 56, what("sh_entsize")),
      };
      // Section 0 reuses sh_size/sh_link for extended numbering; it has no contents.
      if (i > 0 && sh.type !== SHT_NULL && sh.type !== SHT_NOBITS && sh.size > 0) {
        need(`section ${i}`, sh.offset, sh.size);
      }
      sections.push(sh);
    }
  }

  const decoder = new TextDecoder();
  // Reads a NUL-terminated name out of a string-table section, bounded by that section.
  const stringAt = (table: ElfSection, index: number, user: string): string => {
    if (index >= table.size) {
      throw new ImageFormatError(
        `${user} name offset ${hex(index)} is outside string table section ${table.index} ` +
          `(size ${hex(table.size)})`,
        { reason: "inconsistent" },
      );
    }
    const bytes = image.subarray(table.offset + index, table.offset + table.size);
    const nul = bytes.indexOf(0);
    if (nul < 0) {
      throw new ImageFormatError(
        `${user} name at offset ${hex(index)} of string table section ${table.index} ` +
          `is not NUL-terminated before the section ends`,
        { reason: "inconsistent" },
      );
    }
    return decoder.decode(bytes.subarray(0, nul));
  };
  const stringTable = (index: number, user: string): ElfSection => {
    const table = sections[index];
    if (table === undefined || table.type !== SHT_STRTAB) {
      throw new ImageFormatError(
        `${user} refers to section ${index} as its string table, but ` +
          (table === undefined
            ? `the file has only ${sections.length} sections`
            : `that section's type is ${table.type}, not SHT_STRTAB (3)`),
        { reason: "inconsistent" },
      );
    }
    return table;
  };

  if (sections.length > 0 && shstrndx !== SHN_UNDEF) {
    const names = stringTable(shstrndx, "the ELF header (e_shstrndx)");
    for (const sh of sections) {
      sh.name = stringAt(names, u32(shoff + sh.index * shentsize), `section ${sh.index}`);
    }
  }

  const symbols: ElfSymbol[] = [];
  for (const table of sections) {
    if (table.type !== SHT_SYMTAB) continue;
    const label = `symbol table section ${table.index} (${table.name || "unnamed"})`;
    if (table.entsize !== 0 && table.entsize !== layout.sym) {
      throw new ImageFormatError(
        `${label} has entry size ${table.entsize}, not the ${layout.sym} bytes of an ELF${bits} ` +
          "symbol",
        { reason: "inconsistent" },
      );
    }
    if (table.size % layout.sym !== 0) {
      throw new ImageFormatError(
        `${label} has size ${hex(table.size)}, not a multiple of the ${layout.sym}-byte entry`,
        { reason: "inconsistent" },
      );
    }
    const strings = stringTable(table.link, label);
    for (let i = 1; i < table.size / layout.sym; i++) {
      const y = table.offset + i * layout.sym;
      const what = (field: string) => `${label} symbol ${i} ${field}`;
      const info = u8(bits === 32 ? y + 12 : y + 4);
      symbols.push({
        index: i,
        name: stringAt(strings, u32(y), `${label} symbol ${i}`),
        value: addr(y + 4, y + 8, what("st_value")),
        size: addr(y + 8, y + 16, what("st_size")),
        type: info & 0xf,
        bind: info >> 4,
        other: u8(bits === 32 ? y + 13 : y + 5),
        sectionIndex: u16(bits === 32 ? y + 14 : y + 6),
      });
    }
  }

  return { class: bits, machine, type, entry, flags, programHeaders, sections, symbols };
}

/**
 * The file bytes of a section, as a view into `image` (no copy).
 *
 * @param image the file {@link parseElf} parsed
 * @param section one of its sections
 * @returns the section's contents; empty for {@link SHT_NOBITS} and {@link SHT_NULL} sections
 */
export function elfSectionData(image: Uint8Array, section: ElfSection): Uint8Array {
  if (section.type === SHT_NOBITS || section.type === SHT_NULL) return image.subarray(0, 0);
  return image.subarray(section.offset, section.offset + section.size);
}

/**
 * The file bytes of a segment (its first `filesz` bytes; the zero-filled rest is not in the
 * file), as a view into `image` (no copy).
 *
 * @param image the file {@link parseElf} parsed
 * @param header one of its program headers
 * @returns the segment's file contents
 */
export function elfSegmentData(image: Uint8Array, header: ElfProgramHeader): Uint8Array {
  return image.subarray(header.offset, header.offset + header.filesz);
}
