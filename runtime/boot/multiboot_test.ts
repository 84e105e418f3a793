import assert from "node:assert/strict";
import { ImageFormatError } from "./image_error.ts";
import {
  BOOT_INFO_AREA,
  BOOT_INFO_MBI_ADDR,
  BOOT_INFO_MMAP_ADDR,
  describeMemoryMap,
  E820_RAM,
  E820_RESERVED,
  findMultibootHeader,
  loadMultiboot,
  MULTIBOOT_BOOTLOADER_MAGIC,
  MULTIBOOT_INFO_FLAGS,
  multibootMemorySizes,
} from "./multiboot.ts";
import {
  buildAoutKludge,
  buildElf,
  buildElfLayout,
  multibootHeader,
  putU16,
  putU32,
  readCString,
  readU32,
  readU64,
  sampleElfKernel,
  seededRandom,
} from "./_test_images.ts";

const MiB = 1024 * 1024;
const RAM_BYTES = 8 * MiB;

/** Guest RAM filled with a marker, so untouched and zeroed bytes are told apart. */
function dirtyRam(bytes = RAM_BYTES): Uint8Array {
  return new Uint8Array(bytes).fill(0xAA);
}

/** Asserts that `fn` throws an ImageFormatError with `reason` whose message matches `message`. */
function assertImageError(fn: () => unknown, reason: string, message?: RegExp | string): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof ImageFormatError, `expected ImageFormatError, got ${e}`);
    assert.equal(e.reason, reason, e.message);
    if (typeof message === "string") assert.equal(e.message, message);
    else if (message) assert.match(e.message, message);
    return true;
  });
}

/** Asserts that loading fails with `reason` and leaves RAM exactly as it was. */
function assertLoadRejected(image: Uint8Array, reason: string, message?: RegExp | string): void {
  const ram = dirtyRam();
  assertImageError(() => loadMultiboot(image, ram), reason, message);
  assert.equal(ram.findIndex((b) => b !== 0xAA), -1, "a rejected image must not touch RAM");
}

/** The multiboot_info fields a kernel reads, straight from guest memory at EBX. */
function readInfo(ram: Uint8Array, ebx: number) {
  const u32 = (off: number) => readU32(ram, ebx + off);
  return {
    flags: u32(0),
    memLower: u32(4),
    memUpper: u32(8),
    bootDevice: u32(12),
    cmdline: readCString(ram, u32(16)),
    modsCount: u32(20),
    mmapLength: u32(44),
    mmapAddr: u32(48),
    bootLoaderName: readCString(ram, u32(64)),
    apmTable: u32(68),
    vbeControlInfo: u32(72),
  };
}

/** Walks the memory map like a kernel: entry size at offset -4 of each entry, then skip. */
function readMemoryMap(ram: Uint8Array, addr: number, length: number) {
  const entries = [];
  for (let p = addr; p < addr + length; p += readU32(ram, p) + 4) {
    entries.push({
      size: readU32(ram, p),
      base: readU64(ram, p + 4),
      length: readU64(ram, p + 12),
      type: readU32(ram, p + 20),
    });
  }
  return entries;
}

Deno.test("loadMultiboot enters an ELF kernel at e_entry with EAX = 0x2BADB002 and EBX = 0x9500", () => {
  const k = sampleElfKernel();
  const loaded = loadMultiboot(k.bytes, dirtyRam());
  assert.equal(loaded.format, "elf");
  assert.equal(loaded.entry, k.entry);
  assert.equal(loaded.eax, MULTIBOOT_BOOTLOADER_MAGIC);
  assert.equal(loaded.eax, 0x2BADB002);
  assert.equal(loaded.ebx, 0x9500);
  assert.equal(loaded.headerFlags, 0x2);
  assert.deepEqual(loaded.bootInfo, { start: 0x9000, end: 0xA000 });
  assert.deepEqual(loaded.notes, []);
});

