/**
 * Builders for the synthetic kernel images the boot tests load: ELF32/ELF64 files with chosen
 * segments, sections and symbols, Multiboot headers, and flat a.out-kludge images. Test-only;
 * the builders write the formats straight from the specifications, independently of the
 * readers under test.
 *
 * @module
 */

/** Multiboot header magic, spelled out again so the builders do not depend on the loader. */
const MAGIC = 0x1BADB002;

/** Fields of a Multiboot header to build. */
export interface HeaderSpec {
  /** The flags word. Default 0x00000002 (memory info). */
  flags?: number;
  /** Override the checksum (default: the correct one). */
  checksum?: number;
  /** a.out-kludge address fields, written at offsets 12..31 (header grows to 32 bytes). */
  address?: {
    headerAddr: number;
    loadAddr: number;
    loadEndAddr: number;
    bssEndAddr: number;
    entryAddr: number;
  };
  /** Video fields, written at offsets 32..47 (header grows to 48 bytes). */
  video?: { modeType: number; width: number; height: number; depth: number };
}

/**
 * A Multiboot header: 12 bytes, 32 with address fields, 48 with video fields.
 *
 * @param spec the fields
 * @returns the header bytes
 */
export function multibootHeader(spec: HeaderSpec = {}): Uint8Array {
  const flags = spec.flags ?? 0x2;
  const size = spec.video ? 48 : spec.address ? 32 : 12;
  const out = new Uint8Array(size);
  const v = new DataView(out.buffer);
  v.setUint32(0, MAGIC, true);
  v.setUint32(4, flags >>> 0, true);
  v.setUint32(8, spec.checksum ?? (-(MAGIC + flags) >>> 0), true);
  if (spec.address) {
    const a = spec.address;
    [a.headerAddr, a.loadAddr, a.loadEndAddr, a.bssEndAddr, a.entryAddr]
      .forEach((x, i) => v.setUint32(12 + 4 * i, x >>> 0, true));
  }
  if (spec.video) {
    const m = spec.video;
    [m.modeType, m.width, m.height, m.depth].forEach((x, i) => v.setUint32(32 + 4 * i, x, true));
  }
  return out;
}

/** A segment to put in a built ELF file. */
export interface SegmentSpec {
  /** p_type; default PT_LOAD (1). */
  type?: number;
  /** Physical load address. */
  paddr: number;
  /** Virtual address; default = paddr. */
  vaddr?: number;
  /** File contents (filesz = data.length). */
  data: Uint8Array;
  /** memsz; default = data.length. */
  memsz?: number;
  /** p_flags; default R|X (5). */
  flags?: number;
}

/** A section to put in a built ELF file (besides the generated symbol and string tables). */
export interface SectionSpec {
  name: string;
  /** sh_type; default SHT_PROGBITS (1). */
  type?: number;
  /** sh_flags; default ALLOC|EXECINSTR (6). */
  flags?: number;
  /** sh_addr; default 0. */
  addr?: number;
  /** Contents (none for NOBITS). */
  data?: Uint8Array;
  /** sh_size for NOBITS sections. */
  size?: number;
}

/** A symbol to put in the generated .symtab. */
export interface SymbolSpec {
  name: string;
  value: number;
  size?: number;
  /** STT_*; default STT_FUNC (2). */
  type?: number;
  /** STB_*; default STB_GLOBAL (1). */
  bind?: number;
  /** Name of a section in the spec, or a raw index; default SHN_ABS. */
  section?: string | number;
}

/** An ELF file to build. */
export interface ElfSpec {
  /** 32 (default) or 64. */
  class?: 32 | 64;
  /** e_machine; default EM_386 for class 32, EM_X86_64 for class 64. */
  machine?: number;
  /** e_type; default ET_EXEC (2). */
  type?: number;
  entry: number;
  segments?: SegmentSpec[];
  sections?: SectionSpec[];
  symbols?: SymbolSpec[];
}

/** Where things ended up in a built ELF file. */
export interface BuiltElf {
  bytes: Uint8Array;
  /** File offset of the program header table. */
  phoff: number;
  /** Bytes per program header. */
  phentsize: number;
  /** File offset of each segment's data. */
  segmentOffsets: number[];
  /** File offset of the section header table (0 when there are no sections). */
  shoff: number;
  /** Bytes per section header. */
  shentsize: number;
}

const align = (n: number, a: number) => Math.ceil(n / a) * a;

