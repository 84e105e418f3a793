import assert from "node:assert/strict";
import { openLibc } from "./host/libc.ts";
import { StubArea, type StubConfig, StubWindowError } from "./stub_area.ts";
import { STUB_CODE_ADDRESS, STUB_WINDOW, VCPU_PAGE } from "./cpu/vcpu_page.ts";
import { VcpuState } from "./cpu/vcpu_state.ts";

const LINUX = Deno.build.os === "linux";

function config(code: number[], shadows: [number, number][] = []): StubConfig {
  return {
    base: STUB_WINDOW.base,
    size: STUB_WINDOW.size,
    codeBase: STUB_CODE_ADDRESS,
    code: Uint8Array.from(code),
    shadows,
  };
}

Deno.test({
  name: "StubArea holds the virtual IF, IOPL and CPL that VcpuState reads and writes",
  ignore: !LINUX,
  fn() {
    const area = StubArea.create(openLibc(), config([0x90]), 64 << 20);
    try {
      const state = new VcpuState();
      state.interruptFlag = true;
      state.iopl = 3;
      state.cpl = 0;
      state.usePage(area.page);
      // Carried over, and now read from the shared page as the trampolines see it.
      assert.equal(area.page.flags, 0x3200);
      state.interruptFlag = false;
      assert.equal(area.page.flags, 0x3000);
      assert.equal(state.iopl, 3);
      state.cpl = 3;
      assert.equal(area.page.cpl, 3);
      area.page.pending = true;
      assert.equal(area.page.pending, true);
      assert.equal(VCPU_PAGE.FLAGS, 0);
    } finally {
      area.close();
    }
  },
});

Deno.test({
  name: "StubArea refuses guest RAM reaching into the window and a window elsewhere",
  ignore: !LINUX,
  fn() {
    const libc = openLibc();
    assert.throws(
      () => StubArea.create(libc, config([0x90]), STUB_WINDOW.base + 0x1000),
      (e: unknown) =>
        e instanceof StubWindowError && /overlaps the fast-form stub window/.test(`${e}`),
    );
    assert.throws(
      () => StubArea.create(libc, { ...config([0x90]), base: 0xfe000000 }, 64 << 20),
      (e: unknown) => e instanceof StubWindowError && /rewrite the image again/.test(`${e}`),
    );
  },
});

Deno.test({
  name: "StubArea finds a guest page directory that maps the window, and sti shadow ranges",
  ignore: !LINUX,
  fn() {
    const from = STUB_CODE_ADDRESS + 0x20;
    const area = StubArea.create(openLibc(), config([0x90], [[from, from + 8]]), 64 << 20);
    try {
      const pd = new Map<number, number>([[0x1000 + 1023 * 4, 0]]);
      const read = (a: number) => pd.get(a) ?? 0;
      assert.equal(area.pageTableConflict(read, 0x1000), undefined);
      pd.set(0x1000 + 1023 * 4, 0x5003);
      assert.match(area.pageTableConflict(read, 0x1000)!, /PDE 1023 = 0x5003/);
      // PAE: PDPTE 3 -> PD at 0x8000; the window is PDEs 510 and 511.
      const pae = new Map<number, number>([[0x2000 + 3 * 8, 0x8001]]);
      const readPae = (a: number) => pae.get(a) ?? 0;
      assert.equal(area.pageTableConflict(readPae, 0x2000, "pae"), undefined);
      pae.set(0x8000 + 511 * 8, 0x1000083); // a 2 MiB page
      assert.match(
        area.pageTableConflict(readPae, 0x2000, "pae")!,
        /pae, CR3 0x2000.*PDPTE 3 = 0x8001, PDE 511 = 0x1000083/,
      );
      pae.set(0x8000 + 511 * 8 + 4, 0x80000000); // NX only: still RAM, still a conflict
      assert.match(area.pageTableConflict(readPae, 0x2000, "pae")!, /PDE 511/);
      pae.set(0x2000 + 3 * 8 + 4, 0x1); // PD above 4 GiB: left to the walk
      assert.equal(area.pageTableConflict(readPae, 0x2000, "pae"), undefined);
      // 4-level: PML4E 0 -> PDPT at 0x3000; a 1 GiB page at PDPTE 3 covers the window.
      const long = new Map<number, number>([[0x1000, 0x3007]]);
      const readLong = (a: number) => long.get(a) ?? 0;
      assert.equal(area.pageTableConflict(readLong, 0x1000, "4-level"), undefined);
      long.set(0x3000 + 3 * 8, 0xc0000083);
      assert.match(
        area.pageTableConflict(readLong, 0x1000, "4-level")!,
        /PML4E 0 = 0x3007, PDPTE 3 = 0xc0000083\)/,
      );
      long.set(0x3000 + 3 * 8, 0x9003);
      long.set(0x9000 + 510 * 8, 0xa003);
      assert.match(area.pageTableConflict(readLong, 0x1000, "4-level")!, /PDE 510 = 0xa003/);
      // Tables outside RAM are left to the walk.
      const outside = (a: number) => {
        if (a >= 0x9000) throw new RangeError("outside RAM");
        return readLong(a);
      };
      assert.equal(area.pageTableConflict(outside, 0x1000, "4-level"), undefined);
      assert.equal(area.inStiShadow(from - 1), false);
      assert.equal(area.inStiShadow(from), true);
      assert.equal(area.inStiShadow(from + 7), true);
      assert.equal(area.inStiShadow(from + 8), false);
      // Instruction fetches from the window come from the trampoline code.
      const mem = area.withTrampolineFetch({
        read8: () => 0,
        read16: () => 0,
        read32: () => 0,
        write8: () => {},
        write16: () => {},
        write32: () => {},
        fetch: (_a, into) => {
          into.fill(0xee);
          return into.length;
        },
      });
      const into = new Uint8Array(2);
      mem.fetch(STUB_CODE_ADDRESS, into);
      assert.equal(into[0], 0x90);
      mem.fetch(0x1000, into);
      assert.deepEqual([...into], [0xee, 0xee]);
    } finally {
      area.close();
    }
  },
});
