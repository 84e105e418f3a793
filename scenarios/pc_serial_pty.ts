import assert from "node:assert/strict";
import { scenario } from "../mod.ts";

/** Reads from a terminal until `pattern` shows up (the reads end with the match). */
async function readUntil(tty: Deno.FsFile, pattern: RegExp): Promise<string> {
  const buf = new Uint8Array(4096);
  const decoder = new TextDecoder();
  let text = "";
  while (!pattern.test(text)) {
    const n = await tty.read(buf);
    if (n === null) throw new Error(`the pty closed before ${pattern}; it said:\n${text}`);
    text += decoder.decode(buf.subarray(0, n), { stream: true });
  }
  return text;
}

export default scenario(
  "COM2 on a host pty: a program attached to the pty types a command to minios's shell and reads the reply",
  async ({ boot }) => {
    const vm = await boot({
      kernel: "fixtures/build/minios.elf",
      cmdline: "com2",
      serial: { com2: { pty: true } },
    });
    const path = vm.ptys[2];
    assert.match(path ?? "", /^\/dev\/pts\/\d+$/, "the pty's path is announced");
    await vm.console.expect("minios$ ", { timeout: "5s" });
    // What `screen /dev/pts/N` or `minicom -p /dev/pts/N` would do: open it, type, read.
    const tty = await Deno.open(path, { read: true, write: true });
    try {
      await tty.write(new TextEncoder().encode("fw\r"));
      const reply = await readUntil(tty, /fw: checksums ok\n/);
      assert.match(reply, /fw: mp: ioapic at 0xfec00000, irq0 -> intin 2\n/);
    } finally {
      tty.close();
    }
    // The same shell answers on COM1 too: one shell, two terminals.
    await vm.console.expect("fw: checksums ok\n", { timeout: "5s" });
    vm.console.send("exit 0\r");
    assert.equal(await vm.exit(), 1);
  },
);
