import assert from "node:assert/strict";
import { prepareKernel } from "./kernel_image.ts";
import { RewriteError } from "./rewrite/mod.ts";

const SENSITIVE = "fixtures/build/sensitive.elf";

Deno.test("prepareKernel rewrites once and then boots from the content-hash cache", async () => {
  const cacheDir = await Deno.makeTempDir({ prefix: "ring3-cache-" });
  try {
    const bytes = await Deno.readFile(SENSITIVE);
    const first = await prepareKernel(SENSITIVE, bytes, { cacheDir });
    assert.equal(first.source, "rewritten");
    assert.ok(first.patches.length >= 30);
    for (const p of first.patches) assert.ok(p.bytes.length >= 1);
    const second = await prepareKernel(SENSITIVE, bytes, { cacheDir });
    assert.equal(second.source, "cache");
    assert.deepEqual(second.bytes, first.bytes);
    assert.deepEqual(second.patches, first.patches);
    const raw = await prepareKernel(SENSITIVE, bytes, { cacheDir, rewrite: false });
    assert.equal(raw.source, "unmodified");
    assert.deepEqual(raw.bytes, bytes);
  } finally {
    await Deno.remove(cacheDir, { recursive: true });
  }
});

Deno.test("an image with its own sidecar boots as is, and a sidecar that does not match is refused", async () => {
  const dir = await Deno.makeTempDir({ prefix: "ring3-rw-" });
  try {
    const out = `${dir}/sensitive.rw.elf`;
    const r = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "scripts/rewrite.ts", SENSITIVE, out],
    }).output();
    assert.ok(r.success, new TextDecoder().decode(r.stderr));
    const bytes = await Deno.readFile(out);
    const p = await prepareKernel(out, bytes, { cacheDir: `${dir}/cache` });
    assert.equal(p.source, "sidecar");
    assert.deepEqual(p.bytes, bytes);
    bytes[bytes.length - 1] ^= 0xff;
    await assert.rejects(prepareKernel(out, bytes, { cacheDir: `${dir}/cache` }), RewriteError);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
