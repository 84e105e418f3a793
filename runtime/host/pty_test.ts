import assert from "node:assert/strict";
import { NonBlockingFd, openPty } from "./pty.ts";
import { openSerialBackend } from "../serial_backends.ts";

const linux = Deno.build.os === "linux";

Deno.test({
  name: "openPty gives a raw pty: bytes pass unchanged both ways, and reads never block",
  ignore: !linux,
  async fn() {
    const pty = openPty();
    try {
      assert.match(pty.path, /^\/dev\/pts\/\d+$/);
      assert.deepEqual(pty.master.read(), new Uint8Array(0), "nobody attached: nothing, at once");
      const slave = await Deno.open(pty.path, { read: true, write: true });
      try {
        // Guest output: "\n" must not become "\r\n" and nothing is held back for a line.
        pty.master.write(new TextEncoder().encode("ab\n\x03"));
        const buf = new Uint8Array(16);
        const n = await slave.read(buf);
        assert.deepEqual([...buf.subarray(0, n!)], [0x61, 0x62, 0x0a, 0x03]);
        // Typed by the person: "\r" stays "\r", and is not echoed back to the guest.
        await slave.write(new TextEncoder().encode("ls\r"));
        let got = new Uint8Array(0);
        for (let i = 0; i < 100 && got.length < 3; i++) {
          const r = pty.master.read();
          if (r && r.length) got = new Uint8Array([...got, ...r]);
          else await new Promise((ok) => setTimeout(ok, 5));
        }
        assert.deepEqual([...got], [0x6c, 0x73, 0x0d]);
      } finally {
        slave.close();
      }
    } finally {
      pty.master.close();
    }
  },
});

Deno.test({
  name: "serial backends: a file receives the output; a pipe reads PATH.in and writes PATH.out",
  ignore: !linux,
  async fn() {
    const dir = await Deno.makeTempDir();
    try {
      const file = openSerialBackend(2, { file: `${dir}/com2.log` })!;
      file.write(new TextEncoder().encode("hello\n"));
      file.close();
      assert.equal(await Deno.readTextFile(`${dir}/com2.log`), "hello\n");

      for (const end of ["in", "out"]) {
        const mk = new Deno.Command("mkfifo", { args: [`${dir}/p.${end}`] }).outputSync();
        assert.ok(mk.success);
      }
      const pipe = openSerialBackend(3, { pipe: `${dir}/p` })!;
      const writer = await Deno.open(`${dir}/p.in`, { write: true });
      await writer.write(new TextEncoder().encode("x"));
      let got: number[] = [];
      for (let i = 0; i < 100 && got.length === 0; i++) {
        got = [...pipe.poll()];
        if (!got.length) await new Promise((ok) => setTimeout(ok, 5));
      }
      assert.deepEqual(got, [0x78]);
      pipe.write(new Uint8Array([0x79])); // no reader on p.out yet: dropped, no block
      // Opening a FIFO to read waits for a writer: the backend opens its end on a later write.
      const opening = Deno.open(`${dir}/p.out`, { read: true });
      let reader: Deno.FsFile | null = null;
      opening.then((r) => reader = r);
      for (let i = 0; i < 200 && reader === null; i++) {
        pipe.write(new Uint8Array([0x7a]));
        await new Promise((ok) => setTimeout(ok, 5));
      }
      reader = await opening;
      const b = new Uint8Array(4);
      assert.equal(await reader.read(b), 1);
      assert.equal(b[0], 0x7a);
      reader.close();
      writer.close();
      pipe.close();
      assert.throws(() => NonBlockingFd.open(`${dir}/nothing`, "r"), /ENOENT|errno 2/);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
