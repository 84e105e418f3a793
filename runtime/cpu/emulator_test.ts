/**
 * The partial emulator against plain memory and a register file in JS: what each trapped or
 * rewritten instruction does to the virtual CPU, without a host process.
 */
import assert from "node:assert/strict";
import { Emulator, Exit, type HostSegments, type PatchSite } from "./emulator.ts";
import type { CpuRegisters, PortIo } from "./interfaces.ts";
import { VcpuState } from "./vcpu_state.ts";
import { PhysicalMemory } from "../memory/physical_memory.ts";
import { RING3_CPU } from "./cpu_model.ts";

const SEGV = 11, TRAP = 5, SI_KERNEL = 0x80;
const CODE = 0x1000, GDT = 0x2000, IDT = 0x3000, STACK = 0x8000;

class FakeRegs implements CpuRegisters, HostSegments {
  gprs = new Uint32Array(16);
  highs = new Uint32Array(16);
  eip = 0;
  ripHigh = 0;
  eflags = 0x202;
  host = new Uint16Array(6);
  bases = [0, 0];
  gpr(n: number) {
    return this.gprs[n];
  }
  setGpr(n: number, v: number) {
    this.gprs[n] = v >>> 0;
    this.highs[n] = 0;
  }
  gprHigh(n: number) {
    return this.highs[n];
  }
  setGpr64(n: number, low: number, high: number) {
    this.gprs[n] = low >>> 0;
    this.highs[n] = high >>> 0;
  }
  setSegmentBase(sreg: number, low: number, high: number) {
    this.bases[sreg - 4] = high * 2 ** 32 + (low >>> 0);
  }
  setHostSelector(sreg: number, sel: number) {
    this.host[sreg] = sel;
  }
  hostSelector(sreg: number) {
    return this.host[sreg];
  }
}

function machine(code: number[], patches = new Map<number, PatchSite>()) {
  const bytes = new Uint8Array(0x10000);
  const mem = new PhysicalMemory(bytes);
  bytes.set(code, CODE);
  // GDT: null, 0x08 ring-0 code, 0x10 ring-0 data, 0x18 TSS (base 0x5000, limit 0x67).
  const dv = new DataView(bytes.buffer);
  dv.setUint32(GDT + 8, 0x0000ffff, true);
  dv.setUint32(GDT + 12, 0x00cf9a00, true);
  dv.setUint32(GDT + 16, 0x0000ffff, true);
  dv.setUint32(GDT + 20, 0x00cf9200, true);
  dv.setUint32(GDT + 24, 0x50000067, true);
  dv.setUint32(GDT + 28, 0x00008900, true);
  const state = new VcpuState();
  state.resetForMultiboot();
  state.gdtr = { base: GDT, limit: 0x1f };
  state.idtr = { base: IDT, limit: 0x7ff };
  const out: [number, number][] = [];
  const io: PortIo = { read: () => 0xff, write: (p, v) => void out.push([p, v]) };
  let now = 0;
  const emu = new Emulator(state, mem, io, { patches, guestTimeNs: () => now });
  const regs = new FakeRegs();
  regs.eip = CODE;
  regs.setGpr(4, STACK);
  return {
    emu,
    state,
    regs,
    mem,
    dv,
    out,
    setTime: (t: number) => now = t,
    gp: () => emu.handleFault(regs, SEGV, () => ({ code: SI_KERNEL, addr: 0, addrAbove4G: false })),
    /** int3 at a rewritten site: the host reports eip after it. */
    trap: () => {
      regs.eip += 1;
      return emu.handleFault(regs, TRAP, () => ({ code: SI_KERNEL, addr: 0, addrAbove4G: false }));
    },
  };
}

function patched(bytes: number[]): Map<number, PatchSite> {
  return new Map([[CODE, { bytes: new Uint8Array(bytes), bitness: 32 }]]);
}

Deno.test("out and in go to the port bus and step over the instruction", () => {
  const m = machine([0xe6, 0x80]); // out %al,$0x80
  m.regs.setGpr(0, 0x42);
  assert.equal(m.gp(), Exit.Resume);
  assert.deepEqual(m.out, [[0x80, 0x42]]);
  assert.equal(m.regs.eip, CODE + 2);
});

