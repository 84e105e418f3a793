import assert from "node:assert/strict";
import { HostDisks } from "./host_disks.ts";
import { CowOverlay } from "./cow_overlay.ts";
import { DiskFaults } from "./disk_faults.ts";
import type { BlockResult } from "../devices/block_backend.ts";
import { MemoryBlockBackend, SECTOR_SIZE } from "../devices/block_backend.ts";
import { ManualClock } from "../devices/device_clock.ts";
import { resolveDisks } from "./disk_options.ts";
import { MachineDisks } from "./machine_disks.ts";
import { type DiskFile, startDiskIo } from "./disk_io_protocol.ts";

/** Host disks with their own I/O Worker; `close()` ends both as a machine's end would. */
function open(files: DiskFile[]): HostDisks {
  const io = startDiskIo();
  const d = new HostDisks(files, io.port);
  const close = d.close.bind(d);
  d.close = () => {
    close();
    io.worker.terminate();
  };
  return d;
}

async function image(sectors: number, fill = (i: number) => (i * 31) & 0xff) {
  const dir = await Deno.makeTempDir({ prefix: "ring3-disk-test-" });
  const path = `${dir}/d.img`;
  const bytes = new Uint8Array(sectors * SECTOR_SIZE).map((_, i) => fill(i));
  await Deno.writeFile(path, bytes);
  return { dir, path, bytes };
}

/** Runs a request and polls until it completes, as the machine's loop would. */
function run(disks: HostDisks, start: (done: (r: BlockResult) => void) => void): BlockResult {
  let result: BlockResult | null = null;
  start((r) => result = r);
  const t0 = performance.now();
  while (result === null) {
    if (performance.now() - t0 > 10_000) throw new Error("disk request never completed");
    disks.wait(50);
  }
  return result;
}

Deno.test("overlay disk: reads see the guest's writes, the file never changes", async () => {
  const { dir, path, bytes } = await image(64);
  const disks = open(await resolveDisks([path]));
  try {
    const b = disks.backend(0)!;
    assert.equal(b.sectorCount, 64);
    const data = new Uint8Array(2 * SECTOR_SIZE).fill(0xab);
    assert.deepEqual(run(disks, (d) => b.write(10, data, d)), { ok: true });
    const r = run(disks, (d) => b.read(9, 4, d));
    assert.ok(r.ok);
    assert.deepEqual(r.data!.subarray(0, SECTOR_SIZE), bytes.subarray(9 * 512, 10 * 512));
    assert.deepEqual(r.data!.subarray(SECTOR_SIZE, 3 * SECTOR_SIZE), data);
    assert.deepEqual(r.data!.subarray(3 * SECTOR_SIZE), bytes.subarray(12 * 512, 13 * 512));
    assert.deepEqual(run(disks, (d) => b.flush(d)), { ok: true });
  } finally {
    disks.close(); // the machine's end, or its death: the overlay goes with the Worker
  }
  assert.deepEqual(await Deno.readFile(path), bytes, "base image unchanged");
  await Deno.remove(dir, { recursive: true });
});

Deno.test("overlay disk: a Worker killed with writes queued leaves the file unchanged", async () => {
  const { dir, path, bytes } = await image(512);
  const disks = open(await resolveDisks([path]));
  const b = disks.backend(0)!;
  for (let i = 0; i < 8; i++) {
    b.write(i * 64, new Uint8Array(64 * SECTOR_SIZE).fill(i + 1), () => {});
  }
  disks.close(); // killed mid-flight
  assert.deepEqual(await Deno.readFile(path), bytes);
  await Deno.remove(dir, { recursive: true });
});

Deno.test("write-through disk: writes reach the file; a partial last sector reads as zeros", async () => {
  const { dir, path } = await image(8);
  await Deno.writeFile(path, new Uint8Array(7 * SECTOR_SIZE + 100).fill(1));
  const disks = open(await resolveDisks([{ path, writeThrough: true }]));
  try {
    const b = disks.backend(0)!;
    assert.equal(b.sectorCount, 8);
    const r = run(disks, (d) => b.read(7, 1, d));
    assert.ok(r.ok);
    assert.deepEqual(r.data!.subarray(0, 100), new Uint8Array(100).fill(1));
    assert.deepEqual(r.data!.subarray(100), new Uint8Array(412));
    run(disks, (d) => b.write(2, new Uint8Array(SECTOR_SIZE).fill(0x5a), d));
    run(disks, (d) => b.flush(d));
  } finally {
    disks.close();
  }
  const after = await Deno.readFile(path);
  assert.deepEqual(after.subarray(2 * 512, 3 * 512), new Uint8Array(512).fill(0x5a));
  await Deno.remove(dir, { recursive: true });
});

