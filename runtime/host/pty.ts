/**
 * Host pseudo-terminals and non-blocking descriptors for serial line backends: the master side
 * stays with the machine's thread, which polls it between guest slices (a read never blocks the
 * tracer), and the slave path is what a person opens with `screen PATH` or `minicom -p PATH`.
 *
 * The pty is put in raw mode (cfmakeraw), as QEMU does for `-serial pty`: a guest's bytes pass
 * unchanged in both directions and are never echoed back to it.
 *
 * @module
 */
import { HostError } from "./host_error.ts";

const SYMBOLS = {
  posix_openpt: { parameters: ["i32"], result: "i32" },
  grantpt: { parameters: ["i32"], result: "i32" },
  unlockpt: { parameters: ["i32"], result: "i32" },
  ptsname: { parameters: ["i32"], result: "pointer" },
  tcgetattr: { parameters: ["i32", "buffer"], result: "i32" },
  tcsetattr: { parameters: ["i32", "i32", "buffer"], result: "i32" },
  cfmakeraw: { parameters: ["buffer"], result: "void" },
  fcntl: { parameters: ["i32", "i32", "i32"], result: "i32" },
  open: { parameters: ["buffer", "i32", "i32"], result: "i32" },
  read: { parameters: ["i32", "buffer", "usize"], result: "isize" },
  write: { parameters: ["i32", "buffer", "usize"], result: "isize" },
  close: { parameters: ["i32"], result: "i32" },
  __errno_location: { parameters: [], result: "pointer" },
} as const satisfies Deno.ForeignLibraryInterface;

type Symbols = Deno.DynamicLibrary<typeof SYMBOLS>["symbols"];

const O_RDWR = 2;
const O_RDONLY = 0;
const O_WRONLY = 1;
const O_NOCTTY = 0o400;
const O_NONBLOCK = 0o4000;
const O_CLOEXEC = 0o2000000;
const F_GETFL = 3;
const F_SETFL = 4;
const EAGAIN = 11;
const EIO = 5;
/** glibc's struct termios is 60 bytes on x86-64; a little slack costs nothing. */
const TERMIOS_BYTES = 64;

function errno(libc: Symbols): number {
  const p = libc.__errno_location();
  return p === null ? 0 : new Deno.UnsafePointerView(p).getInt32();
}

function fail(libc: Symbols, call: string, context: string): never {
  const e = errno(libc);
  throw new HostError(call, e, `errno ${e}`, context);
}

/** A host descriptor read and written without blocking. */
export class NonBlockingFd {
  readonly #libc: Symbols;
  #fd: number;
  readonly #buf = new Uint8Array(4096);

  /** @internal */
  constructor(libc: Symbols, fd: number) {
    this.#libc = libc;
    this.#fd = fd;
    const flags = libc.fcntl(fd, F_GETFL, 0);
    if (flags < 0 || libc.fcntl(fd, F_SETFL, flags | O_NONBLOCK) < 0) {
      fail(libc, "fcntl(O_NONBLOCK)", `fd ${fd}`);
    }
  }

  /**
   * Opens a path without blocking (a FIFO opened for writing with no reader fails with ENXIO:
   * the caller may retry later).
   *
   * @param path host path
   * @param mode "r" or "w"
   * @returns the descriptor, or null when a FIFO has no reader yet
   */
  static open(path: string, mode: "r" | "w"): NonBlockingFd | null {
    const libc = Deno.dlopen("libc.so.6", SYMBOLS).symbols;
    const flags = (mode === "r" ? O_RDONLY : O_WRONLY) | O_NONBLOCK | O_CLOEXEC | O_NOCTTY;
    const fd = libc.open(new TextEncoder().encode(path + "\0"), flags, 0);
    if (fd < 0) {
      if (errno(libc) === 6 /* ENXIO */) return null;
      fail(libc, "open", path);
    }
    return new NonBlockingFd(libc, fd);
  }

  /**
   * Reads what is there now.
   *
   * @returns bytes, an empty array when nothing is waiting, or null at end of file (or when
   *   a pty's slave side is closed)
   */
  read(): Uint8Array | null {
    if (this.#fd < 0) return null;
    const n = Number(this.#libc.read(this.#fd, this.#buf, BigInt(this.#buf.length)));
    if (n > 0) return this.#buf.slice(0, n);
    if (n === 0) return null;
    const e = errno(this.#libc);
    if (e === EAGAIN) return new Uint8Array(0);
    if (e === EIO) return new Uint8Array(0); // a pty with no slave open: nobody attached yet
    fail(this.#libc, "read", `fd ${this.#fd}`);
  }

  /**
   * Writes as much as the descriptor takes now; the rest is dropped, as a UART's bytes are lost
   * when nobody listens (a pty with nobody attached fills and then refuses).
   *
   * @param bytes what to write
   * @returns bytes written
   */
  write(bytes: Uint8Array): number {
    if (this.#fd < 0 || bytes.length === 0) return 0;
    const n = Number(
      this.#libc.write(this.#fd, bytes as Uint8Array<ArrayBuffer>, BigInt(bytes.length)),
    );
    return n < 0 ? 0 : n;
  }

  close(): void {
    if (this.#fd >= 0) this.#libc.close(this.#fd);
    this.#fd = -1;
  }
}

/** The master side of a pseudo-terminal, and the slave's path. */
export interface HostPty {
  /** The slave device, e.g. /dev/pts/7. */
  path: string;
  master: NonBlockingFd;
}

/**
 * Opens a pseudo-terminal in raw mode.
 *
 * @returns the master (non-blocking) and the slave path
 * @throws {HostError} when the host has no ptys to give
 */
export function openPty(): HostPty {
  const libc = Deno.dlopen("libc.so.6", SYMBOLS).symbols;
  const fd = libc.posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
  if (fd < 0) fail(libc, "posix_openpt", "serial line pty");
  if (libc.grantpt(fd) !== 0 || libc.unlockpt(fd) !== 0) {
    libc.close(fd);
    fail(libc, "grantpt/unlockpt", "serial line pty");
  }
  const name = libc.ptsname(fd);
  if (name === null) fail(libc, "ptsname", "serial line pty");
  const termios = new Uint8Array(TERMIOS_BYTES);
  if (libc.tcgetattr(fd, termios) !== 0) fail(libc, "tcgetattr", "serial line pty");
  libc.cfmakeraw(termios);
  if (libc.tcsetattr(fd, 0, /* TCSANOW */ termios) !== 0) {
    fail(libc, "tcsetattr", "serial line pty");
  }
  return { path: Deno.UnsafePointerView.getCString(name), master: new NonBlockingFd(libc, fd) };
}
