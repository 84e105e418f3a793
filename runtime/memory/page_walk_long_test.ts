import assert from "node:assert/strict";
import { PF_ERROR, PTE } from "./page_walk.ts";
import { walkLong } from "./page_walk_long.ts";
import { walkPae } from "./page_walk_pae.ts";
import { PhysicalMemory } from "./physical_memory.ts";

const XD = 0x80000000; // bit 63, in the high dword
const P = PTE.P, RW = PTE.RW, US = PTE.US, PS = PTE.PS;

function entry(mem: PhysicalMemory, at: number, lo: number, hi = 0) {
  mem.write32(at, lo >>> 0);
  mem.write32(at + 4, hi >>> 0);
}

/** 4-level tables: PML4 0x10000, PDPT 0x11000, PD 0x12000, PT 0x13000. */
function longSetup() {
  const mem = new PhysicalMemory(new Uint8Array(0x800000));
  const la = 0x7f12_3456_7000; // above 4 GiB: every level's index matters
  const idx = (v: number, s: number) => Math.floor(v / 2 ** s) % 512;
  entry(mem, 0x10000 + idx(la, 39) * 8, 0x11000 | P | RW | US);
  entry(mem, 0x11000 + idx(la, 30) * 8, 0x12000 | P | RW | US);
  entry(mem, 0x12000 + idx(la, 21) * 8, 0x13000 | P | RW | US);
  entry(mem, 0x13000 + idx(la, 12) * 8, 0x20000 | P | RW | US);
  entry(mem, 0x13000 + (idx(la, 12) + 1) * 8, 0x21000 | P | US, XD); // user, read-only, no-exec
  entry(mem, 0x13000 + (idx(la, 12) + 2) * 8, 0x22000 | P | RW); // supervisor only
  // PML4[0] -> PDPT 0x14000: [0] a 1 GiB page at 0, [1] -> PD 0x15000 with a 2 MiB page.
  entry(mem, 0x10000, 0x14000 | P | RW | US);
  entry(mem, 0x14000, 0 | P | RW | PS);
  entry(mem, 0x14008, 0x15000 | P | RW | US);
  entry(mem, 0x15000 + 3 * 8, 0x400000 | P | RW | US | PS);
  const c = { cr3: 0x10000, writeProtect: true, nxe: true, physBits: 36 };
  return { mem, c, la };
}

Deno.test("walkLong translates 4 KiB pages above 4 GiB and sets accessed and dirty bits", () => {
  const { mem, c, la } = longSetup();
  const t = walkLong(mem, c, la + 0x123, { write: true, user: true });
  assert.ok(!("fault" in t));
  assert.equal(t.physical, 0x20123);
  assert.ok(t.dirty && t.user && t.writable && t.executable);
  const idx = (v: number, s: number) => Math.floor(v / 2 ** s) % 512;
  const pte = 0x13000 + idx(la, 12) * 8;
  assert.equal(mem.read32(pte) & (PTE.A | PTE.D), PTE.A | PTE.D);
  assert.equal(
    mem.read32(0x12000 + idx(la, 21) * 8) & (PTE.A | PTE.D),
    PTE.A,
    "no D above the leaf",
  );
});

Deno.test("walkLong enforces U/S, R/W, WP and XD", () => {
  const { mem, c, la } = longSetup();
  const ro = la + 0x1000, sup = la + 0x2000;
  assert.deepEqual(walkLong(mem, c, sup, { write: false, user: true }), {
    fault: PF_ERROR.P | PF_ERROR.U,
  });
  assert.deepEqual(walkLong(mem, c, ro, { write: true, user: true }), {
    fault: PF_ERROR.P | PF_ERROR.W | PF_ERROR.U,
  });
  assert.deepEqual(walkLong(mem, c, ro, { write: false, user: true, fetch: true }), {
    fault: PF_ERROR.P | PF_ERROR.U | PF_ERROR.I,
  });
  const noWp = walkLong(mem, { ...c, writeProtect: false }, ro, { write: true, user: false });
  assert.ok(!("fault" in noWp) && noWp.writable);
  // Without EFER.NXE, bit 63 is reserved.
  assert.deepEqual(walkLong(mem, { ...c, nxe: false }, ro, { write: false, user: true }), {
    fault: PF_ERROR.P | PF_ERROR.U | PF_ERROR.RSVD,
  });
  assert.deepEqual(walkLong(mem, c, la + 0x3000, { write: false, user: false }), { fault: 0 });
});

Deno.test("walkLong maps 1 GiB and 2 MiB pages and reports reserved bits", () => {
  const { mem, c } = longSetup();
  const g = walkLong(mem, c, 0x3456789, { write: false, user: false });
  assert.ok(!("fault" in g));
  assert.equal(g.physical, 0x3456789);
  assert.equal(g.user, false);
  const m = walkLong(mem, c, 0x40000000 + 3 * 0x200000 + 0x1234, { write: true, user: true });
  assert.ok(!("fault" in m));
  assert.equal(m.physical, 0x401234);
  assert.equal(mem.read32(0x15000 + 3 * 8) & PTE.D, PTE.D);
  entry(mem, 0x15000 + 4 * 8, 0x402000 | P | RW | PS); // a 2 MiB frame that is not aligned
  assert.deepEqual(walkLong(mem, c, 0x40000000 + 4 * 0x200000, { write: false, user: false }), {
    fault: PF_ERROR.P | PF_ERROR.RSVD,
  });
  assert.throws(() => walkLong(mem, c, 2 ** 47, { write: false, user: false }), RangeError);
});

Deno.test("walkPae uses the 4-entry PDPT, 2 MiB pages and XD", () => {
  const mem = new PhysicalMemory(new Uint8Array(0x800000));
  // PDPT at 0x10020 (32-byte aligned); PDPT[3] -> PD 0x11000.
  entry(mem, 0x10020 + 3 * 8, 0x11000 | P);
  entry(mem, 0x11000 + 5 * 8, 0x12000 | P | RW | US);
  entry(mem, 0x12000 + 7 * 8, 0x30000 | P | US, XD);
  entry(mem, 0x11000 + 6 * 8, 0x600000 | P | RW | PS);
  const c = { cr3: 0x10020, writeProtect: true, nxe: true, physBits: 36 };
  const base = 0xc0000000 + 5 * 0x200000;
  const t = walkPae(mem, c, base + 7 * 0x1000 + 0x10, { write: false, user: true });
  assert.ok(!("fault" in t));
  assert.equal(t.physical, 0x30010);
  assert.equal(t.executable, false);
  assert.deepEqual(walkPae(mem, c, base + 7 * 0x1000, { write: false, user: true, fetch: true }), {
    fault: PF_ERROR.P | PF_ERROR.U | PF_ERROR.I,
  });
  const big = walkPae(mem, c, 0xc0000000 + 6 * 0x200000 + 0x1abcd, { write: true, user: false });
  assert.ok(!("fault" in big));
  assert.equal(big.physical, 0x61abcd);
  assert.deepEqual(walkPae(mem, c, 0x1000, { write: false, user: false }), { fault: 0 });
  entry(mem, 0x10020, 0x13000 | P | RW); // RW is reserved in a PAE PDPTE
  assert.deepEqual(walkPae(mem, c, 0x1000, { write: false, user: false }), {
    fault: PF_ERROR.P | PF_ERROR.RSVD,
  });
});
