/**
 * Long mode in the partial emulator, against plain memory and a register file in JS: entering
 * it (EFER.LME, CR0.PG, a far jump to a 64-bit selector), 16-byte IDT gates with IST and RSP0,
 * iretq, syscall and sysret, sysenter and sysexit, swapgs, MSRs and CPUID.
 */
import assert from "node:assert/strict";
import { Emulator, Exit, type HostSegments } from "./emulator.ts";
import type { CpuRegisters, PortIo } from "./interfaces.ts";
import { VcpuState } from "./vcpu_state.ts";
import { PhysicalMemory } from "../memory/physical_memory.ts";
import { CR0, MSR } from "./x86.ts";
import { CPUID_EXT_EDX } from "./cpu_model.ts";
import { EFER } from "./long_mode.ts";

const SEGV = 11, ILL = 4, SI_KERNEL = 0x80;
const CODE = 0x1000, GDT = 0x2000, IDT = 0x3000, TSS = 0x5000;
const STACK = 0x8000, RSP0 = 0x9000, IST1 = 0xa000, USTACK = 0xc000;

class Regs implements CpuRegisters, HostSegments {
  lo = new Uint32Array(16);
  hi = new Uint32Array(16);
  eip = 0;
  ripHigh = 0;
  eflags = 0x202;
  host = new Uint16Array([0x2b, 0x23, 0x2b, 0x2b, 0, 0]);
  bases = [0, 0];
  gpr(n: number) {
    return this.lo[n];
  }
  setGpr(n: number, v: number) {
    this.lo[n] = v >>> 0;
    this.hi[n] = 0;
  }
  gprHigh(n: number) {
    return this.hi[n];
  }
  setGpr64(n: number, low: number, high: number) {
    this.lo[n] = low >>> 0;
    this.hi[n] = high >>> 0;
  }
  setHostSelector(sreg: number, sel: number) {
    this.host[sreg] = sel;
  }
  hostSelector(sreg: number) {
    return this.host[sreg];
  }
  setSegmentBase(sreg: number, low: number, high: number) {
    this.bases[sreg - 4] = high * 2 ** 32 + (low >>> 0);
  }
}

function machine() {
  const bytes = new Uint8Array(0x10000);
  const mem = new PhysicalMemory(bytes);
  const dv = new DataView(bytes.buffer);
  const gdt = [
    0n,
    0x00cf9b000000ffffn, // 0x08 code32
    0x00cf93000000ffffn, // 0x10 data
    0x00af9b000000ffffn, // 0x18 code64
    0x00cf93000000ffffn, // 0x20 data (syscall SS)
    0x00cffb000000ffffn, // 0x28 user code32
    0x00cff3000000ffffn, // 0x30 user data
    0x00affb000000ffffn, // 0x38 user code64
    0x0000890000000067n | (BigInt(TSS) << 16n), // 0x40 TSS64, base 0x5000
    0n,
  ];
  gdt.forEach((d, i) => dv.setBigUint64(GDT + 8 * i, d, true));
  dv.setBigUint64(TSS + 4, BigInt(RSP0), true); // RSP0
  dv.setBigUint64(TSS + 0x24, BigInt(IST1), true); // IST1
  const state = new VcpuState();
  state.resetForMultiboot();
  state.gdtr = { base: GDT, limit: gdt.length * 8 - 1 };
  state.idtr = { base: IDT, limit: 0xfff };
  const io: PortIo = { read: () => 0xff, write: () => {} };
  const emu = new Emulator(state, mem, io, { paging: true });
  const regs = new Regs();
  regs.eip = CODE;
  regs.setGpr(4, STACK);
  const gate64 = (vector: number, handler: number, ist = 0, dpl = 0) => {
    const at = IDT + 16 * vector;
    dv.setUint32(at, (0x18 << 16) | (handler & 0xffff), true);
    dv.setUint32(at + 4, (handler & 0xffff0000) | 0x8e00 | (dpl << 13) | ist, true);
    dv.setUint32(at + 8, 0, true);
  };
  const run = (code: number[], signal = SEGV) => {
    bytes.set(code, regs.eip);
    return emu.handleFault(regs, signal, () => ({ code: SI_KERNEL, addr: 0, addrAbove4G: false }));
  };
  /** Puts the vCPU in 64-bit mode at CPL 0 as boot code would have. */
  const enter64 = () => {
    state.cr4 = 1 << 5;
    state.efer = EFER.LME | EFER.LMA | EFER.SCE | EFER.NXE;
    state.cr0 |= CR0.PG;
    state.tr = 0x40;
    state.trBase = TSS;
    state.trLimit = 0x67;
    state.code64 = true;
    state.selectors[1] = 0x18;
    regs.host[1] = 0x33;
  };
  return { emu, state, regs, mem, dv, run, gate64, enter64 };
}

