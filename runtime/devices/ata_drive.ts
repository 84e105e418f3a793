/**
 * One ATA disk (a PIO-only drive, ATA/ATAPI-6) behind an {@link AtaChannel}: it executes
 * commands from the channel's shared task file and moves sectors between its sector buffer and
 * a {@link BlockBackend}.
 *
 * Host I/O is asynchronous: a command that needs the backend sets BSY, starts the request and
 * returns. The drive finishes it (DRQ for the next block, or the end status, and INTRQ) once
 * two things hold: the backend called back, and the command's guest-time latency has passed on
 * the device clock. So the guest sees the same latency however fast the host is, and a slow
 * host delays the completion without stopping the machine (docs/design/2026-11-21-disk-io.md).
 *
 * Transfers follow the PIO data-in and data-out protocols of ATA-6 section 9.5/9.6: data-in
 * interrupts when each block is ready and not after the last one is read; data-out raises DRQ
 * without an interrupt for the first block and interrupts after each later block and at the
 * end. A block is one sector, or the SET MULTIPLE MODE size for READ/WRITE MULTIPLE.
 *
 * @module
 */
import { ATA_CMD, ATA_DEVICE, ATA_ERROR, ATA_STATUS } from "./ata_registers.ts";
import {
  defaultGeometry,
  type Geometry,
  identifyDevice,
  LBA28_LIMIT,
  MAX_MULTIPLE_SECTORS,
} from "./ata_identify.ts";
import {
  type BlockBackend,
  type BlockResult,
  MAX_REQUEST_SECTORS,
  SECTOR_SIZE,
} from "./block_backend.ts";
import type { DeviceClock } from "./device_clock.ts";

/** Guest time a command that touches the medium takes at least (a fast drive's overhead). */
export const DEFAULT_COMMAND_LATENCY_NS = 20_000;

/**
 * The task file registers: written by the host to both drives of a channel at once (so they
 * live in the channel), with the previous value of each kept for LBA48 ("HOB").
 */
export class Taskfile {
  features = 0;
  count = 0;
  lbaLow = 0;
  lbaMid = 0;
  lbaHigh = 0;
  hobFeatures = 0;
  hobCount = 0;
  hobLow = 0;
  hobMid = 0;
  hobHigh = 0;
  device = 0;

  /** The values a drive leaves after reset or diagnostics: the ATA device signature. */
  setSignature(): void {
    this.count = this.lbaLow = 1;
    this.lbaMid = this.lbaHigh = 0;
    this.device = 0;
  }
}

/** Options of {@link AtaDrive}. */
export interface AtaDriveOptions {
  /** Where the sectors are. */
  backend: BlockBackend;
  /** Guest time, for command latency. */
  clock: DeviceClock;
  /** IDENTIFY model string (default "QEMU HARDDISK", as QEMU's IDE disks). */
  model?: string;
  /** IDENTIFY serial number (default "QM00001"). */
  serial?: string;
  /** IDENTIFY firmware revision (default "2.5+"). */
  firmware?: string;
  /** Minimum guest-time latency of a medium access, ns (default {@link DEFAULT_COMMAND_LATENCY_NS}). */
  latencyNs?: number;
  /** Diagnostics (unsupported commands). */
  log?: (message: string) => void;
}

interface Transfer {
  write: boolean;
  /** Next sector to fetch (read) or the first sector of the buffered data (write). */
  lba: number;
  /** Sectors the guest has still to transfer. */
  remaining: number;
  /** Sectors per DRQ block. */
  block: number;
}

/** One drive. The channel owns the task file and the INTRQ line; the drive sets {@link intrq}. */
export class AtaDrive {
  /** Status register. */
  status = 0;
  /** Error register. */
  error = 0;
  /** The drive asserts INTRQ (gated by nIEN and selection in the channel). */
  intrq = false;
  readonly #backend: BlockBackend;
  readonly #clock: DeviceClock;
  readonly #model: string;
  readonly #serial: string;
  readonly #firmware: string;
  readonly #latencyNs: number;
  readonly #log: (message: string) => void;
  #tf = new Taskfile();
  #changed: () => void = () => {};
  #multiple = 0;
  #geometry: Geometry;
  readonly #buf = new Uint8Array(MAX_REQUEST_SECTORS * SECTOR_SIZE);
  #pos = 0;
  #blockEnd = 0;
  #bufEnd = 0;
  #xfer: Transfer | null = null;
  /** Bumped by reset so that a backend completion of an abandoned command is dropped. */
  #generation = 0;
  #cancelTimer: (() => void) | null = null;
  /** Sectors in the block the data port is moving now. */
  #blockSectors = 0;
  /** The command in progress addresses LBA48 (where its failing sector is reported). */
  #lba48 = false;

