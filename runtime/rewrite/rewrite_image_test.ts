import assert from "node:assert/strict";
import { sha256Hex } from "./_sha256.ts";
import { RewriteError } from "./rewrite_error.ts";
import { rewriteImage } from "./rewrite_image.ts";
import { buildCodeElf, hexOf } from "./_test_images.ts";

function assertRewriteError(fn: () => unknown, reason: string, message?: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof RewriteError, `expected RewriteError, got ${e}`);
    assert.equal(e.reason, reason, e.message);
    if (message) assert.match(e.message, message);
    return true;
  });
}

/** One instruction of each sensitive kind, 32-bit, with its AT&T text. */
const SENSITIVE_32: [string, number[], string][] = [
  ["pushf", [0x9c], "pushf"],
  ["popf", [0x9d], "popf"],
  ["pushf", [0x66, 0x9c], "pushfw"],
  ["mov %sreg,r/m", [0x8c, 0xc8], "mov %cs,%eax"],
  ["mov %sreg,r/m", [0x66, 0x8c, 0xd0], "mov %ss,%ax"],
  ["push %sreg", [0x0e], "push %cs"],
  ["push %sreg", [0x0f, 0xa8], "push %gs"],
  ["lar", [0x0f, 0x02, 0xc1], "lar %ecx,%eax"],
  ["lsl", [0x0f, 0x03, 0xc1], "lsl %ecx,%eax"],
  ["verr", [0x0f, 0x00, 0xe0], "verr %ax"],
  ["verw", [0x0f, 0x00, 0xe8], "verw %ax"],
  ["sgdt", [0x0f, 0x01, 0x05, 0x00, 0x20, 0x10, 0x00], "sgdt 0x102000"],
  ["sidt", [0x0f, 0x01, 0x0d, 0x00, 0x20, 0x10, 0x00], "sidt 0x102000"],
  ["sldt", [0x0f, 0x00, 0xc0], "sldt %eax"],
  ["str", [0x0f, 0x00, 0xc8], "str %eax"],
  ["smsw", [0x0f, 0x01, 0xe0], "smsw %eax"],
  ["cpuid", [0x0f, 0xa2], "cpuid"],
  ["rdtsc", [0x0f, 0x31], "rdtsc"],
  ["rdtscp", [0x0f, 0x01, 0xf9], "rdtscp"],
  ["syscall", [0x0f, 0x05], "syscall"],
  ["sysenter", [0x0f, 0x34], "sysenter"],
];

Deno.test("rewriteImage() patches every sensitive class with int3 and records the originals", () => {
  const img = buildCodeElf({
    pieces: SENSITIVE_32.map(([, code], i) => ({ name: `f${i}`, code: [...code, 0xc3] })),
  });
  const { output, sideTable, summary } = rewriteImage(img.bytes, { originalPath: "in.elf" });
  assert.deepEqual(
    sideTable.patches.map((p) => [p.vaddr, p.kind, p.bytes, p.mnemonic, p.length]),
    SENSITIVE_32.map((
      [kind, code, text],
      i,
    ) => [img.at[`f${i}`], kind, hexOf(code), text, code.length]),
  );
  for (const [i, [, code]] of SENSITIVE_32.entries()) {
    const p = sideTable.patches[i];
    assert.equal(p.fileOffset, img.textOffset + (p.vaddr - img.base));
    assert.equal(p.paddr, p.vaddr);
    assert.equal(p.class, "sensitive");
    assert.equal(p.form, "trap");
    assert.equal(p.bitness, 32);
    // First byte int3, the rest as before.
    assert.deepEqual(
      [...output.subarray(p.fileOffset, p.fileOffset + code.length)],
      [0xcc, ...code.slice(1)],
    );
  }
  // Nothing else changed.
  const changed = [...output].flatMap((b, i) => b !== img.bytes[i] ? [i] : []);
  assert.deepEqual(changed, sideTable.patches.map((p) => p.fileOffset));
  assert.deepEqual(sideTable.skipped, []);
  assert.equal(summary.byClass.sensitive.patched, SENSITIVE_32.length);
  assert.equal(summary.byForm.trap, SENSITIVE_32.length);
  assert.equal(summary.byClass.sensitive.byMnemonic["pushf"].patched, 2);
  assert.equal(sideTable.image.sha256, sha256Hex(output));
  assert.equal(sideTable.original.sha256, sha256Hex(img.bytes));
  assert.equal(sideTable.original.path, "in.elf");
  assert.notEqual(output, img.bytes);
});