Deno.test("loadMultiboot copies ELF segments to p_paddr and zeroes memsz beyond filesz", () => {
  const data = Uint8Array.from({ length: 40 }, (_, i) => 0x40 + i);
  const k = sampleElfKernel({ data, bss: 0x1F0 });
  const ram = dirtyRam();
  const loaded = loadMultiboot(k.bytes, ram);
  assert.deepEqual(loaded.segments, [
    { start: 0x100000, end: 0x100000 + 12 + 4 },
    { start: k.dataAddr, end: k.bssEnd },
  ]);
  assert.deepEqual(ram.subarray(0x100000, 0x100000 + 4), Uint8Array.of(0x02, 0xB0, 0xAD, 0x1B));
  assert.deepEqual(ram.subarray(k.entry, k.entry + 4), Uint8Array.of(0xFA, 0xF4, 0xEB, 0xFD));
  assert.deepEqual(ram.subarray(k.dataAddr, k.bssStart), data);
  assert.ok(ram.subarray(k.bssStart, k.bssEnd).every((b) => b === 0), "bss must be zero");
  assert.equal(ram[k.bssEnd], 0xAA, "nothing written past the segment");
  assert.equal(ram[0x100000 - 1], 0xAA);
});

Deno.test("loadMultiboot loads ELF segments at p_paddr even when p_vaddr differs", () => {
  const code = Uint8Array.of(...multibootHeader(), 0xF4);
  const image = buildElf({
    entry: 0x20000C,
    segments: [{ paddr: 0x200000, vaddr: 0xC0200000, data: code }],
  });
  const ram = dirtyRam();
  loadMultiboot(image, ram);
  assert.equal(ram[0x20000C], 0xF4);
});

Deno.test("loadMultiboot fills multiboot_info as a kernel reads it from RAM", () => {
  const ram = dirtyRam();
  const loaded = loadMultiboot(sampleElfKernel().bytes, ram, {
    cmdline: "console=ttyS0 verbose=1",
    bootloaderName: "test loader",
  });
  const info = readInfo(ram, loaded.ebx);
  assert.equal(info.flags, MULTIBOOT_INFO_FLAGS);
  assert.equal(
    info.flags,
    0x24F,
    "same flags as QEMU: mem, boot_device, cmdline, mods, mmap, name",
  );
  assert.equal(info.memLower, 639);
  assert.equal(info.memUpper, 8 * 1024 - 1024 - 128);
  assert.equal(info.bootDevice, 0x8000FFFF);
  assert.equal(info.cmdline, "console=ttyS0 verbose=1");
  assert.equal(info.modsCount, 0);
  assert.equal(info.bootLoaderName, "test loader");
  assert.equal(info.mmapAddr, BOOT_INFO_MMAP_ADDR);
  assert.equal(info.mmapLength, 6 * 24);
  assert.equal(info.apmTable, 0, "fields ring3 does not provide are zero");
  assert.equal(info.vbeControlInfo, 0);
});

Deno.test("loadMultiboot defaults to an empty command line and the name ring3", () => {
  const ram = dirtyRam();
  const info = readInfo(ram, loadMultiboot(sampleElfKernel().bytes, ram).ebx);
  assert.equal(info.cmdline, "");
  assert.equal(info.bootLoaderName, "ring3");
  assert.ok(info.flags & 4, "cmdline flag is set even for an empty command line");
});

Deno.test("loadMultiboot prefixes the kernel path like QEMU when kernelPath is given", () => {
  const ram = dirtyRam();
  const k = sampleElfKernel().bytes;
  let info = readInfo(
    ram,
    loadMultiboot(k, ram, { kernelPath: "build/k.elf", cmdline: "a=1" }).ebx,
  );
  assert.equal(info.cmdline, "build/k.elf a=1");
  info = readInfo(ram, loadMultiboot(k, ram, { kernelPath: "build/k.elf" }).ebx);
  assert.equal(info.cmdline, "build/k.elf ", "QEMU keeps the space when there is no -append");
});

Deno.test("loadMultiboot passes UTF-8 command lines byte for byte", () => {
  const ram = dirtyRam();
  const info = readInfo(
    ram,
    loadMultiboot(sampleElfKernel().bytes, ram, { cmdline: "name=é✓" }).ebx,
  );
  assert.equal(info.cmdline, "name=é✓");
});