Deno.test("EFER.LME and CR0.PG activate long mode; a far jump to an L=1 selector enters 64-bit code", () => {
  const m = machine();
  m.regs.setGpr(1, MSR.EFER);
  m.regs.setGpr(0, 0x100); // LME
  m.regs.setGpr(2, 0);
  assert.equal(m.run([0x0f, 0x30]), Exit.Resume); // wrmsr
  assert.equal(m.state.efer, EFER.LME);
  // CR0.PG without CR4.PAE: #GP (delivered through a 32-bit IDT with no gate: a fault chain).
  m.state.cr4 = 1 << 5; // PAE
  m.regs.setGpr(0, (m.state.cr0 | CR0.PG) >>> 0);
  assert.equal(m.run([0x0f, 0x22, 0xc0]), Exit.Resume); // mov %eax,%cr0
  assert.equal(m.state.longMode, true, "LMA");
  assert.equal(m.state.code64, false, "still compatibility mode");
  assert.match(m.state.describeMode(), /compatibility/);
  assert.equal(m.run([0xea, 0x00, 0x40, 0x00, 0x00, 0x18, 0x00]), Exit.Resume); // ljmp $0x18,$0x4000
  assert.equal(m.state.code64, true);
  assert.equal(m.regs.host[1], 0x33, "the host runs it with its 64-bit selector");
  assert.equal(m.state.selectors[1], 0x18, "the guest sees its own selector");
  assert.equal(m.regs.eip, 0x4000);
  // EFER.LME cannot change while paging is on, and LMA cannot be written.
  m.regs.setGpr(1, MSR.EFER);
  m.regs.setGpr(0, 0);
  m.gate64(13, 0x6000);
  assert.equal(m.run([0x0f, 0x30]), Exit.Resume);
  assert.equal(m.regs.eip, 0x6000, "#GP");
  assert.equal(m.state.efer, EFER.LME | EFER.LMA);
});

Deno.test("64-bit delivery uses 16-byte gates, RSP0 from user mode, IST, and iretq returns", () => {
  const m = machine();
  m.enter64();
  m.gate64(0x40, 0x7000, 0, 3);
  m.gate64(0x20, 0x7100, 1);
  // int $0x40 from CPL 3 in 64-bit code: the frame goes on RSP0 with SS:RSP.
  m.state.cpl = 3;
  m.state.selectors[1] = 0x3b;
  m.state.selectors[2] = 0x33;
  m.state.interruptFlag = true;
  m.regs.setGpr(4, USTACK - 8);
  assert.equal(m.run([0xcd, 0x40]), Exit.Resume);
  assert.equal(m.state.cpl, 0);
  assert.equal(m.regs.eip, 0x7000);
  assert.equal(m.state.interruptFlag, false, "interrupt gate");
  const sp = m.regs.gpr(4);
  assert.equal(sp, RSP0 - 40);
  const q = (at: number) => Number(m.dv.getBigUint64(at, true));
  assert.deepEqual([q(sp), q(sp + 8), q(sp + 16) & 0x200, q(sp + 24), q(sp + 32)], [
    CODE + 2,
    0x3b,
    0x200,
    USTACK - 8,
    0x33,
  ]);
  // iretq back to user mode restores everything.
  assert.equal(m.run([0x48, 0xcf]), Exit.Resume);
  assert.equal(m.state.cpl, 3);
  assert.equal(m.regs.eip, CODE + 2);
  assert.equal(m.regs.gpr(4), USTACK - 8);
  assert.equal(m.state.interruptFlag, true);
  // An external interrupt through an IST gate switches to IST1 even at CPL 0, aligned to 16.
  m.state.cpl = 0;
  m.state.selectors[1] = 0x18;
  m.regs.setGpr(4, STACK - 4);
  assert.equal(m.emu.deliverExternal(m.regs, 0x20), Exit.Resume);
  assert.equal(m.regs.gpr(4), IST1 - 40);
  assert.equal(q(IST1 - 40 + 24), STACK - 4, "the old rsp, unaligned, is in the frame");
});

