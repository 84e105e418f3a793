/**
 * The one error type the image readers (ELF, Multiboot) throw for a bad kernel image, so callers
 * can tell "this file is not loadable" apart from bugs and host failures with one `instanceof`.
 *
 * @module
 */

/**
 * A kernel image that cannot be parsed or loaded: truncated, inconsistent, of an unsupported
 * kind, or one whose contents do not fit the machine.
 *
 * `message` names the concrete problem (which structure, which offsets and sizes); `reason` is a
 * short machine-readable code for callers and tests to branch on. Codes in use:
 *
 * - `"truncated"`: a structure extends past the end of the file
 * - `"bad-magic"`: not an ELF file where one is required
 * - `"unsupported-format"`: a valid file of a kind ring3 does not load (big-endian, other CPU,
 *   64-bit ELF without the a.out kludge)
 * - `"inconsistent"`: fields that contradict each other (sizes, counts, string indices)
 * - `"value-too-large"`: a 64-bit field beyond 2^53, which a JavaScript number cannot hold exactly
 * - `"no-multiboot-header"`: no valid Multiboot header in the first 8192 bytes
 * - `"bad-checksum"`: a Multiboot magic whose checksum does not add up
 * - `"unsupported-flags"`: Multiboot header requires a feature (flags bits 0-15) ring3 lacks
 * - `"bad-load-address"`: a.out-kludge address fields that contradict each other or the file
 * - `"segment-outside-ram"`: a segment not wholly inside guest RAM
 * - `"segment-overlaps-boot-info"`: a segment over the boot-information area
 * - `"segment-overlaps-reserved"`: a segment over the legacy EBDA/VGA/BIOS hole below 1 MiB
 * - `"overlapping-segments"`: two segments claim the same physical bytes
 * - `"entry-outside-image"`: the entry point is not inside any loaded segment
 *
 * @example
 * ```ts
 * import { ImageFormatError } from "./image_error.ts";
 * try {
 *   throw new ImageFormatError("ELF header needs 52 bytes but the file has 10", {
 *     reason: "truncated",
 *   });
 * } catch (e) {
 *   if (e instanceof ImageFormatError && e.reason === "truncated") {
 *     // report e.message to the user
 *   }
 * }
 * ```
 */
export class ImageFormatError extends Error {
  /** Always "ImageFormatError", so the type survives serialisation and shows in stack traces. */
  override name = "ImageFormatError";
  /** Short machine-readable code, e.g. `"truncated"` (see the class description). */
  readonly reason: string;

  /**
   * Creates the error.
   *
   * @param message what is wrong, concretely (structure, offsets, sizes)
   * @param options `reason`: the machine-readable code (default `"invalid"`, for problems no
   *   listed code fits); `cause`: an underlying error, when there is one
   */
  constructor(message: string, options?: { reason?: string; cause?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.reason = options?.reason ?? "invalid";
  }
}