  /** @param o backend, clock, identity */
  constructor(o: AtaDriveOptions) {
    this.#backend = o.backend;
    this.#clock = o.clock;
    this.#model = o.model ?? "QEMU HARDDISK";
    this.#serial = o.serial ?? "QM00001";
    this.#firmware = o.firmware ?? "2.5+";
    this.#latencyNs = o.latencyNs ?? DEFAULT_COMMAND_LATENCY_NS;
    this.#log = o.log ?? (() => {});
    this.#geometry = defaultGeometry(o.backend.sectorCount);
    this.reset();
  }

  /** Capacity in sectors. */
  get sectorCount(): number {
    return this.#backend.sectorCount;
  }

  /**
   * Connects the drive to its channel.
   *
   * @param tf the channel's task file
   * @param changed called after {@link intrq} may have changed
   */
  attach(tf: Taskfile, changed: () => void): void {
    this.#tf = tf;
    this.#changed = changed;
  }

  /** Power-on or software reset: abandons any command, ready, diagnostic code "passed". */
  reset(): void {
    this.#abandon();
    this.#multiple = 0;
    this.#geometry = defaultGeometry(this.#backend.sectorCount);
    this.status = ATA_STATUS.DRDY | ATA_STATUS.DSC;
    this.error = ATA_ERROR.DIAG_PASSED;
    this.intrq = false;
  }

  /** SRST asserted: busy until it is released ({@link reset} then). */
  holdInReset(): void {
    this.#abandon();
    this.status = ATA_STATUS.BSY;
    this.intrq = false;
  }

  /** EXECUTE DEVICE DIAGNOSTIC: the channel sets the signature and interrupts. */
  diagnose(): void {
    this.#abandon();
    this.status = ATA_STATUS.DRDY | ATA_STATUS.DSC;
    this.error = ATA_ERROR.DIAG_PASSED;
  }

