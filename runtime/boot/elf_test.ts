import assert from "node:assert/strict";
import {
  elfSectionData,
  elfSegmentData,
  EM_386,
  EM_X86_64,
  ET_EXEC,
  parseElf,
  PF_R,
  PF_W,
  PF_X,
  PT_LOAD,
  PT_NOTE,
  SHF_ALLOC,
  SHT_NOBITS,
  SHT_PROGBITS,
  SHT_STRTAB,
  SHT_SYMTAB,
  STB_GLOBAL,
  STB_LOCAL,
  STT_FUNC,
  STT_OBJECT,
} from "./elf.ts";
import { ImageFormatError } from "./image_error.ts";
import { buildElf, buildElfLayout, putU16, putU32, seededRandom } from "./_test_images.ts";

/** Asserts that `fn` throws an ImageFormatError with `reason` whose message matches `message`. */
function assertImageError(fn: () => unknown, reason: string, message?: RegExp | string): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof ImageFormatError, `expected ImageFormatError, got ${e}`);
    assert.equal(e.name, "ImageFormatError");
    assert.equal(e.reason, reason, e.message);
    if (typeof message === "string") assert.equal(e.message, message);
    else if (message) assert.match(e.message, message);
    return true;
  });
}

const code = Uint8Array.of(0x55, 0x89, 0xe5, 0x5d, 0xc3, 0x90, 0x90, 0x90);
const data = Uint8Array.of(1, 2, 3, 4);

function richSpec(elfClass: 32 | 64) {
  return {
    class: elfClass,
    entry: 0x100000,
    segments: [
      { paddr: 0x100000, vaddr: 0xC0100000, data: code, flags: PF_R | PF_X },
      { paddr: 0x101000, vaddr: 0xC0101000, data, memsz: 0x100, flags: PF_R | PF_W },
    ],
    sections: [
      { name: ".text", addr: 0xC0100000, data: code },
      { name: ".data", addr: 0xC0101000, data, flags: SHF_ALLOC | 1 },
      { name: ".bss", type: SHT_NOBITS, addr: 0xC0101004, size: 0xFC, flags: SHF_ALLOC | 1 },
    ],
    symbols: [
      { name: "main", value: 0xC0100000, size: 5, section: ".text" },
      {
        name: "counter",
        value: 0xC0101004,
        size: 4,
        type: STT_OBJECT,
        bind: STB_LOCAL,
        section: ".bss",
      },
    ],
  };
}

for (const elfClass of [32, 64] as const) {
  Deno.test(`parseElf reads the ELF${elfClass} header fields`, () => {
    const elf = parseElf(buildElf(richSpec(elfClass)));
    assert.equal(elf.class, elfClass);
    assert.equal(elf.machine, elfClass === 32 ? EM_386 : EM_X86_64);
    assert.equal(elf.type, ET_EXEC);
    assert.equal(elf.entry, 0x100000);
    assert.equal(elf.flags, 0);
  });

  Deno.test(`parseElf reads ELF${elfClass} program headers and their file bytes`, () => {
    const built = buildElfLayout(richSpec(elfClass));
    const elf = parseElf(built.bytes);
    assert.equal(elf.programHeaders.length, 2);
    const [text, dataSeg] = elf.programHeaders;
    assert.deepEqual(text, {
      index: 0,
      type: PT_LOAD,
      offset: built.segmentOffsets[0],
      vaddr: 0xC0100000,
      paddr: 0x100000,
      filesz: code.length,
      memsz: code.length,
      flags: PF_R | PF_X,
      align: 16,
    });
    assert.equal(dataSeg.paddr, 0x101000);
    assert.equal(dataSeg.filesz, 4);
    assert.equal(dataSeg.memsz, 0x100);
    assert.deepEqual(elfSegmentData(built.bytes, text), code);
  });

  Deno.test(`parseElf names ELF${elfClass} sections from .shstrtab`, () => {
    const bytes = buildElf(richSpec(elfClass));
    const elf = parseElf(bytes);
    assert.deepEqual(elf.sections.map((s) => s.name), [
      "",
      ".text",
      ".data",
      ".bss",
      ".symtab",
      ".strtab",
      ".shstrtab",
    ]);
    const text = elf.sections[1];
    assert.equal(text.type, SHT_PROGBITS);
    assert.equal(text.addr, 0xC0100000);
    assert.equal(text.size, code.length);
    assert.deepEqual(elfSectionData(bytes, text), code);
    assert.equal(elf.sections[3].type, SHT_NOBITS);
    assert.equal(elf.sections[3].size, 0xFC);
    assert.equal(elfSectionData(bytes, elf.sections[3]).length, 0);
    assert.equal(elf.sections[4].type, SHT_SYMTAB);
    assert.equal(elf.sections[4].link, 5);
    assert.equal(elf.sections[5].type, SHT_STRTAB);
  });

  Deno.test(`parseElf reads ELF${elfClass} symbols with names, types and sections`, () => {
    const elf = parseElf(buildElf(richSpec(elfClass)));
    assert.deepEqual(elf.symbols, [
      {
        index: 1,
        name: "main",
        value: 0xC0100000,
        size: 5,
        type: STT_FUNC,
        bind: STB_GLOBAL,
        other: 0,
        sectionIndex: 1,
      },
      {
        index: 2,
        name: "counter",
        value: 0xC0101004,
        size: 4,
        type: STT_OBJECT,
        bind: STB_LOCAL,
        other: 0,
        sectionIndex: 3,
      },
    ]);
  });
}

