/**
 * Turns a kernel path into the bytes a machine boots: rewritten by the static rewriter so that
 * sensitive instructions trap (ARCHITECTURE.md, "Static rewriting"), with the side table the
 * emulator needs. A rewrite is done once per image content and cached by SHA-256; an image
 * that already carries a valid sidecar is booted as it is.
 *
 * @module
 */
import { findMultibootHeader } from "./boot/multiboot.ts";
import { ImageFormatError } from "./boot/image_error.ts";
import {
  checkBinding,
  parseSideTable,
  RewriteError,
  rewriteImage,
  REWRITER_VERSION,
  type RewriteSummary,
  SIDECAR_SUFFIX,
  type SideTable,
} from "./rewrite/mod.ts";
import { sha256Hex } from "./rewrite/_sha256.ts";
import { fromHex } from "./rewrite/side_table.ts";
import type { StubConfig } from "./stub_area.ts";

/** A patched site as the machine needs it. */
export interface PatchEntry {
  vaddr: number;
  bitness: number;
  /** The original instruction's bytes. */
  bytes: Uint8Array;
}

/** A kernel ready to boot. */
export interface PreparedKernel {
  bytes: Uint8Array<ArrayBuffer>;
  patches: PatchEntry[];
  /** How the image got its patches. */
  source: "sidecar" | "rewritten" | "cache" | "unmodified";
  summary?: RewriteSummary;
  /** The fast form's stub window (trampolines), when the image has one. */
  stub?: StubConfig;
}

/** The forms `rewrite` may ask for: see {@link PrepareOptions.rewrite}. */
export type RewritePolicy = boolean | "trap" | "fast";

/** Options of {@link prepareKernel}. */
export interface PrepareOptions {
  /**
   * Rewrite sensitive instructions: `"fast"` (the default, also `true`) sends cli, sti, pushf
   * and popf into trampolines where the bytes allow and traps the rest; `"trap"` traps every
   * site (int3); false boots the bytes exactly as given.
   */
  rewrite?: RewritePolicy;
  /** Where rewritten images are cached. Default: $RING3_CACHE, else $XDG_CACHE_HOME/ring3, else ~/.cache/ring3. */
  cacheDir?: string;
}

/** The default rewrite cache folder. */
export function defaultCacheDir(): string {
  const env = (k: string) => {
    try {
      return Deno.env.get(k);
    } catch {
      return undefined;
    }
  };
  const explicit = env("RING3_CACHE");
  if (explicit) return explicit;
  const xdg = env("XDG_CACHE_HOME");
  if (xdg) return `${xdg}/ring3`;
  return `${env("HOME") ?? "/tmp"}/.cache/ring3`;
}

function patchesOf(table: SideTable): PatchEntry[] {
  // parseSideTable has checked every patch's hex.
  const trap = table.patches.map((p) => ({
    vaddr: p.vaddr,
    bitness: p.bitness,
    bytes: fromHex(p.bytes)!,
  }));
  const slow = (table.fast?.slowPaths ?? []).map((p) => ({
    vaddr: p.vaddr,
    bitness: 32,
    bytes: fromHex(p.bytes)!,
  }));
  return [...trap, ...slow];
}

function stubOf(table: SideTable): StubConfig | undefined {
  const f = table.fast;
  if (f === undefined || f.windows.length === 0) return undefined;
  return {
    base: f.window.base,
    size: f.window.size,
    codeBase: f.codeBase,
    code: fromHex(f.code)!,
    shadows: f.shadows,
  };
}

function prepared(
  bytes: Uint8Array<ArrayBuffer>,
  table: SideTable,
  source: PreparedKernel["source"],
): PreparedKernel {
  const stub = stubOf(table);
  return {
    bytes,
    patches: patchesOf(table),
    source,
    summary: table.summary,
    ...(stub === undefined ? {} : { stub }),
  };
}

async function readText(path: string): Promise<string | null> {
  try {
    return await Deno.readTextFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return null;
    throw e;
  }
}

/**
 * Reads a kernel and gives it its side table: the image's own sidecar if present (it must
 * match the image), a cached rewrite, or a fresh one.
 *
 * @param path the kernel image
 * @param bytes its contents
 * @param options rewrite policy and cache
 * @returns what to boot
 * @throws {RewriteError} when the image has a sidecar that does not match it, or cannot be
 *   rewritten safely (the message says why; `rewrite: false` boots it unmodified)
 */
export async function prepareKernel(
  path: string,
  bytes: Uint8Array<ArrayBuffer>,
  options: PrepareOptions = {},
): Promise<PreparedKernel> {
  const own = await readText(path + SIDECAR_SUFFIX);
  if (own !== null) {
    const table = parseSideTable(own, path + SIDECAR_SUFFIX);
    checkBinding(bytes, table);
    return prepared(bytes, table, "sidecar");
  }
  if (options.rewrite === false) return { bytes, patches: [], source: "unmodified" };
  const form = options.rewrite === "trap" ? "trap" : "fast";
  try {
    findMultibootHeader(bytes);
  } catch (e) {
    // Not bootable at all: the loader reports it with the problem named.
    if (e instanceof ImageFormatError) return { bytes, patches: [], source: "unmodified" };
    throw e;
  }
  const key = `${sha256Hex(bytes)}-v${REWRITER_VERSION}-${form}`;
  const dir = `${options.cacheDir ?? defaultCacheDir()}/rewrite`;
  const cached = `${dir}/${key}`;
  const cachedTable = await readText(cached + SIDECAR_SUFFIX);
  if (cachedTable !== null) {
    try {
      const image = await Deno.readFile(cached) as Uint8Array<ArrayBuffer>;
      const table = parseSideTable(cachedTable, cached + SIDECAR_SUFFIX);
      checkBinding(image, table);
      return prepared(image, table, "cache");
    } catch {
      // A damaged cache entry is rewritten below.
    }
  }
  let companion: Uint8Array | undefined;
  if (path.endsWith(".bin")) {
    companion = await Deno.readFile(path.slice(0, -4) + ".elf").catch(() => undefined);
  }
  let result;
  try {
    result = rewriteImage(bytes, {
      originalPath: path,
      form,
      companion,
      companionPath: companion ? path.slice(0, -4) + ".elf" : undefined,
    });
  } catch (e) {
    if (e instanceof RewriteError) {
      throw new RewriteError(
        `${path}: ${e.message} (boot with rewrite: false to run it unmodified)`,
        { reason: e.reason, cause: e },
      );
    }
    if (e instanceof ImageFormatError) return { bytes, patches: [], source: "unmodified" };
    throw e;
  }
  const text = JSON.stringify(result.sideTable);
  try {
    await Deno.mkdir(dir, { recursive: true });
    const tmp = `${cached}.${crypto.randomUUID()}.tmp`;
    await Deno.writeFile(tmp, result.output);
    await Deno.rename(tmp, cached);
    await Deno.writeTextFile(tmp + ".json", text);
    await Deno.rename(tmp + ".json", cached + SIDECAR_SUFFIX);
  } catch {
    // A read-only cache only costs a rewrite next time.
  }
  return prepared(result.output as Uint8Array<ArrayBuffer>, result.sideTable, "rewritten");
}
