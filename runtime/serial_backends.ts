/**
 * Host backends of the serial lines COM2..COM4 (COM1 is the scenario's console): where a line's
 * output goes and where its input comes from. Each backend is polled by the machine between
 * guest slices and never blocks it.
 *
 * @module
 */
import type { SerialBackendSpec } from "./machine_protocol.ts";
import { NonBlockingFd, openPty } from "./host/pty.ts";

/** One line's host side. */
export interface SerialBackend {
  /** What it is, for logs: "pty /dev/pts/3". */
  readonly description: string;
  /** The slave path when the backend is a pty. */
  readonly ptyPath?: string;
  /** Guest output. */
  write(bytes: Uint8Array): void;
  /** Input waiting now (empty when none). */
  poll(): Uint8Array;
  close(): void;
}

/**
 * Opens a host backend ("console" lines are served by the machine itself and get null).
 *
 * @param line 2..4
 * @param spec the boot option
 * @returns the backend, or null for "console"
 * @throws {HostError} when the host refuses the resource
 */
export function openSerialBackend(line: number, spec: SerialBackendSpec): SerialBackend | null {
  if (spec === "console") return null;
  if ("pty" in spec) {
    const pty = openPty();
    return {
      description: `pty ${pty.path}`,
      ptyPath: pty.path,
      write: (b) => void pty.master.write(b),
      poll: () => pty.master.read() ?? new Uint8Array(0),
      close: () => pty.master.close(),
    };
  }
  if ("file" in spec) {
    const file = Deno.openSync(spec.file, { write: true, create: true, truncate: true });
    return {
      description: `file ${spec.file}`,
      write: (b) => {
        let off = 0;
        while (off < b.length) off += file.writeSync(b.subarray(off));
      },
      poll: () => new Uint8Array(0),
      close: () => file.close(),
    };
  }
  if ("pipe" in spec) {
    // QEMU's -serial pipe:PATH convention: the guest reads PATH.in and writes PATH.out. Both are
    // FIFOs the user made (mkfifo); the output side is opened once a reader is there.
    const input = NonBlockingFd.open(`${spec.pipe}.in`, "r");
    let output: NonBlockingFd | null = null;
    return {
      description: `pipe ${spec.pipe}.{in,out}`,
      write: (b) => {
        output ??= NonBlockingFd.open(`${spec.pipe}.out`, "w");
        output?.write(b);
      },
      poll: () => input?.read() ?? new Uint8Array(0),
      close: () => {
        input?.close();
        output?.close();
      },
    };
  }
  throw new RangeError(`COM${line}: unknown serial backend ${JSON.stringify(spec)}`);
}
