/**
 * Multiboot 1 (specification version 0.6.96) kernel loader: finds the header, places the
 * kernel's segments in guest physical memory, and builds the boot information a Multiboot kernel
 * reads at entry, matching what QEMU's `-kernel` loader (hw/i386/multiboot.c plus its
 * multiboot.bin option ROM running on SeaBIOS) gives the same kernel, so a kernel prints the same
 * lines under ring3 and under QEMU.
 *
 * ## Boot-information area
 *
 * Everything the loader writes besides the kernel lives in one fixed 4 KiB area,
 * {@link BOOT_INFO_AREA} = physical 0x9000..0xA000, which kernel segments may not overlap:
 *
 * | physical       | contents                                                           |
 * | -------------- | ------------------------------------------------------------------ |
 * | 0x9000..0x9500 | memory map, Multiboot format (`mmap_addr`; room for 53 entries)     |
 * | 0x9500..0x9600 | `multiboot_info` (EBX; 88 bytes used, the rest zero)                |
 * | 0x9600..0xA000 | command line with its NUL, then the boot loader name with its NUL  |
 *
 * `mods_addr` also points at 0x9600: with no modules it names an empty list, and QEMU's
 * `mods_addr` likewise equals its `cmdline` pointer in that case.
 *
 * Why there: the memory map and `multiboot_info` sit exactly where QEMU puts them (its
 * ADDR_E820_MAP and ADDR_MBI), so EBX and `mmap_addr` print identically; the area is usable RAM
 * well clear of the real-mode IVT/BDA below 0x500 and the EBDA at 0x9FC00; and kernels load at
 * 1 MiB by convention. QEMU puts the strings just after the kernel instead (page-aligned end of
 * the loaded image); ring3 keeps them in the fixed area so the loader never writes outside ranges
 * it has checked, at the cost of different `cmdline`, `mods_addr` and `boot_loader_name` pointer
 * values (the strings themselves are the same).
 *
 * @module
 */

import { ELFCLASS64, EM_386, EM_X86_64, hasElfMagic, parseElf, PT_LOAD } from "./elf.ts";
import { ImageFormatError } from "./image_error.ts";

/** Magic at the start of the Multiboot header in the kernel image. */
export const MULTIBOOT_HEADER_MAGIC = 0x1BADB002;
/** Magic the loader leaves in EAX at the kernel's entry. */
export const MULTIBOOT_BOOTLOADER_MAGIC = 0x2BADB002;
/** The header must lie wholly within this many bytes at the start of the image. */
export const MULTIBOOT_SEARCH_BYTES = 8192;

/** Header flag bit 0: boot modules must be page-aligned (trivially met: ring3 loads none). */
export const MULTIBOOT_PAGE_ALIGN = 1 << 0;
/** Header flag bit 1: the kernel needs mem_lower/mem_upper (always provided). */
export const MULTIBOOT_MEMORY_INFO = 1 << 1;
/** Header flag bit 2: the kernel asks for a video mode (ignored, as QEMU does). */
export const MULTIBOOT_VIDEO_MODE = 1 << 2;
/** Header flag bit 16: the header's address fields say where to load (the "a.out kludge"). */
export const MULTIBOOT_AOUT_KLUDGE = 1 << 16;

/** `multiboot_info.flags` bit 0: mem_lower and mem_upper are valid. */
export const MULTIBOOT_INFO_MEMORY = 1 << 0;
/** `multiboot_info.flags` bit 1: boot_device is valid. */
export const MULTIBOOT_INFO_BOOTDEV = 1 << 1;
/** `multiboot_info.flags` bit 2: cmdline is valid. */
export const MULTIBOOT_INFO_CMDLINE = 1 << 2;
/** `multiboot_info.flags` bit 3: mods_count and mods_addr are valid. */
export const MULTIBOOT_INFO_MODS = 1 << 3;
/** `multiboot_info.flags` bit 6: mmap_length and mmap_addr are valid. */
export const MULTIBOOT_INFO_MEM_MAP = 1 << 6;
/** `multiboot_info.flags` bit 9: boot_loader_name is valid. */
export const MULTIBOOT_INFO_BOOT_LOADER_NAME = 1 << 9;

/**
 * The `multiboot_info.flags` ring3 sets: the same set QEMU sets (0x24F), so a kernel that prints
 * or tests the flags sees the same value.
 */
