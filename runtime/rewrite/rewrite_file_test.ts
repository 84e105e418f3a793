import assert from "node:assert/strict";
import { ImageFormatError } from "../boot/image_error.ts";
import { rewriteFile } from "./rewrite_file.ts";
import { RewriteError } from "./rewrite_error.ts";
import { loadSideTable, SIDECAR_SUFFIX } from "./side_table.ts";
import { buildCodeElf } from "./_test_images.ts";

const ROOT = new URL("../../", import.meta.url).pathname;

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "ring3-rewrite-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

const kernel = () =>
  buildCodeElf({
    pieces: [
      { name: "f", code: [0x9c, 0xfa, 0x0f, 0xa2, 0x9d, 0xc3] },
      { name: "g", code: [0x66, 0x8c, 0xc8, 0x0f, 0x31, 0xc3] },
    ],
  }).bytes;

Deno.test("rewriteFile() writes the image and its sidecar, and loadSideTable() accepts them", async () => {
  await withDir(async (dir) => {
    await Deno.writeFile(`${dir}/in.elf`, kernel());
    const r = await rewriteFile(`${dir}/in.elf`, `${dir}/out.elf`);
    assert.deepEqual(await Deno.readFile(`${dir}/out.elf`), r.output);
    const sites = await loadSideTable(`${dir}/out.elf`);
    assert.equal(sites.size, 5);
    assert.equal(r.sideTable.original.path, `${dir}/in.elf`);
    const names = [...Deno.readDirSync(dir)].map((e) => e.name).sort();
    assert.deepEqual(names, ["in.elf", "out.elf", "out.elf.ring3.json"]);
  });
});

Deno.test("rewriteFile() IN -> A -> B gives B identical to A, sidecar included", async () => {
  await withDir(async (dir) => {
    await Deno.writeFile(`${dir}/in.elf`, kernel());
    await rewriteFile(`${dir}/in.elf`, `${dir}/a.elf`);
    await rewriteFile(`${dir}/a.elf`, `${dir}/b.elf`);
    assert.deepEqual(await Deno.readFile(`${dir}/b.elf`), await Deno.readFile(`${dir}/a.elf`));
    assert.equal(
      await Deno.readTextFile(`${dir}/b.elf${SIDECAR_SUFFIX}`),
      await Deno.readTextFile(`${dir}/a.elf${SIDECAR_SUFFIX}`),
    );
    // In place, too.
    await rewriteFile(`${dir}/a.elf`, `${dir}/a.elf`);
    assert.deepEqual(await Deno.readFile(`${dir}/a.elf`), await Deno.readFile(`${dir}/b.elf`));
  });
});

Deno.test("rewriteFile() refuses an input whose own sidecar does not match it", async () => {
  await withDir(async (dir) => {
    await Deno.writeFile(`${dir}/in.elf`, kernel());
    await rewriteFile(`${dir}/in.elf`, `${dir}/a.elf`);
    const a = await Deno.readFile(`${dir}/a.elf`);
    a[a.length - 1] ^= 0xff;
    await Deno.writeFile(`${dir}/a.elf`, a);
    await assert.rejects(() => rewriteFile(`${dir}/a.elf`, `${dir}/b.elf`), (e: unknown) => {
      assert.ok(e instanceof RewriteError);
      assert.equal(e.reason, "sidecar-mismatch");
      assert.match(e.message, /a\.elf\.ring3\.json that does not belong to it/);
      assert.match(e.message, /remove the stale sidecar/);
      return true;
    });
    await assert.rejects(() => Deno.stat(`${dir}/b.elf`), Deno.errors.NotFound);
  });
});

Deno.test("rewriteFile() writes nothing for an input it cannot rewrite", async () => {
  await withDir(async (dir) => {
    await Deno.writeFile(`${dir}/trunc.elf`, kernel().subarray(0, 60));
    await assert.rejects(
      () => rewriteFile(`${dir}/trunc.elf`, `${dir}/out.elf`),
      ImageFormatError,
    );
    await Deno.writeFile(`${dir}/out.elf`, Uint8Array.of(1, 2, 3));
    const stripped = buildCodeElf({ pieces: [{ code: [0x9c, 0xc3] }], stripped: "symbols" });
    await Deno.writeFile(`${dir}/stripped.elf`, stripped.bytes);
    await assert.rejects(() => rewriteFile(`${dir}/stripped.elf`, `${dir}/out.elf`), RewriteError);
    assert.deepEqual(await Deno.readFile(`${dir}/out.elf`), Uint8Array.of(1, 2, 3));
    const names = [...Deno.readDirSync(dir)].map((e) => e.name).sort();
    assert.deepEqual(names, ["out.elf", "stripped.elf", "trunc.elf"]);
  });
});

async function cli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--no-check", "scripts/rewrite.ts", ...args],
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder();
  return { code: out.code, stdout: text.decode(out.stdout), stderr: text.decode(out.stderr) };
}

Deno.test("scripts/rewrite.ts prints the report, or JSON, and fails clearly on bad input", async () => {
  await withDir(async (dir) => {
    await Deno.writeFile(`${dir}/in.elf`, kernel());
    const ok = await cli(`${dir}/in.elf`, `${dir}/out.elf`);
    assert.equal(ok.code, 0, ok.stderr);
    assert.match(ok.stdout, /sensitive +\(all\) +5 +5 +0 +0/);
    assert.match(ok.stdout, /by form: trap 5/);

    const json = await cli(`${dir}/in.elf`, `${dir}/out2.elf`, "--json", "--privileged");
    assert.equal(json.code, 0, json.stderr);
    const parsed = JSON.parse(json.stdout);
    assert.equal(parsed.summary.byForm.trap, 6);
    assert.equal(parsed.sidecar, `${dir}/out2.elf${SIDECAR_SUFFIX}`);

    await Deno.writeFile(`${dir}/junk`, new TextEncoder().encode("hello, not a kernel"));
    const bad = await cli(`${dir}/junk`, `${dir}/junk.out`);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /^rewrite: .*junk: unknown image format: not ELF/);

    const usage = await cli(`${dir}/in.elf`);
    assert.equal(usage.code, 2);
    assert.match(usage.stderr, /^usage: rewrite\.ts IN OUT/);

    const bits = await cli(`${dir}/in.elf`, `${dir}/o.elf`, "--bitness", "nonsense");
    assert.equal(bits.code, 2);
    assert.match(bits.stderr, /bad --bitness nonsense/);
  });
});
