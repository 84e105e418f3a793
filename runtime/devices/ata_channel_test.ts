import assert from "node:assert/strict";
import { AtaChannel } from "./ata_channel.ts";
import { AtaDrive } from "./ata_drive.ts";
import { ATA_CMD, ATA_CONTROL, ATA_ERROR, ATA_REG, ATA_STATUS } from "./ata_registers.ts";
import { identifyString } from "./ata_identify.ts";
import { type BlockBackend, MemoryBlockBackend, SECTOR_SIZE } from "./block_backend.ts";
import { ManualClock } from "./device_clock.ts";
import { IrqLine } from "./irq_line.ts";
import { DiskFaults } from "../disk/disk_faults.ts";

const S = ATA_STATUS;
const LATENCY = 20_000;

function rig(sectors = 4096, slave = false, wrap?: (b: BlockBackend) => BlockBackend) {
  const clock = new ManualClock();
  const backend = new MemoryBlockBackend(sectors);
  const irq = new IrqLine("ata0");
  const edges: boolean[] = [];
  irq.connect((l) => edges.push(l));
  const mk = (serial: string) =>
    new AtaDrive({ backend: wrap ? wrap(backend) : backend, clock, serial, latencyNs: LATENCY });
  const ch = new AtaChannel({
    name: "ata0",
    irq,
    drives: [mk("MASTER"), slave ? mk("SLAVE") : null],
  });
  /** Lets host I/O finish and guest time pass. */
  const settle = () => {
    for (let i = 0; i < 4; i++) {
      backend.complete();
      clock.advance(LATENCY);
    }
  };
  const out = (reg: number, v: number) => ch.write(reg, v, 1);
  const status = () => ch.read(ATA_REG.STATUS, 1);
  const lba28 = (cmd: number, lba: number, count: number) => {
    out(ATA_REG.DEVICE, 0xe0 | ((lba >>> 24) & 0x0f));
    out(ATA_REG.COUNT, count & 0xff);
    out(ATA_REG.LBA_LOW, lba & 0xff);
    out(ATA_REG.LBA_MID, (lba >>> 8) & 0xff);
    out(ATA_REG.LBA_HIGH, (lba >>> 16) & 0xff);
    out(ATA_REG.COMMAND, cmd);
  };
  const lba48 = (cmd: number, lba: number, count: number) => {
    out(ATA_REG.DEVICE, 0x40);
    out(ATA_REG.COUNT, (count >>> 8) & 0xff);
    out(ATA_REG.LBA_LOW, Math.floor(lba / 2 ** 24) & 0xff);
    out(ATA_REG.LBA_MID, Math.floor(lba / 2 ** 32) & 0xff);
    out(ATA_REG.LBA_HIGH, Math.floor(lba / 2 ** 40) & 0xff);
    out(ATA_REG.COUNT, count & 0xff);
    out(ATA_REG.LBA_LOW, lba & 0xff);
    out(ATA_REG.LBA_MID, (lba >>> 8) & 0xff);
    out(ATA_REG.LBA_HIGH, (lba >>> 16) & 0xff);
    out(ATA_REG.COMMAND, cmd);
  };
  const readBlock = (sectors = 1) => {
    const b = new Uint8Array(sectors * SECTOR_SIZE);
    for (let i = 0; i < b.length; i += 2) {
      const w = ch.read(ATA_REG.DATA, 2);
      b[i] = w & 0xff;
      b[i + 1] = w >> 8;
    }
    return b;
  };
  const writeBlock = (data: Uint8Array) => {
    for (let i = 0; i < data.length; i += 4) {
      ch.write(
        ATA_REG.DATA,
        (data[i] | data[i + 1] << 8 | data[i + 2] << 16 | data[i + 3] << 24) >>> 0,
        4,
      );
    }
  };
  return {
    ch,
    clock,
    backend,
    irq,
    edges,
    settle,
    out,
    status,
    lba28,
    lba48,
    readBlock,
    writeBlock,
  };
}

function pattern(lba: number, sectors: number): Uint8Array {
  const b = new Uint8Array(sectors * SECTOR_SIZE);
  for (let i = 0; i < b.length; i++) b[i] = (lba * 7 + i * 13 + (i >> 9)) & 0xff;
  return b;
}

