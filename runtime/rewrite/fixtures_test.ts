import assert from "node:assert/strict";
import { parseElf } from "../boot/elf.ts";
import { formatReport } from "./report.ts";
import { rewriteImage } from "./rewrite_image.ts";
import { formatSideTable, loadSideTable } from "./side_table.ts";

const BUILD = new URL("../../fixtures/build/", import.meta.url);

async function fixture(name: string): Promise<Uint8Array | undefined> {
  try {
    return await Deno.readFile(new URL(name, BUILD));
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return undefined;
    throw e;
  }
}

/** The address of a symbol in a fixture ELF. */
function symbol(image: Uint8Array, name: string): number {
  const s = parseElf(image).symbols.find((y) => y.name === name);
  assert.ok(s, `symbol ${name}`);
  return s.value;
}

for (const name of ["hello", "fault", "spin", "trapbench"]) {
  Deno.test(`rewriteImage() patches only ${name}.elf's segment loads and far transfers`, async () => {
    const image = await fixture(`${name}.elf`);
    assert.ok(image, `fixtures/build/${name}.elf missing: run make -C fixtures`);
    const { output, summary, sideTable } = rewriteImage(image);
    const kinds = new Set(sideTable.patches.map((p) => p.kind));
    for (const k of kinds) assert.ok(["ljmp", "mov r/m,%sreg", "iret"].includes(k), k);
    assert.ok(kinds.has("mov r/m,%sreg") && kinds.has("ljmp"));
    assert.equal(summary.byClass.sensitive.patched, summary.byClass.sensitive.found);
    // Only the patched sites changed.
    const changed = [...output.keys()].filter((i) => output[i] !== image[i]);
    assert.deepEqual(changed, sideTable.patches.map((p) => p.fileOffset));
    assert.equal(summary.regions.unproven, 0);
    assert.deepEqual(summary.skippedByReason, {});
    // The shared library's port I/O, lgdt, lidt and hlt.
    for (const kind of ["in", "out", "lgdt", "lidt", "hlt"]) {
      assert.ok(summary.byClass.privileged.byMnemonic[kind]?.found > 0, kind);
    }
    const priv = rewriteImage(image, { privileged: true });
    assert.equal(priv.summary.byClass.privileged.patched, summary.byClass.privileged.found);
  });
}

const SENSITIVE_ELF = new URL("sensitive.elf", BUILD);
const haveSensitive = (() => {
  try {
    return Deno.statSync(SENSITIVE_ELF).isFile;
  } catch {
    return false;
  }
})();

Deno.test({
  name: "rewriteImage() patches every sensitive site of sensitive.elf" +
    (haveSensitive ? "" : " (SKIPPED: fixtures/build/sensitive.elf is absent; build it first)"),
  ignore: !haveSensitive,
}, async () => {
  const image = await Deno.readFile(SENSITIVE_ELF);
  const { output, sideTable, summary } = rewriteImage(image, { originalPath: "sensitive.elf" });
  const kinds = summary.byClass.sensitive.byMnemonic;
  for (
    const kind of [
      "pushf",
      "popf",
      "mov %sreg,r/m",
      "push %sreg",
      "cpuid",
      "rdtsc",
      "sgdt",
      "sidt",
      "smsw",
      "str",
      "sldt",
      "lar",
      "lsl",
      "verr",
      "verw",
    ]
  ) {
    assert.ok(kinds[kind]?.patched > 0, `${kind} patched`);
  }
  assert.equal(summary.byClass.sensitive.skipped, 0);
  assert.equal(summary.byClass.sensitive.patched, summary.byClass.sensitive.found);
  for (const p of sideTable.patches) assert.equal(output[p.fileOffset], 0xcc);
  assert.equal(loadSideTable(output, formatSideTable(sideTable)).size, sideTable.patches.length);
  // The lockbench critical section: pushf; cli; incl <counter>; popf, both ends patched.
  const at = (v: number) => sideTable.patches.find((p) => p.vaddr === v);
  const lock = sideTable.patches.find((p) =>
    p.kind === "pushf" && image[p.fileOffset + 1] === 0xfa && image[p.fileOffset + 2] === 0xff &&
    at(p.vaddr + 8)?.kind === "popf"
  );
  assert.ok(lock, "lockbench's pushf; cli; incl mem32; popf is patched at both ends");
  assert.match(formatReport(summary), /sensitive +\(all\) +(\d+) +\1 +0 +0/);
});

Deno.test("rewriteImage() patches sysraw's syscall and sysenter, 64-bit part by override", async () => {
  const image = await fixture("sysraw.elf");
  assert.ok(image);
  const plain = rewriteImage(image).sideTable.patches;
  const calls = plain.filter((p) => p.kind === "syscall" || p.kind === "sysenter");
  assert.deepEqual(calls.map((p) => p.kind), ["syscall", "sysenter", "syscall"]);
  assert.ok(plain.every((p) => p.bitness === 32));
  // The far jump to the host's 64-bit selector is rewritten too, so it cannot slip through.
  assert.ok(plain.some((p) => p.kind === "ljmp" && /\$0x0*33,/.test(p.mnemonic)));

  // probe_syscall64 far-jumps to 0x33 after 5 instructions (12 bytes of push/mov and a 7-byte
  // ljmp); its 64-bit part runs up to the lretq.
  const start = symbol(image, "probe_syscall64") + 15;
  const elf = parseElf(image);
  const text = elf.sections.find((s) => s.name === ".text")!;
  const bytes = image.subarray(text.offset + (start - text.addr));
  const lretq = bytes.indexOf(0xcb) + start + 1;
  const r = rewriteImage(image, {
    privileged: true,
    bitness: [{ start, end: lretq, bits: 64 }],
  });
  const in64 = r.sideTable.patches.filter((p) => p.bitness === 64);
  assert.deepEqual(in64.map((p) => p.mnemonic), ["syscall", "lretq"]);
  assert.deepEqual(r.sideTable.skipped, []);
});

Deno.test("rewriteImage() rewrites the flat trapbench.bin through trapbench.elf", async () => {
  const flat = await fixture("trapbench.bin");
  const elf = await fixture("trapbench.elf");
  assert.ok(flat && elf);
  const r = rewriteImage(flat, { companion: elf, privileged: true });
  const fromElf = rewriteImage(elf, { privileged: true });
  assert.equal(r.summary.format, "aout-kludge");
  assert.deepEqual(
    r.sideTable.patches.map((p) => [p.vaddr, p.paddr, p.mnemonic]),
    fromElf.sideTable.patches.map((p) => [p.vaddr, p.paddr, p.mnemonic]),
  );
  const textOffset = parseElf(elf).sections.find((s) => s.name === ".text")!.offset;
  for (const [i, p] of r.sideTable.patches.entries()) {
    assert.equal(p.fileOffset, fromElf.sideTable.patches[i].fileOffset - textOffset);
    assert.equal(r.output[p.fileOffset], 0xcc);
  }
});
