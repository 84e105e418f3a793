/**
 * File handling around {@link rewriteImage}: read the input (and its sidecar, when the input is
 * itself a rewrite output), rewrite, and write the output and its sidecar only once everything
 * has succeeded, each through a temporary file renamed into place.
 *
 * @module
 */

import { rewriteImage, type RewriteOptions, type RewriteResult } from "./rewrite_image.ts";
import { RewriteError } from "./rewrite_error.ts";
import { formatSideTable, parseSideTable, SIDECAR_SUFFIX, type SideTable } from "./side_table.ts";

/** Options of {@link rewriteFile}: {@link RewriteOptions} minus what the files provide. */
export interface RewriteFileOptions
  extends Omit<RewriteOptions, "previous" | "originalPath" | "companion" | "companionPath"> {
  /** The ELF a flat a.out-kludge input was made from. */
  companionPath?: string;
}

/**
 * Rewrites the kernel image at `inPath` into `outPath` and `outPath` + {@link SIDECAR_SUFFIX}.
 *
 * When `inPath` has a sidecar of its own, the input is a previous output: the sidecar must
 * match it (else nothing is written), and the rewrite starts from the restored original, so
 * rewriting an output again reproduces it byte for byte. `outPath` may equal `inPath`.
 *
 * @param inPath the kernel image
 * @param outPath where to write the rewritten image
 * @param options policy, bitness overrides, companion path
 * @returns the rewrite result (nothing is written when this throws)
 * @throws {ImageFormatError} when the image cannot be parsed
 * @throws {RewriteError} when it cannot be rewritten safely, or the input's sidecar does not
 *   match the input
 *
 * @example
 * ```ts
 * import { rewriteFile } from "./rewrite_file.ts";
 * const dir = await Deno.makeTempDir();
 * await rewriteFile("fixtures/build/hello.elf", `${dir}/hello.elf`);
 * await Deno.remove(dir, { recursive: true });
 * ```
 */
export async function rewriteFile(
  inPath: string,
  outPath: string,
  options: RewriteFileOptions = {},
): Promise<RewriteResult> {
  const image = await Deno.readFile(inPath);
  const previous = await readOwnSidecar(inPath);
  const companion = options.companionPath === undefined
    ? undefined
    : await Deno.readFile(options.companionPath);
  let result: RewriteResult;
  try {
    result = rewriteImage(image, {
      ...options,
      originalPath: inPath,
      ...(companion === undefined ? {} : { companion, companionPath: options.companionPath }),
      ...(previous === undefined ? {} : { previous }),
    });
  } catch (e) {
    if (!(e instanceof RewriteError) || e.reason !== "sidecar-mismatch") throw e;
    throw new RewriteError(
      `${inPath} has a sidecar ${
        inPath + SIDECAR_SUFFIX
      } that does not belong to it (${e.message}); ` +
        `if ${inPath} is an original image, remove the stale sidecar`,
      { reason: e.reason, cause: e },
    );
  }
  await writeRewrite(outPath, result);
  return result;
}

/**
 * Writes a rewrite result: `outPath` and its sidecar, each written to a temporary file in the
 * same directory and renamed into place (image first). A crash between the two renames leaves
 * an image whose sidecar does not match it, which every reader detects by the SHA-256 binding.
 *
 * @param outPath where the rewritten image goes
 * @param result what {@link rewriteImage} returned
 */
export async function writeRewrite(outPath: string, result: RewriteResult): Promise<void> {
  const suffix = `.tmp-${Deno.pid}-${crypto.randomUUID().slice(0, 8)}`;
  const sidecarPath = outPath + SIDECAR_SUFFIX;
  const tmpImage = outPath + suffix;
  const tmpSidecar = sidecarPath + suffix;
  try {
    await Deno.writeFile(tmpImage, result.output);
    await Deno.writeTextFile(tmpSidecar, formatSideTable(result.sideTable));
    await Deno.rename(tmpImage, outPath);
    await Deno.rename(tmpSidecar, sidecarPath);
  } finally {
    for (const p of [tmpImage, tmpSidecar]) await Deno.remove(p).catch(() => {});
  }
}

/** The sidecar next to `path`, if there is one; it must then belong to the file. */
async function readOwnSidecar(path: string): Promise<SideTable | undefined> {
  const sidecarPath = path + SIDECAR_SUFFIX;
  let text: string;
  try {
    text = await Deno.readTextFile(sidecarPath);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return undefined;
    throw e;
  }
  return parseSideTable(text, sidecarPath);
}
