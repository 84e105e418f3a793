/**
 * Disk throughput: minios's `diskbench N` reads then writes N KiB through its ATA PIO driver
 * (READ/WRITE MULTIPLE, 256-sector commands, one interrupt per 16-sector block) on a disk
 * backed by a host file, against a plain host read of the same bytes of the same file in the
 * same run. Host time comes from when the guest's lines arrive; guest time from the guest clock
 * at those lines.
 *
 * @module
 */
import { Vm } from "../../mod.ts";

/** What {@link diskBench} measured. */
export interface DiskBenchResult {
  kib: number;
  guestRead: { hostMs: number; guestMs: number; mbPerHostS: number; mbPerGuestS: number };
  guestWrite: { hostMs: number; guestMs: number; mbPerHostS: number; mbPerGuestS: number };
  hostRead: { ms: number; mbPerS: number };
  /** Guest read throughput (host time) over the plain host read's. */
  readRatio: number;
  trapsByCause: Record<string, number>;
}

/**
 * Runs the disk bench.
 *
 * @param o CPU to pin to, KiB to move, whether the guest writes through to the file
 * @returns the figures
 */
export async function diskBench(
  o: { cpu: number; kib: number; writeThrough?: boolean },
): Promise<DiskBenchResult> {
  const dir = await Deno.makeTempDir({ prefix: "ring3-diskbench-" });
  try {
    const path = `${dir}/disk.img`;
    const bytes = new Uint8Array(o.kib * 2 * 1024).map((_, i) => (i * 131) >> 3);
    await Deno.writeFile(path, bytes);
    const vm = await Vm.start({
      kernel: "fixtures/build/minios.elf",
      cpu: o.cpu,
      timeout: "600s",
      disks: [{ path, writeThrough: o.writeThrough ?? false }],
    });
    const marks = new Map<string, { host: number; guest: number }>();
    let out = "";
    vm.console.onOutput((text, guestNs) => {
      out += text;
      for (const k of ["start", "read", "wrote"]) {
        if (!marks.has(k) && new RegExp(`diskbench: ${k}`).test(out)) {
          marks.set(k, { host: performance.now(), guest: guestNs });
        }
      }
    });
    await vm.console.expect("minios$ ", { timeout: "5s" });
    vm.console.send(`diskbench ${o.kib}\r`);
    await vm.console.expect(/diskbench: wrote .*\n/, { timeout: "600s" });
    vm.console.send("exit 0\r");
    await vm.exit();
    const r = await vm.result();
    if (/error/.test(out)) throw new Error(`diskbench failed:\n${out}`);
    const s = marks.get("start")!, rd = marks.get("read")!, wr = marks.get("wrote")!;
    const mb = o.kib / 1024;
    const phase = (a: typeof s, b: typeof s) => {
      const hostMs = b.host - a.host, guestMs = (b.guest - a.guest) / 1e6;
      return {
        hostMs: +hostMs.toFixed(1),
        guestMs: +guestMs.toFixed(1),
        mbPerHostS: +(mb / (hostMs / 1000)).toFixed(2),
        mbPerGuestS: +(mb / (guestMs / 1000)).toFixed(2),
      };
    };
    // The same bytes of the same file, read by the host in 128 KiB pieces (as the guest's
    // commands are): the page cache is as warm for it as for the guest.
    const f = await Deno.open(path);
    const chunk = new Uint8Array(128 * 1024);
    const t0 = performance.now();
    await f.seek(o.kib * 1024, Deno.SeekMode.Start);
    for (let left = o.kib * 1024; left > 0;) {
      const n = await f.read(chunk.subarray(0, Math.min(chunk.length, left)));
      if (!n) break;
      left -= n;
    }
    const hostMs = performance.now() - t0;
    f.close();
    const guestRead = phase(s, rd);
    return {
      kib: o.kib,
      guestRead,
      guestWrite: phase(rd, wr),
      hostRead: { ms: +hostMs.toFixed(2), mbPerS: +(mb / (hostMs / 1000)).toFixed(1) },
      readRatio: +(guestRead.mbPerHostS / (mb / (hostMs / 1000))).toFixed(4),
      trapsByCause: r.stats.trapsByCause,
    };
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

if (import.meta.main) {
  console.log(
    JSON.stringify(await diskBench({ cpu: 1, kib: Number(Deno.args[0] ?? 4096) }), null, 2),
  );
}