Deno.test("IDENTIFY DEVICE gives model, serial, LBA28/48 sizes and a valid checksum, with IRQ", () => {
  const r = rig(3_000_000_00 / 100); // 3 000 000 sectors
  r.out(ATA_REG.DEVICE, 0xa0);
  r.out(ATA_REG.COMMAND, ATA_CMD.IDENTIFY_DEVICE);
  assert.equal(r.irq.level, true);
  assert.equal(r.ch.control.read(0, 1) & (S.DRQ | S.BSY), S.DRQ, "alt status: DRQ");
  assert.equal(r.irq.level, true, "alt status does not clear the interrupt");
  assert.equal(r.status() & S.DRQ, S.DRQ);
  assert.equal(r.irq.level, false, "status read clears it");
  const b = r.readBlock();
  const w = new Uint16Array(b.buffer);
  assert.equal(identifyString(w, 27, 40), "QEMU HARDDISK");
  assert.equal(identifyString(w, 10, 20), "MASTER");
  assert.equal(w[60] | w[61] << 16, 3_000_000);
  assert.equal(w[100] + w[101] * 65536, 3_000_000);
  assert.ok(w[83] & (1 << 10), "48-bit address feature set");
  assert.ok(w[49] & (1 << 9), "LBA");
  assert.equal(b.reduce((a, x) => a + x, 0) & 0xff, 0, "integrity word checksum");
  assert.equal(w[255] & 0xff, 0xa5);
  assert.equal(r.status(), S.DRDY | S.DSC, "transfer over");
});

Deno.test("an absent slave reads status 0 and ignores commands; an empty channel reads 0", () => {
  const r = rig();
  r.out(ATA_REG.DEVICE, 0xb0);
  assert.equal(r.status(), 0);
  r.out(ATA_REG.COMMAND, ATA_CMD.IDENTIFY_DEVICE);
  assert.equal(r.irq.level, false);
  const empty = new AtaChannel({ name: "ata1", irq: new IrqLine("x"), drives: [null, null] });
  assert.equal(empty.read(ATA_REG.STATUS, 1), 0);
  assert.equal(empty.read(ATA_REG.LBA_MID, 1), 0);
});

Deno.test("READ SECTORS (LBA28) waits for host I/O and guest latency, then one IRQ per block", () => {
  const r = rig();
  r.backend.put(100, pattern(100, 3));
  r.lba28(ATA_CMD.READ_SECTORS, 100, 3);
  assert.equal(r.status() & S.BSY, S.BSY);
  assert.deepEqual(r.backend.requests, ["read 100+3"]);
  r.clock.advance(LATENCY);
  assert.equal(r.status() & S.BSY, S.BSY, "latency passed, host not done: still busy");
  r.backend.complete();
  assert.equal(r.irq.level, true, "host done after the latency: completes at once");
  const got: Uint8Array[] = [];
  for (let i = 0; i < 3; i++) {
    assert.equal(r.irq.level, true, `IRQ for block ${i}`);
    assert.equal(r.status(), S.DRDY | S.DSC | S.DRQ);
    got.push(r.readBlock());
  }
  assert.equal(r.irq.level, false, "no IRQ after the last data-in block");
  assert.equal(r.status(), S.DRDY | S.DSC);
  assert.deepEqual(new Uint8Array([...got[0], ...got[1], ...got[2]]), pattern(100, 3));
});

Deno.test("host done before the latency: the IRQ waits for guest time", () => {
  const r = rig();
  r.lba28(ATA_CMD.READ_SECTORS, 0, 1);
  r.backend.complete();
  assert.equal(r.irq.level, false);
  r.clock.advance(LATENCY - 1);
  assert.equal(r.irq.level, false);
  r.clock.advance(1);
  assert.equal(r.irq.level, true);
});