Deno.test("rewriteImage() produces exactly this sidecar for a one-function kernel", () => {
  // pushf; cli; mov %eax,%ebx; mov %ecx,%edx; popf; ret
  const code = [0x9c, 0xfa, 0x89, 0xc3, 0x89, 0xca, 0x9d, 0xc3];
  const img = buildCodeElf({ pieces: [{ name: "lock", code }] });
  const f = img.at.lock;
  const { output, sideTable } = rewriteImage(img.bytes, { originalPath: "k.elf" });
  const patch = (vaddr: number, bytes: string, kind: string, fast: boolean) => ({
    vaddr,
    paddr: vaddr,
    fileOffset: img.textOffset + (vaddr - img.base),
    bitness: 32,
    length: 1,
    bytes,
    mnemonic: kind,
    kind,
    class: "sensitive",
    form: "trap",
    branchTargetInside: false,
    fastEligible: fast,
  });
  const counts = (found: number, patched: number, left: number) => ({
    found,
    patched,
    skipped: 0,
    left,
  });
  assert.deepEqual(sideTable, {
    format: "ring3-rewrite",
    version: 2,
    image: { sha256: sha256Hex(output), size: img.bytes.length },
    original: { sha256: sha256Hex(img.bytes), path: "k.elf" },
    options: { privileged: false, allowStripped: false, bitness: [] },
    patches: [patch(f, "9c", "pushf", false), patch(f + 6, "9d", "popf", false)],
    skipped: [],
    summary: {
      format: "elf32",
      multiboot: true,
      stripped: false,
      policy: { privileged: false, allowStripped: false },
      regions: { functions: 1, ranges: 0, unanchored: 0, unproven: 0 },
      instructions: 6,
      byClass: {
        sensitive: {
          ...counts(2, 2, 0),
          byMnemonic: { popf: counts(1, 1, 0), pushf: counts(1, 1, 0) },
        },
        privileged: { ...counts(1, 0, 1), byMnemonic: { cli: counts(1, 0, 1) } },
      },
      byForm: { trap: 2 },
      skippedByReason: {},
      fastEligible: 0,
      notes: [],
    },
  });
});

Deno.test("rewriteImage() with privileged: true also patches privileged sites", () => {
  const code = [0x9c, 0xfa, 0xe6, 0x80, 0xcd, 0x40, 0xcd, 0x80, 0xcc, 0x90, 0x9d, 0xc3];
  const img = buildCodeElf({ pieces: [{ name: "f", code }] });
  const { sideTable, summary } = rewriteImage(img.bytes, { privileged: true });
  assert.deepEqual(
    sideTable.patches.map((p) => [p.vaddr - img.at.f, p.class, p.mnemonic]),
    [
      [0, "sensitive", "pushf"],
      [1, "privileged", "cli"],
      [2, "privileged", "out %al,$0x80"],
      [4, "privileged", "int $0x40"],
      [10, "sensitive", "popf"],
    ],
  );
  assert.equal(summary.byClass.privileged.patched, 3);
  assert.equal(summary.byClass.privileged.left, 0);
  assert.deepEqual(sideTable.options, { privileged: true, allowStripped: false, bitness: [] });
});

Deno.test("rewriteImage() skips every site of a function with data in it, saying why", () => {
  const img = buildCodeElf({
    pieces: [
      // pushf; (data ff ff); inc %ebx; rdtsc; ret
      { name: "mixed", code: [0x9c, 0xff, 0xff, 0xc3, 0x0f, 0x31, 0xc3] },
      { name: "clean", code: [0x9c, 0xc3] },
    ],
  });
  const { output, sideTable, summary } = rewriteImage(img.bytes);
  assert.deepEqual(sideTable.patches.map((p) => p.vaddr), [img.at.clean]);
  assert.deepEqual(
    sideTable.skipped.map((s) => [s.vaddr - img.at.mixed, s.text, s.reason, s.bytes]),
    [[0, "pushf", "invalid-decode", "9c"], [4, "rdtsc", "invalid-decode", "0f31"]],
  );
  assert.equal(
    sideTable.skipped[0].detail,
    "function mixed (0x10000c-0x100013): invalid instruction at 0x10000d (ff ff c3 0f 31 c3 9c c3): " +
      "data in code?",
  );
  assert.equal(output[img.textOffset + 12], 0x9c);
  assert.deepEqual(summary.skippedByReason, { "invalid-decode": 2 });
  assert.equal(summary.regions.unproven, 1);
});

