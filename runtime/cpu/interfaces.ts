/**
 * What the partial emulator needs from the rest of the machine, as interfaces: the cpu package
 * knows x86, not ptrace, memfds or device models.
 *
 * @module
 */

/** The guest's user-visible registers, held by the host CPU between traps. */
export interface CpuRegisters {
  /** General register n (0 = eax … 7 = edi, 8 = r8 … 15 = r15, ModRM order), low 32 bits. */
  gpr(n: number): number;
  /** Writes general register n with a zero-extended 32-bit value. */
  setGpr(n: number, value: number): void;
  /** High 32 bits of general register n (64-bit mode). */
  gprHigh(n: number): number;
  /** Writes both halves of general register n. */
  setGpr64(n: number, low: number, high: number): void;
  /** Instruction pointer, low 32 bits (writing it clears the high half). */
  eip: number;
  /** Instruction pointer, high 32 bits (64-bit mode). */
  ripHigh: number;
  /** Host EFLAGS (IF and IOPL there are the host's, not the guest's). */
  eflags: number;
}

/** A guest memory access outside what is backed by RAM. */
export class GuestMemoryError extends Error {
  override name = "GuestMemoryError";
  /**
   * @param address the linear address
   * @param size access size
   * @param write whether it was a write
   */
  constructor(readonly address: number, readonly size: number, readonly write: boolean) {
    super(
      `${write ? "write" : "read"} of ${size} bytes at 0x${
        (address >>> 0).toString(16)
      } is outside guest RAM`,
    );
  }
}

/** A guest page fault raised by an emulator access: delivered to the guest as #PF. */
export class GuestPageFault extends Error {
  override name = "GuestPageFault";
  /**
   * @param linear the faulting linear address (CR2)
   * @param errorCode the #PF error code
   */
  constructor(readonly linear: number, readonly errorCode: number) {
    super(`page fault at 0x${linear.toString(16)} (error 0x${errorCode.toString(16)})`);
  }
}

/** Guest memory as the emulator addresses it (linear addresses; paging is applied inside). */
export interface LinearMemory {
  read8(addr: number): number;
  read16(addr: number): number;
  read32(addr: number): number;
  write8(addr: number, value: number): void;
  write16(addr: number, value: number): void;
  write32(addr: number, value: number): void;
  /** Copies `length` bytes at `addr` into `into` (for instruction fetch). Returns bytes copied. */
  fetch(addr: number, into: Uint8Array): number;
  /**
   * Runs `fn` with its accesses checked as supervisor accesses (descriptor tables, TSS, the
   * ring-0 stack during delivery). Memory without protection just runs `fn`.
   */
  supervisor?<T>(fn: () => T): T;
}

/** Device memory (MMIO) as the emulator performs it, by physical address. */
export interface MmioAccess {
  claims(physical: number): boolean;
  read(physical: number, size: 1 | 2 | 4): number;
  write(physical: number, value: number, size: 1 | 2 | 4): void;
}

/** Port I/O as the emulator performs it. */
export interface PortIo {
  read(port: number, size: 1 | 2 | 4): number;
  write(port: number, value: number, size: 1 | 2 | 4): void;
}