export const MULTIBOOT_INFO_FLAGS = MULTIBOOT_INFO_MEMORY | MULTIBOOT_INFO_BOOTDEV |
  MULTIBOOT_INFO_CMDLINE | MULTIBOOT_INFO_MODS | MULTIBOOT_INFO_MEM_MAP |
  MULTIBOOT_INFO_BOOT_LOADER_NAME;

/**
 * `multiboot_info.boot_device` as QEMU fills it: BIOS drive 0x80 (first hard disk), all three
 * partition levels unused (0xFF).
 */
export const MULTIBOOT_BOOT_DEVICE = 0x8000FFFF;

/** The fixed physical range holding the memory map, `multiboot_info` and strings. */
export const BOOT_INFO_AREA: Readonly<{ start: number; end: number }> = Object.freeze({
  start: 0x9000,
  end: 0xA000,
});
/** Physical address of the memory map (`mmap_addr`); QEMU's ADDR_E820_MAP. */
export const BOOT_INFO_MMAP_ADDR = 0x9000;
/** Physical address of `multiboot_info` (EBX at entry); QEMU's ADDR_MBI. */
export const BOOT_INFO_MBI_ADDR = 0x9500;
/** Physical address of the command line; the boot loader name follows its NUL. */
export const BOOT_INFO_STRINGS_ADDR = 0x9600;

/** One Multiboot memory-map entry: 4-byte size field, then base (u64), length (u64), type. */
const MMAP_ENTRY_BYTES = 24;
/** The value of an entry's size field: the bytes after it. */
const MMAP_ENTRY_SIZE_FIELD = 20;

/** Memory-map type of usable RAM (e820 and Multiboot agree). */
export const E820_RAM = 1;
/** Memory-map type of reserved memory. */
export const E820_RESERVED = 2;

/**
 * Bytes the SeaBIOS Extended BIOS Data Area takes from the top of conventional memory, which
 * decides mem_lower: the option ROM asks INT 12h, which returns the BDA's base-memory size,
 * 639 KiB with a 1 KiB EBDA at 0x9FC00 (SeaBIOS EBDA_SIZE_START). From SeaBIOS source; to be
 * confirmed against a QEMU run (mem_lower should print 639).
 */
export const QEMU_EBDA_BYTES = 0x400;

/**
 * Bytes SeaBIOS keeps reserved at the top of RAM below 4 GiB for its "high" tables (ACPI,
 * SMBIOS, ...): it reserves 256 KiB, then gives back the unused page-aligned part before boot.
 * What remains depends on the QEMU/SeaBIOS version and machine configuration; 128 KiB is what
 * QEMU's pc machine has commonly reported (e820 "0x7fe0000-0x7ffffff reserved" with -m 128).
 * UNCONFIRMED for the QEMU ring3 compares against: mem_upper = (RAM - 1 MiB - this) / 1024, so
 * the reported mem_upper for -m 64 / -m 128 pins it down (64384 / 129920 KiB if 128 KiB).
 */
export const QEMU_HIGH_RESERVED_BYTES = 0x20000;

/** Start of the legacy hole (VGA, option ROMs, BIOS) that QEMU's map never marks usable. */
const LOW_MEMORY_END = 0xA0000;
/** The system BIOS, mapped at 0xF0000..0x100000 and reported reserved. */
const BIOS_START = 0xF0000;
const ONE_MIB = 0x100000;
/** SeaBIOS reports the firmware flash at the top of 4 GiB as reserved (256 KiB). */
const HIGH_BIOS_START = 0xFFFC0000;
const HIGH_BIOS_BYTES = 0x40000;

/** Smallest RAM ring3 builds a map for: 1 MiB of low memory, the high reserve, and room to load. */
export const MIN_RAM_BYTES = 0x200000;
/**
 * QEMU's pc (i440fx) machine keeps all RAM below 4 GiB only while RAM is smaller than 0xE0000000
 * bytes (pc_piix.c); from there it splits RAM around the PCI hole, which ring3's flat guest
 * memory does not model. (The q35 machine splits earlier, from 0xB0000000.)
 */
export const MAX_RAM_BYTES = 0xE0000000 - 0x1000;

/** One entry of the physical memory map, in e820 terms. */
export interface MemoryMapEntry {
  /** First physical address. */
  base: number;
  /** Bytes covered. */
  length: number;
  /** {@link E820_RAM} (1) or {@link E820_RESERVED} (2). */
  type: number;
}

