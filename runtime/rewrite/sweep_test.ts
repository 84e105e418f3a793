import assert from "node:assert/strict";
import { withSweeper } from "./sweep.ts";

const sweep = (bytes: number[], start: number, end: number, bits: 16 | 32 | 64 = 32) =>
  withSweeper((s) => s.sweep(Uint8Array.from(bytes), start, end, bits));

Deno.test("Sweeper.sweep() finds boundaries, sites and branch targets of consistent code", () => {
  // 0x1000: pushf; 0x1001: cli; 0x1002: je 0x1006; 0x1004: call 0x1000 (rel8 can't) -> use
  // jmp short; 0x1006: popf; 0x1007: ret
  const r = sweep([0x9c, 0xfa, 0x74, 0x02, 0xeb, 0xfa, 0x9d, 0xc3], 0x1000, 0x1008);
  assert.equal(r.failure, undefined);
  assert.deepEqual(r.starts, [0x1000, 0x1001, 0x1002, 0x1004, 0x1006, 0x1007]);
  assert.deepEqual(r.lengths, [1, 1, 2, 2, 1, 1]);
  assert.deepEqual(r.plain, [0, 0, 0, 0, 0, 0]);
  assert.deepEqual(r.targets, [0x1006, 0x1000]);
  assert.deepEqual(
    r.sites.map((s) => [s.vaddr, s.kind, s.class, s.text, s.flowNext]),
    [
      [0x1000, "pushf", "sensitive", "pushf", true],
      [0x1001, "cli", "privileged", "cli", true],
      [0x1006, "popf", "sensitive", "popf", true],
    ],
  );
  assert.deepEqual([...r.sites[0].bytes], [0x9c]);
});

Deno.test("Sweeper.sweep() reports an invalid decode and resynchronises after it", () => {
  // nop; (bad) ff ff; then from 0x2002: inc %ebx (ff c3); cpuid
  const r = sweep([0x90, 0xff, 0xff, 0xc3, 0x0f, 0xa2], 0x2000, 0x2006);
  assert.equal(r.failure?.reason, "invalid-decode");
  assert.equal(r.failure?.vaddr, 0x2001);
  assert.match(
    r.failure!.detail,
    /invalid instruction at 0x2001 \(ff ff c3 0f a2\): data in code\?/,
  );
  assert.deepEqual(r.starts, [0x2000, 0x2002, 0x2004]);
  assert.deepEqual(r.sites.map((s) => [s.vaddr, s.kind]), [[0x2004, "cpuid"]]);
});

Deno.test("Sweeper.sweep() reports an instruction running past the end of the range", () => {
  // mov $0x12345678,%eax (5 bytes) over a range that ends after 3 bytes
  const r = sweep([0xb8, 0x78, 0x56, 0x34, 0x12], 0x3000, 0x3003);
  assert.equal(r.failure?.reason, "overrun");
  assert.match(r.failure!.detail, /at 0x3000 \(5 bytes\) runs past the end of the range at 0x3003/);
  assert.deepEqual(r.starts, []);
});

Deno.test("Sweeper.sweep() calls a truncated instruction at the end of the bytes an overrun", () => {
  const r = sweep([0x90, 0x0f], 0x3000, 0x3002);
  assert.equal(r.failure?.reason, "overrun");
  assert.equal(r.failure?.vaddr, 0x3001);
});

Deno.test("Sweeper.sweep() decodes in the requested mode", () => {
  // 48 cf: iretq in 64-bit mode; dec %eax; iret in 32-bit mode
  const r64 = sweep([0x48, 0xcf], 0, 2, 64);
  assert.deepEqual(r64.sites.map((s) => [s.vaddr, s.text, s.bitness]), [[0, "iretq", 64]]);
  const r32 = sweep([0x48, 0xcf], 0, 2, 32);
  assert.deepEqual(r32.sites.map((s) => [s.vaddr, s.text, s.bitness]), [[1, "iret", 32]]);
});

Deno.test("Sweeper.sweep() of an empty range finds nothing", () => {
  const r = sweep([], 0x10, 0x10);
  assert.deepEqual(r.starts, []);
  assert.equal(r.failure, undefined);
});