/**
 * Builds a little-endian ELF file: header, program headers, segment data, section data, and,
 * when there are sections or symbols, .symtab/.strtab/.shstrtab and the section header table.
 *
 * @param spec what to put in it
 * @returns the bytes and the offsets tests patch to corrupt them
 */
export function buildElfLayout(spec: ElfSpec): BuiltElf {
  const is64 = spec.class === 64;
  const ehsize = is64 ? 64 : 52;
  const phentsize = is64 ? 56 : 32;
  const shentsize = is64 ? 64 : 40;
  const symsize = is64 ? 24 : 16;
  const segments = spec.segments ?? [];
  const userSections = spec.sections ?? [];
  const symbols = spec.symbols ?? [];
  const wantSections = userSections.length > 0 || symbols.length > 0;

  const chunks: { offset: number; data: Uint8Array }[] = [];
  let cursor = ehsize + segments.length * phentsize;
  const place = (data: Uint8Array, alignment = 16): number => {
    cursor = align(cursor, alignment);
    const offset = cursor;
    chunks.push({ offset, data });
    cursor += data.length;
    return offset;
  };
  const segmentOffsets = segments.map((s) => place(s.data));

  interface Shdr {
    name: string;
    type: number;
    flags: number;
    addr: number;
    offset: number;
    size: number;
    link: number;
    info: number;
    entsize: number;
  }
  const shdrs: Shdr[] = [];
  let shoff = 0;
  if (wantSections) {
    const strtab = new StringTable();
    for (const s of userSections) {
      const type = s.type ?? 1;
      const data = s.data ?? new Uint8Array(0);
      shdrs.push({
        name: s.name,
        type,
        flags: s.flags ?? 6,
        addr: s.addr ?? 0,
        offset: type === 8 ? 0 : place(data),
        size: type === 8 ? s.size ?? 0 : data.length,
        link: 0,
        info: 0,
        entsize: 0,
      });
    }
    if (symbols.length > 0) {
      const symtab = new Uint8Array((symbols.length + 1) * symsize);
      const v = new DataView(symtab.buffer);
      symbols.forEach((y, i) => {
        const o = (i + 1) * symsize;
        const shndx = typeof y.section === "string"
          ? userSections.findIndex((s) => s.name === y.section) + 1
          : y.section ?? 0xfff1;
        const info = ((y.bind ?? 1) << 4) | (y.type ?? 2);
        v.setUint32(o, strtab.add(y.name), true);
        if (is64) {
          v.setUint8(o + 4, info);
          v.setUint16(o + 6, shndx, true);
          v.setBigUint64(o + 8, BigInt(y.value), true);
          v.setBigUint64(o + 16, BigInt(y.size ?? 0), true);
        } else {
          v.setUint32(o + 4, y.value, true);
          v.setUint32(o + 8, y.size ?? 0, true);
          v.setUint8(o + 12, info);
          v.setUint16(o + 14, shndx, true);
        }
      });
      const strtabIndex = userSections.length + 2;
      shdrs.push({
        name: ".symtab",
        type: 2,
        flags: 0,
        addr: 0,
        offset: place(symtab, 8),
        size: symtab.length,
        link: strtabIndex,
        info: 1,
        entsize: symsize,
      });
      const strBytes = strtab.bytes();
      shdrs.push({
        name: ".strtab",
        type: 3,
        flags: 0,
        addr: 0,
        offset: place(strBytes, 1),
        size: strBytes.length,
        link: 0,
        info: 0,
        entsize: 0,
      });
    }
    const shstrtab = new StringTable();
    const nameOffsets = [...shdrs.map((s) => shstrtab.add(s.name)), shstrtab.add(".shstrtab")];
    const shstrBytes = shstrtab.bytes();
    shdrs.push({
      name: ".shstrtab",
      type: 3,
      flags: 0,
      addr: 0,
      offset: place(shstrBytes, 1),
      size: shstrBytes.length,
      link: 0,
      info: 0,
      entsize: 0,
    });
    shoff = align(cursor, 8);
    cursor = shoff + (shdrs.length + 1) * shentsize;
    const table = new Uint8Array((shdrs.length + 1) * shentsize);
    const v = new DataView(table.buffer);
    shdrs.forEach((s, i) => {
      const o = (i + 1) * shentsize;
      v.setUint32(o, nameOffsets[i], true);
      v.setUint32(o + 4, s.type, true);
      if (is64) {
        v.setBigUint64(o + 8, BigInt(s.flags), true);
        v.setBigUint64(o + 16, BigInt(s.addr), true);
        v.setBigUint64(o + 24, BigInt(s.offset), true);
        v.setBigUint64(o + 32, BigInt(s.size), true);
        v.setUint32(o + 40, s.link, true);
        v.setUint32(o + 44, s.info, true);
        v.setBigUint64(o + 48, 1n, true);
        v.setBigUint64(o + 56, BigInt(s.entsize), true);
      } else {
        [s.flags, s.addr, s.offset, s.size, s.link, s.info, 1, s.entsize]
          .forEach((x, k) => v.setUint32(o + 8 + 4 * k, x, true));
      }
    });
    chunks.push({ offset: shoff, data: table });
  }

  const out = new Uint8Array(cursor);
  for (const c of chunks) out.set(c.data, c.offset);
  const v = new DataView(out.buffer);
  out.set([0x7f, 0x45, 0x4c, 0x46, is64 ? 2 : 1, 1, 1]);
  v.setUint16(16, spec.type ?? 2, true);
  v.setUint16(18, spec.machine ?? (is64 ? 62 : 3), true);
  v.setUint32(20, 1, true);
  const shnum = wantSections ? shdrs.length + 1 : 0;
  const shstrndx = wantSections ? shdrs.length : 0;
  if (is64) {
    v.setBigUint64(24, BigInt(spec.entry), true);
    v.setBigUint64(32, BigInt(segments.length ? ehsize : 0), true);
    v.setBigUint64(40, BigInt(shoff), true);
    [ehsize, phentsize, segments.length, shentsize, shnum, shstrndx]
      .forEach((x, k) => v.setUint16(52 + 2 * k, x, true));
  } else {
    v.setUint32(24, spec.entry, true);
    v.setUint32(28, segments.length ? ehsize : 0, true);
    v.setUint32(32, shoff, true);
    [ehsize, phentsize, segments.length, shentsize, shnum, shstrndx]
      .forEach((x, k) => v.setUint16(40 + 2 * k, x, true));
  }
  segments.forEach((s, i) => {
    const o = ehsize + i * phentsize;
    const f = [
      s.type ?? 1,
      segmentOffsets[i],
      s.vaddr ?? s.paddr,
      s.paddr,
      s.data.length,
      s.memsz ?? s.data.length,
      s.flags ?? 5,
      16,
    ];
    if (is64) {
      v.setUint32(o, f[0], true);
      v.setUint32(o + 4, f[6], true);
      [f[1], f[2], f[3], f[4], f[5], f[7]]
        .forEach((x, k) => v.setBigUint64(o + 8 + 8 * k, BigInt(x), true));
    } else {
      f.forEach((x, k) => v.setUint32(o + 4 * k, x, true));
    }
  });
  return { bytes: out, phoff: ehsize, phentsize, segmentOffsets, shoff, shentsize };
}

