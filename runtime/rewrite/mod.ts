/**
 * The static rewriter of kernel images: finds privileged and sensitive instructions, patches
 * them into traps where the instruction boundary is proven, and writes a side table (sidecar)
 * bound to the rewritten image by SHA-256 for the emulator.
 *
 * ```ts
 * import { formatReport, loadSideTable, rewriteFile } from "./mod.ts";
 * const dir = await Deno.makeTempDir();
 * const { summary } = await rewriteFile("fixtures/build/hello.elf", `${dir}/hello.elf`);
 * console.log(formatReport(summary));
 * const sites = await loadSideTable(`${dir}/hello.elf`); // Map keyed by vaddr
 * await Deno.remove(dir, { recursive: true });
 * ```
 *
 * @module
 */
export { type Classification, classifyCode, REWRITER_VERSION, type SiteClass } from "./classify.ts";
export { type BitnessRange, type CodeMap, type CodeMapOptions, mapCode } from "./code_map.ts";
export { formatReport } from "./report.ts";
export { rewriteFile, type RewriteFileOptions, writeRewrite } from "./rewrite_file.ts";
export { RewriteError } from "./rewrite_error.ts";
export { rewriteImage, type RewriteOptions, type RewriteResult } from "./rewrite_image.ts";
export {
  buildStubArea,
  type FastKind,
  type PlannedWindow,
  planWindow,
  type StubArea as FastStubArea,
} from "./fast_form.ts";
export {
  checkBinding,
  type FastSection,
  type FastWindowRecord,
  formatSideTable,
  loadSideTable,
  parseSideTable,
  type PatchForm,
  type PatchRecord,
  restoreOriginal,
  type RewriteSummary,
  SIDECAR_SUFFIX,
  type SideTable,
  type SideTableEntry,
  type SkippedRecord,
  type SlowPathRecord,
} from "./side_table.ts";
export { type Bitness } from "./sweep.ts";