Deno.test("rewriteImage() skips a function whose sweep overruns its end", () => {
  // cpuid; mov $1,%eax with the symbol size cutting the mov
  const img = buildCodeElf({
    pieces: [{ name: "short", code: [0x0f, 0xa2, 0xb8, 1, 0, 0, 0], size: 3 }, {
      name: "next",
      code: [0xc3],
    }],
  });
  const { sideTable } = rewriteImage(img.bytes);
  assert.deepEqual(sideTable.patches, []);
  assert.deepEqual(sideTable.skipped.map((s) => [s.text, s.reason]), [["cpuid", "overrun"]]);
  assert.match(sideTable.skipped[0].detail, /runs past the end of the range at 0x10000f/);
});

Deno.test("rewriteImage() never patches padding no symbol anchors, nor data objects", () => {
  const img = buildCodeElf({
    pieces: [
      { name: "f", code: [0xc3] },
      { code: [0x9c, 0x90] },
      { name: "table", type: 1, code: [0x0f, 0xa2] },
      { name: "g", code: [0x9d, 0xc3] },
    ],
  });
  const { sideTable, summary } = rewriteImage(img.bytes);
  assert.deepEqual(sideTable.patches.map((p) => p.vaddr), [img.at.g]);
  assert.deepEqual(sideTable.skipped.map((s) => [s.vaddr, s.reason]), [[
    img.at.f + 1,
    "unanchored",
  ]]);
  assert.equal(summary.byClass.sensitive.found, 2);
  assert.equal(summary.regions.unanchored, 1);
});

Deno.test("rewriteImage() skips a site that overlapping functions decode differently", () => {
  // outer: mov $0x9090909c,%eax; ret.  inner (one byte in): pushf; nop; nop; nop; ret.
  const img = buildCodeElf({
    pieces: [
      { name: "outer", code: [0xb8], size: 6 },
      { name: "inner", code: [0x9c, 0x90, 0x90, 0x90, 0xc3] },
    ],
  });
  const { sideTable } = rewriteImage(img.bytes);
  assert.deepEqual(sideTable.patches, []);
  assert.deepEqual(sideTable.skipped.map((s) => [s.vaddr, s.reason]), [[
    img.at.inner,
    "conflicting-sweeps",
  ]]);
  assert.match(sideTable.skipped[0].detail, /function outer .* decodes the bytes at 0x10000d/);
});

Deno.test("rewriteImage() records branch targets inside a site and fast-form eligibility", () => {
  const img = buildCodeElf({
    pieces: [
      // jmp +1 (into the middle of cpuid); cpuid; ret
      { name: "tricky", code: [0xeb, 0x01, 0x0f, 0xa2, 0xc3] },
      // pushf; mov %eax,%ebx; mov %ecx,%edx; ret: 1 + 2 + 2 = 5 bytes in one block
      { name: "fast", code: [0x9c, 0x89, 0xc3, 0x89, 0xca, 0xc3] },
      // sgdt 0x102000: 7 bytes by itself
      { name: "long", code: [0x0f, 0x01, 0x05, 0x00, 0x20, 0x10, 0x00, 0xc3] },
      // rdtsc; nop; nop (a branch target); jmp back to the first nop
      { name: "target", code: [0x0f, 0x31, 0x90, 0x90, 0x90, 0xeb, 0xfc] },
      // syscall; mov %eax,%ebx; mov %eax,%ebx: the block ends at the syscall
      { name: "ends", code: [0x0f, 0x05, 0x89, 0xc3, 0x89, 0xc3, 0xc3] },
    ],
  });
  const { sideTable, summary } = rewriteImage(img.bytes);
  assert.deepEqual(
    sideTable.patches.map((p) => [p.mnemonic, p.branchTargetInside, p.fastEligible]),
    [
      ["cpuid", true, false],
      ["pushf", false, true],
      ["sgdt 0x102000", false, true],
      ["rdtsc", false, false],
      ["syscall", false, false],
    ],
  );
  assert.equal(summary.fastEligible, 2);
});

Deno.test("rewriteImage() decodes bitness-override ranges in their own mode", () => {
  // nop; [64-bit: pushfq with REX.W (48 9c)]; nop; ret
  const img = buildCodeElf({ pieces: [{ name: "f", code: [0x90, 0x48, 0x9c, 0x90, 0xc3] }] });
  const f = img.at.f;
  const as32 = rewriteImage(img.bytes).sideTable.patches;
  assert.deepEqual(as32.map((p) => [p.vaddr - f, p.mnemonic, p.bitness]), [[2, "pushf", 32]]);
  const bitness = [{ start: f + 1, end: f + 3, bits: 64 as const }];
  const as64 = rewriteImage(img.bytes, { bitness }).sideTable;
  assert.deepEqual(as64.patches.map((p) => [p.vaddr - f, p.mnemonic, p.bitness, p.length]), [
    [1, "pushf", 64, 2],
  ]);
  assert.deepEqual(as64.options.bitness, bitness);
});

