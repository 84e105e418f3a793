/**
 * `deno task boot KERNEL [--memory 64M] [--cmdline S] [--timeout 1h] [--rewrite fast|trap]
 * [--no-rewrite] [--disk FILE]... [--disk-write-through] [--serial comN=pty|file:PATH|pipe:PATH]...`:
 * boots a
 * kernel with its console on this terminal, as QEMU's -nographic does (seed 002: the main
 * console is whatever terminal the kernel was invoked in). Keys go to the guest's COM1 in raw
 * mode; Ctrl-A x quits, Ctrl-A Ctrl-A sends a Ctrl-A. Without a terminal, standard input is
 * forwarded as it comes. `--serial com2=pty` backs COM2 with a host pty and prints its path,
 * for `screen /dev/pts/N` or `minicom -p /dev/pts/N` from another terminal. The exit status is the guest's debug-exit status, or 1 for a failure.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { formatFailure, type SerialBackendSpec, Vm } from "../mod.ts";

const { positionals, values } = parseArgs({
  args: Deno.args,
  allowPositionals: true,
  options: {
    memory: { type: "string", default: "64M" },
    cmdline: { type: "string", default: "" },
    timeout: { type: "string", default: "1h" },
    rewrite: { type: "string", default: "fast" },
    "no-rewrite": { type: "boolean" },
    disk: { type: "string", multiple: true },
    "disk-write-through": { type: "boolean" },
    serial: { type: "string", multiple: true },
    help: { type: "boolean", short: "h" },
  },
});
const form = values.rewrite;
if (values.help || positionals.length !== 1 || (form !== "fast" && form !== "trap")) {
  console.log(
    "usage: deno task boot KERNEL [--memory 64M] [--cmdline S] [--timeout 1h] " +
      "[--rewrite fast|trap] [--no-rewrite]\n" +
      "                  [--disk FILE]... [--disk-write-through]\n" +
      "                  [--serial comN=pty|file:PATH|pipe:PATH]... (N = 2..4)\n" +
      "  Each --disk is the next ATA position (primary master first); writes go to an overlay\n" +
      "  that is dropped at the end unless --disk-write-through.\n" +
      "  Ctrl-A x quits; Ctrl-A Ctrl-A sends Ctrl-A.",
  );
  Deno.exit(values.help ? 0 : 2);
}
const serial: Partial<Record<"com2" | "com3" | "com4", SerialBackendSpec>> = {};
for (const s of values.serial ?? []) {
  const m = /^(com[234])=(pty|file:(.+)|pipe:(.+))$/.exec(s);
  if (!m) {
    console.error(`boot: --serial ${s}: expected com2..com4=pty, =file:PATH or =pipe:PATH`);
    Deno.exit(2);
  }
  serial[m[1] as "com2"] = m[2] === "pty"
    ? { pty: true }
    : m[3] !== undefined
    ? { file: m[3] }
    : { pipe: m[4] };
}
const vm = await Vm.start({
  serial,
  kernel: positionals[0],
  memory: values.memory,
  cmdline: values.cmdline,
  timeout: values.timeout,
  rewrite: values["no-rewrite"] ? false : form,
  paceIdle: true,
  disks: (values.disk ?? []).map((path) => ({
    path,
    writeThrough: values["disk-write-through"] ?? false,
  })),
}).catch((e) => {
  console.error(`boot: ${e.message}`);
  Deno.exit(1);
});

const out = new TextEncoder();
for (const [line, path] of Object.entries(vm.ptys)) {
  Deno.stderr.writeSync(out.encode(`[ring3: COM${line} is on ${path}]\r\n`));
}
vm.console.onOutput((text) => Deno.stdout.writeSync(out.encode(text)));
const tty = Deno.stdin.isTerminal();
if (tty) {
  Deno.stdin.setRaw(true);
  Deno.stderr.writeSync(out.encode("[ring3: console attached; Ctrl-A x to quit]\r\n"));
}

let quitting = false;
(async () => {
  const buf = new Uint8Array(256);
  let escape = false;
  for (;;) {
    const n = await Deno.stdin.read(buf).catch(() => null);
    if (n === null) break;
    const forward: number[] = [];
    for (const b of buf.subarray(0, n)) {
      if (tty && escape) {
        escape = false;
        if (b === 0x78 /* x */) {
          quitting = true;
          await vm.stop("quit from the console (Ctrl-A x)");
          return;
        }
        forward.push(b);
      } else if (tty && b === 0x01) {
        escape = true;
      } else {
        forward.push(b);
      }
    }
    if (forward.length) vm.console.send(new Uint8Array(forward));
  }
})();

const r = await vm.finished;
if (tty) Deno.stdin.setRaw(false);
if (r.outcome === "exit") {
  Deno.stderr.writeSync(out.encode(`\n[ring3: guest exited with status ${r.exitCode}]\n`));
  Deno.exit(r.exitCode);
}
if (!quitting) Deno.stderr.writeSync(out.encode(`\n[ring3: ${formatFailure(r.failure)}]\n`));
Deno.exit(quitting ? 0 : 1);
