/** `deno task boot` as a person (or a pipe) uses it: console on stdio, status from debug-exit. */
import assert from "node:assert/strict";

const ring3Host = Deno.build.os === "linux" && Deno.build.arch === "x86_64";

Deno.test({
  name: "boot puts the guest console on stdio and exits with the guest's status",
  ignore: !ring3Host,
  async fn() {
    const child = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "scripts/boot.ts", "fixtures/build/hello.elf", "--cmdline", "x=y"],
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const w = child.stdin.getWriter();
    await w.write(new TextEncoder().encode("typed on stdin\n"));
    await w.close();
    const out = await child.output();
    const text = new TextDecoder().decode(out.stdout);
    assert.match(text, /^ring3 hello kernel\n/);
    assert.match(text, /cmdline: fixtures\/build\/hello.elf x=y\n/);
    assert.match(text, /you typed: typed on stdin\nbye\n/);
    assert.equal(out.code, (14 << 1) | 1);
  },
});

Deno.test({
  name: "boot refuses a missing kernel with its path and status 1",
  ignore: !ring3Host,
  async fn() {
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", "scripts/boot.ts", "fixtures/build/nope.elf"],
      stdin: "null",
    }).output();
    assert.equal(out.code, 1);
    assert.match(
      new TextDecoder().decode(out.stderr),
      /cannot read kernel image fixtures\/build\/nope.elf/,
    );
  },
});
