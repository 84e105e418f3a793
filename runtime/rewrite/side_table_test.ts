import assert from "node:assert/strict";
import { sha256Hex } from "./_sha256.ts";
import { RewriteError } from "./rewrite_error.ts";
import { rewriteImage } from "./rewrite_image.ts";
import {
  checkBinding,
  formatSideTable,
  fromHex,
  loadSideTable,
  parseSideTable,
  restoreOriginal,
  SIDECAR_SUFFIX,
  toHex,
} from "./side_table.ts";
import { buildCodeElf } from "./_test_images.ts";

function assertRewriteError(fn: () => unknown, reason: string, message?: RegExp): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof RewriteError, `expected RewriteError, got ${e}`);
    assert.equal(e.reason, reason, e.message);
    if (message) assert.match(e.message, message);
    return true;
  });
}

function sample() {
  // pushf; cpuid; popf; ret
  const img = buildCodeElf({ pieces: [{ name: "f", code: [0x9c, 0x0f, 0xa2, 0x9d, 0xc3] }] });
  return { img, ...rewriteImage(img.bytes, { originalPath: "k.elf" }) };
}

Deno.test("toHex() and fromHex() round-trip and fromHex() rejects malformed text", () => {
  assert.equal(toHex(Uint8Array.of(0x0f, 0xa2, 0xff)), "0fa2ff");
  assert.deepEqual(fromHex("0fa2ff"), Uint8Array.of(0x0f, 0xa2, 0xff));
  assert.equal(fromHex("0fa"), undefined);
  assert.equal(fromHex("0FA2"), undefined);
  assert.equal(fromHex("zz"), undefined);
});

Deno.test("formatSideTable() output parses back to the same table, one patch per line", () => {
  const { sideTable } = sample();
  const text = formatSideTable(sideTable);
  assert.deepEqual(parseSideTable(text), sideTable);
  assert.deepEqual(JSON.parse(text), sideTable);
  const patchLines = text.split("\n").filter((l) => l.startsWith('    {"vaddr"'));
  assert.equal(patchLines.length, 3);
  assert.ok(text.endsWith("}\n"));
});

Deno.test("loadSideTable() with image bytes and sidecar text gives the sites keyed by vaddr", () => {
  const { img, output, sideTable } = sample();
  const map = loadSideTable(output, formatSideTable(sideTable));
  assert.deepEqual([...map.keys()], [img.at.f, img.at.f + 1, img.at.f + 3]);
  const cpuid = map.get(img.at.f + 1)!;
  assert.deepEqual(cpuid.bytes, Uint8Array.of(0x0f, 0xa2));
  assert.equal(cpuid.mnemonic, "cpuid");
  assert.equal(cpuid.length, 2);
  assert.equal(cpuid.form, "trap");
});

Deno.test("loadSideTable() names both hashes when the image is not the one the sidecar binds", () => {
  const { img, sideTable } = sample();
  assertRewriteError(
    () => loadSideTable(img.bytes, formatSideTable(sideTable)),
    "sidecar-mismatch",
    new RegExp(
      `image sha256 ${sha256Hex(img.bytes)} \\(${img.bytes.length} bytes\\), sidecar ` +
        `image.sha256 ${sideTable.image.sha256}`,
    ),
  );
});

Deno.test("loadSideTable() reads an image and its sidecar from files", async () => {
  const { output, sideTable } = sample();
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/k.elf`;
    await Deno.writeFile(path, output);
    await assert.rejects(() => loadSideTable(path), (e: unknown) => {
      assert.ok(e instanceof RewriteError);
      assert.equal(e.reason, "missing-sidecar");
      assert.match(e.message, /k\.elf\.ring3\.json does not exist/);
      return true;
    });
    await Deno.writeTextFile(path + SIDECAR_SUFFIX, formatSideTable(sideTable));
    const map = await loadSideTable(path);
    assert.equal(map.size, 3);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("parseSideTable() rejects what is not a version-1 or version-2 ring3-rewrite table", () => {
  const { sideTable } = sample();
  const good = JSON.parse(formatSideTable(sideTable));
  const cases: [unknown, RegExp][] = [
    [{ ...good, format: "other" }, /format is "other", not "ring3-rewrite"/],
    [{ ...good, version: 3 }, /version 3 is not supported/],
    [{ ...good, image: { sha256: "abc", size: 1 } }, /image must be/],
    [{ ...good, original: {} }, /original must be/],
    [{ ...good, patches: {} }, /patches is not an array/],
    [
      { ...good, patches: [{ ...good.patches[0], bytes: "9" }] },
      /patches\[0\]\.bytes is not 1 bytes/,
    ],
    [{ ...good, patches: [{ ...good.patches[0], form: "call" }] }, /form "call" is unknown/],
    [{ ...good, patches: [good.patches[0], good.patches[0]] }, /patched twice/],
    [{ ...good, patches: [{ ...good.patches[0], vaddr: -1 }] }, /vaddr is not a non-negative/],
    [[], /not a JSON object/],
  ];
  for (const [json, message] of cases) {
    assertRewriteError(
      () => parseSideTable(JSON.stringify(json), "t.json"),
      "bad-sidecar",
      message,
    );
  }
  assertRewriteError(() => parseSideTable("{", "t.json"), "bad-sidecar", /^t\.json: not JSON/);
});

Deno.test("checkBinding() catches a forged patch even when the hash matches", () => {
  const { output, sideTable } = sample();
  const forged = { ...sideTable, patches: [{ ...sideTable.patches[1], bytes: "0f31" }] };
  assertRewriteError(() => checkBinding(output, forged), "bad-sidecar", /original tail of 0f31/);
});

Deno.test("restoreOriginal() gives back the input and checks it against original.sha256", () => {
  const { img, output, sideTable } = sample();
  assert.deepEqual(restoreOriginal(output, sideTable), img.bytes);
  const wrong = { ...sideTable, original: { ...sideTable.original, sha256: "0".repeat(64) } };
  assertRewriteError(() => restoreOriginal(output, wrong), "sidecar-mismatch", /original\.sha256/);
});
