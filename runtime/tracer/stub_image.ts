/**
 * The guest host process is made from this stub: a one-page static x86-64 ELF that ring3 emits
 * itself, so no compiler is needed at run time. It is linked far above 4 GiB, leaving the whole
 * low 4 GiB free for a 32-bit guest.
 *
 * What the stub does before the tracer owns it: leave Deno's session (so the terminal's ^C
 * does not reach the guest), unblock all signals (posix_spawn inherits the spawning thread's
 * mask, and the virtual clock's SIGPROF must get through), then stop itself with SIGSTOP so
 * the tracer can PTRACE_SEIZE it. After SIGCONT it reaches `int3` at {@link STUB.READY} and
 * never runs its own code again, except the injected-syscall gadget.
 *
 * @module
 */

/** Addresses inside the stub (host-virtual, 64-bit). */
export const STUB = {
  /** Load address of the one PT_LOAD segment (file offset 0). */
  BASE: 0x7f0000000000n,
  /** Entry point. */
  ENTRY: 0x7f0000000100n,
  /** The int3 the tracer first stops at; rip is READY + 1 there. */
  READY: 0x7f0000000140n,
  /** `syscall; int3`: the tracer runs host syscalls here; rip is GADGET + 3 after. */
  GADGET: 0x7f0000000200n,
  /** Eight zero bytes (the empty signal mask). */
  ZERO: 0x7f0000000300n,
  /** File and segment size. */
  SIZE: 0x1000,
  /** A read-write page (bss) for arguments of injected syscalls (itimerval, paths). */
  SCRATCH: 0x7f0000001000n,
  SCRATCH_SIZE: 0x1000,
} as const;

// Hand-assembled; stub_image_test.ts checks this against objdump when binutils is present.
function entryCode(zeroRel: number): number[] {
  const le32 = (v: number) => [v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, (v >>> 24) & 0xff];
  return [
    ...[0xb8, ...le32(112)], // mov $112,%eax          setsid()
    ...[0x0f, 0x05], //         syscall
    ...[0xb8, ...le32(14)], //  mov $14,%eax           rt_sigprocmask(SIG_SETMASK, &zero, 0, 8)
    ...[0xbf, ...le32(2)], //   mov $2,%edi
    ...[0x48, 0x8d, 0x35, ...le32(zeroRel)], // lea ZERO(%rip),%rsi
    ...[0x31, 0xd2], //         xor %edx,%edx
    ...[0x41, 0xba, ...le32(8)], // mov $8,%r10d
    ...[0x0f, 0x05], //         syscall
    ...[0xb8, ...le32(39)], //  mov $39,%eax           getpid()
    ...[0x0f, 0x05], //         syscall
    ...[0x89, 0xc7], //         mov %eax,%edi
    ...[0xbe, ...le32(19)], //  mov $19,%esi
    ...[0xb8, ...le32(62)], //  mov $62,%eax           kill(pid, SIGSTOP)
    ...[0x0f, 0x05], //         syscall
  ];
}

/**
 * Builds the stub ELF.
 *
 * @returns the file's bytes
 */
export function buildStubImage(): Uint8Array<ArrayBuffer> {
  const image = new Uint8Array(STUB.SIZE);
  const dv = new DataView(image.buffer);
  const base = STUB.BASE;
  // ELF64 header
  image.set([0x7f, 0x45, 0x4c, 0x46, 2, 1, 1, 0], 0);
  dv.setUint16(16, 2, true); // ET_EXEC
  dv.setUint16(18, 62, true); // EM_X86_64
  dv.setUint32(20, 1, true);
  dv.setBigUint64(24, STUB.ENTRY, true);
  dv.setBigUint64(32, 64n, true); // e_phoff
  dv.setUint16(52, 64, true); // e_ehsize
  dv.setUint16(54, 56, true); // e_phentsize
  dv.setUint16(56, 3, true); // e_phnum
  // PT_LOAD, R+X, the whole page
  const ph = 64;
  dv.setUint32(ph, 1, true);
  dv.setUint32(ph + 4, 5, true);
  dv.setBigUint64(ph + 8, 0n, true);
  dv.setBigUint64(ph + 16, base, true);
  dv.setBigUint64(ph + 24, base, true);
  dv.setBigUint64(ph + 32, BigInt(STUB.SIZE), true);
  dv.setBigUint64(ph + 40, BigInt(STUB.SIZE), true);
  dv.setBigUint64(ph + 48, 0x1000n, true);
  // PT_GNU_STACK, RW: without it the kernel may make readable mappings executable.
  const ph2 = ph + 56;
  dv.setUint32(ph2, 0x6474e551, true);
  dv.setUint32(ph2 + 4, 6, true);
  // PT_LOAD, RW, no file bytes: the scratch page.
  const ph3 = ph2 + 56;
  dv.setUint32(ph3, 1, true);
  dv.setUint32(ph3 + 4, 6, true);
  dv.setBigUint64(ph3 + 8, BigInt(STUB.SIZE), true);
  dv.setBigUint64(ph3 + 16, STUB.SCRATCH, true);
  dv.setBigUint64(ph3 + 24, STUB.SCRATCH, true);
  dv.setBigUint64(ph3 + 32, 0n, true);
  dv.setBigUint64(ph3 + 40, BigInt(STUB.SCRATCH_SIZE), true);
  dv.setBigUint64(ph3 + 48, 0x1000n, true);

  const entryOff = Number(STUB.ENTRY - base);
  const leaEnd = entryOff + 5 + 2 + 5 + 5 + 7; // rip after the lea
  const code = entryCode(Number(STUB.ZERO - base) - leaEnd);
  image.set(code, entryOff);
  const readyOff = Number(STUB.READY - base);
  if (entryOff + code.length > readyOff) throw new Error("stub entry code overlaps READY");
  image.fill(0x90, entryOff + code.length, readyOff); // nop up to READY
  image.set([0xcc, 0xeb, 0xfd], readyOff); // ready: int3; jmp ready
  const gadgetOff = Number(STUB.GADGET - base);
  image.set([0x0f, 0x05, 0xcc, 0x0f, 0x0b], gadgetOff); // syscall; int3; ud2
  return image;
}
