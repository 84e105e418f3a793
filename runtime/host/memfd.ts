import { cString, type LibcSymbols } from "./libc.ts";
import { hostError } from "./host_error.ts";
import { MMAP } from "./layouts.ts";

const MFD_CLOEXEC = 1;

/** A memfd mapped shared into this process: the same pages another process can map. */
export interface SharedMemory {
  /** The file descriptor in this process (close-on-exec). */
  readonly fd: number;
  /** Size in bytes. */
  readonly size: number;
  /** Zero-copy view of the mapping. */
  readonly bytes: Uint8Array<ArrayBuffer>;
  /** Unmaps and closes. The view must not be used afterwards. */
  close(): void;
}

/**
 * Creates an anonymous shared memory file and maps it read-write into this process.
 *
 * @param libc bound symbols
 * @param name the memfd's name (seen in /proc/PID/maps)
 * @param size bytes; a multiple of the page size
 * @returns the mapping
 * @throws {HostError} when the host refuses (ENOMEM, EMFILE, ...)
 */
export function createSharedMemory(libc: LibcSymbols, name: string, size: number): SharedMemory {
  const fd = libc.memfd_create(cString(name), MFD_CLOEXEC);
  if (fd < 0) throw hostError(libc, "memfd_create", name);
  if (libc.ftruncate(fd, BigInt(size)) !== 0) {
    const e = hostError(libc, "ftruncate", `${name}, ${size} bytes`);
    libc.close(fd);
    throw e;
  }
  const p = libc.mmap(
    null,
    BigInt(size),
    MMAP.PROT_READ | MMAP.PROT_WRITE,
    MMAP.MAP_SHARED,
    fd,
    0n,
  );
  const addr = p === null ? 0n : Deno.UnsafePointer.value(p);
  if (p === null || addr === 0xffffffffffffffffn) {
    const e = hostError(libc, "mmap", `${name}, ${size} bytes`);
    libc.close(fd);
    throw e;
  }
  const bytes = new Uint8Array(Deno.UnsafePointerView.getArrayBuffer(p, size));
  let open = true;
  return {
    fd,
    size,
    bytes,
    close() {
      if (!open) return;
      open = false;
      libc.munmap(p, BigInt(size));
      libc.close(fd);
    },
  };
}
