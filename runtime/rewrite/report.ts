/**
 * The human-readable report of a rewrite: what was found, patched, skipped and why.
 *
 * @module
 */

import { SITE_CLASSES } from "./classify.ts";
import type { RewriteSummary, SiteCounts } from "./side_table.ts";

/**
 * Formats a rewrite summary as a plain-text table: counts by instruction class and normalised
 * mnemonic (found, patched, skipped, left by policy), sites by form, skipped sites by reason,
 * and the fast form's windows and fallbacks (or, in trap form, how many sites it could take).
 *
 * @param summary what {@link rewriteImage} returned
 * @returns the report, lines ending in "\n"
 *
 * @example
 * ```ts
 * import assert from "node:assert/strict";
 * import { formatReport } from "./report.ts";
 * import { rewriteImage } from "./rewrite_image.ts";
 * const { summary } = rewriteImage(await Deno.readFile("fixtures/build/hello.elf"));
 * assert.match(formatReport(summary), /privileged +out +\d+/);
 * ```
 */
export function formatReport(summary: RewriteSummary): string {
  const s = summary;
  const lines: string[] = [];
  const regions = s.regions;
  lines.push(
    `image: ${s.format}${s.multiboot ? ", Multiboot" : ""}${s.stripped ? ", stripped" : ""}; ` +
      `swept ${regions.functions} functions and ${regions.ranges} other ranges ` +
      `(${regions.unanchored} unanchored, ${regions.unproven} unproven), ` +
      `${s.instructions} instructions proven`,
  );
  lines.push(
    `policy: patch sensitive sites${
      s.policy.privileged ? " and privileged sites" : "; leave privileged ones to trap"
    }${s.policy.allowStripped ? "; stripped sections allowed" : ""}`,
  );
  lines.push("");

  const header = ["class", "mnemonic", "found", "patched", "skipped", "left"];
  const rows: string[][] = [];
  const row = (cls: string, name: string, c: SiteCounts) =>
    rows.push([cls, name, `${c.found}`, `${c.patched}`, `${c.skipped}`, `${c.left}`]);
  for (const cls of SITE_CLASSES) {
    const c = s.byClass[cls];
    for (const [name, counts] of Object.entries(c.byMnemonic)) row(cls, name, counts);
    row(cls, "(all)", c);
  }
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const fmt = (r: string[]) =>
    r.map((cell, i) => i < 2 ? cell.padEnd(widths[i]) : cell.padStart(widths[i])).join("  ")
      .trimEnd();
  lines.push(fmt(header));
  for (const r of rows) lines.push(fmt(r));
  lines.push("");

  const pairs = (record: Record<string, number>) => {
    const entries = Object.entries(record);
    return entries.length === 0 ? "none" : entries.map(([k, n]) => `${k} ${n}`).join(", ");
  };
  const patched = s.byClass.sensitive.patched + s.byClass.privileged.patched;
  lines.push(`by form: ${pairs(s.byForm)}`);
  lines.push(`skipped by reason: ${pairs(s.skippedByReason)}`);
  if (s.fast !== undefined) {
    lines.push(
      `fast form: ${s.fast.sites} sites in ${s.fast.windows} windows, ` +
        `${s.fast.codeBytes} bytes of trampolines`,
    );
    lines.push(`fast form fallbacks by reason: ${pairs(s.fast.fallbacksByReason)}`);
  } else {
    lines.push(
      `fast-eligible: ${s.fastEligible} of ${patched} patched sites (rewrite with form fast)`,
    );
  }
  for (const note of s.notes) lines.push(`note: ${note}`);
  return lines.join("\n") + "\n";
}