Deno.test("two disks have requests in flight on the host at once", async () => {
  const a = await image(256), b = await image(256, (i) => i & 0x7f);
  const disks = open(await resolveDisks([a.path, { path: b.path, index: 2 }]));
  try {
    const done: number[] = [];
    disks.backend(0)!.read(0, 256, () => done.push(0));
    disks.backend(2)!.read(0, 256, () => done.push(2));
    assert.equal(disks.inFlight, 2);
    const t0 = performance.now();
    while (done.length < 2 && performance.now() - t0 < 10_000) disks.wait(50);
    assert.deepEqual(done.sort(), [0, 2]);
  } finally {
    disks.close();
  }
  await Deno.remove(a.dir, { recursive: true });
  await Deno.remove(b.dir, { recursive: true });
});

Deno.test("resolveDisks() refuses missing files and taken positions with the path named", async () => {
  await assert.rejects(resolveDisks(["/nonexistent/x.img"]), /cannot use disk image \/nonexistent/);
  const { dir, path } = await image(1);
  await assert.rejects(resolveDisks([{ path, index: 1 }, { path, index: 1 }]), /index 1 is taken/);
  assert.deepEqual(
    (await resolveDisks([{ path, index: 0 }, path])).map((d) => d.index),
    [0, 1],
  );
  await Deno.remove(dir, { recursive: true });
});

Deno.test("CowOverlay keeps written sectors and reports the runs the base must supply", () => {
  const o = new CowOverlay();
  o.write(4, new Uint8Array(2 * SECTOR_SIZE).fill(9));
  assert.deepEqual(o.missing(2, 6), [{ first: 2, count: 2 }, { first: 6, count: 2 }]);
  const into = new Uint8Array(6 * SECTOR_SIZE);
  o.apply(2, 6, into);
  assert.equal(into[2 * SECTOR_SIZE], 9);
  assert.equal(into[0], 0);
  assert.equal(o.size, 2);
});

Deno.test("disk faults: fail once or always, delay, tear; each logged", () => {
  const clock = new ManualClock();
  const log: string[] = [];
  const faults = new DiskFaults("disk 0", clock, (d) => log.push(d));
  const mem = new MemoryBlockBackend(64);
  const b = faults.wrap(mem);
  const results = new Map<string, string>();
  const settle = () => {
    mem.complete();
    clock.advance(1e9);
    mem.complete();
  };
  faults.add({ action: "fail-read", sector: 5, count: 2, times: Infinity, delayNs: 0 });
  for (const [lba, n] of [[0, 8], [6, 1], [7, 1]]) {
    b.read(lba, n, (r) => results.set(`${lba}+${n}`, r.ok ? "ok" : `fail ${r.sector}`));
  }
  settle();
  assert.deepEqual(Object.fromEntries(results), { "0+8": "fail 5", "6+1": "fail 6", "7+1": "ok" });
  assert.match(log[0], /read 0\+8 failed at sector 5 \(always\)/);

  // A torn write: the first `keep` sectors reach the backing, the command succeeds.
  faults.add({ action: "tear-write", sector: 20, count: 1, times: 1, delayNs: 0, keep: 1 });
  let torn: BlockResult | null = null;
  b.write(20, new Uint8Array(3 * SECTOR_SIZE).fill(7), (r) => torn = r);
  settle();
  assert.deepEqual(torn, { ok: true });
  assert.equal(mem.get(20, 1)[0], 7);
  assert.equal(mem.get(21, 1)[0], 0);

  // A failed write keeps the sectors before the bad one.
  faults.add({ action: "fail-write", sector: 31, count: 1, times: 1, delayNs: 0 });
  let failed: BlockResult | null = null;
  b.write(30, new Uint8Array(3 * SECTOR_SIZE).fill(3), (r) => failed = r);
  settle();
  assert.equal((failed as BlockResult | null)?.ok, false);
  assert.equal(mem.get(30, 1)[0], 3);
  assert.equal(mem.get(31, 1)[0], 0);

  // A delay holds the completion in guest time.
  faults.add({ action: "delay-read", sector: 40, count: 1, times: 1, delayNs: 5e6 });
  let delayed = false;
  b.read(40, 1, () => delayed = true);
  mem.complete();
  clock.advance(4e6);
  assert.equal(delayed, false);
  clock.advance(1e6);
  assert.equal(delayed, true);
  assert.equal(faults.rules.length, 1, "only the 'always' rule is left");
});

Deno.test("a host request that never completes stops holding guest time after the patience", async () => {
  const { dir, path } = await image(8);
  const channel = new MessageChannel(); // nobody serves port1: the I/O never completes
  const log: string[] = [];
  const disks = new MachineDisks(
    await resolveDisks([path]),
    channel.port2,
    new ManualClock(),
    (d) => log.push(d),
    50,
  );
  try {
    disks.backend(0)!.read(0, 1, () => {});
    assert.equal(disks.busy, true);
    await new Promise((r) => setTimeout(r, 80));
    assert.equal(disks.busy, false);
    assert.match(log[0], /host I\/O outstanding for 0.05 s; guest time moves on/);
  } finally {
    disks.close();
    channel.port1.close();
    await Deno.remove(dir, { recursive: true });
  }
});