/**
 * The physical memory map QEMU's pc machine with SeaBIOS reports through e820 for `ramBytes` of
 * RAM, sorted by address. Multiboot kernels receive it as their memory map; the machine can reuse
 * it for its own firmware tables.
 *
 * For RAM size R (with H = {@link QEMU_HIGH_RESERVED_BYTES}):
 * 0..0x9FC00 RAM; 0x9FC00..0xA0000 reserved (EBDA); 0xF0000..0x100000 reserved (BIOS);
 * 0x100000..R-H RAM; R-H..R reserved (SeaBIOS tables); 0xFFFC0000..4 GiB reserved (flash).
 * Under KVM, QEMU adds one more reserved entry (0xFEFFC000..0xFF000000, the TSS and EPT identity
 * map from target/i386/kvm); ring3 follows QEMU's TCG map, which lacks it.
 *
 * @param ramBytes guest RAM size: a multiple of 4096 in {@link MIN_RAM_BYTES}..{@link MAX_RAM_BYTES}
 * @returns fresh entries (callers may modify them)
 * @throws {RangeError} for a size outside that range or not page-aligned
 */
export function describeMemoryMap(ramBytes: number): MemoryMapEntry[] {
  if (!Number.isInteger(ramBytes) || ramBytes % 0x1000 !== 0) {
    throw new RangeError(`RAM size ${ramBytes} is not a whole number of 4 KiB pages`);
  }
  if (ramBytes < MIN_RAM_BYTES || ramBytes > MAX_RAM_BYTES) {
    throw new RangeError(
      `RAM size 0x${ramBytes.toString(16)} is outside what ring3 models ` +
        `(0x${MIN_RAM_BYTES.toString(16)}..0x${MAX_RAM_BYTES.toString(16)}): larger RAM is split ` +
        "around the PCI hole by QEMU's pc machine, and smaller RAM leaves no room for a kernel",
    );
  }
  const ebda = LOW_MEMORY_END - QEMU_EBDA_BYTES;
  const highReserved = ramBytes - QEMU_HIGH_RESERVED_BYTES;
  return [
    { base: 0, length: ebda, type: E820_RAM },
    { base: ebda, length: QEMU_EBDA_BYTES, type: E820_RESERVED },
    { base: BIOS_START, length: ONE_MIB - BIOS_START, type: E820_RESERVED },
    { base: ONE_MIB, length: highReserved - ONE_MIB, type: E820_RAM },
    { base: highReserved, length: QEMU_HIGH_RESERVED_BYTES, type: E820_RESERVED },
    { base: HIGH_BIOS_START, length: HIGH_BIOS_BYTES, type: E820_RESERVED },
  ];
}

/**
 * `mem_lower` and `mem_upper` as QEMU's option ROM derives them, from a memory map.
 *
 * mem_upper follows the ROM: start at 1 MiB and extend through available entries that contain
 * the current end, until none does; the KiB from 1 MiB to there. mem_lower is the available
 * memory from address 0 in KiB (the ROM asks INT 12h, which SeaBIOS answers from the same
 * EBDA boundary).
 *
 * @param map a memory map such as {@link describeMemoryMap} returns
 * @returns both values in KiB
 */
export function multibootMemorySizes(
  map: readonly MemoryMapEntry[],
): { memLowerKiB: number; memUpperKiB: number } {
  const usable = map.filter((e) => e.type === E820_RAM && e.base + e.length <= 0x1_0000_0000);
  const low = usable.find((e) => e.base === 0);
  let end = ONE_MIB;
  for (let grown = true; grown;) {
    grown = false;
    for (const e of usable) {
      if (e.base <= end && end < e.base + e.length) {
        end = e.base + e.length;
        grown = true;
      }
    }
  }
  return {
    memLowerKiB: low === undefined ? 0 : Math.floor(Math.min(low.length, LOW_MEMORY_END) / 1024),
    memUpperKiB: Math.floor((end - ONE_MIB) / 1024),
  };
}

/** The a.out-kludge address fields of a Multiboot header (flags bit 16). */
export interface MultibootAddressFields {
  /** Physical address the header's magic is loaded at. */
  headerAddr: number;
  /** Physical address of the start of the loaded image. */
  loadAddr: number;
  /** Physical end of the loaded image; 0 means "to the end of the file". */
  loadEndAddr: number;
  /** Physical end of the zero-filled bss after the image; 0 means no bss. */
  bssEndAddr: number;
  /** Physical entry point. */
  entryAddr: number;
}

