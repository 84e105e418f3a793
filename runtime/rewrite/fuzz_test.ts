import assert from "node:assert/strict";
import { ImageFormatError } from "../boot/image_error.ts";
import { seededRandom } from "../boot/_test_images.ts";
import { RewriteError } from "./rewrite_error.ts";
import { rewriteImage } from "./rewrite_image.ts";
import { formatSideTable, loadSideTable, restoreOriginal } from "./side_table.ts";
import { buildCodeElf } from "./_test_images.ts";

/** One random corruption: byte flips, a random 32-bit word, or truncation, biased to headers. */
function mutate(image: Uint8Array, random: () => number): Uint8Array {
  const pick = (n: number) => Math.floor(random() * n);
  const out = image.slice();
  // Headers and tables sit in the first bytes and at the end (section headers): aim there often.
  const where = () =>
    random() < 0.5
      ? pick(Math.min(out.length, 160))
      : random() < 0.5
      ? out.length - 1 - pick(Math.min(out.length, 400))
      : pick(out.length);
  switch (pick(4)) {
    case 0:
      for (let i = 1 + pick(8); i > 0; i--) out[where()] ^= 1 << pick(8);
      return out;
    case 1: {
      const at = Math.min(where(), out.length - 4);
      const values = [0, 0xffffffff, 0x7fffffff, out.length, pick(0x10000), 0x100000 + pick(64)];
      new DataView(out.buffer).setUint32(at, values[pick(values.length)] >>> 0, true);
      return out;
    }
    case 2:
      return out.subarray(0, pick(out.length));
    default:
      for (let i = 1 + pick(32); i > 0; i--) out[pick(out.length)] = pick(256);
      return out;
  }
}

/**
 * A rewrite must be self-consistent: only int3s at the listed offsets or fast-form windows, a
 * loadable table, and the original back from it.
 */
function checkResult(input: Uint8Array, r: ReturnType<typeof rewriteImage>): void {
  assert.equal(r.output.length, input.length);
  const offsets = new Set(r.sideTable.patches.map((p) => p.fileOffset));
  const windows = r.sideTable.fast?.windows ?? [];
  const inWindow = (i: number) =>
    windows.some((w) => i >= w.fileOffset && i < w.fileOffset + w.length);
  for (let i = 0; i < input.length; i++) {
    if (r.output[i] === input[i]) continue;
    assert.ok((offsets.has(i) && r.output[i] === 0xcc) || inWindow(i), `byte ${i}`);
  }
  assert.equal(loadSideTable(r.output, formatSideTable(r.sideTable)).size, offsets.size);
  assert.deepEqual(restoreOriginal(r.output, r.sideTable), input);
}

function fuzz(image: Uint8Array, seed: number, rounds: number): Record<string, number> {
  const random = seededRandom(seed);
  const outcomes: Record<string, number> = {};
  for (let i = 0; i < rounds; i++) {
    const input = mutate(image, random);
    let outcome: string;
    try {
      const r = rewriteImage(input, {
        allowStripped: random() < 0.3,
        privileged: random() < 0.5,
        form: i % 2 === 0 ? "fast" : "trap",
      });
      checkResult(input, r);
      outcome = (r.sideTable.fast?.windows.length ?? 0) > 0
        ? "rewritten, fast windows"
        : "rewritten";
    } catch (e) {
      if (e instanceof RewriteError) outcome = `RewriteError ${e.reason}`;
      else if (e instanceof ImageFormatError) outcome = `ImageFormatError ${e.reason}`;
      else throw new Error(`seed ${seed} round ${i}: unexpected ${e}`, { cause: e });
      assert.ok(e.message.length > 10, `a concrete message: ${e.message}`);
    }
    outcomes[outcome] = (outcomes[outcome] ?? 0) + 1;
  }
  return outcomes;
}

Deno.test("rewriteImage() of 500 mutated images rewrites or throws RewriteError/ImageFormatError", () => {
  const img = buildCodeElf({
    pieces: [
      { name: "entry", type: 0, code: [0xfa, 0x66, 0x8c, 0xc8, 0xeb, 0x00] },
      { name: "f", code: [0x9c, 0xfa, 0x0f, 0xa2, 0x0f, 0x31, 0x9d, 0xc3] },
      { code: [0x90, 0x90] },
      // pushf; cli; incl 0x102000; popf; add $1,%eax; cmp %eax,%esi; ret
      {
        name: "lock",
        code: [0x9c, 0xfa, 0xff, 0x05, 0, 0x20, 0x10, 0, 0x9d, 0x83, 0xc0, 0x01, 0x39, 0xc6, 0xc3],
      },
      { name: "g", code: [0x0f, 0x01, 0x05, 0, 0x20, 0x10, 0, 0x0e, 0x58, 0xc3] },
      { name: "tbl", type: 1, code: [1, 2, 3, 4] },
    ],
  });
  const outcomes = fuzz(img.bytes, 1234, 500);
  assert.ok((outcomes.rewritten ?? 0) > 0, JSON.stringify(outcomes));
  assert.ok((outcomes["rewritten, fast windows"] ?? 0) > 0, JSON.stringify(outcomes));
  assert.ok(Object.keys(outcomes).length > 3, JSON.stringify(outcomes));
});

Deno.test("rewriteImage() of mutated fixture kernels rewrites or throws the two image errors", async () => {
  const path = new URL("../../fixtures/build/hello.elf", import.meta.url);
  const image = await Deno.readFile(path);
  const outcomes = fuzz(image, 99, 150);
  assert.ok((outcomes.rewritten ?? 0) > 0, JSON.stringify(outcomes));
});
