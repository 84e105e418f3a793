import assert from "node:assert/strict";
import { ImageFormatError } from "../boot/image_error.ts";
import { mapCode } from "./code_map.ts";
import { RewriteError } from "./rewrite_error.ts";
import { buildCodeElf } from "./_test_images.ts";

function assertRewriteError(fn: () => unknown, reason: string, message?: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof RewriteError, `expected RewriteError, got ${e}`);
    assert.equal(e.reason, reason, e.message);
    if (message) assert.match(e.message, message);
    return true;
  });
}

const brief = (m: ReturnType<typeof mapCode>) =>
  m.regions.map((r) => [
    r.kind,
    r.name,
    r.start - 0x100000,
    r.end - 0x100000,
    r.blocked?.reason ?? "",
  ]);

Deno.test("mapCode() splits .text into functions, anchored ranges and unanchored padding", () => {
  const img = buildCodeElf({
    pieces: [
      { name: "entry", type: 0, code: [0xfa, 0xc3] }, // label without size: cli; ret
      { name: "f", code: [0x9c, 0x9d, 0xc3] }, // pushf; popf; ret
      { code: [0x90, 0x90, 0x90] }, // padding, no symbol
      { name: "table", type: 1, code: [0x9c, 0x9c, 0x9c, 0x9c] }, // data object
      { name: "g", code: [0xc3] },
    ],
  });
  const m = mapCode(img.bytes);
  assert.equal(m.format, "elf32");
  assert.equal(m.defaultBitness, 32);
  assert.equal(m.multiboot?.offset, img.textOffset);
  assert.equal(m.stripped, false);
  assert.deepEqual(m.spans, [{
    name: ".text",
    start: 0x100000,
    end: 0x100000 + img.text.length,
    fileOffset: img.textOffset,
    paddr: 0x100000,
  }]);
  assert.deepEqual(brief(m), [
    ["range", "entry", 12, 14, ""],
    ["function", "function f", 14, 17, ""],
    ["range", "after function f", 17, 20, "unanchored"],
    ["function", "function g", 24, 25, ""],
  ]);
  assert.deepEqual(m.symbolTargets, [img.at.entry, img.at.f, img.at.g]);
  assert.deepEqual(m.regions[1].parts, [{ start: img.at.f, end: img.at.f + 3, bitness: 32 }]);
});

Deno.test("mapCode() blocks a function that runs past the end of its section", () => {
  const img = buildCodeElf({ pieces: [{ name: "f", code: [0x90, 0xc3], size: 100 }] });
  const m = mapCode(img.bytes);
  const f = m.regions.find((r) => r.kind === "function")!;
  assert.equal(f.blocked?.reason, "outside-code");
  assert.match(
    f.blocked!.detail,
    /function f \(0x10000c-0x100070\) extends past the end of \.text/,
  );
  assert.equal(f.end, 0x10000e);
});

Deno.test("mapCode() splits regions at bitness overrides and anchors the override edges", () => {
  const img = buildCodeElf({
    pieces: [{ name: "f", code: [0x90, 0x48, 0x9c, 0x90, 0xc3] }, { code: [0x90, 0x90] }],
  });
  const f = img.at.f;
  const m = mapCode(img.bytes, { bitness: [{ start: f + 1, end: f + 3, bits: 64 }] });
  assert.deepEqual(m.regions.find((r) => r.kind === "function")!.parts, [
    { start: f, end: f + 1, bitness: 32 },
    { start: f + 1, end: f + 3, bitness: 64 },
    { start: f + 3, end: f + 5, bitness: 32 },
  ]);
  const m2 = mapCode(img.bytes, { bitness: [{ start: f + 5, end: f + 6, bits: 64 }] });
  assert.deepEqual(brief(m2).slice(1), [
    ["range", "after function f", 17, 18, ""],
    ["range", "code at 0x100012", 18, 19, ""],
  ]);
});

Deno.test("mapCode() rejects bad bitness overrides", () => {
  const img = buildCodeElf({ pieces: [{ name: "f", code: [0xc3] }] });
  assertRewriteError(
    () => mapCode(img.bytes, { bitness: [{ start: 10, end: 5, bits: 64 }] }),
    "bad-option",
    /not a valid range/,
  );
  assertRewriteError(
    () =>
      mapCode(img.bytes, {
        bitness: [{ start: 0, end: 10, bits: 64 }, { start: 5, end: 20, bits: 16 }],
      }),
    "bad-option",
    /overlap/,
  );
  assertRewriteError(
    () => mapCode(img.bytes, { bitness: [{ start: 0, end: 10, bits: 8 as 16 }] }),
    "bad-option",
    /bits 8/,
  );
});

Deno.test("mapCode() refuses a stripped image, naming the code it cannot prove", () => {
  const img = buildCodeElf({ pieces: [{ name: "f", code: [0x9c, 0xc3] }], stripped: "symbols" });
  assertRewriteError(
    () => mapCode(img.bytes),
    "stripped",
    /^stripped image: cannot prove instruction boundaries in \.text 0x100000 - 0x10000e/,
  );
  const bare = buildCodeElf({ pieces: [{ name: "f", code: [0x9c, 0xc3] }], stripped: "all" });
  assertRewriteError(() => mapCode(bare.bytes), "stripped", /in segment 0 0x100000 - 0x10000e/);
});

