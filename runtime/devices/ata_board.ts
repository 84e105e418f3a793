/**
 * Builds an ATA channel with the drives of its two positions, as the board places them.
 *
 * @module
 */
import { AtaChannel } from "./ata_channel.ts";
import { AtaDrive } from "./ata_drive.ts";
import { ATA_COMMAND_BLOCK_PORTS } from "./ata_registers.ts";
import type { BlockBackend } from "./block_backend.ts";
import type { DeviceClock } from "./device_clock.ts";
import type { IrqLine } from "./irq_line.ts";

/**
 * Channel `n` (0 primary, 1 secondary) with a drive at each position that has a backend.
 * Position numbers are QEMU's `-drive index=`: 2n for the master, 2n + 1 for the slave. Drives
 * identify themselves as QEMU's IDE disks do ("QEMU HARDDISK", serial QM0000n, firmware
 * "2.5+"), so a guest prints the same on both backends and transcripts compare.
 *
 * @param n channel number
 * @param irq the channel's interrupt line
 * @param clock guest time
 * @param disk the backend at a position, if any
 * @param log diagnostics
 * @returns the channel and the size of its command block
 */
export function buildAtaChannel(
  n: number,
  irq: IrqLine,
  clock: DeviceClock,
  disk: (index: number) => BlockBackend | undefined,
  log: (message: string) => void,
): { channel: AtaChannel; ports: number } {
  const drive = (index: number) => {
    const backend = disk(index);
    return backend ? new AtaDrive({ backend, clock, serial: `QM0000${index + 1}`, log }) : null;
  };
  const channel = new AtaChannel({
    name: `ata${n}`,
    irq,
    drives: [drive(2 * n), drive(2 * n + 1)],
  });
  return { channel, ports: ATA_COMMAND_BLOCK_PORTS };
}