/** The video-mode request of a Multiboot header (flags bit 2); recorded, never acted on. */
export interface MultibootVideoFields {
  /** 0 linear graphics, 1 EGA text. */
  modeType: number;
  /** Columns (pixels or characters); 0 = no preference. */
  width: number;
  /** Rows; 0 = no preference. */
  height: number;
  /** Bits per pixel; 0 = no preference. */
  depth: number;
}

/** A Multiboot header found in an image. */
export interface MultibootHeader {
  /** File offset of the magic (4-byte aligned, below 8192). */
  offset: number;
  /** The header's flags word. */
  flags: number;
  /** The checksum word (flags + magic + checksum ≡ 0 mod 2^32). */
  checksum: number;
  /** Bytes the header occupies given its flags: 12, 32 (address fields) or 48 (video fields). */
  size: number;
  /** Present when flags bit 16 is set. */
  address?: MultibootAddressFields;
  /** Present when flags bit 2 is set. */
  video?: MultibootVideoFields;
}

const hex = (n: number): string => `0x${n.toString(16)}`;
const hex32 = (n: number): string => `0x${(n >>> 0).toString(16).padStart(8, "0")}`;

/**
 * Finds the Multiboot header: the first 4-byte-aligned offset within the first 8192 bytes holding
 * the magic 0x1BADB002 followed by flags and a checksum that make the three sum to 0 mod 2^32.
 * A magic with a wrong checksum is skipped (as QEMU does), so a later valid header still counts.
 *
 * @param image the kernel file
 * @returns the header's position and fields
 * @throws {ImageFormatError} reason `"no-multiboot-header"` when there is none (the message says
 *   if one exists past 8192 bytes or unaligned), `"bad-checksum"` when the only magic found has a
 *   wrong checksum, `"truncated"` when the header's fields run past 8192 bytes or the file's end
 */
export function findMultibootHeader(image: Uint8Array): MultibootHeader {
  const view = new DataView(image.buffer, image.byteOffset, image.byteLength);
  const window = Math.min(image.length, MULTIBOOT_SEARCH_BYTES);
  const valid = (off: number): boolean =>
    view.getUint32(off, true) === MULTIBOOT_HEADER_MAGIC &&
    ((view.getUint32(off + 4, true) + MULTIBOOT_HEADER_MAGIC + view.getUint32(off + 8, true)) >>>
        0) === 0;

  let offset = -1;
  let badChecksumAt = -1;
  for (let off = 0; off + 12 <= window; off += 4) {
    if (valid(off)) {
      offset = off;
      break;
    }
    if (badChecksumAt < 0 && view.getUint32(off, true) === MULTIBOOT_HEADER_MAGIC) {
      badChecksumAt = off;
    }
  }

  if (offset < 0) {
    if (badChecksumAt >= 0) {
      const flags = view.getUint32(badChecksumAt + 4, true);
      const checksum = view.getUint32(badChecksumAt + 8, true);
      throw new ImageFormatError(
        `Multiboot magic at file offset ${hex(badChecksumAt)} has a bad checksum: ` +
          `flags ${hex32(flags)} + magic ${hex32(MULTIBOOT_HEADER_MAGIC)} + checksum ` +
          `${hex32(checksum)} = ${hex32(flags + MULTIBOOT_HEADER_MAGIC + checksum)} mod 2^32, ` +
          `not 0 (expected checksum ${hex32(-(flags + MULTIBOOT_HEADER_MAGIC))})`,
        { reason: "bad-checksum" },
      );
    }
    let hint = image.length === 0 ? " (the file is empty)" : "";
    for (let off = 0; hint === "" && off + 12 <= image.length; off++) {
      if (valid(off)) {
        hint = off % 4 !== 0
          ? ` (there is one at unaligned file offset ${hex(off)}; it must be 4-byte aligned)`
          : ` (there is one at file offset ${hex(off)}, past the ${MULTIBOOT_SEARCH_BYTES}-byte ` +
            "window the specification allows)";
      }
    }
    throw new ImageFormatError(
      `no Multiboot header in the first ${MULTIBOOT_SEARCH_BYTES} bytes${hint}`,
      { reason: "no-multiboot-header" },
    );
  }

  const flags = view.getUint32(offset + 4, true);
  const checksum = view.getUint32(offset + 8, true);
  const hasAddress = (flags & MULTIBOOT_AOUT_KLUDGE) !== 0;
  const hasVideo = (flags & MULTIBOOT_VIDEO_MODE) !== 0;
  const size = hasVideo ? 48 : hasAddress ? 32 : 12;
  if (offset + size > window) {
    const limit = window < MULTIBOOT_SEARCH_BYTES
      ? `the end of the file (${hex(image.length)})`
      : `the first ${MULTIBOOT_SEARCH_BYTES} bytes`;
    throw new ImageFormatError(
      `Multiboot header at file offset ${hex(offset)} needs ${size} bytes for flags ` +
        `${hex32(flags)}, which runs past ${limit}`,
      { reason: "truncated" },
    );
  }
  const word = (i: number) => view.getUint32(offset + 4 * i, true);
  const header: MultibootHeader = { offset, flags, checksum, size };
  if (hasAddress) {
    header.address = {
      headerAddr: word(3),
      loadAddr: word(4),
      loadEndAddr: word(5),
      bssEndAddr: word(6),
      entryAddr: word(7),
    };
  }
  if (hasVideo) {
    header.video = { modeType: word(8), width: word(9), height: word(10), depth: word(11) };
  }
  return header;
}