Deno.test("READ SECTORS EXT addresses above 2^28 with HOB bytes; count 0 means 65536", () => {
  const big = 2 ** 28 + 70_000;
  const r = rig(big + 300);
  const lba = 2 ** 28 + 5;
  r.backend.put(lba, pattern(lba, 2));
  r.lba48(ATA_CMD.READ_SECTORS_EXT, lba, 2);
  r.settle();
  assert.deepEqual(r.backend.requests, [`read ${lba}+2`]);
  assert.deepEqual(new Uint8Array([...r.readBlock(), ...r.readBlock()]), pattern(lba, 2));
  // HOB: reads return the high bytes while Device Control bit 7 is set.
  r.ch.control.write(0, ATA_CONTROL.HOB, 1);
  assert.equal(r.ch.read(ATA_REG.LBA_LOW, 1), 0x10);
  r.ch.control.write(0, 0, 1);
  assert.equal(r.ch.read(ATA_REG.LBA_LOW, 1), lba & 0xff);
  r.lba48(ATA_CMD.READ_SECTORS_EXT, 0, 0);
  r.settle();
  assert.deepEqual(r.backend.requests.at(-1), "read 0+256", "65536 sectors, fetched 256 at a time");
  // Past the end of the medium: IDNF, with no host request.
  const small = rig(100);
  small.lba28(ATA_CMD.READ_SECTORS, 99, 2);
  assert.equal(small.status(), S.DRDY | S.ERR);
  assert.equal(small.ch.read(ATA_REG.ERROR, 1), ATA_ERROR.IDNF);
  assert.deepEqual(small.backend.requests, []);
});

Deno.test("WRITE SECTORS: DRQ without IRQ first, IRQ per later block and at the end", () => {
  const r = rig();
  const data = pattern(9, 2);
  r.lba28(ATA_CMD.WRITE_SECTORS, 40, 2);
  assert.equal(r.irq.level, false, "no interrupt before the first data-out block");
  assert.equal(r.status(), S.DRDY | S.DSC | S.DRQ);
  r.writeBlock(data.subarray(0, 512));
  assert.equal(r.irq.level, true, "interrupt for the second block");
  assert.equal(r.status() & S.DRQ, S.DRQ);
  r.writeBlock(data.subarray(512));
  assert.equal(r.status() & S.BSY, S.BSY, "busy while the host writes");
  r.settle();
  assert.equal(r.irq.level, true);
  assert.equal(r.status(), S.DRDY | S.DSC);
  assert.deepEqual(r.backend.get(40, 2), data);
});

Deno.test("READ/WRITE MULTIPLE move SET MULTIPLE MODE blocks; without it they abort", () => {
  const r = rig();
  r.lba28(ATA_CMD.READ_MULTIPLE, 0, 8);
  assert.equal(r.status(), S.DRDY | S.ERR);
  assert.equal(r.ch.read(ATA_REG.ERROR, 1), ATA_ERROR.ABRT);
  r.out(ATA_REG.COUNT, 3);
  r.out(ATA_REG.COMMAND, ATA_CMD.SET_MULTIPLE_MODE);
  assert.equal(r.status(), S.DRDY | S.ERR, "3 is not a power of two");
  r.out(ATA_REG.COUNT, 4);
  r.out(ATA_REG.COMMAND, ATA_CMD.SET_MULTIPLE_MODE);
  assert.equal(r.status(), S.DRDY | S.DSC);
  const data = pattern(3, 10);
  r.lba28(ATA_CMD.WRITE_MULTIPLE, 200, 10);
  let irqs = 0;
  r.irq.connect((l) => l && irqs++);
  r.writeBlock(data.subarray(0, 4 * 512));
  r.status();
  r.writeBlock(data.subarray(4 * 512, 8 * 512));
  r.status();
  r.writeBlock(data.subarray(8 * 512)); // the last block is short: 2 sectors
  r.settle();
  assert.equal(r.status(), S.DRDY | S.DSC);
  assert.equal(irqs, 3, "blocks 2 and 3, and the end");
  assert.deepEqual(r.backend.requests.at(-1), "write 200+10", "one host write for the command");
  r.lba28(ATA_CMD.READ_MULTIPLE, 200, 10);
  r.settle();
  const got: number[] = [];
  for (const n of [4, 4, 2]) {
    assert.equal(r.irq.level, true);
    r.status();
    got.push(...r.readBlock(n));
  }
  assert.equal(r.status(), S.DRDY | S.DSC);
  assert.deepEqual(new Uint8Array(got), data);
});

