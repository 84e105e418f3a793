import { cString, type LibcSymbols } from "./libc.ts";
import { HostError, hostError } from "./host_error.ts";
import { SIG, WAIT } from "./layouts.ts";

const O_RDONLY_CLOEXEC = 0x80000;
const PTRACE_CONT = 7;
const FILE_ACTIONS_SIZE = 128; // glibc's posix_spawn_file_actions_t is 80 bytes

/**
 * Makes an executable file from bytes without touching the file system: a memfd, reopened
 * read-only so that execve does not fail with ETXTBSY (the kernel refuses to execute a file
 * that is open for writing anywhere).
 *
 * @param libc bound symbols
 * @param name memfd name
 * @param image the ELF file
 * @returns a path that execve accepts, and a function that releases the file
 */
export function executableFromBytes(
  libc: LibcSymbols,
  name: string,
  image: Uint8Array<ArrayBuffer>,
): { path: string; close(): void } {
  const rw = libc.memfd_create(cString(name), 1 /* MFD_CLOEXEC */);
  if (rw < 0) throw hostError(libc, "memfd_create", name);
  try {
    let done = 0;
    while (done < image.length) {
      const n = Number(libc.write(rw, image.subarray(done), BigInt(image.length - done)));
      if (n <= 0) throw hostError(libc, "write", `${name} image`);
      done += n;
    }
    const ro = libc.open(cString(`/proc/self/fd/${rw}`), O_RDONLY_CLOEXEC);
    if (ro < 0) throw hostError(libc, "open", `/proc/self/fd/${rw}`);
    const path = `/proc/${libc.getpid()}/fd/${ro}`;
    return { path, close: () => void libc.close(ro) };
  } finally {
    libc.close(rw);
  }
}

/**
 * Starts a program with posix_spawn, bypassing Deno.Command (whose reaper would race the
 * tracer for the child's exit status). The child's parent is this process; the caller reaps it.
 *
 * @param libc bound symbols
 * @param path executable path
 * @param argv argument vector (argv[0] included)
 * @param dup2 descriptors to install in the child: [ourFd, childFd] pairs. dup2 clears
 *   close-on-exec on the child's copy only, so our descriptors stay private to us.
 * @returns the child's pid
 */
export function spawnProcess(
  libc: LibcSymbols,
  path: string,
  argv: string[],
  dup2: [number, number][] = [],
): number {
  const keep = argv.map(cString);
  const argvPtrs = new BigUint64Array(argv.length + 1);
  keep.forEach((s, i) => argvPtrs[i] = BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(s))));
  const envp = new BigUint64Array(1);
  const actions = new Uint8Array(FILE_ACTIONS_SIZE);
  if (libc.posix_spawn_file_actions_init(actions) !== 0) {
    throw new HostError("posix_spawn_file_actions_init", 12, "out of memory");
  }
  try {
    for (const [from, to] of dup2) {
      const rc = libc.posix_spawn_file_actions_adddup2(actions, from, to);
      if (rc !== 0) throw new HostError("posix_spawn_file_actions_adddup2", rc, `fd ${from}`);
    }
    const pid = new Int32Array(1);
    const rc = libc.posix_spawn(
      new Uint8Array(pid.buffer),
      cString(path),
      actions,
      null,
      new Uint8Array(argvPtrs.buffer),
      new Uint8Array(envp.buffer),
    );
    if (rc !== 0) throw new HostError("posix_spawn", rc, `error ${rc}`, path);
    return pid[0];
  } finally {
    libc.posix_spawn_file_actions_destroy(actions);
    void keep;
  }
}

/**
 * Kills a child and reaps it, ignoring a child that is already gone. Safe to call twice.
 *
 * @param libc bound symbols
 * @param pid the child
 */
export function killAndReap(libc: LibcSymbols, pid: number): void {
  libc.kill(pid, SIG.KILL);
  const status = new Int32Array(1);
  const p = Deno.UnsafePointer.of(status);
  // A traced child may still report a PTRACE_EVENT_EXIT stop after SIGKILL; resume it (this
  // only works on the tracer thread; elsewhere the call fails harmlessly) until it is reaped.
  for (let i = 0; i < 64; i++) {
    const r = libc.waitpid(pid, p, WAIT.WALL);
    if (r !== pid) return;
    if ((status[0] & 0xff) !== 0x7f) return;
    libc.ptrace_int(PTRACE_CONT, pid, 0n, 0n);
  }
}