Deno.test("syscall goes to LSTAR with STAR's selectors; sysretq returns to user mode", () => {
  const m = machine();
  m.enter64();
  const wr = (msr: number, v: bigint) => m.state.msrs.set(msr, v);
  wr(MSR.STAR, (0x28n << 48n) | (0x18n << 32n));
  wr(MSR.LSTAR, 0x7400n);
  wr(MSR.FMASK, 0x200n);
  m.state.cpl = 3;
  m.state.selectors[1] = 0x3b;
  m.state.interruptFlag = true;
  // The host annulled the syscall and reports rip after it; rax held the number.
  m.mem.write16(CODE, 0x050f);
  m.regs.eip = CODE + 2;
  m.regs.setGpr(0, (-38) >>> 0);
  assert.equal(m.emu.handleSyscall(m.regs, 39, false, 0), Exit.Resume);
  assert.equal(m.regs.eip, 0x7400);
  assert.equal(m.state.cpl, 0);
  assert.equal(m.state.selectors[1], 0x18);
  assert.equal(m.state.selectors[2], 0x20);
  assert.equal(m.state.interruptFlag, false, "SFMASK cleared IF");
  assert.equal(m.regs.gpr(1), CODE + 2, "rcx = return address");
  assert.equal(m.regs.gpr(11) & 0x200, 0x200, "r11 = the guest's rflags");
  assert.equal(m.regs.gpr(0), 39, "rax restored");
  assert.equal(m.run([0x48, 0x0f, 0x07]), Exit.Resume); // sysretq
  assert.equal(m.state.cpl, 3);
  assert.equal(m.state.selectors[1], 0x3b);
  assert.equal(m.state.selectors[2], 0x33);
  assert.equal(m.regs.eip, CODE + 2);
  assert.equal(m.state.interruptFlag, true);
});

Deno.test("sysenter and sysexit use the SYSENTER MSRs (32-bit guests)", () => {
  const m = machine();
  m.state.msrs.set(MSR.SYSENTER_CS, 0x08n);
  m.state.msrs.set(MSR.SYSENTER_ESP, BigInt(RSP0));
  m.state.msrs.set(MSR.SYSENTER_EIP, 0x7800n);
  m.state.cpl = 3;
  m.state.selectors[1] = 0x1b;
  m.state.interruptFlag = true;
  assert.equal(m.run([0x0f, 0x34], ILL), Exit.Resume); // AMD: #UD in compat mode
  assert.deepEqual([m.regs.eip, m.regs.gpr(4), m.state.cpl], [0x7800, RSP0, 0]);
  assert.deepEqual([m.state.selectors[1], m.state.selectors[2]], [0x08, 0x10]);
  assert.equal(m.state.interruptFlag, false);
  m.regs.setGpr(2, 0x1234); // edx: user eip
  m.regs.setGpr(1, USTACK); // ecx: user esp
  assert.equal(m.run([0x0f, 0x35]), Exit.Resume); // sysexit
  assert.deepEqual([m.regs.eip, m.regs.gpr(4), m.state.cpl], [0x1234, USTACK, 3]);
  assert.deepEqual([m.state.selectors[1], m.state.selectors[2]], [0x1b, 0x23]);
});

Deno.test("swapgs, FS/GS base MSRs reach the host bases; unknown MSRs raise #GP", () => {
  const m = machine();
  m.enter64();
  m.gate64(13, 0x6000);
  const wrmsr = (msr: number, v: number) => {
    m.regs.setGpr(1, msr);
    m.regs.setGpr(0, v);
    m.regs.setGpr(2, 0);
    return m.run([0x0f, 0x30]);
  };
  wrmsr(MSR.GS_BASE, 0x1111);
  wrmsr(MSR.KERNEL_GS_BASE, 0x2222);
  wrmsr(MSR.FS_BASE, 0x3333);
  assert.deepEqual(m.regs.bases, [0x3333, 0x1111]);
  const at = m.regs.eip;
  assert.equal(m.run([0x0f, 0x01, 0xf8], ILL), Exit.Resume); // swapgs (#UD at CPL 3 on the host)
  assert.equal(m.regs.bases[1], 0x2222);
  assert.equal(m.state.msrs.get(MSR.KERNEL_GS_BASE), 0x1111n);
  assert.equal(m.regs.eip, at + 3);
  wrmsr(0x12345, 1);
  assert.equal(m.regs.eip, 0x6000, "#GP for an MSR the virtual CPU does not have");
});

Deno.test("CPUID advertises long mode and NX, and SYSCALL only to 64-bit code", () => {
  const m = machine();
  const ext = () => {
    m.regs.setGpr(0, 0x80000001);
    m.run([0x0f, 0xa2], SEGV);
    return m.regs.gpr(2);
  };
  // cpuid does not trap by itself; a rewritten site does. Emulate it as a patched site would.
  const e32 = ext();
  assert.equal(e32 & CPUID_EXT_EDX.LM, CPUID_EXT_EDX.LM);
  assert.equal(e32 & CPUID_EXT_EDX.NX, CPUID_EXT_EDX.NX);
  assert.equal(e32 & CPUID_EXT_EDX.SYSCALL, 0);
  m.enter64();
  assert.equal(ext() & CPUID_EXT_EDX.SYSCALL, CPUID_EXT_EDX.SYSCALL);
});