Deno.test("nIEN masks INTRQ; SRST resets both drives to the signature", () => {
  const r = rig(4096, true);
  r.ch.control.write(0, ATA_CONTROL.NIEN, 1);
  r.out(ATA_REG.DEVICE, 0xa0);
  r.out(ATA_REG.COMMAND, ATA_CMD.IDENTIFY_DEVICE);
  assert.equal(r.irq.level, false);
  r.ch.control.write(0, 0, 1);
  assert.equal(r.irq.level, true, "the pending interrupt shows once unmasked");
  r.ch.control.write(0, ATA_CONTROL.SRST, 1);
  assert.equal(r.ch.control.read(0, 1) & S.BSY, S.BSY);
  assert.equal(r.irq.level, false);
  r.ch.control.write(0, 0, 1);
  assert.equal(r.status(), S.DRDY | S.DSC);
  assert.deepEqual(
    [ATA_REG.COUNT, ATA_REG.LBA_LOW, ATA_REG.LBA_MID, ATA_REG.LBA_HIGH].map((p) => r.ch.read(p, 1)),
    [1, 1, 0, 0],
  );
  assert.equal(r.ch.read(ATA_REG.ERROR, 1), 1);
  r.out(ATA_REG.DEVICE, 0xb0);
  r.out(ATA_REG.COMMAND, ATA_CMD.IDENTIFY_DEVICE);
  r.status();
  const w = new Uint16Array(r.readBlock().buffer);
  assert.equal(identifyString(w, 10, 20), "SLAVE");
});

Deno.test("a reset drops a completion of the abandoned command", () => {
  const r = rig();
  r.lba28(ATA_CMD.READ_SECTORS, 0, 1);
  r.ch.control.write(0, ATA_CONTROL.SRST, 1);
  r.ch.control.write(0, 0, 1);
  r.settle();
  assert.equal(r.irq.level, false);
  assert.equal(r.status(), S.DRDY | S.DSC);
  assert.equal(r.clock.pending, 0);
});

Deno.test("unsupported commands and IDENTIFY PACKET abort with ABRT and an IRQ", () => {
  const r = rig();
  for (const cmd of [ATA_CMD.IDENTIFY_PACKET_DEVICE, 0xc8, /* READ DMA */ 0x00]) {
    r.out(ATA_REG.COMMAND, cmd);
    assert.equal(r.irq.level, true);
    assert.equal(r.status(), S.DRDY | S.ERR);
    assert.equal(r.ch.read(ATA_REG.ERROR, 1), ATA_ERROR.ABRT);
  }
});

Deno.test("an injected read error reports UNC and the failing sector; the drive stays usable", () => {
  let faults!: DiskFaults;
  const log: string[] = [];
  const clock0 = new ManualClock();
  const r = rig(4096, false, (b) => {
    faults = new DiskFaults("disk 0", clock0, (d) => log.push(d));
    return faults.wrap(b);
  });
  // The fault layer's own clock: advance it with the rig's.
  const advance = () => {
    clock0.advance(LATENCY);
    r.settle();
    clock0.advance(LATENCY);
    r.settle();
  };
  faults.add({ action: "fail-read", sector: 12, count: 1, times: 1, delayNs: 0 });
  r.lba28(ATA_CMD.READ_SECTORS, 10, 4);
  advance();
  assert.equal(r.irq.level, true);
  assert.equal(r.status(), S.DRDY | S.ERR);
  assert.equal(r.ch.read(ATA_REG.ERROR, 1), ATA_ERROR.UNC);
  assert.equal(r.ch.read(ATA_REG.LBA_LOW, 1), 12);
  assert.match(log[0], /read 10\+4 failed at sector 12/);
  r.lba28(ATA_CMD.READ_SECTORS, 10, 4);
  advance();
  assert.equal(r.status(), S.DRDY | S.DSC | S.DRQ, "once: the retry works");
});