Deno.test("rep outsb moves ECX bytes; a fault midway leaves ESI and ECX where it stopped", () => {
  const m = machine([0xf3, 0x6e]); // rep outsb
  m.mem.write8(0x9000, 1);
  m.mem.write8(0x9001, 2);
  m.regs.setGpr(2, 0xe9);
  m.regs.setGpr(6, 0x9000);
  m.regs.setGpr(1, 2);
  assert.equal(m.gp(), Exit.Resume);
  assert.deepEqual(m.out, [[0xe9, 1], [0xe9, 2]]);
  assert.equal(m.regs.gpr(6), 0x9002);
  assert.equal(m.regs.gpr(1), 0);
  // Two bytes below the end of RAM: two go out, the third read fails, and a restart would
  // send only what is left.
  m.out.length = 0;
  m.regs.eip = CODE;
  m.regs.setGpr(6, 0xfffe);
  m.regs.setGpr(1, 4);
  assert.equal(m.gp(), Exit.Fatal);
  assert.match(`${m.emu.fatal?.message}`, /0x10000/);
  assert.equal(m.out.length, 2);
  assert.equal(m.regs.gpr(6), 0x10000);
  assert.equal(m.regs.gpr(1), 2);
  assert.equal(m.regs.eip, CODE);
});

Deno.test("cli and sti change only the virtual IF; pushf shows it, popf restores it", () => {
  // Rewritten pushf (9c) after a trapped cli (fa).
  const m = machine([0xfa], patched([0x9c]));
  m.state.interruptFlag = true;
  assert.equal(m.gp(), Exit.Resume); // cli
  assert.equal(m.state.interruptFlag, false);
  m.regs.eip = CODE;
  assert.equal(m.trap(), Exit.Resume); // pushf
  const pushed = m.mem.read32(STACK - 4);
  assert.equal(pushed & 0x200, 0, "pushf after cli shows IF=0");
  assert.equal(m.regs.eip, CODE + 1);
  // popf of a saved value with IF=1 turns the virtual IF back on.
  const m2 = machine([], patched([0x9d]));
  m2.mem.write32(STACK, 0x246);
  assert.equal(m2.trap(), Exit.Resume);
  assert.equal(m2.state.interruptFlag, true);
  assert.equal(m2.regs.gpr(4), STACK + 4);
  assert.equal(m2.regs.eflags & 0x40, 0x40, "ZF from the popped value");
});

Deno.test("mov from cs and ss and push cs give the guest's selectors, not the host's", () => {
  const m = machine([], patched([0x8c, 0xc8])); // mov %cs,%eax
  m.regs.setGpr(0, 0xdeadbeef);
  m.trap();
  assert.equal(m.regs.gpr(0), 0x08);
  const m2 = machine([], patched([0x0e])); // push %cs
  m2.trap();
  assert.equal(m2.mem.read32(STACK - 4), 0x08);
  const m3 = machine([], patched([0x8c, 0xd3])); // mov %ss,%ebx
  m3.trap();
  assert.equal(m3.regs.gpr(3), 0x10);
});

Deno.test("cpuid reports the virtual CPU model", () => {
  const m = machine([], patched([0x0f, 0xa2]));
  m.regs.setGpr(0, 0);
  m.trap();
  const vendor = [3, 2, 1].map((r) => m.regs.gpr(r)).map((v) =>
    String.fromCharCode(v & 0xff, (v >> 8) & 0xff, (v >> 16) & 0xff, v >>> 24)
  ).join("");
  assert.equal(vendor, RING3_CPU.vendor);
  const m1 = machine([], patched([0x0f, 0xa2]));
  m1.regs.setGpr(0, 1);
  m1.trap();
  assert.equal(m1.regs.gpr(2), RING3_CPU.features1Edx >>> 0);
});

Deno.test("rdtsc reads guest time, not host time", () => {
  const m = machine([], patched([0x0f, 0x31]));
  m.setTime(5_000_000_123);
  m.trap();
  assert.equal(m.regs.gpr(2) * 2 ** 32 + m.regs.gpr(0), 5_000_000_123);
});

Deno.test("sgdt, sidt, str, sldt and smsw return the virtual descriptor-table state", () => {
  const m = machine([], patched([0x0f, 0x01, 0x05, 0x00, 0x40, 0x00, 0x00])); // sgdt 0x4000
  m.trap();
  assert.equal(m.mem.read16(0x4000), 0x1f);
  assert.equal(m.mem.read32(0x4002), GDT);
  const m2 = machine([], patched([0x0f, 0x00, 0xc8])); // str %eax
  m2.state.tr = 0x18;
  m2.trap();
  assert.equal(m2.regs.gpr(0), 0x18);
  const m3 = machine([], patched([0x0f, 0x01, 0xe0])); // smsw %eax
  m3.trap();
  assert.equal(m3.regs.gpr(0) & 1, 1);
});