Deno.test("loadMultiboot writes the memory map in Multiboot format (size 20, u64 base/length, type)", () => {
  const ram = dirtyRam(64 * MiB);
  const info = readInfo(ram, loadMultiboot(sampleElfKernel().bytes, ram).ebx);
  const entries = readMemoryMap(ram, info.mmapAddr, info.mmapLength);
  assert.deepEqual(entries, [
    { size: 20, base: 0x0, length: 0x9FC00, type: 1 },
    { size: 20, base: 0x9FC00, length: 0x400, type: 2 },
    { size: 20, base: 0xF0000, length: 0x10000, type: 2 },
    { size: 20, base: 0x100000, length: 64 * MiB - 0x100000 - 0x20000, type: 1 },
    { size: 20, base: 64 * MiB - 0x20000, length: 0x20000, type: 2 },
    { size: 20, base: 0xFFFC0000, length: 0x40000, type: 2 },
  ]);
  assert.equal(info.memUpper, 64384, "the value QEMU is expected to print for -m 64");
});

Deno.test("describeMemoryMap matches QEMU's e820 layout for -m 64 and -m 128", () => {
  for (const [mib, memUpper] of [[64, 64384], [128, 129920]]) {
    const map = describeMemoryMap(mib * MiB);
    assert.deepEqual(map.map((e) => e.type), [
      E820_RAM,
      E820_RESERVED,
      E820_RESERVED,
      E820_RAM,
      E820_RESERVED,
      E820_RESERVED,
    ]);
    assert.equal(map[4].base + map[4].length, mib * MiB, "the map ends RAM where RAM ends");
    assert.deepEqual(multibootMemorySizes(map), { memLowerKiB: 639, memUpperKiB: memUpper });
  }
});

Deno.test("describeMemoryMap returns fresh, sorted, non-overlapping entries", () => {
  const a = describeMemoryMap(16 * MiB);
  a[0].length = 1;
  const b = describeMemoryMap(16 * MiB);
  assert.equal(b[0].length, 0x9FC00, "callers cannot change later results");
  for (let i = 1; i < b.length; i++) {
    assert.ok(b[i - 1].base + b[i - 1].length <= b[i].base, `entries ${i - 1} and ${i} overlap`);
  }
});

Deno.test("describeMemoryMap rejects RAM sizes it cannot model", () => {
  assert.throws(() => describeMemoryMap(8 * MiB + 1), RangeError);
  assert.throws(() => describeMemoryMap(MiB), /outside what ring3 models/);
  assert.throws(() => describeMemoryMap(0xE0000000), /PCI hole/);
  assert.doesNotThrow(() => describeMemoryMap(0xE0000000 - 0x1000));
});

Deno.test("multibootMemorySizes extends mem_upper through adjacent available entries only", () => {
  const sizes = multibootMemorySizes([
    { base: 0, length: 0xA0000, type: 1 },
    { base: 0x100000, length: 0x100000, type: 1 },
    { base: 0x200000, length: 0x100000, type: 1 },
    { base: 0x400000, length: 0x100000, type: 1 },
  ]);
  assert.deepEqual(sizes, { memLowerKiB: 640, memUpperKiB: 2048 });
});

Deno.test("loadMultiboot loads an a.out-kludge image from the offset header_addr implies", () => {
  const body = Uint8Array.from({ length: 0x200 }, (_, i) => i & 0xFF);
  const image = buildAoutKludge({
    loadAddr: 0x200000,
    body,
    headerAt: 0x40,
    prefix: 0x100,
    entryAddr: 0x200080,
    bssEndAddr: 0x200000 + 0x200 + 0x300,
  });
  const ram = dirtyRam();
  const loaded = loadMultiboot(image, ram);
  assert.equal(loaded.format, "aout-kludge");
  assert.equal(loaded.entry, 0x200080);
  assert.equal(loaded.headerFlags, 0x10002);
  assert.deepEqual(loaded.segments, [{ start: 0x200000, end: 0x200500 }]);
  assert.deepEqual(ram.subarray(0x200000, 0x200040), body.subarray(0, 0x40));
  assert.equal(readU32(ram, 0x200040), 0x1BADB002, "the header lands at header_addr");
  assert.deepEqual(ram.subarray(0x200100, 0x200200), body.subarray(0x100));
  assert.ok(ram.subarray(0x200200, 0x200500).every((b) => b === 0), "bss must be zero");
  assert.equal(ram[0x200500], 0xAA);
  assert.equal(ram[0x1FFFFF], 0xAA, "the prefix before load_addr's file offset is not loaded");
});

