/**
 * Linux x86-64 constants and struct layouts, in one place. Sources: linux/ptrace.h,
 * asm/ptrace.h (struct user_regs_struct), asm-generic/siginfo.h, signal.h, sys/wait.h.
 *
 * @module
 */

/** ptrace requests. */
export const PTRACE = {
  GETREGS: 12,
  GETFPREGS: 14,
  SETFPREGS: 15,
  SETREGS: 13,
  CONT: 7,
  SYSEMU: 31,
  SYSEMU_SINGLESTEP: 32,
  GETSIGINFO: 0x4202,
  SETOPTIONS: 0x4200,
  SEIZE: 0x4206,
  INTERRUPT: 0x4207,
  GET_SYSCALL_INFO: 0x420e,
} as const;

/** ptrace options given at PTRACE_SEIZE. */
export const PTRACE_O = {
  TRACESYSGOOD: 0x1,
  TRACEEXIT: 0x40,
  EXITKILL: 0x100000,
} as const;

/** PTRACE_EVENT_* codes, found in bits 16..23 of a wait status. */
export const PTRACE_EVENT = { EXIT: 6, STOP: 128 } as const;

/** Signal numbers (x86-64 Linux). */
export const SIG = {
  HUP: 1,
  INT: 2,
  QUIT: 3,
  ILL: 4,
  TRAP: 5,
  ABRT: 6,
  BUS: 7,
  FPE: 8,
  KILL: 9,
  SEGV: 11,
  PIPE: 13,
  ALRM: 14,
  TERM: 15,
  CHLD: 17,
  CONT: 18,
  STOP: 19,
  TSTP: 20,
  VTALRM: 26,
  PROF: 27,
  WINCH: 28,
} as const;

/** siginfo si_code values that matter to the tracer. */
export const SI_CODE = {
  /** Raised by the kernel itself: #GP from a privileged instruction, int3, int $n. */
  KERNEL: 0x80,
  SEGV_MAPERR: 1,
  SEGV_ACCERR: 2,
  ILL_ILLOPN: 2,
  FPE_INTDIV: 1,
  BUS_ADRERR: 2,
} as const;

/** waitpid flags. */
export const WAIT = { WNOHANG: 1, WUNTRACED: 2, WALL: 0x40000000 } as const;

/**
 * Index of each register in struct user_regs_struct (27 unsigned longs). Access a register's
 * low 32 bits as `u32[2 * REG.x]` and its high half as `u32[2 * REG.x + 1]`: no BigInt on the
 * trap path.
 */
export const REG = {
  r15: 0,
  r14: 1,
  r13: 2,
  r12: 3,
  rbp: 4,
  rbx: 5,
  r11: 6,
  r10: 7,
  r9: 8,
  r8: 9,
  rax: 10,
  rcx: 11,
  rdx: 12,
  rsi: 13,
  rdi: 14,
  orig_rax: 15,
  rip: 16,
  cs: 17,
  eflags: 18,
  rsp: 19,
  ss: 20,
  fs_base: 21,
  gs_base: 22,
  ds: 23,
  es: 24,
  fs: 25,
  gs: 26,
} as const;

/** Size in bytes of struct user_regs_struct. */
export const USER_REGS_SIZE = 27 * 8;

/** Byte offsets in siginfo_t (128 bytes) for the fields ring3 reads. */
export const SIGINFO = {
  SIZE: 128,
  signo: 0,
  errno: 4,
  code: 8,
  /** si_addr for SIGSEGV, SIGBUS, SIGILL, SIGFPE (a union member at offset 16). */
  addr: 16,
} as const;

/** Host segment selectors of a Linux x86-64 process (arch/x86/include/asm/segment.h). */
export const HOST_SELECTOR = {
  /** __USER32_CS: 32-bit compatibility-mode code. */
  CS32: 0x23,
  /** __USER_DS: flat data, also the 64-bit stack segment. */
  DS: 0x2b,
  /** __USER_CS: 64-bit code. */
  CS64: 0x33,
} as const;

/** EFLAGS bits. */
export const EFLAGS = {
  CF: 1 << 0,
  PF: 1 << 2,
  AF: 1 << 4,
  ZF: 1 << 6,
  SF: 1 << 7,
  TF: 1 << 8,
  IF: 1 << 9,
  DF: 1 << 10,
  OF: 1 << 11,
  IOPL: 3 << 12,
  NT: 1 << 14,
  RF: 1 << 16,
  VM: 1 << 17,
  AC: 1 << 18,
  VIF: 1 << 19,
  VIP: 1 << 20,
  ID: 1 << 21,
} as const;

/** x86-64 and i386 system call numbers the runtime injects or recognises. */
export const SYSCALL = {
  mmap: 9,
  mprotect: 10,
  munmap: 11,
  rt_sigprocmask: 14,
  getpid: 39,
  kill: 62,
  setsid: 112,
  setitimer: 38,
  prctl: 157,
  arch_prctl: 158,
  modify_ldt: 154,
} as const;

/** mmap/mprotect constants. */
export const MMAP = {
  PROT_READ: 1,
  PROT_WRITE: 2,
  PROT_EXEC: 4,
  MAP_SHARED: 1,
  MAP_PRIVATE: 2,
  MAP_FIXED: 0x10,
  MAP_ANONYMOUS: 0x20,
  MAP_FIXED_NOREPLACE: 0x100000,
} as const;

/** A decoded waitpid status. */
export type WaitStatus =
  | { kind: "exited"; code: number }
  | { kind: "signaled"; signal: number }
  | { kind: "stopped"; signal: number; event: number; syscall: boolean };

/**
 * Decodes a wait status word as the W* macros do.
 *
 * @param status the int waitpid stored
 * @returns what happened
 */
export function decodeWaitStatus(status: number): WaitStatus {
  if ((status & 0x7f) === 0) return { kind: "exited", code: (status >> 8) & 0xff };
  if ((status & 0xff) !== 0x7f) return { kind: "signaled", signal: status & 0x7f };
  const sig = (status >> 8) & 0xff;
  return {
    kind: "stopped",
    signal: sig & 0x7f,
    event: (status >>> 16) & 0xff,
    syscall: sig === (SIG.TRAP | 0x80),
  };
}