/** Options for {@link loadMultiboot}. */
export interface MultibootOptions {
  /** Kernel command line. Default: "" (an empty string is still passed, flag bit 2 set). */
  cmdline?: string;
  /** `boot_loader_name` string. Default: "ring3" (QEMU passes "qemu"). */
  bootloaderName?: string;
  /**
   * The kernel's file name as the user gave it. When set, the command line becomes
   * `${kernelPath} ${cmdline}` — exactly what QEMU passes for `-kernel kernelPath -append cmdline`
   * (including the trailing space when there is no -append) — so kernels that print their
   * command line print the same under both. Default: unset, the command line is `cmdline` alone.
   */
  kernelPath?: string;
}

/** The result of {@link loadMultiboot}: the CPU state the kernel must be entered with. */
export interface LoadedKernel {
  /** Where the load addresses came from: ELF program headers, or the header's address fields. */
  format: "elf" | "aout-kludge";
  /** 32-bit physical entry point (EIP). */
  entry: number;
  /** EAX at entry: {@link MULTIBOOT_BOOTLOADER_MAGIC}. */
  eax: number;
  /** EBX at entry: physical address of `multiboot_info` ({@link BOOT_INFO_MBI_ADDR}). */
  ebx: number;
  /** Physical ranges written with the kernel, bss included, end exclusive, in load order. */
  segments: { start: number; end: number }[];
  /** The Multiboot header's flags word. */
  headerFlags: number;
  /** The physical range written with boot information ({@link BOOT_INFO_AREA}). */
  bootInfo: { start: number; end: number };
  /** Requests the loader noticed but ignored (video mode, unknown optional flags). */
  notes: string[];
}

/** A planned copy: `fileSize` bytes from `fileOffset` to `start`, then zeros up to `memSize`. */
interface Segment {
  start: number;
  fileOffset: number;
  fileSize: number;
  memSize: number;
}

/**
 * Loads a Multiboot 1 kernel into guest physical memory and builds its boot information.
 *
 * Load addresses come from the header's a.out-kludge fields when flags bit 16 is set, otherwise
 * from the PT_LOAD segments (at `p_paddr`) of an ELF32 EM_386 image; memory beyond each
 * segment's file bytes is zeroed. Everything is validated before the first byte is written, so a
 * rejected image leaves `ram` untouched. Header flags bits 0 and 1 are honoured (no modules are
 * loaded; memory information is always given); bit 2 (video mode) is ignored and noted, as QEMU
 * does; any other bit in 0-15 makes the image unloadable, as the specification requires.
 *
 * The caller enters the kernel per the specification's machine state: EAX, EBX, EIP as returned;
 * 32-bit protected mode, paging off, flat 4 GiB CS (execute/read) and DS/ES/FS/GS/SS
 * (read/write) with base 0; A20 on; interrupts disabled.
 *
 * @param image the kernel file
 * @param ram guest physical memory from address 0; its length is the RAM size (a multiple of
 *   4 KiB within {@link MIN_RAM_BYTES}..{@link MAX_RAM_BYTES})
 * @param options command line and boot loader name (defaults: "" and "ring3")
 * @returns entry state, the ranges written and any notes
 * @throws {ImageFormatError} when the image cannot be loaded (see {@link ImageFormatError} for
 *   the reasons); `ram` is then unmodified
 * @throws {RangeError} when the RAM size is unsupported, or the command line and boot loader
 *   name do not fit the boot-information area or contain a NUL
 *
 * @example
 * ```ts
 * import { loadMultiboot } from "./multiboot.ts";
 * const ram = new Uint8Array(64 << 20);
 * const k = loadMultiboot(await Deno.readFile("fixtures/build/hello.elf"), ram, {
 *   cmdline: "verbose=1",
 * });
 * // start the vCPU at k.entry with EAX = k.eax and EBX = k.ebx
 * ```
 */
