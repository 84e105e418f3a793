/**
 * Disks on the QEMU backend: `-drive` arguments, with QEMU's blkdebug standing in for ring3's
 * disk faults where it can. blkdebug rules are read when the drive is opened, so only faults
 * armed at boot (`disks: [{ faults }]`) can be given to QEMU, and only failing reads and writes;
 * delays and torn writes are skipped with a log line.
 *
 * A faulty overlay disk is a copy of the image in the run's temporary folder rather than
 * `snapshot=on`: QEMU's snapshot overlay is a qcow2 file whose cluster copies read the base
 * through blkdebug, so a read rule fired on a guest write (seen with QEMU 7.2).
 *
 * @module
 */
import type { DiskFile } from "../disk/disk_io_protocol.ts";
import { parseDiskFault } from "../disk/disk_faults.ts";

/** One IDE drive as QEMU opens it. */
export interface QemuDrive {
  index: number;
  /** A file name, or `blkdebug:CONFIG:IMAGE`. */
  file: string;
  /** Writes go to QEMU's throw-away overlay. */
  snapshot: boolean;
}

/** Sectors × times beyond which a fault range is cut short (one blkdebug rule per sector). */
const MAX_RULES = 256;

/**
 * Turns disks into QEMU drives, writing blkdebug configurations (and copies of faulty overlay
 * images) into `dir`.
 *
 * @param disks the disks, positions resolved
 * @param dir the run's temporary folder (removed at the end of the run)
 * @param log where skipped or shortened faults are reported
 * @returns the drives
 */
export async function prepareQemuDrives(
  disks: DiskFile[],
  dir: string,
  log: (message: string) => void,
): Promise<QemuDrive[]> {
  const drives: QemuDrive[] = [];
  for (const d of disks) {
    const lines: string[] = [];
    for (const spec of d.faults ?? []) {
      const rule = parseDiskFault(spec as unknown as Record<string, unknown>);
      if (rule.action !== "fail-read" && rule.action !== "fail-write") {
        log(`skipped on the QEMU backend: disk ${d.index} ${rule.action} (blkdebug has none)`);
        continue;
      }
      const io = rule.action === "fail-read" ? "read" : "write";
      const copies = rule.times === Infinity ? 1 : rule.times;
      let n = 0;
      for (let s = rule.sector; s < rule.sector + rule.count; s++) {
        for (let c = 0; c < copies && n < MAX_RULES; c++, n++) {
          lines.push(
            "[inject-error]",
            `event = "${io}_aio"`,
            `iotype = "${io}"`,
            `errno = "5"`,
            `sector = "${s}"`,
            `once = "${rule.times === Infinity ? "off" : "on"}"`,
            "",
          );
        }
      }
      if (n >= MAX_RULES) log(`disk ${d.index}: fault range cut to ${MAX_RULES} blkdebug rules`);
    }
    if (lines.length === 0) {
      drives.push({ index: d.index, file: d.path, snapshot: !d.writeThrough });
      continue;
    }
    const config = `${dir}/blkdebug-${d.index}.conf`;
    await Deno.writeTextFile(config, lines.join("\n"));
    let image = d.path;
    if (!d.writeThrough) {
      image = `${dir}/disk-${d.index}.img`;
      await Deno.copyFile(d.path, image);
    }
    if (image.includes(":") || config.includes(":")) {
      throw new Error(`blkdebug cannot name a path with ':' in it (${image})`);
    }
    drives.push({ index: d.index, file: `blkdebug:${config}:${image}`, snapshot: false });
  }
  return drives;
}

/**
 * The `-drive` arguments of the drives.
 *
 * @param drives as {@link prepareQemuDrives} made them
 * @returns the arguments
 */
export function driveArgs(drives: QemuDrive[]): string[] {
  return drives.flatMap((d) => [
    "-drive",
    `file=${d.file.replaceAll(",", ",,")},format=raw,if=ide,index=${d.index}` +
    (d.snapshot ? ",snapshot=on" : ""),
  ]);
}