Deno.test("lar, lsl, verr and verw probe the guest's own GDT", () => {
  const m = machine([], patched([0x0f, 0x02, 0xc3])); // lar %ebx,%eax
  m.regs.setGpr(3, 0x08);
  m.trap();
  assert.equal(m.regs.eflags & 0x40, 0x40);
  assert.equal(m.regs.gpr(0), 0x00c09a00); // limit bits 19:16 undefined; QEMU masks them
  const m2 = machine([], patched([0x0f, 0x03, 0xc3])); // lsl %ebx,%eax
  m2.regs.setGpr(3, 0x10);
  m2.trap();
  assert.equal(m2.regs.gpr(0), 0xffffffff);
  const m3 = machine([], patched([0x0f, 0x00, 0xeb])); // verw %bx
  m3.regs.setGpr(3, 0x08);
  m3.trap();
  assert.equal(m3.regs.eflags & 0x40, 0, "code is not writable");
  const m4 = machine([], patched([0x0f, 0x02, 0xc3]));
  m4.regs.setGpr(3, 0x40); // beyond the GDT limit
  m4.trap();
  assert.equal(m4.regs.eflags & 0x40, 0);
});

Deno.test("rewritten syscall raises #UD and sysenter #GP(0), as on a CPU with them disabled", () => {
  for (const [bytes, vector] of [[[0x0f, 0x05], 6], [[0x0f, 0x34], 13]] as const) {
    const m = machine([], patched([...bytes]));
    // Gate for the vector: 32-bit interrupt gate to 0x1234 in selector 0x08.
    m.dv.setUint32(IDT + vector * 8, 0x00081234, true);
    m.dv.setUint32(IDT + vector * 8 + 4, 0x00008e00, true);
    assert.equal(m.trap(), Exit.Resume);
    assert.equal(m.regs.eip, 0x1234);
    assert.equal(m.mem.read32(m.regs.gpr(4) + (vector === 13 ? 4 : 0)), CODE, "faulting eip");
  }
});

Deno.test("an exception with no valid IDT entry ends as a triple fault", () => {
  const m = machine([0x0f, 0x0b]);
  m.state.idtr = { base: IDT, limit: 0 };
  const r = m.emu.handleFault(m.regs, 4, () => ({ code: 2, addr: CODE, addrAbove4G: false }));
  assert.equal(r, Exit.Fatal);
  assert.equal(m.emu.fatal?.kind, "triple-fault");
});

Deno.test("a guest int3 that is not a rewritten site is delivered as #BP", () => {
  const m = machine([0xcc]);
  m.dv.setUint32(IDT + 3 * 8, 0x00085678, true);
  m.dv.setUint32(IDT + 3 * 8 + 4, 0x00008f00, true);
  assert.equal(m.trap(), Exit.Resume);
  assert.equal(m.regs.eip, 0x5678);
  assert.equal(m.mem.read32(m.regs.gpr(4)), CODE + 1, "returns after the int3");
});

