import assert from "node:assert/strict";
import { PF_ERROR, PTE, walk32 } from "./page_walk.ts";
import { PhysicalMemory } from "./physical_memory.ts";
import { PagedMemory } from "./paged_memory.ts";
import { GuestPageFault } from "../cpu/interfaces.ts";

const PD = 0x10000, PT = 0x11000;

function setup() {
  const mem = new PhysicalMemory(new Uint8Array(0x800000));
  // 0x00400000: user RW page -> frame 0x20000; 0x00401000: user read-only -> 0x21000;
  // 0x00402000: supervisor-only -> 0x22000; 0x00800000..: 4 MiB supervisor page at 0x400000.
  mem.write32(PD + 1 * 4, PT | PTE.P | PTE.RW | PTE.US);
  mem.write32(PT + 0 * 4, 0x20000 | PTE.P | PTE.RW | PTE.US);
  mem.write32(PT + 1 * 4, 0x21000 | PTE.P | PTE.US);
  mem.write32(PT + 2 * 4, 0x22000 | PTE.P | PTE.RW);
  mem.write32(PD + 2 * 4, 0x400000 | PTE.P | PTE.RW | PTE.PS);
  return { mem, c: { cr3: PD, writeProtect: true, pse: true } };
}

Deno.test("walk32 translates 4 KiB pages and sets accessed and dirty bits", () => {
  const { mem, c } = setup();
  const t = walk32(mem, c, 0x400123, { write: true, user: true });
  assert.ok(!("fault" in t));
  assert.equal(t.physical, 0x20123);
  assert.equal(mem.read32(PT) & (PTE.A | PTE.D), PTE.A | PTE.D);
  assert.equal(mem.read32(PD + 4) & PTE.A, PTE.A);
});

Deno.test("walk32 faults user access to supervisor pages and writes to read-only ones", () => {
  const { mem, c } = setup();
  assert.deepEqual(walk32(mem, c, 0x402000, { write: false, user: true }), {
    fault: PF_ERROR.P | PF_ERROR.U,
  });
  assert.deepEqual(walk32(mem, c, 0x401000, { write: true, user: true }), {
    fault: PF_ERROR.P | PF_ERROR.W | PF_ERROR.U,
  });
  // Supervisor writes honour read-only pages only with CR0.WP.
  assert.ok("fault" in walk32(mem, c, 0x401000, { write: true, user: false }));
  assert.ok(
    !("fault" in walk32(mem, { ...c, writeProtect: false }, 0x401000, {
      write: true,
      user: false,
    })),
  );
  assert.deepEqual(walk32(mem, c, 0xc0000000, { write: false, user: false }), { fault: 0 });
});

Deno.test("walk32 maps 4 MiB pages only with CR4.PSE", () => {
  const { mem, c } = setup();
  const t = walk32(mem, c, 0x812345, { write: false, user: false });
  assert.ok(!("fault" in t));
  assert.equal(t.physical, 0x412345);
  assert.ok("fault" in walk32(mem, c, 0x812345, { write: false, user: true }));
});

Deno.test("PagedMemory raises GuestPageFault with CR2 and leaves memory unchanged on a split write", () => {
  const { mem, c } = setup();
  let user = true;
  const pm = new PagedMemory(
    mem,
    () => ({ ...c, enabled: true, mode: "32-bit", nxe: false, physBits: 36 }),
    () => user,
  );
  pm.write32(0x400ffc, 0x11223344);
  assert.equal(mem.read32(0x20ffc), 0x11223344);
  // Crosses from the RW page into the read-only one: must fault without writing the first part.
  const before = mem.read32(0x20ffe);
  assert.throws(
    () => pm.write32(0x400ffe, 0xaabbccdd),
    (e: unknown) => e instanceof GuestPageFault && e.linear === 0x401000,
  );
  assert.equal(mem.read32(0x20ffe), before);
  // Implicit supervisor accesses pass where user ones fault.
  assert.throws(() => pm.read32(0x402000), GuestPageFault);
  assert.equal(pm.supervisor(() => pm.read32(0x402000)), 0);
  user = false;
  assert.equal(pm.read32(0x402000), 0);
});
