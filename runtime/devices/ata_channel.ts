/**
 * An ATA channel (the legacy IDE interface of a PC): a command block of 8 ports, a control
 * block port (alternate status / device control), one INTRQ line, and up to two drives
 * (device 0, the master; device 1, the slave) sharing the task file.
 *
 * Behaviour follows ATA/ATAPI-6 and what QEMU's hw/ide/core.c does where the standard leaves a
 * choice: registers of a channel with no drive, and the status of an absent slave, read 0;
 * reading Status (not Alternate Status) clears the selected drive's pending interrupt; a write
 * to any task file register clears HOB; commands to an absent drive are ignored.
 *
 * @module
 */
import { ATA_CMD, ATA_CONTROL, ATA_DEVICE, ATA_REG, ATA_STATUS } from "./ata_registers.ts";
import { type AtaDrive, Taskfile } from "./ata_drive.ts";
import type { IrqLine } from "./irq_line.ts";
import type { AccessSize, PortDevice } from "./port_device.ts";

/** Options of {@link AtaChannel}. */
export interface AtaChannelOptions {
  /** Name in logs ("ata0"). */
  name: string;
  /** The channel's interrupt line (IRQ 14 or 15 on a PC). */
  irq: IrqLine;
  /** Device 0 and device 1; null where none is attached. */
  drives: [AtaDrive | null, AtaDrive | null];
}

/** The command block of a channel; {@link AtaChannel.control} is its control block port. */
export class AtaChannel implements PortDevice {
  readonly name: string;
  /** The control block port: read Alternate Status, write Device Control. */
  readonly control: PortDevice;
  readonly #irq: IrqLine;
  readonly #drives: [AtaDrive | null, AtaDrive | null];
  readonly #tf = new Taskfile();
  #deviceControl = 0;

  /** @param o name, line and drives */
  constructor(o: AtaChannelOptions) {
    this.name = o.name;
    this.#irq = o.irq;
    this.#drives = o.drives;
    for (const d of this.#drives) d?.attach(this.#tf, () => this.#updateIrq());
    this.control = {
      name: `${o.name}-control`,
      read: () => this.#selected()?.status ?? 0,
      write: (_offset, value) => this.#writeControl(value),
      reset: () => {},
    };
    this.reset();
  }

  /** Power-on: both drives reset, master selected, interrupts enabled, signature set. */
  reset(): void {
    this.#deviceControl = 0;
    for (const d of this.#drives) d?.reset();
    this.#tf.setSignature();
    this.#updateIrq();
  }

  #selected(): AtaDrive | null {
    return this.#drives[(this.#tf.device & ATA_DEVICE.DEV) ? 1 : 0];
  }

  #empty(): boolean {
    return this.#drives[0] === null && this.#drives[1] === null;
  }

  read(offset: number, size: AccessSize): number {
    const tf = this.#tf;
    const drive = this.#selected();
    if (offset === ATA_REG.DATA) return drive?.readData(size) ?? 0;
    if (this.#empty()) return 0;
    const hob = (this.#deviceControl & ATA_CONTROL.HOB) !== 0;
    switch (offset) {
      case ATA_REG.ERROR:
        return drive?.error ?? 0;
      case ATA_REG.COUNT:
        return hob ? tf.hobCount : tf.count;
      case ATA_REG.LBA_LOW:
        return hob ? tf.hobLow : tf.lbaLow;
      case ATA_REG.LBA_MID:
        return hob ? tf.hobMid : tf.lbaMid;
      case ATA_REG.LBA_HIGH:
        return hob ? tf.hobHigh : tf.lbaHigh;
      case ATA_REG.DEVICE:
        // Bits 7 and 5 are obsolete and read as one on most drives (and under QEMU).
        return tf.device | 0xa0;
      case ATA_REG.STATUS: {
        if (drive === null) return 0;
        if (drive.intrq) {
          drive.intrq = false;
          this.#updateIrq();
        }
        return drive.status;
      }
    }
    return 0;
  }

  write(offset: number, value: number, size: AccessSize): void {
    const tf = this.#tf;
    if (offset === ATA_REG.DATA) {
      this.#selected()?.writeData(value, size);
      return;
    }
    value &= 0xff;
    if (offset >= ATA_REG.FEATURES && offset <= ATA_REG.DEVICE) {
      this.#deviceControl &= ~ATA_CONTROL.HOB;
    }
    switch (offset) {
      case ATA_REG.FEATURES:
        tf.hobFeatures = tf.features;
        tf.features = value;
        return;
      case ATA_REG.COUNT:
        tf.hobCount = tf.count;
        tf.count = value;
        return;
      case ATA_REG.LBA_LOW:
        tf.hobLow = tf.lbaLow;
        tf.lbaLow = value;
        return;
      case ATA_REG.LBA_MID:
        tf.hobMid = tf.lbaMid;
        tf.lbaMid = value;
        return;
      case ATA_REG.LBA_HIGH:
        tf.hobHigh = tf.lbaHigh;
        tf.lbaHigh = value;
        return;
      case ATA_REG.DEVICE:
        tf.device = value & ~0xa0;
        this.#updateIrq();
        return;
      case ATA_REG.COMMAND:
        this.#command(value);
        return;
    }
  }

  #command(cmd: number): void {
    if (cmd === ATA_CMD.EXECUTE_DEVICE_DIAGNOSTIC) {
      // Both drives run it; device 0 reports for the pair and interrupts (ATA-6 9.11).
      const master = this.#drives[0];
      if (master === null || (master.status & ATA_STATUS.BSY)) return;
      for (const d of this.#drives) d?.diagnose();
      this.#tf.setSignature();
      master.intrq = true;
      this.#updateIrq();
      return;
    }
    this.#selected()?.command(cmd);
  }

  #writeControl(value: number): void {
    const was = this.#deviceControl;
    this.#deviceControl = value & 0xff;
    if (!(was & ATA_CONTROL.SRST) && (value & ATA_CONTROL.SRST)) {
      for (const d of this.#drives) d?.holdInReset();
    } else if ((was & ATA_CONTROL.SRST) && !(value & ATA_CONTROL.SRST)) {
      // Reset done: drives ready with the signature, device 0 selected, no interrupt.
      for (const d of this.#drives) d?.reset();
      this.#tf.setSignature();
    }
    this.#updateIrq();
  }

  /** INTRQ follows the selected drive's pending interrupt unless nIEN masks it. */
  #updateIrq(): void {
    const d = this.#selected();
    this.#irq.set(d !== null && d.intrq && !(this.#deviceControl & ATA_CONTROL.NIEN));
  }
}
