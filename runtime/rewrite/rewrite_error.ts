/**
 * The error the static rewriter throws when an image cannot be rewritten safely, or when a
 * sidecar does not belong to its image. Image files that cannot even be parsed throw
 * {@link ImageFormatError} from the boot readers instead; callers that only want "this input is
 * unusable" catch both.
 *
 * @module
 */

/**
 * An image the rewriter refuses, or a side table that does not match its image.
 *
 * `message` names the concrete problem (addresses, hashes, paths); `reason` is a short
 * machine-readable code. Codes in use:
 *
 * - `"stripped"`: no symbols, so instruction boundaries cannot be proven (see `allowStripped`)
 * - `"needs-companion"`: a flat a.out-kludge image given without the ELF it was made from
 * - `"companion-mismatch"`: the companion ELF's code is not the flat image's code
 * - `"unknown-format"`: neither an ELF file nor a Multiboot a.out-kludge image
 * - `"inconsistent-load-address"`: the a.out-kludge fields and the ELF headers disagree
 * - `"no-code"`: no loaded executable code found
 * - `"bad-option"`: an option out of range (bitness ranges, ...)
 * - `"bad-sidecar"`: a sidecar that is not valid ring3-rewrite JSON
 * - `"missing-sidecar"`: no sidecar next to an image that needs one
 * - `"sidecar-mismatch"`: the sha256 binding between image and sidecar does not hold
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { RewriteError } from "./rewrite_error.ts";
 * const e = new RewriteError("stripped image", { reason: "stripped" });
 * assert.equal(e.reason, "stripped");
 * assert.equal(e.name, "RewriteError");
 * ```
 */
export class RewriteError extends Error {
  /** Always "RewriteError", so the type survives serialisation and shows in stack traces. */
  override name = "RewriteError";
  /** Short machine-readable code, e.g. `"stripped"` (see the class description). */
  readonly reason: string;

  /**
   * Creates the error.
   *
   * @param message what is wrong, concretely
   * @param options `reason`: the machine-readable code (default `"invalid"`); `cause`: an
   *   underlying error, when there is one
   */
  constructor(message: string, options?: { reason?: string; cause?: unknown }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.reason = options?.reason ?? "invalid";
  }
}
