import assert from "node:assert/strict";
import { formatReport } from "./report.ts";
import { rewriteImage } from "./rewrite_image.ts";
import { buildCodeElf } from "./_test_images.ts";

Deno.test("formatReport() tabulates classes and mnemonics, forms, skip reasons, fast-eligible", () => {
  const img = buildCodeElf({
    pieces: [
      { name: "f", code: [0x9c, 0xfa, 0x0f, 0x01, 0x05, 0, 0x20, 0x10, 0, 0x9d, 0xc3] },
      { name: "g", code: [0x0f, 0xa2, 0xff, 0xff, 0xc3] },
    ],
  });
  const text = formatReport(rewriteImage(img.bytes).summary);
  assert.equal(
    text,
    [
      "image: elf32, Multiboot; swept 2 functions and 0 other ranges (0 unanchored, 1 unproven), " +
      "5 instructions proven",
      "policy: patch sensitive sites; leave privileged ones to trap",
      "",
      "class       mnemonic  found  patched  skipped  left",
      "sensitive   cpuid         1        0        1     0",
      "sensitive   popf          1        1        0     0",
      "sensitive   pushf         1        1        0     0",
      "sensitive   sgdt          1        1        0     0",
      "sensitive   (all)         4        3        1     0",
      "privileged  cli           1        0        0     1",
      "privileged  (all)         1        0        0     1",
      "",
      "by form: trap 3",
      "skipped by reason: invalid-decode 1",
      "fast-eligible: 1 of 3 patched sites (rewrite with form fast)",
      "",
    ].join("\n"),
  );
});

Deno.test("formatReport() says when privileged sites are patched and stripped code allowed", () => {
  const img = buildCodeElf({ pieces: [{ code: [0xfa, 0xc3] }], stripped: "symbols" });
  const text = formatReport(
    rewriteImage(img.bytes, { privileged: true, allowStripped: true }).summary,
  );
  assert.match(text, /^image: elf32, Multiboot, stripped;/);
  assert.match(
    text,
    /policy: patch sensitive sites and privileged sites; stripped sections allowed/,
  );
  assert.match(text, /privileged +cli +1 +1 +0 +0/);
  assert.match(text, /skipped by reason: none/);
});
