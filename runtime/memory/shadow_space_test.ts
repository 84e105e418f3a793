import assert from "node:assert/strict";
import { type HostMapper, PROT, ShadowSpace } from "./shadow_space.ts";
import { PTE } from "./page_walk.ts";
import { PhysicalMemory } from "./physical_memory.ts";
import type { TranslationControls } from "./translate.ts";

/** Records host mapping calls instead of making them. */
function recorder() {
  const calls: string[] = [];
  const mapper: HostMapper = {
    map: (l, n, p, phys) => void calls.push(`map ${l.toString(16)} ${n} ${p} ${phys.toString(16)}`),
    protect: (l, n, p) => void calls.push(`protect ${l.toString(16)} ${n} ${p}`),
    unmap: (l, n) => void calls.push(`unmap ${l.toString(16)} ${n.toString(16)}`),
  };
  return { calls, mapper };
}

/** 32-bit tables: 0x400000.. user pages, 0x401000 user read-only, 0x402000.. supervisor. */
function tables() {
  const mem = new PhysicalMemory(new Uint8Array(0x400000));
  const PD = 0x10000, PT = 0x11000;
  mem.write32(PD + 4, PT | PTE.P | PTE.RW | PTE.US);
  mem.write32(PT + 0, 0x20000 | PTE.P | PTE.RW | PTE.US | PTE.D);
  mem.write32(PT + 4, 0x21000 | PTE.P | PTE.US | PTE.D);
  mem.write32(PT + 8, 0x22000 | PTE.P | PTE.RW | PTE.D);
  mem.write32(PT + 12, 0x23000 | PTE.P | PTE.RW | PTE.D);
  const c: TranslationControls = {
    mode: "32-bit",
    cr3: PD,
    writeProtect: false,
    pse: false,
    nxe: false,
    physBits: 36,
  };
  return { mem, c };
}

Deno.test("ShadowSpace flushes only the span it mapped", () => {
  const { mem, c } = tables();
  const { calls, mapper } = recorder();
  const s = new ShadowSpace(mapper, false);
  assert.equal(s.fill(mem, c, 0x401234, false).kind, "mapped");
  assert.equal(s.fill(mem, c, 0x402000, false).kind, "mapped");
  calls.length = 0;
  s.flushAll();
  assert.deepEqual(calls, ["unmap 401000 2000"]);
  s.flushAll();
  assert.equal(calls.length, 1, "nothing mapped, nothing to do");
});

Deno.test("ShadowSpace refuses linear addresses at its limit (the tracer stub's)", () => {
  const { mem, c } = tables();
  const { calls, mapper } = recorder();
  const s = new ShadowSpace(mapper, false, 0x7f0000000000);
  const r = s.fill(mem, { ...c, mode: "4-level" }, 0x7f0000000010, false);
  assert.deepEqual(r, { kind: "unmappable", linear: 0x7f0000000010, limit: 0x7f0000000000 });
  assert.deepEqual(calls, []);
});

Deno.test("hideSupervisorPages unmaps supervisor runs and write-protects user read-only pages", () => {
  const { mem, c } = tables();
  const { calls, mapper } = recorder();
  const s = new ShadowSpace(mapper, false);
  // Kernel mode with CR0.WP=0 writes the user read-only page: mapped writable for the kernel.
  for (const la of [0x400000, 0x401000, 0x402000, 0x403000]) {
    assert.equal(s.fill(mem, c, la, true).kind, "mapped");
  }
  calls.length = 0;
  s.hideSupervisorPages();
  assert.deepEqual(calls, [
    "unmap 402000 2000",
    `protect 401000 4096 ${PROT.READ | PROT.EXEC}`,
  ]);
  s.userMode = true;
  assert.equal(s.mappedReadOnly(0x401000), true);
  assert.deepEqual(s.fill(mem, c, 0x402000, false), { kind: "guest-fault", errorCode: 5 });
  assert.deepEqual(s.fill(mem, c, 0x401000, true), { kind: "guest-fault", errorCode: 7 });
});