export function loadMultiboot(
  image: Uint8Array,
  ram: Uint8Array,
  options: MultibootOptions = {},
): LoadedKernel {
  const map = describeMemoryMap(ram.length);
  const header = findMultibootHeader(image);
  const notes: string[] = [];

  const unknownRequired = header.flags & 0xFFFF &
    ~(MULTIBOOT_PAGE_ALIGN | MULTIBOOT_MEMORY_INFO | MULTIBOOT_VIDEO_MODE);
  if (unknownRequired !== 0) {
    const bits = [...Array(16).keys()].filter((b) => unknownRequired & (1 << b));
    throw new ImageFormatError(
      `Multiboot header flags ${hex32(header.flags)} require features ring3 does not provide ` +
        `(bit${bits.length > 1 ? "s" : ""} ${bits.join(", ")}; of bits 0-15 it knows only ` +
        "0 page-aligned modules, 1 memory information, 2 video mode)",
      { reason: "unsupported-flags" },
    );
  }
  if (header.video !== undefined) {
    const v = header.video;
    notes.push(
      `video mode requested (flags bit 2: type ${v.modeType}, ${v.width}x${v.height}x${v.depth}) ` +
        "and ignored: ring3 provides no VBE information, as QEMU does not",
    );
  }
  const unknownOptional = header.flags & 0xFFFF0000 & ~MULTIBOOT_AOUT_KLUDGE;
  if (unknownOptional !== 0) {
    notes.push(`optional Multiboot header flags ${hex32(unknownOptional)} ignored`);
  }

  const format = header.address !== undefined ? "aout-kludge" : "elf";
  const { segments, entry } = header.address !== undefined
    ? planAoutKludge(image, header.offset, header.address)
    : planElf(image, header.flags);
  checkPlacement(segments, entry, ram.length);

  const strings = encodeStrings(options);
  const bootInfo = buildBootInfo(map, strings);

  for (const s of segments) {
    ram.set(image.subarray(s.fileOffset, s.fileOffset + s.fileSize), s.start);
    ram.fill(0, s.start + s.fileSize, s.start + s.memSize);
  }
  ram.set(bootInfo, BOOT_INFO_AREA.start);

  return {
    format,
    entry,
    eax: MULTIBOOT_BOOTLOADER_MAGIC,
    ebx: BOOT_INFO_MBI_ADDR,
    segments: segments.map((s) => ({ start: s.start, end: s.start + s.memSize })),
    headerFlags: header.flags,
    bootInfo: { start: BOOT_INFO_AREA.start, end: BOOT_INFO_AREA.end },
    notes,
  };
}

/**
 * Translates a.out-kludge address fields to one segment, per the specification: the file offset
 * of load_addr is the header's offset minus (header_addr - load_addr); load_end_addr 0 loads to
 * the end of the file; bss_end_addr 0 means no bss. The checks are QEMU's, plus one it leaves to
 * a failing read: the bytes to load must be in the file.
 */
function planAoutKludge(
  image: Uint8Array,
  headerOffset: number,
  a: MultibootAddressFields,
): { segments: Segment[]; entry: number } {
  const fail = (message: string, reason = "bad-load-address"): never => {
    throw new ImageFormatError(`Multiboot a.out kludge: ${message}`, { reason });
  };
  if (a.headerAddr < a.loadAddr) {
    fail(`header_addr ${hex32(a.headerAddr)} is below load_addr ${hex32(a.loadAddr)}`);
  }
  if (a.headerAddr - a.loadAddr > headerOffset) {
    fail(
      `header_addr ${hex32(a.headerAddr)} - load_addr ${hex32(a.loadAddr)} = ` +
        `${hex(a.headerAddr - a.loadAddr)} exceeds the header's file offset ${
          hex(headerOffset)
        }, ` +
        "so load_addr would be before the start of the file",
    );
  }
  const fileOffset = headerOffset - (a.headerAddr - a.loadAddr);
  let fileSize: number;
  if (a.loadEndAddr !== 0) {
    if (a.loadEndAddr < a.loadAddr) {
      fail(`load_end_addr ${hex32(a.loadEndAddr)} is below load_addr ${hex32(a.loadAddr)}`);
    }
    fileSize = a.loadEndAddr - a.loadAddr;
    if (fileOffset + fileSize > image.length) {
      fail(
        `load_end_addr ${hex32(a.loadEndAddr)} is beyond the file: loading ` +
          `${hex(fileSize)} bytes from file offset ${hex(fileOffset)} needs ` +
          `${hex(fileOffset + fileSize)} bytes, but the file has ${hex(image.length)}`,
        "truncated",
      );
    }
  } else {
    fileSize = image.length - fileOffset;
  }
  if (a.loadAddr + fileSize > 0x1_0000_0000) {
    fail(
      `${hex(fileSize)} bytes loaded at ${hex32(a.loadAddr)} run past 4 GiB`,
      "segment-outside-ram",
    );
  }
  let memSize = fileSize;
  if (a.bssEndAddr !== 0) {
    if (a.bssEndAddr < a.loadAddr + fileSize) {
      fail(
        `bss_end_addr ${hex32(a.bssEndAddr)} is below the end of the loaded image ` +
          `${hex(a.loadAddr + fileSize)}`,
      );
    }
    memSize = a.bssEndAddr - a.loadAddr;
  }
  return {
    segments: [{ start: a.loadAddr, fileOffset, fileSize, memSize }],
    entry: a.entryAddr,
  };
}

