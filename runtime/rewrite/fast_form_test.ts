import assert from "node:assert/strict";
import iced from "iced-x86";
import {
  buildStubArea,
  FAST_MNEMONICS,
  fastKindOf,
  type PlanContext,
  type PlannedWindow,
  planWindow,
} from "./fast_form.ts";
import { withSweeper } from "./sweep.ts";
import { rewriteImage } from "./rewrite_image.ts";
import { checkBinding, formatSideTable, parseSideTable, restoreOriginal } from "./side_table.ts";
import { RewriteError } from "./rewrite_error.ts";
import { STUB_CODE_ADDRESS, VCPU_PAGE_ADDRESS } from "../cpu/vcpu_page.ts";

const BASE = 0x100000;

/** A plan context over `code` at BASE, every boundary proven, with extra branch targets. */
function context(code: number[], extraTargets: number[] = []): PlanContext & { at: number[] } {
  const bytes = Uint8Array.from(code);
  const sweep = withSweeper((s) => s.sweep(bytes, BASE, BASE + bytes.length, 32));
  assert.equal(sweep.failure, undefined);
  const sites = new Map(sweep.sites.map((x) => [x.vaddr, x]));
  const targets = [...sweep.targets, ...extraTargets];
  const fastAt = (v: number) => {
    const x = sites.get(v);
    return x !== undefined && FAST_MNEMONICS.has(x.kind) ? fastKindOf(x.bytes) : undefined;
  };
  return {
    at: sweep.starts,
    starts: sweep.starts,
    lengths: sweep.lengths,
    bytesAt: (v, n) => bytes.subarray(v - BASE, v - BASE + n),
    fastAt,
    classifiedAt: (v) => fastAt(v) === undefined ? sites.get(v)?.kind : undefined,
    unproven: () => undefined,
    targetIn: (from, to) => targets.some((t) => t >= from && t < to),
    taken: () => false,
  };
}

function plan(ctx: PlanContext, vaddr: number) {
  return planWindow(ctx, ctx.starts.indexOf(vaddr));
}

/** Disassembles stub code as "address text" lines. */
function disassemble(code: Uint8Array, base = STUB_CODE_ADDRESS): string[] {
  const d = new iced.Decoder(32, code, iced.DecoderOptions.None);
  const f = new iced.Formatter(iced.FormatterSyntax.Gas);
  const out: string[] = [];
  d.ip = BigInt(base);
  while (d.canDecode) {
    const i = d.decode();
    out.push(`${i.ip.toString(16)} ${f.format(i)}`);
    i.free();
  }
  d.free();
  f.free();
  return out;
}

// pushfl; cli; incl 0x102044; popfl; add $1,%eax; cmp %eax,%esi; jne <pushfl>
const LOCK_LOOP = [
  0x9c,
  0xfa,
  0xff,
  0x05,
  0x44,
  0x20,
  0x10,
  0x00,
  0x9d,
  0x83,
  0xc0,
  0x01,
  0x39,
  0xc6,
  0x75,
  0xf0,
];

Deno.test("planWindow() covers a lock pair with two windows that displace plain neighbours", () => {
  const ctx = context(LOCK_LOOP);
  const a = plan(ctx, BASE);
  assert.ok("window" in a);
  assert.deepEqual(a.window.instructions.map((i) => i.fast ?? "plain"), ["pushf", "cli", "plain"]);
  assert.equal(a.window.end, BASE + 8);
  const b = plan(ctx, BASE + 8);
  assert.ok("window" in b);
  assert.deepEqual(b.window.instructions.map((i) => i.fast ?? "plain"), ["popf", "plain", "plain"]);
});

Deno.test("buildStubArea() relocates neighbours, jumps back, and patches jmp rel32 + int3s", () => {
  const ctx = context(LOCK_LOOP);
  const windows = [BASE, BASE + 8].map((v) => (plan(ctx, v) as { window: PlannedWindow }).window);
  const area = buildStubArea(windows, ctx.bytesAt);
  const text = disassemble(area.code).join("\n");
  // The displaced incl runs from the trampoline; each trampoline returns to its window's end.
  assert.match(text, /incl 0x102044/);
  assert.match(text, /jmp 0x00100008/);
  assert.match(text, /jmp 0x0010000E/);
  // The vCPU page is addressed absolutely.
  assert.match(text, new RegExp(`0x${VCPU_PAGE_ADDRESS.toString(16).toUpperCase()}`));
  // pushf has no slow path; cli and popf have one int3 each, standing for their own byte.
  assert.deepEqual(area.slowPaths.map((p) => [p.kind, p.byte]), [["cli", 0xfa], ["popf", 0x9d]]);
  for (const p of area.slowPaths) assert.equal(area.code[p.vaddr - STUB_CODE_ADDRESS], 0xcc);
  const rel = (area.trampolines[0].address - (BASE + 5)) >>> 0;
  assert.deepEqual(
    [...area.trampolines[0].patch],
    [0xe9, rel & 0xff, (rel >>> 8) & 0xff, (rel >>> 16) & 0xff, rel >>> 24, 0xcc, 0xcc, 0xcc],
  );
});