Deno.test("loadMultiboot loads an a.out-kludge image to the end of the file when load_end_addr is 0", () => {
  const body = new Uint8Array(0x100).fill(0x11);
  const trailing = new Uint8Array(0x80).fill(0x22);
  const image = buildAoutKludge({ loadAddr: 0x100000, body, trailing, loadEndAddr: 0 });
  const ram = dirtyRam();
  const loaded = loadMultiboot(image, ram);
  assert.deepEqual(loaded.segments, [{ start: 0x100000, end: 0x100180 }]);
  assert.equal(ram[0x10017F], 0x22);
  assert.equal(ram[0x100180], 0xAA);
});

Deno.test("loadMultiboot loads a 64-bit ELF through the a.out kludge, ignoring its ELF headers", () => {
  const header = multibootHeader({
    flags: 0x10002,
    address: {
      headerAddr: 0x100100,
      loadAddr: 0x100000,
      loadEndAddr: 0,
      bssEndAddr: 0x110000,
      entryAddr: 0x100180,
    },
  });
  const elf = buildElf({ class: 64, entry: 0xFFFF_8000_0000 });
  const image = new Uint8Array(0x200);
  image.set(elf);
  image.set(header, 0x100);
  image.set([0xF4], 0x180);
  const ram = dirtyRam();
  const loaded = loadMultiboot(image, ram);
  assert.equal(loaded.format, "aout-kludge");
  assert.equal(loaded.entry, 0x100180);
  assert.equal(ram[0x100180], 0xF4);
  assert.deepEqual(ram.subarray(0x100000, 0x100004), Uint8Array.of(0x7f, 0x45, 0x4c, 0x46));
});

Deno.test("findMultibootHeader returns the first aligned header with a valid checksum", () => {
  const image = new Uint8Array(0x400);
  image.set(multibootHeader({ flags: 0x3, checksum: 1 }), 0x40);
  image.set(multibootHeader({ flags: 0x3 }), 0x100);
  const h = findMultibootHeader(image);
  assert.equal(h.offset, 0x100);
  assert.equal(h.flags, 0x3);
  assert.equal((h.flags + 0x1BADB002 + h.checksum) >>> 0, 0);
  assert.equal(h.size, 12);
  assert.equal(h.address, undefined);
});

Deno.test("findMultibootHeader reads the a.out and video fields when their flags are set", () => {
  const image = new Uint8Array(0x100);
  const address = {
    headerAddr: 0x100010,
    loadAddr: 0x100000,
    loadEndAddr: 0x100100,
    bssEndAddr: 0x100200,
    entryAddr: 0x100040,
  };
  const video = { modeType: 0, width: 1024, height: 768, depth: 32 };
  image.set(multibootHeader({ flags: 0x10006, address, video }), 0x10);
  const h = findMultibootHeader(image);
  assert.equal(h.size, 48);
  assert.deepEqual(h.address, address);
  assert.deepEqual(h.video, video);
});

Deno.test("findMultibootHeader accepts a header ending exactly at byte 8192", () => {
  const image = new Uint8Array(0x3000);
  image.set(multibootHeader({ flags: 0 }), 8192 - 12);
  assert.equal(findMultibootHeader(image).offset, 8180);
});

Deno.test("findMultibootHeader rejects a header whose address fields cross byte 8192", () => {
  const image = new Uint8Array(0x3000);
  const address = { headerAddr: 0, loadAddr: 0, loadEndAddr: 0, bssEndAddr: 0, entryAddr: 0 };
  image.set(multibootHeader({ flags: 0x10000, address }), 8192 - 12);
  assertImageError(
    () => findMultibootHeader(image),
    "truncated",
    "Multiboot header at file offset 0x1ff4 needs 32 bytes for flags 0x00010000, which runs " +
      "past the first 8192 bytes",
  );
});