Deno.test("parseElf gives empty section and symbol lists for a stripped file", () => {
  const elf = parseElf(buildElf({ entry: 0x100000, segments: [{ paddr: 0x100000, data: code }] }));
  assert.equal(elf.sections.length, 0);
  assert.equal(elf.symbols.length, 0);
  assert.equal(elf.programHeaders.length, 1);
});

Deno.test("parseElf keeps non-LOAD program headers", () => {
  const elf = parseElf(buildElf({
    entry: 0,
    segments: [{ paddr: 0x100000, data: code }, { type: PT_NOTE, paddr: 0, data }],
  }));
  assert.deepEqual(elf.programHeaders.map((p) => p.type), [PT_LOAD, PT_NOTE]);
});

Deno.test("parseElf reads a 64-bit entry point above 4 GiB", () => {
  const elf = parseElf(buildElf({ class: 64, entry: 0x1_2345_6789 }));
  assert.equal(elf.entry, 0x1_2345_6789);
});

Deno.test("parseElf accepts a parsed subarray (byteOffset ≠ 0)", () => {
  const bytes = buildElf(richSpec(32));
  const padded = new Uint8Array(bytes.length + 7);
  padded.set(bytes, 7);
  assert.deepEqual(parseElf(padded.subarray(7)), parseElf(bytes));
});

Deno.test("parseElf follows extended section numbering (e_shnum = 0, count in section 0)", () => {
  const built = buildElfLayout(richSpec(32));
  const shnum = 7;
  putU16(built.bytes, 48, 0); // e_shnum
  putU32(built.bytes, built.shoff + 20, shnum); // section 0 sh_size
  putU16(built.bytes, 50, 0xffff); // e_shstrndx = SHN_XINDEX
  putU32(built.bytes, built.shoff + 24, shnum - 1); // section 0 sh_link
  const elf = parseElf(built.bytes);
  assert.equal(elf.sections.length, shnum);
  assert.equal(elf.sections[6].name, ".shstrtab");
});

Deno.test("parseElf rejects an empty file", () => {
  assertImageError(() => parseElf(new Uint8Array(0)), "truncated", /empty/);
});

Deno.test("parseElf rejects a file without the ELF magic", () => {
  assertImageError(
    () => parseElf(new TextEncoder().encode("MZ this is not an ELF file at all")),
    "bad-magic",
    /not an ELF file: the first bytes are 4d 5a 20 74/,
  );
});

Deno.test("parseElf rejects a truncated ELF header with offsets in the message", () => {
  const bytes = buildElf(richSpec(32)).subarray(0, 40);
  assertImageError(
    () => parseElf(bytes),
    "truncated",
    "ELF32 header extends past the end of the file (offset 0x0 + size 0x34 > file size 0x28)",
  );
  assertImageError(() => parseElf(bytes.subarray(0, 10)), "truncated", /identification/);
});

Deno.test("parseElf rejects a truncated program header table", () => {
  const built = buildElfLayout(richSpec(32));
  putU16(built.bytes, 44, 2000); // e_phnum
  assertImageError(
    () => parseElf(built.bytes),
    "truncated",
    new RegExp(
      `^program header table \\(2000 entries of 32 bytes\\) extends past the end of the file ` +
        `\\(offset 0x34 \\+ size 0xfa00 > file size 0x${built.bytes.length.toString(16)}\\)$`,
    ),
  );
});

Deno.test("parseElf rejects a segment extending past the end of the file", () => {
  const built = buildElfLayout(richSpec(32));
  const ph1 = built.phoff + built.phentsize;
  putU32(built.bytes, ph1 + 4, 0x1000); // p_offset
  putU32(built.bytes, ph1 + 16, 0x2000); // p_filesz
  putU32(built.bytes, ph1 + 20, 0x2000); // p_memsz
  assertImageError(
    () => parseElf(built.bytes),
    "truncated",
    `program header 1 extends past the end of the file (offset 0x1000 + size 0x2000 > ` +
      `file size 0x${built.bytes.length.toString(16)})`,
  );
});