Deno.test("buildStubArea() re-targets a displaced conditional jump with the BlockEncoder", () => {
  // cli; jne +5 (to 0x100008); mov $1,%eax; ret
  const ctx = context([0xfa, 0x75, 0x05, 0xb8, 0x01, 0x00, 0x00, 0x00, 0xc3]);
  const r = plan(ctx, BASE);
  assert.ok("window" in r);
  assert.deepEqual(r.window.instructions.map((i) => i.vaddr - BASE), [0, 1, 3]);
  const area = buildStubArea([r.window], ctx.bytesAt);
  const text = disassemble(area.code).join("\n");
  assert.match(text, /jne 0x00100008/);
  assert.match(text, /mov \$1,%eax/);
});

Deno.test("planWindow() refuses a window with a branch target inside it", () => {
  const ctx = context(LOCK_LOOP, [BASE + 2]); // something jumps to the incl
  const r = plan(ctx, BASE);
  assert.ok(!("window" in r));
  assert.equal(r.reason, "branch-target-inside");
  assert.match(r.detail, /0x100002/);
});

Deno.test("planWindow() keeps sti; hlt and an indirect call's neighbours in trap form", () => {
  // sti; hlt; nop x5
  const idle = plan(context([0xfb, 0xf4, 0x90, 0x90, 0x90, 0x90, 0x90]), BASE);
  assert.ok(!("window" in idle));
  assert.equal(idle.reason, "sti-shadow");
  assert.match(idle.detail, /hlt/);
  // cli; call *%eax; nop x4
  const call = plan(context([0xfa, 0xff, 0xd0, 0x90, 0x90, 0x90, 0x90]), BASE);
  assert.ok(!("window" in call));
  assert.match(call.detail, /an indirect call at 0x100001 cannot be displaced/);
});

Deno.test("buildStubArea() moves a direct call as push of the original return address and jmp", () => {
  // cli; call 0x100040; nop
  const ctx = context([0xfa, 0xe8, 0x3a, 0x00, 0x00, 0x00, 0x90]);
  const r = plan(ctx, BASE);
  assert.ok("window" in r);
  assert.equal(r.window.end, BASE + 6);
  const text = disassemble(buildStubArea([r.window], ctx.bytesAt).code);
  assert.match(text[text.length - 2], /push \$0x100006/);
  assert.match(text[text.length - 1], /jmp 0x00100040/);
});

Deno.test("planWindow() starts a window before the site when what follows it is too short", () => {
  // mov $1,%eax; popf; ret
  const r = plan(context([0xb8, 0x01, 0x00, 0x00, 0x00, 0x9d, 0xc3]), BASE + 5);
  assert.ok("window" in r);
  assert.equal(r.window.start, BASE);
  assert.equal(r.window.end, BASE + 6);
});

Deno.test("buildStubArea() displaces a return and needs no jump back after it", () => {
  // popf; mov %eax,%ebx; inc %eax; ret
  const ctx = context([0x9d, 0x89, 0xc3, 0x40, 0xc3]);
  const r = plan(ctx, BASE);
  assert.ok("window" in r);
  assert.equal(r.window.end, BASE + 5);
  const text = disassemble(buildStubArea([r.window], ctx.bytesAt).code);
  assert.match(text[text.length - 1], /ret/);
});

Deno.test("planWindow() gives sti the instruction after it, and reports the shadow range", () => {
  // sti; mov 0x103048,%ecx; cli
  const code = [0xfb, 0x8b, 0x0d, 0x48, 0x30, 0x10, 0x00, 0xfa, 0x90, 0x90, 0x90, 0x90];
  const ctx = context(code);
  const r = plan(ctx, BASE);
  assert.ok("window" in r);
  assert.deepEqual(r.window.instructions.map((i) => i.vaddr - BASE), [0, 1]);
  const area = buildStubArea([r.window], ctx.bytesAt);
  assert.equal(area.shadows.length, 1);
  const [from, to] = area.shadows[0];
  const lines = disassemble(area.code);
  const orl = lines.findIndex((l) => /^\S+ or/.test(l));
  assert.match(lines[orl - 1], /jne/);
  assert.equal(parseInt(lines[orl - 1], 16), from, "the shadow starts at the pending check's jne");
  const mov = lines.findIndex((l) => /mov 0x103048,%ecx/.test(l));
  assert.equal(parseInt(lines[mov + 1], 16), to, "and ends after the displaced mov");
});