/**
 * {@link buildElfLayout}, bytes only.
 *
 * @param spec what to put in the file
 * @returns the file
 */
export function buildElf(spec: ElfSpec): Uint8Array {
  return buildElfLayout(spec).bytes;
}

/** A flat a.out-kludge kernel to build. */
export interface AoutSpec {
  /** Physical address of body[0]. */
  loadAddr: number;
  /** Bytes loaded at loadAddr; the header is written into a copy at `headerAt`. */
  body: Uint8Array;
  /** Offset of the header within body (4-aligned); default 0. */
  headerAt?: number;
  /** Bytes of filler in the file before body (not loaded); default 0. */
  prefix?: number;
  /** Bytes after body in the file; loaded only when load_end_addr is 0. */
  trailing?: Uint8Array;
  /** load_end_addr; default loadAddr + body.length. */
  loadEndAddr?: number;
  /** bss_end_addr; default 0 (no bss). */
  bssEndAddr?: number;
  /** entry_addr; default loadAddr. */
  entryAddr?: number;
  /** header_addr override; default loadAddr + headerAt. */
  headerAddr?: number;
  /** Extra header flags ORed onto bit 16 (default: memory info, bit 1). */
  flags?: number;
}

/**
 * A flat kernel image whose Multiboot header carries the a.out-kludge address fields.
 *
 * @param spec the layout
 * @returns the file: prefix filler, body with header, trailing bytes
 */