Deno.test("mapCode() with allowStripped sweeps whole sections without the Multiboot header", () => {
  const img = buildCodeElf({ pieces: [{ name: "f", code: [0x9c, 0xc3] }], stripped: "symbols" });
  const m = mapCode(img.bytes, { allowStripped: true });
  assert.equal(m.stripped, true);
  assert.deepEqual(brief(m), [["range", "after the Multiboot header", 12, 14, ""]]);
});

Deno.test("mapCode() maps vaddr and paddr of a higher-half kernel separately", () => {
  const img = buildCodeElf({
    base: 0xc0100000,
    paddr: 0x100000,
    pieces: [{ name: "f", code: [0xc3] }],
  });
  const m = mapCode(img.bytes);
  assert.equal(m.spans[0].start, 0xc0100000);
  assert.equal(m.spans[0].paddr, 0x100000);
});

Deno.test("mapCode() reads a 64-bit ELF as 64-bit code", () => {
  const img = buildCodeElf({ class: 64, multiboot: false, pieces: [{ name: "f", code: [0xc3] }] });
  const m = mapCode(img.bytes);
  assert.equal(m.format, "elf64");
  assert.equal(m.defaultBitness, 64);
  assert.equal(m.multiboot, undefined);
});

Deno.test("mapCode() warns that a Multiboot ELF64 image starts in 32-bit code", () => {
  const img = buildCodeElf({ class: 64, pieces: [{ name: "f", code: [0xc3] }] });
  assert.match(mapCode(img.bytes).notes.join("\n"), /Multiboot enters it in 32-bit mode/);
  const f = img.at.f;
  assert.deepEqual(mapCode(img.bytes, { bitness: [{ start: f, end: f + 1, bits: 32 }] }).notes, []);
});

Deno.test("mapCode() maps a flat a.out-kludge image through its companion ELF", () => {
  const elf = buildCodeElf({ kludge: true, pieces: [{ name: "f", code: [0x9c, 0xc3] }] });
  const flat = elf.text;
  const m = mapCode(flat, { companion: elf.bytes });
  assert.equal(m.format, "aout-kludge");
  assert.deepEqual(m.spans, [{
    name: ".text",
    start: 0x100000,
    end: 0x100000 + flat.length,
    fileOffset: 0,
    paddr: 0x100000,
  }]);
  assert.deepEqual(brief(m), [["function", "function f", 32, 34, ""]]);
});

Deno.test("mapCode() refuses a flat image without companion, or with one that differs", () => {
  const elf = buildCodeElf({ kludge: true, pieces: [{ name: "f", code: [0x9c, 0xc3] }] });
  assertRewriteError(
    () => mapCode(elf.text),
    "needs-companion",
    /^flat a\.out-kludge image \(Multiboot header at file offset 0x0, load_addr 0x100000\)/,
  );
  const changed = elf.text.slice();
  changed[33] = 0x90;
  assertRewriteError(
    () => mapCode(changed, { companion: elf.bytes }),
    "companion-mismatch",
    /\.text differs at vaddr 0x100021 \(paddr 0x100021, flat file offset 0x21\): 0x90 in the image, 0xc3 in the ELF/,
  );
  assertRewriteError(
    () => mapCode(elf.text, { companion: Uint8Array.of(1, 2, 3) }),
    "bad-companion",
    /^companion ELF: /,
  );
});

Deno.test("mapCode() names unknown formats and non-x86 ELF files", () => {
  assertRewriteError(
    () => mapCode(Uint8Array.of(0x4d, 0x5a, 0x90, 0x00, 1, 2, 3)),
    "unknown-format",
    /^unknown image format: not ELF \(the first bytes are 4d 5a 90 00\)/,
  );
  const arm = buildCodeElf({ machine: 40, pieces: [{ name: "f", code: [0xc3] }] });
  assert.throws(() => mapCode(arm.bytes), (e: unknown) => {
    assert.ok(e instanceof ImageFormatError);
    assert.equal(e.reason, "unsupported-format");
    assert.match(e.message, /not x86/);
    return true;
  });
  const img = buildCodeElf({ pieces: [{ name: "f", code: [0xc3] }] });
  assert.throws(() => mapCode(img.bytes.subarray(0, 40)), ImageFormatError);
});

Deno.test("mapCode() refuses an image without loaded code", () => {
  const img = buildCodeElf({ pieces: [{ name: "f", code: [0xc3] }] });
  const bytes = img.bytes.slice();
  new DataView(bytes.buffer).setUint32(52 + 24, 4, true); // p_flags = R, and sh_flags stays AX
  // Section .text still says EXECINSTR and lies in the (now non-exec) segment: still code.
  assert.equal(mapCode(bytes).spans.length, 1);
  const none = buildCodeElf({ pieces: [{ name: "f", code: [0xc3] }], stripped: "all" });
  const b2 = none.bytes.slice();
  new DataView(b2.buffer).setUint32(52 + 24, 4, true);
  assertRewriteError(() => mapCode(b2), "no-code", /no loaded executable code/);
});