  #abandon(): void {
    this.#generation++;
    this.#cancelTimer?.();
    this.#cancelTimer = null;
    this.#xfer = null;
    this.#pos = this.#blockEnd = this.#bufEnd = 0;
  }

  // --- data port -------------------------------------------------------------------------------

  /**
   * A read of the data port: 2 bytes (one word of the block) or 4 (two words). A byte access is
   * not a data transfer on a 16-bit data port: it reads 0 and moves nothing.
   *
   * @param size access width
   * @returns the next bytes of the block, little-endian; 0 when no data-in block is offered
   */
  readData(size: number): number {
    if (!(this.status & ATA_STATUS.DRQ) || this.#xfer?.write || size === 1) return 0;
    let v = 0;
    for (let i = 0; i < size; i++) v |= this.#buf[this.#pos + i] << (8 * i);
    this.#pos += size;
    if (this.#pos >= this.#blockEnd) this.#blockDone();
    return v >>> 0;
  }

  /**
   * A write of the data port.
   *
   * @param value the bytes, little-endian
   * @param size access width (2 or 4)
   */
  writeData(value: number, size: number): void {
    if (!(this.status & ATA_STATUS.DRQ) || !this.#xfer?.write || size === 1) return;
    for (let i = 0; i < size; i++) this.#buf[this.#pos + i] = (value >>> (8 * i)) & 0xff;
    this.#pos += size;
    if (this.#pos >= this.#blockEnd) this.#blockDone();
  }

  #blockDone(): void {
    const x = this.#xfer;
    if (x === null) {
      // IDENTIFY and friends: one block from the buffer, no medium access.
      this.#pos = this.#blockEnd = this.#bufEnd = 0;
      this.status = ATA_STATUS.DRDY | ATA_STATUS.DSC;
      return;
    }
    if (!x.write) {
      x.remaining -= this.#blockSectors;
      if (x.remaining === 0) {
        this.#xfer = null;
        this.status = ATA_STATUS.DRDY | ATA_STATUS.DSC;
        return;
      }
      if (this.#pos < this.#bufEnd) this.#offerInBlock();
      else this.#fetch();
      return;
    }
    x.remaining -= this.#blockSectors;
    const nextBlock = Math.min(x.block, x.remaining) * SECTOR_SIZE;
    if (x.remaining === 0 || this.#pos + nextBlock > this.#buf.length) this.#commit();
    else this.#offerOutBlock(true);
  }

  // --- commands --------------------------------------------------------------------------------

  /**
   * Executes a command written to the Command register (the channel has selected this drive).
   * Ignored while BSY or DRQ is set, as ATA leaves it undefined and QEMU ignores it.
   *
   * @param cmd the command code
   */
  command(cmd: number): void {
    if (this.status & (ATA_STATUS.BSY | ATA_STATUS.DRQ)) return;
    this.error = 0;
    const tf = this.#tf;
    switch (cmd) {
      case ATA_CMD.IDENTIFY_DEVICE:
        return this.#identify();
      case ATA_CMD.READ_SECTORS:
      case ATA_CMD.READ_SECTORS_NORETRY:
        return this.#startTransfer(false, false, 1);
      case ATA_CMD.READ_SECTORS_EXT:
        return this.#startTransfer(false, true, 1);
      case ATA_CMD.READ_MULTIPLE:
        return this.#startTransfer(false, false, this.#multiple);
      case ATA_CMD.READ_MULTIPLE_EXT:
        return this.#startTransfer(false, true, this.#multiple);
      case ATA_CMD.WRITE_SECTORS:
      case ATA_CMD.WRITE_SECTORS_NORETRY:
        return this.#startTransfer(true, false, 1);
      case ATA_CMD.WRITE_SECTORS_EXT:
        return this.#startTransfer(true, true, 1);
      case ATA_CMD.WRITE_MULTIPLE:
        return this.#startTransfer(true, false, this.#multiple);
      case ATA_CMD.WRITE_MULTIPLE_EXT:
        return this.#startTransfer(true, true, this.#multiple);
      case ATA_CMD.READ_VERIFY:
      case ATA_CMD.READ_VERIFY_NORETRY:
      case ATA_CMD.READ_VERIFY_EXT: {
        const a = this.#address(cmd === ATA_CMD.READ_VERIFY_EXT);
        if (a === null) return this.#fail(ATA_ERROR.IDNF);
        return this.#complete();
      }
      case ATA_CMD.SET_MULTIPLE_MODE: {
        const n = tf.count;
        // 0 disables multiple mode; otherwise a power of two up to the IDENTIFY word 47 limit.
        if (n > MAX_MULTIPLE_SECTORS || (n & (n - 1)) !== 0) return this.#fail(ATA_ERROR.ABRT);
        this.#multiple = n;
        return this.#complete();
      }
      case ATA_CMD.FLUSH_CACHE:
      case ATA_CMD.FLUSH_CACHE_EXT:
        this.status = ATA_STATUS.BSY | ATA_STATUS.DRDY;
        return this.#request((cb) => this.#backend.flush(cb), (r) => {
          if (r.ok) this.#complete();
          else this.#fail(ATA_ERROR.ABRT);
        });
      case ATA_CMD.INITIALIZE_DEVICE_PARAMETERS: {
        const heads = (tf.device & 0x0f) + 1, spt = tf.count;
        if (spt === 0) return this.#fail(ATA_ERROR.ABRT);
        const cylinders = Math.min(16383, Math.floor(this.sectorCount / (heads * spt)));
        this.#geometry = { cylinders, heads, sectorsPerTrack: spt };
        return this.#complete();
      }
      case ATA_CMD.SEEK:
      case ATA_CMD.STANDBY_IMMEDIATE:
      case ATA_CMD.IDLE_IMMEDIATE:
      case ATA_CMD.STANDBY:
      case ATA_CMD.IDLE:
      case ATA_CMD.SLEEP:
        return this.#complete();
      case ATA_CMD.CHECK_POWER_MODE:
        tf.count = 0xff; // active or idle
        return this.#complete();
      case ATA_CMD.SET_FEATURES:
        return this.#setFeatures();
      case ATA_CMD.READ_NATIVE_MAX:
        this.#setLba(Math.min(this.sectorCount, LBA28_LIMIT) - 1, false);
        return this.#complete();
      case ATA_CMD.READ_NATIVE_MAX_EXT:
        this.#setLba(this.sectorCount - 1, true);
        return this.#complete();
      default:
        if (cmd >= 0x10 && cmd <= 0x1f) return this.#complete(); // RECALIBRATE (all 16 codes)
        // IDENTIFY PACKET DEVICE, NOP, DMA and everything else: aborted, as ATA-6 requires of a
        // drive that does not implement a command.
        this.#log(`ata: command 0x${cmd.toString(16)} not supported: aborted`);
        return this.#fail(ATA_ERROR.ABRT);
    }
  }

  #setFeatures(): void {
    const tf = this.#tf;
    switch (tf.features) {
      case 0x03: { // set transfer mode: PIO default, PIO 0-4 only (no DMA here)
        const mode = tf.count;
        if (mode <= 0x01 || (mode >= 0x08 && mode <= 0x0c)) return this.#complete();
        return this.#fail(ATA_ERROR.ABRT);
      }
      case 0x02: // write cache on
      case 0x82: // write cache off
      case 0xaa: // read look-ahead on
      case 0x55: // read look-ahead off
      case 0x66: // keep settings over reset
      case 0xcc: // revert to defaults over reset
        return this.#complete();
      default:
        return this.#fail(ATA_ERROR.ABRT);
    }
  }

  #identify(): void {
    const w = identifyDevice({
      sectors: this.sectorCount,
      model: this.#model,
      serial: this.#serial,
      firmware: this.#firmware,
      current: this.#geometry,
      multiple: this.#multiple,
    });
    for (let i = 0; i < 256; i++) {
      this.#buf[2 * i] = w[i] & 0xff;
      this.#buf[2 * i + 1] = w[i] >> 8;
    }
    this.#xfer = null;
    this.#pos = 0;
    this.#blockEnd = this.#bufEnd = SECTOR_SIZE;
    this.status = ATA_STATUS.DRDY | ATA_STATUS.DSC | ATA_STATUS.DRQ;
    this.#interrupt();
  }

  /**
   * The command's first sector and count from the task file, or null when they do not lie on
   * the medium (or name an impossible CHS address).
   */
  #address(lba48: boolean): { lba: number; count: number } | null {
    const tf = this.#tf;
    let lba: number, count: number;
    if (lba48) {
      lba = (tf.hobHigh * 2 ** 40) + (tf.hobMid * 2 ** 32) + (tf.hobLow * 2 ** 24) +
        (tf.lbaHigh << 16 | tf.lbaMid << 8 | tf.lbaLow);
      count = (tf.hobCount << 8 | tf.count) || 65536;
    } else {
      count = tf.count || 256;
      if (tf.device & ATA_DEVICE.LBA) {
        lba = ((tf.device & 0x0f) << 24 | tf.lbaHigh << 16 | tf.lbaMid << 8 | tf.lbaLow) >>> 0;
      } else {
        const g = this.#geometry;
        const c = tf.lbaHigh << 8 | tf.lbaMid, h = tf.device & 0x0f, s = tf.lbaLow;
        if (s === 0 || s > g.sectorsPerTrack || h >= g.heads || c >= g.cylinders) return null;
        lba = (c * g.heads + h) * g.sectorsPerTrack + s - 1;
      }
    }
    if (lba + count > this.sectorCount) return null;
    return { lba, count };
  }

  /** Puts a sector address in the task file (the failing sector of an error, a max address). */
  #setLba(lba: number, lba48: boolean): void {
    const tf = this.#tf;
    tf.lbaLow = lba & 0xff;
    tf.lbaMid = (lba >>> 8) & 0xff;
    tf.lbaHigh = (lba >>> 16) & 0xff;
    if (lba48) {
      const high = Math.floor(lba / 2 ** 24);
      tf.hobLow = high & 0xff;
      tf.hobMid = (high >>> 8) & 0xff;
      tf.hobHigh = (high >>> 16) & 0xff;
    } else {
      tf.device = (tf.device & 0xf0) | ((lba >>> 24) & 0x0f);
    }
  }

  #startTransfer(write: boolean, lba48: boolean, block: number): void {
    if (block === 0) return this.#fail(ATA_ERROR.ABRT); // MULTIPLE without SET MULTIPLE MODE
    const a = this.#address(lba48);
    if (a === null) return this.#fail(ATA_ERROR.IDNF);
    this.#lba48 = lba48;
    this.#xfer = { write, lba: a.lba, remaining: a.count, block };
    this.#pos = this.#bufEnd = 0;
    if (write) this.#offerOutBlock(false);
    else this.#fetch();
  }

  /** Data-in: BSY while the next buffer of sectors comes from the backend. */
  #fetch(): void {
    const x = this.#xfer!;
    const n = Math.min(x.remaining, MAX_REQUEST_SECTORS);
    const lba = x.lba;
    this.status = ATA_STATUS.BSY | ATA_STATUS.DRDY;
    this.#request((cb) => this.#backend.read(lba, n, cb), (r) => {
      if (!r.ok) return this.#failAt(r.sector, ATA_ERROR.UNC);
      this.#buf.set(r.data!.subarray(0, n * SECTOR_SIZE));
      x.lba += n;
      this.#pos = 0;
      this.#bufEnd = n * SECTOR_SIZE;
      this.#offerInBlock();
    });
  }

  /** Data-in: the next block is in the buffer; DRQ and interrupt. */
  #offerInBlock(): void {
    const x = this.#xfer!;
    const inBuffer = (this.#bufEnd - this.#pos) / SECTOR_SIZE;
    this.#blockSectors = Math.min(x.block, x.remaining, inBuffer);
    this.#blockEnd = this.#pos + this.#blockSectors * SECTOR_SIZE;
    this.status = ATA_STATUS.DRDY | ATA_STATUS.DSC | ATA_STATUS.DRQ;
    this.#interrupt();
  }

  /** Data-out: DRQ for the next block (an interrupt for every block but the first). */
  #offerOutBlock(interrupt: boolean): void {
    const x = this.#xfer!;
    this.#blockSectors = Math.min(x.block, x.remaining);
    this.#blockEnd = this.#pos + this.#blockSectors * SECTOR_SIZE;
    this.status = ATA_STATUS.DRDY | ATA_STATUS.DSC | ATA_STATUS.DRQ;
    if (interrupt) this.#interrupt();
  }

  /** Data-out: the buffer is full or the command's data is all in; write it, BSY meanwhile. */
  #commit(): void {
    const x = this.#xfer!;
    const data = this.#buf.subarray(0, this.#pos);
    const lba = x.lba;
    this.status = ATA_STATUS.BSY | ATA_STATUS.DRDY;
    this.#request((cb) => this.#backend.write(lba, data, cb), (r) => {
      if (!r.ok) return this.#failAt(r.sector, ATA_ERROR.ABRT);
      x.lba += data.length / SECTOR_SIZE;
      this.#pos = 0;
      if (x.remaining === 0) {
        this.#xfer = null;
        this.#complete();
      } else {
        this.#offerOutBlock(true);
      }
    });
  }

  /**
   * Starts a backend request and calls `then` when it completed and the command latency has
   * passed in guest time, unless the drive was reset meanwhile.
   */
  #request(
    start: (done: (r: BlockResult) => void) => void,
    then: (r: BlockResult) => void,
  ): void {
    const generation = this.#generation;
    let result: BlockResult | null = null;
    let due = false;
    const finish = () => {
      if (generation !== this.#generation || result === null || !due) return;
      this.#cancelTimer = null;
      then(result);
    };
    this.#cancelTimer = this.#clock.schedule(this.#clock.now() + this.#latencyNs, () => {
      due = true;
      finish();
    });
    start((r) => {
      result = r;
      finish();
    });
  }

  #complete(): void {
    this.status = ATA_STATUS.DRDY | ATA_STATUS.DSC;
    this.#interrupt();
  }

  /** Command aborted (QEMU's ide_abort_command: DRDY|ERR, no DSC). */
  #fail(error: number): void {
    this.#xfer = null;
    this.error = error;
    this.status = ATA_STATUS.DRDY | ATA_STATUS.ERR;
    this.#interrupt();
  }

  /** A medium error: the task file names the first sector that failed, as ATA-6 requires. */
  #failAt(sector: number, error: number): void {
    this.#setLba(sector, this.#lba48);
    this.#pos = this.#blockEnd = this.#bufEnd = 0;
    this.#fail(error);
  }

  #interrupt(): void {
    this.intrq = true;
    this.#changed();
  }
}