export function buildAoutKludge(spec: AoutSpec): Uint8Array {
  const headerAt = spec.headerAt ?? 0;
  const prefix = spec.prefix ?? 0;
  const trailing = spec.trailing ?? new Uint8Array(0);
  const header = multibootHeader({
    flags: (spec.flags ?? 0x2) | 0x10000,
    address: {
      headerAddr: spec.headerAddr ?? spec.loadAddr + headerAt,
      loadAddr: spec.loadAddr,
      loadEndAddr: spec.loadEndAddr ?? spec.loadAddr + spec.body.length,
      bssEndAddr: spec.bssEndAddr ?? 0,
      entryAddr: spec.entryAddr ?? spec.loadAddr,
    },
  });
  const out = new Uint8Array(prefix + spec.body.length + trailing.length);
  out.fill(0xEE, 0, prefix);
  out.set(spec.body, prefix);
  out.set(header, prefix + headerAt);
  out.set(trailing, prefix + spec.body.length);
  return out;
}

/**
 * A small ELF32 Multiboot kernel: a code segment at `base` starting with the header followed by
 * `code`, and a data segment at base + 0x1000 whose memsz exceeds its file bytes (bss).
 *
 * @param opts base address (default 1 MiB), header fields, code and data bytes, bss size
 * @returns the file and where the entry point, data and bss are
 */
export function sampleElfKernel(opts: {
  base?: number;
  header?: HeaderSpec;
  code?: Uint8Array;
  data?: Uint8Array;
  bss?: number;
} = {}): { bytes: Uint8Array; entry: number; dataAddr: number; bssStart: number; bssEnd: number } {
  const base = opts.base ?? 0x100000;
  const header = multibootHeader(opts.header);
  const code = opts.code ?? Uint8Array.of(0xFA, 0xF4, 0xEB, 0xFD); // cli; hlt; jmp $-1
  const text = new Uint8Array(header.length + code.length);
  text.set(header);
  text.set(code, header.length);
  const data = opts.data ?? Uint8Array.from({ length: 64 }, (_, i) => i + 1);
  const bss = opts.bss ?? 0x300;
  const dataAddr = base + 0x1000;
  const entry = base + header.length;
  const bytes = buildElf({
    entry,
    segments: [
      { paddr: base, data: text, flags: 5 },
      { paddr: dataAddr, data, memsz: data.length + bss, flags: 6 },
    ],
  });
  return {
    bytes,
    entry,
    dataAddr,
    bssStart: dataAddr + data.length,
    bssEnd: dataAddr + data.length + bss,
  };
}

/** Builds NUL-terminated string tables (offset 0 is the empty string). */
class StringTable {
  #parts: number[] = [0];

  /** Appends `s` and returns its offset. */
  add(s: string): number {
    const offset = this.#parts.length;
    this.#parts.push(...new TextEncoder().encode(s), 0);
    return offset;
  }

  /** The table bytes. */
  bytes(): Uint8Array {
    return Uint8Array.from(this.#parts);
  }
}

/**
 * Writes a little-endian u32 into `bytes`.
 *
 * @param bytes the buffer
 * @param offset where
 * @param value the value (taken mod 2^32)
 */
export function putU32(bytes: Uint8Array, offset: number, value: number): void {
  new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).setUint32(
    offset,
    value >>> 0,
    true,
  );
}

/**
 * Writes a little-endian u16 into `bytes`.
 *
 * @param bytes the buffer
 * @param offset where
 * @param value the value
 */
export function putU16(bytes: Uint8Array, offset: number, value: number): void {
  new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength).setUint16(offset, value, true);
}

/**
 * Reads a little-endian u32, as a 32-bit kernel would from physical memory.
 *
 * @param ram guest memory
 * @param addr physical address
 * @returns the value
 */
export function readU32(ram: Uint8Array, addr: number): number {
  return new DataView(ram.buffer, ram.byteOffset, ram.byteLength).getUint32(addr, true);
}

/**
 * Reads a little-endian u64 that fits a number.
 *
 * @param ram guest memory
 * @param addr physical address
 * @returns the value
 */
export function readU64(ram: Uint8Array, addr: number): number {
  return readU32(ram, addr) + readU32(ram, addr + 4) * 0x1_0000_0000;
}

/**
 * Reads a NUL-terminated UTF-8 string, as a kernel would from a `char *`.
 *
 * @param ram guest memory
 * @param addr physical address of the first byte
 * @returns the string without its NUL
 */
export function readCString(ram: Uint8Array, addr: number): string {
  const end = ram.indexOf(0, addr);
  return new TextDecoder().decode(ram.subarray(addr, end < 0 ? ram.length : end));
}

export { seededRandom } from "../seeded_random.ts";