Deno.test("random register traffic never throws", () => {
  const r = rig(64, true);
  let seed = 12345;
  const rnd = () => (seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32;
  for (let i = 0; i < 20000; i++) {
    const port = Math.floor(rnd() * 8);
    const size = ([1, 2, 4] as const)[Math.floor(rnd() * 3)];
    if (rnd() < 0.5) r.ch.read(port, size);
    else r.ch.write(port, Math.floor(rnd() * 2 ** 32) >>> 0, size);
    if (rnd() < 0.05) r.ch.control.write(0, Math.floor(rnd() * 256), 1);
    if (rnd() < 0.1) r.settle();
  }
});

Deno.test("CHS addressing, INITIALIZE DEVICE PARAMETERS, READ NATIVE MAX, FLUSH, DIAGNOSTIC", () => {
  const r = rig(16 * 63 * 10); // 10 cylinders of the default 16 heads x 63 sectors
  // C=1 H=2 S=3 is LBA (1 * 16 + 2) * 63 + 2 = 1136.
  r.backend.put(1136, pattern(1136, 1));
  r.out(ATA_REG.DEVICE, 0xa0 | 2);
  r.out(ATA_REG.COUNT, 1);
  r.out(ATA_REG.LBA_LOW, 3);
  r.out(ATA_REG.LBA_MID, 1);
  r.out(ATA_REG.LBA_HIGH, 0);
  r.out(ATA_REG.COMMAND, ATA_CMD.READ_SECTORS);
  r.settle();
  r.status();
  assert.deepEqual(r.readBlock(), pattern(1136, 1));
  // Sector 0 does not exist in CHS.
  r.out(ATA_REG.LBA_LOW, 0);
  r.out(ATA_REG.COMMAND, ATA_CMD.READ_SECTORS);
  assert.equal(r.ch.read(ATA_REG.ERROR, 1), ATA_ERROR.IDNF);
  // A 4-head, 17-sector translation: C=0 H=1 S=1 is LBA 17.
  r.out(ATA_REG.DEVICE, 0xa0 | 3);
  r.out(ATA_REG.COUNT, 17);
  r.out(ATA_REG.COMMAND, ATA_CMD.INITIALIZE_DEVICE_PARAMETERS);
  assert.equal(r.status(), S.DRDY | S.DSC);
  r.out(ATA_REG.DEVICE, 0xa0 | 1);
  r.out(ATA_REG.COUNT, 1);
  r.out(ATA_REG.LBA_LOW, 1);
  r.out(ATA_REG.LBA_MID, 0);
  r.out(ATA_REG.COMMAND, ATA_CMD.READ_SECTORS);
  assert.equal(r.backend.requests.at(-1), "read 17+1");
  r.settle();
  r.status();
  r.readBlock();
  // READ NATIVE MAX ADDRESS: the last LBA in the task file.
  r.out(ATA_REG.DEVICE, 0xe0);
  r.out(ATA_REG.COMMAND, ATA_CMD.READ_NATIVE_MAX);
  r.status();
  const last = r.ch.read(ATA_REG.LBA_LOW, 1) | r.ch.read(ATA_REG.LBA_MID, 1) << 8 |
    r.ch.read(ATA_REG.LBA_HIGH, 1) << 16 | (r.ch.read(ATA_REG.DEVICE, 1) & 0x0f) << 24;
  assert.equal(last, 16 * 63 * 10 - 1);
  // FLUSH CACHE reaches the backend and interrupts when it is done.
  r.out(ATA_REG.COMMAND, ATA_CMD.FLUSH_CACHE);
  assert.equal(r.status() & S.BSY, S.BSY);
  r.settle();
  assert.equal(r.irq.level, true);
  assert.equal(r.status(), S.DRDY | S.DSC);
  assert.equal(r.backend.requests.at(-1), "flush");
  // EXECUTE DEVICE DIAGNOSTIC: signature and "passed", one interrupt.
  r.out(ATA_REG.COMMAND, ATA_CMD.EXECUTE_DEVICE_DIAGNOSTIC);
  assert.equal(r.irq.level, true);
  assert.equal(r.ch.read(ATA_REG.ERROR, 1), 1);
  assert.deepEqual([ATA_REG.COUNT, ATA_REG.LBA_LOW].map((p) => r.ch.read(p, 1)), [1, 1]);
});