/** Reads the loadable segments of an ELF32 EM_386 kernel, placed at their physical addresses. */
function planElf(image: Uint8Array, flags: number): { segments: Segment[]; entry: number } {
  if (!hasElfMagic(image)) {
    throw new ImageFormatError(
      `Multiboot header flags ${hex32(flags)} do not set bit 16 (a.out kludge), so the image ` +
        "must be ELF, but it does not start with the ELF magic (7f 45 4c 46)",
      { reason: "unsupported-format" },
    );
  }
  // Checked before parsing: a 64-bit kernel's high virtual addresses would otherwise surface as
  // a less helpful "value too large" error. QEMU refuses these too, by e_machine.
  const is64 = image[4] === ELFCLASS64;
  const machine = image.length >= 20 ? image[18] | (image[19] << 8) : -1;
  if (is64 || machine === EM_X86_64) {
    throw new ImageFormatError(
      `64-bit ELF kernels need the Multiboot a.out kludge (flags bit 16) to be loaded; this ` +
        `image is ${is64 ? "ELFCLASS64" : "EM_X86_64"} and its header flags ${hex32(flags)} ` +
        `lack bit 16 (QEMU refuses it the same way: "Cannot load x86-64 image, give a 32bit ` +
        `one.")`,
      { reason: "unsupported-format" },
    );
  }
  const elf = parseElf(image);
  if (elf.machine !== EM_386) {
    throw new ImageFormatError(
      `ELF machine ${elf.machine} is not EM_386 (3), the only one a Multiboot ELF kernel may be`,
      { reason: "unsupported-format" },
    );
  }
  const segments = elf.programHeaders
    .filter((p) => p.type === PT_LOAD && p.memsz > 0)
    .map((p) => ({ start: p.paddr, fileOffset: p.offset, fileSize: p.filesz, memSize: p.memsz }));
  if (segments.length === 0) {
    throw new ImageFormatError("ELF image has no PT_LOAD segment with a nonzero memsz", {
      reason: "inconsistent",
    });
  }
  return { segments, entry: elf.entry };
}

/** Rejects segments that would land outside RAM, on the boot information, or on each other. */
function checkPlacement(segments: Segment[], entry: number, ramBytes: number): void {
  const describe = (i: number) => {
    const s = segments[i];
    return `segment ${i} (physical ${hex(s.start)}..${hex(s.start + s.memSize)})`;
  };
  const overlaps = (s: Segment, start: number, end: number) =>
    s.start < end && start < s.start + s.memSize;
  segments.forEach((s, i) => {
    if (s.start + s.memSize > ramBytes) {
      throw new ImageFormatError(
        `${describe(i)} lies outside guest RAM (0x0..${hex(ramBytes)})`,
        { reason: "segment-outside-ram" },
      );
    }
    if (overlaps(s, BOOT_INFO_AREA.start, BOOT_INFO_AREA.end)) {
      throw new ImageFormatError(
        `${describe(i)} overlaps the boot-information area ` +
          `(${hex(BOOT_INFO_AREA.start)}..${hex(BOOT_INFO_AREA.end)})`,
        { reason: "segment-overlaps-boot-info" },
      );
    }
    // On QEMU these bytes are EBDA, VGA memory and ROM, not RAM the kernel could run from.
    const holeStart = LOW_MEMORY_END - QEMU_EBDA_BYTES;
    if (overlaps(s, holeStart, ONE_MIB)) {
      throw new ImageFormatError(
        `${describe(i)} overlaps the reserved legacy area ${hex(holeStart)}..${hex(ONE_MIB)} ` +
          "(EBDA, VGA memory, BIOS)",
        { reason: "segment-overlaps-reserved" },
      );
    }
    for (let j = 0; j < i; j++) {
      if (overlaps(segments[j], s.start, s.start + s.memSize)) {
        throw new ImageFormatError(`${describe(j)} and ${describe(i)} overlap`, {
          reason: "overlapping-segments",
        });
      }
    }
  });
  if (!segments.some((s) => s.start <= entry && entry < s.start + s.memSize)) {
    throw new ImageFormatError(
      `entry point ${hex32(entry)} is not inside any loaded segment ` +
        `(${segments.map((_, i) => describe(i)).join(", ")})`,
      { reason: "entry-outside-image" },
    );
  }
}