Deno.test("parseElf rejects a PT_LOAD whose filesz exceeds its memsz", () => {
  const built = buildElfLayout(richSpec(32));
  putU32(built.bytes, built.phoff + 20, 2); // p_memsz of segment 0
  assertImageError(() => parseElf(built.bytes), "inconsistent", /filesz 0x8 > memsz 0x2/);
});

Deno.test("parseElf rejects a section extending past the end of the file", () => {
  const built = buildElfLayout(richSpec(32));
  putU32(built.bytes, built.shoff + built.shentsize + 20, 0x100000); // .text sh_size
  assertImageError(() => parseElf(built.bytes), "truncated", /^section 1 extends past the end/);
});

Deno.test("parseElf rejects a truncated section header table", () => {
  const built = buildElfLayout(richSpec(64));
  assertImageError(
    () => parseElf(built.bytes.subarray(0, built.bytes.length - 1)),
    "truncated",
    /^section header table \(7 entries of 64 bytes\) extends past the end/,
  );
});

Deno.test("parseElf rejects a section name outside .shstrtab", () => {
  const built = buildElfLayout(richSpec(32));
  putU32(built.bytes, built.shoff + built.shentsize, 0x7000); // .text sh_name
  assertImageError(
    () => parseElf(built.bytes),
    "inconsistent",
    /^section 1 name offset 0x7000 is outside string table section 6/,
  );
});

Deno.test("parseElf rejects a symbol table linked to a non-string-table section", () => {
  const built = buildElfLayout(richSpec(32));
  putU32(built.bytes, built.shoff + 4 * built.shentsize + 24, 1); // .symtab sh_link -> .text
  assertImageError(
    () => parseElf(built.bytes),
    "inconsistent",
    /symbol table section 4 \(\.symtab\) refers to section 1 .* not SHT_STRTAB/,
  );
});

Deno.test("parseElf rejects big-endian and non-x86 files as unsupported", () => {
  const big = buildElf(richSpec(32));
  big[5] = 2;
  assertImageError(() => parseElf(big), "unsupported-format", /big-endian/);
  const arm = buildElf({ entry: 0, machine: 40 });
  assertImageError(() => parseElf(arm), "unsupported-format", /e_machine\) is 40, not x86/);
  const badClass = buildElf(richSpec(32));
  badClass[4] = 3;
  assertImageError(() => parseElf(badClass), "unsupported-format", /EI_CLASS\]\) is 3/);
});

Deno.test("parseElf rejects a 64-bit field above 2^53 instead of rounding it", () => {
  const bytes = buildElf({ class: 64, entry: 0 });
  putU32(bytes, 28, 0xffffffff); // high half of e_entry
  assertImageError(
    () => parseElf(bytes),
    "value-too-large",
    "ELF entry point (e_entry) is 0xffffffff00000000, above 2^53, which ring3 cannot represent " +
      "exactly as a number",
  );
});

Deno.test("parseElf throws only ImageFormatError on 2000 random and mutated files", () => {
  const random = seededRandom(0xE1F);
  const int = (n: number) => Math.floor(random() * n);
  const seeds = [buildElf(richSpec(32)), buildElf(richSpec(64))];
  let parsed = 0;
  for (let i = 0; i < 2000; i++) {
    let bytes: Uint8Array;
    if (i % 4 === 0) {
      bytes = Uint8Array.from({ length: int(600) }, () => int(256));
      if (bytes.length >= 7 && i % 8 === 0) bytes.set([0x7f, 0x45, 0x4c, 0x46, 1 + int(2), 1, 1]);
    } else {
      bytes = seeds[i % 2].slice();
      for (let m = 1 + int(8); m > 0; m--) {
        const at = int(bytes.length);
        if (random() < 0.5) bytes[at] = int(256);
        else if (at + 4 <= bytes.length) putU32(bytes, at, int(0x1_0000_0000));
      }
      if (random() < 0.2) bytes = bytes.subarray(0, int(bytes.length));
    }
    try {
      parseElf(bytes);
      parsed++;
    } catch (e) {
      if (!(e instanceof ImageFormatError)) {
        throw new Error(`iteration ${i}: parseElf threw a non-ImageFormatError: ${e}`, {
          cause: e,
        });
      }
    }
  }
  assert.ok(parsed > 0, "some mutated files should still parse");
});