Deno.test("loadMultiboot rejects an empty file", () => {
  assertLoadRejected(
    new Uint8Array(0),
    "no-multiboot-header",
    "no Multiboot header in the first 8192 bytes (the file is empty)",
  );
});

Deno.test("loadMultiboot rejects an image with no Multiboot header at all", () => {
  assertLoadRejected(
    buildElf({ entry: 0x100000, segments: [{ paddr: 0x100000, data: new Uint8Array(64) }] }),
    "no-multiboot-header",
    "no Multiboot header in the first 8192 bytes",
  );
});

Deno.test("loadMultiboot rejects a header beyond the first 8 KiB and says where it is", () => {
  const image = new Uint8Array(0x3000);
  image.set(multibootHeader(), 0x2000);
  assertLoadRejected(
    image,
    "no-multiboot-header",
    "no Multiboot header in the first 8192 bytes (there is one at file offset 0x2000, past the " +
      "8192-byte window the specification allows)",
  );
});

Deno.test("loadMultiboot rejects an unaligned header and says why", () => {
  const image = new Uint8Array(0x100);
  image.set(multibootHeader(), 0x22);
  assertLoadRejected(image, "no-multiboot-header", /unaligned file offset 0x22; .*4-byte aligned/);
});

Deno.test("loadMultiboot rejects a bad checksum with the arithmetic in the message", () => {
  const image = new Uint8Array(0x100);
  image.set(multibootHeader({ flags: 0x2, checksum: 0x12345678 }), 0x20);
  assertLoadRejected(
    image,
    "bad-checksum",
    "Multiboot magic at file offset 0x20 has a bad checksum: flags 0x00000002 + magic 0x1badb002 " +
      "+ checksum 0x12345678 = 0x2de2067c mod 2^32, not 0 (expected checksum 0xe4524ffc)",
  );
});

