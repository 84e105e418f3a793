/**
 * What the disk scenarios share: a blank image in a temporary folder, and the guest-time limit
 * of a disk command. A helper module, not a scenario (the `_` prefix).
 *
 * @module
 */

/**
 * Guest-time limit of a disk command. Under QEMU (-icount sleep=off) guest time races ahead
 * while the host does disk I/O, so a short limit would fire before the data arrives.
 */
export const DISK = { timeout: "120s" };

/**
 * Runs `fn` with a blank 1 MiB raw image in a fresh temporary folder (minios formats it at
 * first use), then removes the folder.
 *
 * @param fn what to do with the image's path
 */
export async function withBlankImage(fn: (path: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "ring3-disk-" });
  try {
    const path = `${dir}/disk.img`;
    await Deno.writeFile(path, new Uint8Array(1 << 20));
    await fn(path);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}
