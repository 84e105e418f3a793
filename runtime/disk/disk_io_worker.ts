/// <reference lib="deno.worker" />
/**
 * The disk I/O Worker of one machine: host file reads and writes happen here, never on the
 * thread that traces the guest (seed 002 §5.3.2). Each disk has its own queue, so requests to
 * different disks are in flight on the host at the same time; within a disk they run in order.
 * An overlay disk opens its file read-only: nothing the guest does can change it.
 *
 * @module
 */
import {
  dataOffset,
  type DiskFile,
  HEADER_BYTES,
  RESULT,
  SEQ,
  STATE,
  type ToDiskWorker,
  WORD,
  wordOf,
} from "./disk_io_protocol.ts";
import { CowOverlay } from "./cow_overlay.ts";
import { SECTOR_SIZE } from "../devices/block_backend.ts";

interface OpenDisk {
  file: Promise<Deno.FsFile>;
  overlay: CowOverlay | null;
  /** The tail of this disk's queue. */
  last: Promise<void>;
}

let shared: SharedArrayBuffer | null = null;
let words: Int32Array;
const disks = new Map<number, OpenDisk>();

// The machine's thread reaches this Worker through a MessagePort the scenario thread hands
// both sides (a Worker started by the blocked machine thread itself takes about 0.5 s to get
// its first message: measured, docs/design/2026-11-21-disk-io.md). Handlers are set
// synchronously: one installed after an await would miss the first messages.
self.onmessage = (e: MessageEvent<{ port: MessagePort }>) => {
  e.data.port.onmessage = (m: MessageEvent<ToDiskWorker>) => handle(m.data);
};

function handle(m: ToDiskWorker): void {
  if (m.type === "close") {
    self.close(); // an overlay dies here, unwritten
    return;
  }
  if (m.type === "open") {
    shared = m.shared;
    words = new Int32Array(shared, 0, HEADER_BYTES / 4);
    for (const d of m.disks) open(d);
    return;
  }
  const disk = disks.get(m.disk);
  if (!disk) return finish(m.disk, RESULT.IO_ERROR, 0);
  disk.last = disk.last.then(() => serve(disk, m)).catch(() =>
    finish(m.disk, RESULT.IO_ERROR, "lba" in m ? m.lba : 0)
  );
}

function open(d: DiskFile): void {
  const file = Deno.open(d.path, { read: true, write: d.writeThrough });
  file.catch(() => {}); // reported per request
  disks.set(d.index, {
    file,
    overlay: d.writeThrough ? null : new CowOverlay(),
    last: Promise.resolve(),
  });
}

async function serve(disk: OpenDisk, m: ToDiskWorker): Promise<void> {
  if (m.type === "open" || m.type === "close") return;
  const file = await disk.file;
  const area = (n: number) => new Uint8Array(shared!, dataOffset(m.disk), n * SECTOR_SIZE);
  switch (m.type) {
    case "read": {
      const into = area(m.count);
      const runs = disk.overlay?.missing(m.lba, m.count) ?? [{ first: m.lba, count: m.count }];
      for (const r of runs) {
        await readAt(
          file,
          r.first * SECTOR_SIZE,
          into.subarray(
            (r.first - m.lba) * SECTOR_SIZE,
            (r.first - m.lba + r.count) * SECTOR_SIZE,
          ),
        );
      }
      disk.overlay?.apply(m.lba, m.count, into);
      return finish(m.disk, RESULT.OK, 0);
    }
    case "write": {
      const data = area(m.count);
      if (disk.overlay) disk.overlay.write(m.lba, data);
      else await writeAt(file, m.lba * SECTOR_SIZE, data.slice());
      return finish(m.disk, RESULT.OK, 0);
    }
    case "flush":
      if (!disk.overlay) await file.sync();
      return finish(m.disk, RESULT.OK, 0);
  }
}

/** Fills `into` from `position`; past the end of the file reads zeros. */
async function readAt(file: Deno.FsFile, position: number, into: Uint8Array): Promise<void> {
  await file.seek(position, Deno.SeekMode.Start);
  let got = 0;
  while (got < into.length) {
    const n = await file.read(into.subarray(got));
    if (n === null || n === 0) break;
    got += n;
  }
  into.fill(0, got);
}

async function writeAt(file: Deno.FsFile, position: number, data: Uint8Array): Promise<void> {
  await file.seek(position, Deno.SeekMode.Start);
  let put = 0;
  while (put < data.length) put += await file.write(data.subarray(put));
}

function finish(disk: number, result: number, sector: number): void {
  const w = words;
  w[wordOf(disk, WORD.RESULT)] = result;
  w[wordOf(disk, WORD.SECTOR_LO)] = sector % 2 ** 32 | 0;
  w[wordOf(disk, WORD.SECTOR_HI)] = Math.floor(sector / 2 ** 32);
  Atomics.store(w, wordOf(disk, WORD.STATE), STATE.DONE);
  Atomics.add(words, SEQ, 1);
  Atomics.notify(words, SEQ);
}