Deno.test("rewriteImage() records vaddr and paddr of a higher-half kernel", () => {
  const img = buildCodeElf({
    base: 0xc0100000,
    paddr: 0x100000,
    pieces: [{ name: "f", code: [0x9c, 0xc3] }],
  });
  const [p] = rewriteImage(img.bytes).sideTable.patches;
  assert.equal(p.vaddr, 0xc010000c);
  assert.equal(p.paddr, 0x10000c);
  assert.equal(p.fileOffset, img.textOffset + 12);
});

Deno.test("rewriteImage() handles 64-bit ELF code", () => {
  // swapgs; pushfq; popfq; iretq
  const img = buildCodeElf({
    class: 64,
    multiboot: false,
    pieces: [{ name: "f", code: [0x0f, 0x01, 0xf8, 0x9c, 0x9d, 0x48, 0xcf] }],
  });
  const { sideTable } = rewriteImage(img.bytes, { privileged: true });
  assert.deepEqual(sideTable.patches.map((p) => [p.mnemonic, p.bitness]), [
    ["swapgs", 64],
    ["pushf", 64],
    ["popf", 64],
    ["iretq", 64],
  ]);
});

Deno.test("rewriteImage() of a stripped image refuses, or with allowStripped proves whole sections", () => {
  const good = buildCodeElf({ pieces: [{ code: [0x9c, 0x90, 0x9d, 0xc3] }], stripped: "symbols" });
  assertRewriteError(() => rewriteImage(good.bytes), "stripped", /^stripped image/);
  const ok = rewriteImage(good.bytes, { allowStripped: true });
  assert.deepEqual(ok.sideTable.patches.map((p) => p.mnemonic), ["pushf", "popf"]);
  assert.equal(ok.summary.stripped, true);

  const bad = buildCodeElf({
    pieces: [{ code: [0x9c, 0x90, 0xff, 0xff, 0xc3, 0x9d, 0xc3] }],
    stripped: "all",
  });
  const r = rewriteImage(bad.bytes, { allowStripped: true });
  assert.deepEqual(r.sideTable.patches, []);
  assert.deepEqual(r.sideTable.skipped.map((s) => [s.text, s.reason]), [
    ["pushf", "invalid-decode"],
    ["popf", "invalid-decode"],
  ]);
});

Deno.test("rewriteImage() of its own output with the sidecar gives the same bytes and table", () => {
  const img = buildCodeElf({
    pieces: SENSITIVE_32.map(([, code], i) => ({ name: `f${i}`, code: [...code, 0xc3] })),
  });
  const a = rewriteImage(img.bytes, { originalPath: "in.elf" });
  const b = rewriteImage(a.output, { originalPath: "a.elf", previous: a.sideTable });
  assert.deepEqual(b.output, a.output);
  assert.deepEqual(b.sideTable, a.sideTable);
  // Without the sidecar our int3s look like the guest's own, and the tails of patched
  // instructions can decode as new sites: those are never patched.
  const blind = rewriteImage(a.output);
  assert.deepEqual(blind.sideTable.patches, []);
  assert.ok(blind.sideTable.skipped.length > 0);
  assert.ok(blind.sideTable.skipped.every((s) => s.reason === "after-int3"));
});

Deno.test("rewriteImage() refuses a previous side table that belongs to another image", () => {
  const img = buildCodeElf({ pieces: [{ name: "f", code: [0x9c, 0xc3] }] });
  const a = rewriteImage(img.bytes);
  const other = a.output.slice();
  other[other.length - 1] ^= 1;
  assertRewriteError(
    () => rewriteImage(other, { previous: a.sideTable }),
    "sidecar-mismatch",
    new RegExp(
      `image sha256 ${sha256Hex(other)} .* sidecar image.sha256 ${a.sideTable.image.sha256}`,
    ),
  );
});

Deno.test("rewriteImage() rewrites a flat a.out-kludge image at flat file offsets", () => {
  const elf = buildCodeElf({ kludge: true, pieces: [{ name: "f", code: [0x9c, 0xc3] }] });
  const { output, sideTable } = rewriteImage(elf.text, {
    companion: elf.bytes,
    companionPath: "k.elf",
  });
  assert.deepEqual(sideTable.patches.map((p) => [p.vaddr, p.paddr, p.fileOffset]), [
    [0x100020, 0x100020, 0x20],
  ]);
  assert.equal(output[0x20], 0xcc);
  assert.deepEqual(sideTable.companion, { sha256: sha256Hex(elf.bytes), path: "k.elf" });
  assert.equal(sideTable.summary.format, "aout-kludge");
});
