import { lastErrno, type LibcSymbols, strerror } from "./libc.ts";

/** Symbolic names of the errno values ring3 meets, for messages and for callers to test. */
export const ERRNO_NAMES: Readonly<Record<number, string>> = {
  1: "EPERM",
  2: "ENOENT",
  3: "ESRCH",
  4: "EINTR",
  5: "EIO",
  9: "EBADF",
  10: "ECHILD",
  11: "EAGAIN",
  12: "ENOMEM",
  13: "EACCES",
  14: "EFAULT",
  16: "EBUSY",
  17: "EEXIST",
  19: "ENODEV",
  22: "EINVAL",
  24: "EMFILE",
  28: "ENOSPC",
  38: "ENOSYS",
};

/**
 * A failed host call: which call, on what, and the errno the host gave.
 *
 * @example
 * ```ts
 * import { HostError } from "./host_error.ts";
 * const e = new HostError("ptrace(PTRACE_SEIZE)", 1, "Operation not permitted", "pid 42");
 * if (e.code !== "EPERM") throw new Error("unexpected");
 * ```
 */
export class HostError extends Error {
  override name = "HostError";
  /** The symbolic errno ("EPERM"), or "E<n>" when ring3 has no name for it. */
  readonly code: string;

  /**
   * @param call the host call that failed, e.g. "ptrace(PTRACE_SEIZE)"
   * @param errno the error number
   * @param text libc's description of errno
   * @param context what the call was about, e.g. "pid 1234"
   */
  constructor(
    readonly call: string,
    readonly errno: number,
    text: string,
    readonly context = "",
  ) {
    super(
      `${call}${context ? ` (${context})` : ""} failed: ${text} [${ERRNO_NAMES[errno] ?? errno}]`,
    );
    this.code = ERRNO_NAMES[errno] ?? `E${errno}`;
  }
}

/**
 * Builds a {@link HostError} from the calling thread's errno.
 *
 * @param libc bound symbols (errno is read through them)
 * @param call the call that failed
 * @param context what it was about
 * @returns the error, to throw
 */
export function hostError(libc: LibcSymbols, call: string, context = ""): HostError {
  const errno = lastErrno(libc);
  return new HostError(call, errno, strerror(libc, errno), context);
}