Deno.test("buildStubArea() serves segment reads from the vCPU page's selectors", () => {
  // mov %cs,%eax; mov %ss,%dx; push %ds; push %gs; nop; nop; mov %ds,(%eax)
  const code = [0x8c, 0xc8, 0x66, 0x8c, 0xd2, 0x1e, 0x0f, 0xa8, 0x90, 0x90, 0x8c, 0x18];
  const ctx = context(code);
  assert.deepEqual(
    [0, 2, 5, 6, 10].map((o) => ctx.fastAt(BASE + o)),
    ["mov-sreg", "mov-sreg", "push-sreg", "push-sreg", undefined],
  );
  const windows = [BASE, BASE + 5].map((v) => (plan(ctx, v) as { window: PlannedWindow }).window);
  assert.deepEqual(windows[0].instructions.map((i) => i.vaddr - BASE), [0, 2]);
  assert.deepEqual(windows[1].instructions.map((i) => i.vaddr - BASE), [5, 6, 8, 9]);
  const area = buildStubArea(windows, ctx.bytesAt);
  const sel = (i: number) => (VCPU_PAGE_ADDRESS + 16 + 4 * i).toString(16).toUpperCase();
  const text = disassemble(area.code).join("\n");
  assert.match(text, new RegExp(`mov 0x${sel(1)},%eax`));
  assert.match(text, new RegExp(`mov 0x${sel(2)},%dx`));
  assert.match(text, new RegExp(`pushl 0x${sel(3)}`));
  assert.match(text, new RegExp(`pushl 0x${sel(5)}`));
  assert.equal(area.slowPaths.length, 0, "segment reads never trap");
  // mov %ds,(%eax) writes memory: the trampolines leave it to the trap form.
  assert.equal(fastKindOf(Uint8Array.of(0x8c, 0x18)), undefined);
});

const SENSITIVE = "fixtures/build/sensitive.elf";
const haveSensitive = await Deno.stat(SENSITIVE).then(() => true, () => false);

Deno.test({
  name: "rewriteImage() in fast form is idempotent, binds its windows, and restores the original" +
    (haveSensitive ? "" : " (SKIPPED: build fixtures first)"),
  ignore: !haveSensitive,
  fn: async () => {
    const image = await Deno.readFile(SENSITIVE);
    const first = rewriteImage(image, { form: "fast" });
    const fast = first.sideTable.fast!;
    assert.ok(fast.windows.length > 0);
    assert.equal(first.summary.byForm.fast, fast.windows.flatMap((w) => w.sites).length);
    // Every fast candidate is either in a window or reported with a reason.
    const kinds = first.summary.byClass;
    const candidates = [...FAST_MNEMONICS].reduce(
      (n, k) =>
        n + (kinds.sensitive.byMnemonic[k]?.found ?? 0) +
        (kinds.privileged.byMnemonic[k]?.found ?? 0),
      0,
    );
    assert.equal(first.summary.byForm.fast! + fast.fallbacks.length, candidates);
    for (const f of fast.fallbacks) assert.ok(f.reason.length > 0 && f.detail.length > 0);

    const table = parseSideTable(formatSideTable(first.sideTable));
    checkBinding(first.output, table);
    assert.deepEqual(restoreOriginal(first.output, table), image);
    const again = rewriteImage(first.output, { form: "fast", previous: table });
    assert.deepEqual(again.output, first.output);
    assert.equal(formatSideTable(again.sideTable), formatSideTable(first.sideTable));

    const tampered = first.output.slice();
    tampered[fast.windows[0].fileOffset + 1] ^= 1;
    const forged = { ...table, image: { ...table.image } };
    // Same hash check passes only for the real image: the window check is what fires here.
    const { sha256Hex } = await import("./_sha256.ts");
    forged.image.sha256 = sha256Hex(tampered);
    assert.throws(
      () => checkBinding(tampered, forged),
      (e: unknown) =>
        e instanceof RewriteError && e.reason === "bad-sidecar" &&
        /fast-form window/.test(e.message),
    );
  },
});