Deno.test("loadMultiboot rejects unknown required flag bits (0-15) but not optional ones", () => {
  assertLoadRejected(
    sampleElfKernel({ header: { flags: 0x12 } }).bytes,
    "unsupported-flags",
    /flags 0x00000012 require features ring3 does not provide \(bit 4;/,
  );
  const loaded = loadMultiboot(sampleElfKernel({ header: { flags: 0x80002 } }).bytes, dirtyRam());
  assert.deepEqual(loaded.notes, ["optional Multiboot header flags 0x00080000 ignored"]);
});

Deno.test("loadMultiboot ignores a video-mode request and notes it", () => {
  const video = { modeType: 0, width: 800, height: 600, depth: 32 };
  const loaded = loadMultiboot(
    sampleElfKernel({ header: { flags: 0x6, video } }).bytes,
    dirtyRam(),
  );
  assert.equal(loaded.headerFlags, 0x6);
  assert.equal(loaded.notes.length, 1);
  assert.match(loaded.notes[0], /video mode requested \(flags bit 2: type 0, 800x600x32\)/);
});

Deno.test("loadMultiboot rejects a truncated ELF header", () => {
  const image = new Uint8Array(40);
  image.set([0x7f, 0x45, 0x4c, 0x46, 1, 1, 1]);
  image.set(multibootHeader(), 16);
  assertLoadRejected(
    image,
    "truncated",
    "ELF32 header extends past the end of the file (offset 0x0 + size 0x34 > file size 0x28)",
  );
});

Deno.test("loadMultiboot rejects a truncated program header table", () => {
  const k = sampleElfKernel();
  putU16(k.bytes, 44, 300); // e_phnum
  assertLoadRejected(k.bytes, "truncated", /^program header table \(300 entries of 32 bytes\)/);
});

Deno.test("loadMultiboot rejects a segment outside RAM", () => {
  assertLoadRejected(
    sampleElfKernel({ base: RAM_BYTES - 0x1000 }).bytes,
    "segment-outside-ram",
    `segment 1 (physical 0x800000..0x800340) lies outside guest RAM (0x0..0x800000)`,
  );
  assertLoadRejected(
    buildAoutKludge({ loadAddr: 0xFFFFFF00, body: new Uint8Array(0x200), loadEndAddr: 0 }),
    "segment-outside-ram",
    /run past 4 GiB/,
  );
});

Deno.test("loadMultiboot rejects segments over the boot-information area or the legacy hole", () => {
  assertLoadRejected(
    sampleElfKernel({ base: 0x8000 }).bytes,
    "segment-overlaps-boot-info",
    "segment 1 (physical 0x9000..0x9340) overlaps the boot-information area (0x9000..0xa000)",
  );
  assertLoadRejected(
    sampleElfKernel({ base: 0xB8000 }).bytes,
    "segment-overlaps-reserved",
    /segment 0 \(physical 0xb8000\.\.0xb8010\) overlaps the reserved legacy area 0x9fc00\.\.0x100000/,
  );
  const low = loadMultiboot(sampleElfKernel({ base: 0x1000 }).bytes, dirtyRam());
  assert.equal(low.segments[0].start, 0x1000, "low memory outside the boot area is fine");
  assert.ok(BOOT_INFO_AREA.end <= 0x9FC00);
});

Deno.test("loadMultiboot rejects segments that overlap each other", () => {
  const image = buildElf({
    entry: 0x10000C,
    segments: [
      { paddr: 0x100000, data: Uint8Array.of(...multibootHeader(), 0xF4) },
      { paddr: 0x100008, data: new Uint8Array(8) },
    ],
  });
  assertLoadRejected(image, "overlapping-segments", /segment 0 .* and segment 1 .* overlap/);
});

Deno.test("loadMultiboot rejects an entry point outside every loaded segment", () => {
  const image = buildAoutKludge({
    loadAddr: 0x100000,
    body: new Uint8Array(64),
    entryAddr: 0x300000,
  });
  assertLoadRejected(image, "entry-outside-image", /entry point 0x00300000 is not inside/);
});

Deno.test("loadMultiboot rejects a 64-bit ELF kernel without the a.out kludge", () => {
  const image = buildElf({
    class: 64,
    entry: 0x100000,
    segments: [{ paddr: 0x100000, data: multibootHeader() }],
  });
  assertLoadRejected(
    image,
    "unsupported-format",
    /^64-bit ELF kernels need the Multiboot a\.out kludge \(flags bit 16\).*Cannot load x86-64/,
  );
});

Deno.test("loadMultiboot rejects a non-ELF image whose header lacks the a.out kludge", () => {
  const image = new Uint8Array(0x100);
  image.set(multibootHeader(), 0);
  assertLoadRejected(image, "unsupported-format", /must be ELF, but it does not start/);
});

Deno.test("loadMultiboot rejects an ELF32 kernel for another x86 machine value", () => {
  const image = buildElf({
    entry: 0x10000C,
    machine: 62,
    segments: [{ paddr: 0x100000, data: Uint8Array.of(...multibootHeader(), 0xF4) }],
  });
  assertLoadRejected(image, "unsupported-format", /EM_X86_64/);
});

Deno.test("loadMultiboot rejects a.out-kludge address fields that contradict the file", () => {
  const body = new Uint8Array(0x100);
  assertLoadRejected(
    buildAoutKludge({ loadAddr: 0x100000, body, loadEndAddr: 0x100400 }),
    "truncated",
    "Multiboot a.out kludge: load_end_addr 0x00100400 is beyond the file: loading 0x400 bytes " +
      "from file offset 0x0 needs 0x400 bytes, but the file has 0x100",
  );
  assertLoadRejected(
    buildAoutKludge({ loadAddr: 0x100000, body, headerAddr: 0xFF000 }),
    "bad-load-address",
    /header_addr 0x000ff000 is below load_addr 0x00100000/,
  );
  assertLoadRejected(
    buildAoutKludge({ loadAddr: 0x100000, body, headerAt: 0x10, headerAddr: 0x100800 }),
    "bad-load-address",
    /exceeds the header's file offset 0x10, so load_addr would be before the start of the file/,
  );
  assertLoadRejected(
    buildAoutKludge({ loadAddr: 0x100000, body, loadEndAddr: 0xFF000 }),
    "bad-load-address",
    /load_end_addr 0x000ff000 is below load_addr/,
  );
  assertLoadRejected(
    buildAoutKludge({ loadAddr: 0x100000, body, bssEndAddr: 0x100080 }),
    "bad-load-address",
    /bss_end_addr 0x00100080 is below the end of the loaded image 0x100100/,
  );
});

Deno.test("loadMultiboot rejects an ELF with no loadable bytes", () => {
  const image = buildElf({ entry: 0, sections: [{ name: ".mb", data: multibootHeader() }] });
  assertLoadRejected(image, "inconsistent", /no PT_LOAD segment/);
});

Deno.test("loadMultiboot refuses command lines that do not fit or contain NUL", () => {
  const k = sampleElfKernel().bytes;
  assert.throws(() => loadMultiboot(k, dirtyRam(), { cmdline: "x".repeat(3000) }), RangeError);
  assert.throws(() => loadMultiboot(k, dirtyRam(), { cmdline: "a\0b" }), /NUL/);
  assert.doesNotThrow(() => loadMultiboot(k, dirtyRam(), { cmdline: "x".repeat(2000) }));
});

Deno.test("loadMultiboot throws only ImageFormatError on 2000 random and mutated images", () => {
  const random = seededRandom(0x2BADB002);
  const int = (n: number) => Math.floor(random() * n);
  const seeds = [
    sampleElfKernel().bytes,
    sampleElfKernel({
      header: { flags: 0x6, video: { modeType: 1, width: 80, height: 25, depth: 0 } },
    })
      .bytes,
    buildAoutKludge({
      loadAddr: 0x100000,
      body: new Uint8Array(0x300).fill(0x90),
      headerAt: 0x20,
      prefix: 0x40,
      bssEndAddr: 0x101000,
      entryAddr: 0x100100,
    }),
    buildAoutKludge({ loadAddr: 0x200000, body: new Uint8Array(0x80), loadEndAddr: 0 }),
    buildElfLayout({
      entry: 0x10000C,
      segments: [{ paddr: 0x100000, data: Uint8Array.of(...multibootHeader(), 0xF4) }],
      sections: [{ name: ".text", addr: 0x100000, data: new Uint8Array(16) }],
      symbols: [{ name: "_start", value: 0x10000C, section: ".text" }],
    }).bytes,
  ];
  const ram = new Uint8Array(RAM_BYTES);
  const outcomes = new Map<string, number>();
  for (let i = 0; i < 2000; i++) {
    let image: Uint8Array;
    const kind = i % 5;
    if (kind === 0) {
      // Garbage around a valid header, so the search succeeds and the loader digs deeper.
      image = Uint8Array.from({ length: 12 + int(1200) }, () => int(256));
      const flags = random() < 0.5 ? 0x10002 : int(0x1_0000_0000);
      const at = 4 * int((image.length - 12) / 4 + 1);
      const header = multibootHeader({ flags });
      image.set(header.subarray(0, Math.min(header.length, image.length - at)), at);
      if (random() < 0.3 && image.length >= 7) image.set([0x7f, 0x45, 0x4c, 0x46, 1, 1, 1]);
    } else {
      image = seeds[int(seeds.length)].slice();
      for (let m = 1 + int(6); m > 0; m--) {
        const at = int(image.length);
        if (random() < 0.4) image[at] = int(256);
        else if (at + 4 <= image.length) {
          const nasty = [0, 1, 0x1000, 0xFFFFFFFF, 0x80000000, 0x9000, int(0x1_0000_0000)];
          putU32(image, at & ~3, nasty[int(nasty.length)]);
        }
      }
      if (random() < 0.15) image = image.subarray(0, int(image.length + 1));
    }
    let outcome = "loaded";
    try {
      loadMultiboot(image, ram);
    } catch (e) {
      if (!(e instanceof ImageFormatError)) {
        throw new Error(`iteration ${i}: loadMultiboot threw a non-ImageFormatError: ${e}`, {
          cause: e,
        });
      }
      outcome = e.reason;
    }
    outcomes.set(outcome, (outcomes.get(outcome) ?? 0) + 1);
  }
  assert.ok((outcomes.get("loaded") ?? 0) > 0, "some mutated images should still load");
  assert.ok(outcomes.size >= 8, `fuzzing reached only ${[...outcomes.keys()].join(", ")}`);
});

/** A fixture kernel built by `deno task fixtures`, or undefined when it has not been built. */
function fixture(name: string): { path: URL; present: boolean } {
  const path = new URL(`../../fixtures/build/${name}`, import.meta.url);
  try {
    return { path, present: Deno.statSync(path).isFile };
  } catch {
    return { path, present: false };
  }
}

/** Deno.test options for a test needing fixtures: ignored, with the reason in its name, if absent. */
function fixtureTest(
  name: string,
  files: string[],
  fn: (paths: URL[]) => void,
): Deno.TestDefinition {
  const found = files.map(fixture);
  const missing = files.filter((_, i) => !found[i].present);
  return {
    name: missing.length === 0 ? name : `${name} (skipped: fixtures/build/${missing.join(", ")} ` +
      "not built; run `deno task fixtures`)",
    ignore: missing.length > 0,
    fn: () => fn(found.map((f) => f.path)),
  };
}

Deno.test(fixtureTest("loadMultiboot loads the hello fixture kernel", ["hello.elf"], ([hello]) => {
  const image = Deno.readFileSync(hello);
  const ram = dirtyRam(64 * MiB);
  const loaded = loadMultiboot(image, ram, { cmdline: "greeting=hi" });
  assert.equal(loaded.format, "elf");
  assert.equal(loaded.eax, 0x2BADB002);
  assert.equal(loaded.ebx, BOOT_INFO_MBI_ADDR);
  assert.ok(loaded.segments.length >= 1);
  assert.ok(
    loaded.segments.some((s) => s.start <= loaded.entry && loaded.entry < s.end),
    "entry inside the kernel",
  );
  assert.equal(loaded.headerFlags, findMultibootHeader(image).flags);
  const info = readInfo(ram, loaded.ebx);
  assert.equal(info.cmdline, "greeting=hi");
  assert.equal(info.memUpper, 64384);
}));

Deno.test(
  fixtureTest(
    "loadMultiboot puts trapbench in the same memory via its a.out kludge and via its ELF headers",
    ["trapbench.bin", "trapbench.elf"],
    ([bin, elf]) => {
      const flat = Deno.readFileSync(bin);
      const ramFlat = new Uint8Array(16 * MiB);
      const viaKludge = loadMultiboot(flat, ramFlat);
      assert.equal(viaKludge.format, "aout-kludge");

      // The ELF build carries the same kludge header; clearing bit 16 (and fixing the checksum)
      // sends it down the ELF path, which must place the same bytes.
      const image = Deno.readFileSync(elf);
      const header = findMultibootHeader(image);
      const flags = header.flags & ~0x10000;
      putU32(image, header.offset + 4, flags);
      putU32(image, header.offset + 8, -(0x1BADB002 + flags));
      const ramElf = new Uint8Array(16 * MiB);
      const viaElf = loadMultiboot(image, ramElf);
      assert.equal(viaElf.format, "elf");
      assert.equal(viaElf.entry, viaKludge.entry);
      const start = viaKludge.segments[0].start;
      const end = viaKludge.segments[0].end;
      assert.deepEqual(viaElf.segments.at(-1)?.end, end, "both end at bss_end_addr");
      // Byte for byte the same, bar the flags and checksum patched above.
      const patched = start + (header.address?.headerAddr ?? 0) - (header.address?.loadAddr ?? 0);
      const differing = [];
      for (let a = start; a < end; a++) if (ramFlat[a] !== ramElf[a]) differing.push(a);
      assert.ok(
        differing.length > 0 && differing.every((a) => a >= patched + 4 && a < patched + 12),
      );
    },
  ),
);
