/**
 * The only place ring3 talks to libc. Signatures are chosen for V8's FFI fast path
 * (ARCHITECTURE.md, "Deno FFI pitfalls"): buffers are passed as pointers made once, and
 * 64-bit integer parameters take BigInt, so a ptrace round trip costs what it costs from C.
 *
 * glibc's ptrace() is variadic; on x86-64 SysV a fixed prototype with integer and pointer
 * arguments is ABI-compatible. The kernel checks the whole 64-bit `data` register (for example
 * `valid_signal(data)` on PTRACE_CONT), so `data` is always a 64-bit type here.
 *
 * @module
 */

const SYMBOLS = {
  // ptrace(request, pid, addr, data) in two shapes: pointer arguments (GETREGS, SETREGS,
  // GETSIGINFO) and integer arguments (SEIZE, CONT, SYSEMU, INTERRUPT).
  // The result is a long, but only 0 or -1 for the requests used: i32 keeps the call on the fast
  // path (a 64-bit result would be a BigInt allocated on every call).
  ptrace_ptr: { name: "ptrace", parameters: ["i32", "i32", "pointer", "pointer"], result: "i32" },
  ptrace_int: { name: "ptrace", parameters: ["i32", "i32", "u64", "u64"], result: "i32" },
  waitpid: { parameters: ["i32", "pointer", "i32"], result: "i32" },
  kill: { parameters: ["i32", "i32"], result: "i32" },
  getpid: { parameters: [], result: "i32" },
  gettid: { parameters: [], result: "i32" },
  __errno_location: { parameters: [], result: "pointer" },
  strerror: { parameters: ["i32"], result: "pointer" },
  clock_gettime: { parameters: ["i32", "pointer"], result: "i32" },
  memfd_create: { parameters: ["buffer", "u32"], result: "i32" },
  ftruncate: { parameters: ["i32", "i64"], result: "i32" },
  close: { parameters: ["i32"], result: "i32" },
  open: { parameters: ["buffer", "i32"], result: "i32" },
  write: { parameters: ["i32", "buffer", "usize"], result: "isize" },
  fcntl: { parameters: ["i32", "i32", "i32"], result: "i32" },
  mmap: { parameters: ["pointer", "usize", "i32", "i32", "i32", "i64"], result: "pointer" },
  munmap: { parameters: ["pointer", "usize"], result: "i32" },
  process_vm_readv: {
    parameters: ["i32", "buffer", "usize", "buffer", "usize", "usize"],
    result: "isize",
  },
  process_vm_writev: {
    parameters: ["i32", "buffer", "usize", "buffer", "usize", "usize"],
    result: "isize",
  },
  posix_spawn: {
    parameters: ["buffer", "buffer", "buffer", "pointer", "buffer", "buffer"],
    result: "i32",
  },
  posix_spawn_file_actions_init: { parameters: ["buffer"], result: "i32" },
  posix_spawn_file_actions_adddup2: { parameters: ["buffer", "i32", "i32"], result: "i32" },
  posix_spawn_file_actions_destroy: { parameters: ["buffer"], result: "i32" },
  sched_setaffinity: { parameters: ["i32", "usize", "buffer"], result: "i32" },
  sched_getaffinity: { parameters: ["i32", "usize", "buffer"], result: "i32" },
} as const satisfies Deno.ForeignLibraryInterface;

/** The libc functions ring3 binds, with ring3's chosen signatures. */
export type LibcSymbols = Deno.DynamicLibrary<typeof SYMBOLS>["symbols"];

/**
 * Opens libc for the calling thread. Every Worker opens its own: FFI handles are not shared
 * between isolates, and errno is thread-local, so errors must be read on the calling thread.
 *
 * @returns the bound symbols.
 */
export function openLibc(): LibcSymbols {
  if (Deno.build.os !== "linux" || Deno.build.arch !== "x86_64") {
    throw new Error(
      `ring3 needs a Linux x86-64 host (ptrace, compat-mode segments); this is ` +
        `${Deno.build.os}/${Deno.build.arch}. Use the QEMU backend on other hosts.`,
    );
  }
  return Deno.dlopen("libc.so.6", SYMBOLS).symbols;
}

/**
 * Reads errno of the calling thread. Call immediately after the failing libc call.
 *
 * @param libc bound symbols from {@link openLibc}
 * @returns the errno value
 */
export function lastErrno(libc: LibcSymbols): number {
  const p = libc.__errno_location();
  return p === null ? 0 : new Deno.UnsafePointerView(p).getInt32();
}

/**
 * The text libc gives for an errno value.
 *
 * @param libc bound symbols
 * @param errno the error number
 * @returns e.g. "Operation not permitted"
 */
export function strerror(libc: LibcSymbols, errno: number): string {
  const p = libc.strerror(errno);
  return p === null ? `errno ${errno}` : Deno.UnsafePointerView.getCString(p);
}

/** NUL-terminated bytes of a string, for C string parameters. */
export function cString(s: string): Uint8Array<ArrayBuffer> {
  return new TextEncoder().encode(s + "\0") as Uint8Array<ArrayBuffer>;
}