Deno.test("iret drops to CPL 3 and int $0x80 comes back up on the TSS ring-0 stack", () => {
  const m = machine([0xcf]); // iret
  const g = (i: number, lo: number, hi: number) => {
    m.dv.setUint32(GDT + i * 8, lo, true);
    m.dv.setUint32(GDT + i * 8 + 4, hi, true);
  };
  g(3, 0x0000ffff, 0x00cffa00); // 0x1b: ring-3 code
  g(4, 0x0000ffff, 0x00cff200); // 0x23: ring-3 data
  g(5, 0x50000067, 0x00008900); // 0x28: TSS at 0x5000
  m.state.gdtr = { base: GDT, limit: 0x2f };
  m.state.tr = 0x28;
  m.state.trBase = 0x5000;
  m.state.trLimit = 0x67;
  m.dv.setUint32(0x5004, 0x9000, true); // ESP0
  m.dv.setUint32(0x5008, 0x10, true); // SS0
  // Gate 0x80: DPL 3 interrupt gate to 0x08:0x2222.
  m.dv.setUint32(IDT + 0x80 * 8, 0x00082222, true);
  m.dv.setUint32(IDT + 0x80 * 8 + 4, 0x0000ee00, true);
  const changes: number[] = [];
  const emu = new Emulator(m.state, m.mem, { read: () => 0, write: () => {} }, {
    onPrivilegeChange: (cpl) => changes.push(cpl),
  });
  // Frame for iret to user mode: eip, cs, eflags, esp, ss.
  [0x7000, 0x1b, 0x202, 0x6000, 0x23].forEach((v, i) => m.mem.write32(STACK + 4 * i, v));
  const si = () => ({ code: SI_KERNEL, addr: 0, addrAbove4G: false });
  assert.equal(emu.handleFault(m.regs, SEGV, si), Exit.Resume);
  assert.equal(m.state.cpl, 3);
  assert.equal(m.regs.eip, 0x7000);
  assert.equal(m.regs.gpr(4), 0x6000);
  assert.equal(m.state.interruptFlag, true);
  assert.equal(m.state.selectors[1], 0x1b);
  assert.equal(m.state.selectors[3], 0, "kernel DS is not usable at CPL 3, so it is nulled");
  // int $0x80 from user mode arrives as a syscall stop with eip after the instruction.
  m.mem.write16(0x7000, 0x80cd);
  m.regs.eip = 0x7002;
  assert.equal(emu.handleSyscall(m.regs, 39, false), Exit.Resume);
  assert.equal(m.state.cpl, 0);
  assert.equal(m.regs.eip, 0x2222);
  assert.equal(m.regs.gpr(0), 39);
  const sp = m.regs.gpr(4);
  assert.equal(sp, 0x9000 - 20);
  assert.deepEqual([0, 4, 8, 12, 16].map((o) => m.mem.read32(sp + o)), [
    0x7002,
    0x1b,
    0x202,
    0x6000,
    0x23,
  ]);
  assert.equal(m.state.interruptFlag, false, "interrupt gate clears IF");
  assert.deepEqual(changes, [3, 0]);
  // A user-mode privileged instruction is a #GP, delivered to ring 0 as well.
  m.mem.write8(0x7100, 0xfa); // cli
  m.state.cpl = 3;
  m.state.selectors[2] = 0x23;
  m.regs.eip = 0x7100;
  m.regs.setGpr(4, 0x6000);
  m.dv.setUint32(IDT + 13 * 8, 0x00083333, true);
  m.dv.setUint32(IDT + 13 * 8 + 4, 0x00008e00, true);
  assert.equal(emu.handleFault(m.regs, SEGV, si), Exit.Resume);
  assert.equal(m.regs.eip, 0x3333);
  assert.equal(m.mem.read32(m.regs.gpr(4)), 0, "#GP error code 0");
  assert.equal(m.mem.read32(m.regs.gpr(4) + 4), 0x7100, "faulting eip");
});

Deno.test("a mov that faults on device memory is performed on the MMIO bus", () => {
  // mov 0xfee00030,%eax ; movl $0x1ff,0xfee000f0 ; orl $1,0xfee000f0 (not emulated)
  const m = machine([
    0xa1,
    0x30,
    0x00,
    0xe0,
    0xfe,
    0xc7,
    0x05,
    0xf0,
    0x00,
    0xe0,
    0xfe,
    0xff,
    0x01,
    0x00,
    0x00,
    0x83,
    0x0d,
    0xf0,
    0x00,
    0xe0,
    0xfe,
    0x01,
  ]);
  const writes: [number, number, number][] = [];
  const emu = new Emulator(m.state, m.mem, { read: () => 0, write: () => {} }, {
    mmio: {
      claims: (p) => p >= 0xfee00000 && p < 0xfee01000,
      read: (p) => p === 0xfee00030 ? 0x50014 : 0,
      write: (p, v, size) => void writes.push([p, v, size]),
    },
  });
  const fault = (addr: number) =>
    emu.handleFault(m.regs, SEGV, () => ({ code: 1, addr, addrAbove4G: false }));
  assert.equal(fault(0xfee00030), Exit.Resume);
  assert.equal(m.regs.gpr(0), 0x50014);
  assert.equal(m.regs.eip, CODE + 5);
  assert.equal(fault(0xfee000f0), Exit.Resume);
  assert.deepEqual(writes, [[0xfee000f0, 0x1ff, 4]]);
  assert.equal(m.regs.eip, CODE + 15);
  assert.equal(fault(0xfee000f0), Exit.Fatal);
  assert.equal(emu.fatal?.kind, "unsupported-instruction");
  assert.match(emu.fatal?.message ?? "", /device memory at 0xfee000f0/);
});