/** The command line and boot loader name, UTF-8 with their NULs, checked to fit. */
function encodeStrings(options: MultibootOptions): { cmdline: Uint8Array; name: Uint8Array } {
  const text = options.kernelPath !== undefined
    ? `${options.kernelPath} ${options.cmdline ?? ""}`
    : options.cmdline ?? "";
  const name = options.bootloaderName ?? "ring3";
  const encoder = new TextEncoder();
  const encode = (s: string, what: string) => {
    if (s.includes("\0")) throw new RangeError(`${what} contains a NUL character`);
    const bytes = new Uint8Array(encoder.encode(s).length + 1);
    encoder.encodeInto(s, bytes);
    return bytes;
  };
  const cmdline = encode(text, "command line");
  const nameBytes = encode(name, "boot loader name");
  const room = BOOT_INFO_AREA.end - BOOT_INFO_STRINGS_ADDR;
  if (cmdline.length + nameBytes.length > room) {
    throw new RangeError(
      `command line (${cmdline.length} bytes) and boot loader name (${nameBytes.length} bytes), ` +
        `with their NULs, exceed the ${room} bytes the boot-information area holds for them`,
    );
  }
  return { cmdline, name: nameBytes };
}

/** The bytes of {@link BOOT_INFO_AREA}: memory map, `multiboot_info`, strings. */
function buildBootInfo(
  map: MemoryMapEntry[],
  strings: { cmdline: Uint8Array; name: Uint8Array },
): Uint8Array {
  const area = new Uint8Array(BOOT_INFO_AREA.end - BOOT_INFO_AREA.start);
  const view = new DataView(area.buffer);
  const at = (physical: number) => physical - BOOT_INFO_AREA.start;
  const u32 = (physical: number, value: number) => view.setUint32(at(physical), value, true);
  const u64 = (physical: number, value: number) => {
    u32(physical, value % 0x1_0000_0000);
    u32(physical + 4, Math.floor(value / 0x1_0000_0000));
  };

  map.forEach((e, i) => {
    const entry = BOOT_INFO_MMAP_ADDR + i * MMAP_ENTRY_BYTES;
    u32(entry, MMAP_ENTRY_SIZE_FIELD);
    u64(entry + 4, e.base);
    u64(entry + 12, e.length);
    u32(entry + 20, e.type);
  });
  const mmapLength = map.length * MMAP_ENTRY_BYTES;

  const cmdlineAddr = BOOT_INFO_STRINGS_ADDR;
  const nameAddr = cmdlineAddr + strings.cmdline.length;
  area.set(strings.cmdline, at(cmdlineAddr));
  area.set(strings.name, at(nameAddr));

  const { memLowerKiB, memUpperKiB } = multibootMemorySizes(map);
  const mbi = BOOT_INFO_MBI_ADDR;
  u32(mbi + 0, MULTIBOOT_INFO_FLAGS);
  u32(mbi + 4, memLowerKiB);
  u32(mbi + 8, memUpperKiB);
  u32(mbi + 12, MULTIBOOT_BOOT_DEVICE);
  u32(mbi + 16, cmdlineAddr);
  u32(mbi + 20, 0); // mods_count
  // With no modules QEMU's mods_addr equals its cmdline address (the module list would start
  // there); keep that relation.
  u32(mbi + 24, cmdlineAddr);
  u32(mbi + 44, mmapLength);
  u32(mbi + 48, BOOT_INFO_MMAP_ADDR);
  u32(mbi + 64, nameAddr);
  return area;
}
