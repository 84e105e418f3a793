/**
 * Instruction decoding for the partial emulator, with iced-x86.
 *
 * A trap site is usually hit many times (a polling loop, a port in a driver's hot path), so
 * decoded instructions are cached by address as plain records: a hit costs a byte comparison
 * (which also catches code that changed since) and no call into the decoder's wasm.
 *
 * @module
 */
import iced from "iced-x86";

const {
  Decoder,
  DecoderOptions,
  Formatter,
  FormatterSyntax,
  InstructionInfoFactory,
  Mnemonic,
  OpAccess,
  OpKind,
  Register,
} = iced;

/** iced-x86's enums, re-exported for the emulator's dispatch. */
export { Mnemonic, OpKind, Register };

/** The fields of a decoded instruction the emulator uses, copied out of the decoder. */
export interface DecodedInstruction {
  /** The instruction's bytes. */
  bytes: Uint8Array;
  length: number;
  mnemonic: number;
  code: number;
  opCount: number;
  op0Kind: number;
  op1Kind: number;
  op0Register: number;
  op1Register: number;
  /** Immediate operand (8/16/32-bit, zero-extended), if any. */
  immediate: number;
  memBase: number;
  memIndex: number;
  memScale: number;
  /** Displacement as an unsigned 32-bit number. */
  memDisplacement: number;
  /**
   * Displacement as a signed number (64-bit mode; for a rip-relative operand, the absolute
   * target as iced-x86 computes it).
   */
  memDisplacement64: number;
  /** Effective segment of the memory operand (Register.DS etc.). */
  memSegment: number;
  farSelector: number;
  farOffset: number;
  hasRep: boolean;
  /** Whether the instruction writes memory (a stack push counts): for #PF error codes. */
  writesMemory: boolean;
  /** 16, 32 or 64: the bitness it was decoded in. */
  bitness: number;
  /** AT&T syntax, as objdump prints it. */
  text: string;
}

/** Maximum length of an x86 instruction. */
export const MAX_INSTRUCTION_LENGTH = 15;

/** An instruction that could not be decoded at all. */
export class DecodeError extends Error {
  override name = "DecodeError";
  /**
   * @param address where
   * @param bytes the bytes found there
   */
  constructor(readonly address: number, readonly bytes: Uint8Array) {
    super(
      `invalid instruction at 0x${(address >>> 0).toString(16)}: ${hexBytes(bytes)}`,
    );
  }
}

/** Bytes as "0f 01 15 ..." for reports. */
export function hexBytes(bytes: Uint8Array): string {
  return [...bytes].map((b) => b.toString(16).padStart(2, "0")).join(" ");
}

/** Decodes instructions at guest addresses and caches the results. */
export class InstructionDecoder {
  readonly #cache = new Map<number, DecodedInstruction>();
  readonly #window = new Uint8Array(MAX_INSTRUCTION_LENGTH);
  readonly #formatter = new Formatter(FormatterSyntax.Gas);
  readonly #info = new InstructionInfoFactory();
  /** Cache misses (decodes done). */
  misses = 0;

  /**
   * Decodes the instruction at `address` from `fetch`ed bytes.
   *
   * @param address linear address of the instruction
   * @param bitness 16, 32 or 64
   * @param fetch copies guest bytes at an address into a buffer; returns how many it copied
   * @returns the decoded instruction
   * @throws {DecodeError} when the bytes are not a valid instruction
   */
  decode(
    address: number,
    bitness: number,
    fetch: (addr: number, into: Uint8Array) => number,
  ): DecodedInstruction {
    const w = this.#window;
    const n = fetch(address, w);
    const key = bitness === 32 ? address : -(address + bitness * 0x100000000);
    const hit = this.#cache.get(key);
    if (hit !== undefined && hit.length <= n) {
      let same = true;
      const b = hit.bytes;
      for (let i = 0; i < b.length; i++) {
        if (b[i] !== w[i]) {
          same = false;
          break;
        }
      }
      if (same) return hit;
    }
    this.misses++;
    const d = this.#decodeFresh(address, bitness, w.subarray(0, n));
    if (this.#cache.size > 4096) this.#cache.clear();
    this.#cache.set(key, d);
    return d;
  }

  #decodeFresh(address: number, bitness: number, bytes: Uint8Array): DecodedInstruction {
    const decoder = new Decoder(bitness, bytes, DecoderOptions.None);
    try {
      decoder.ip = BigInt(bitness === 64 ? address : address >>> 0);
      const ins = decoder.decode();
      try {
        if (ins.isInvalid) throw new DecodeError(address, bytes.slice());
        const op0Kind = ins.op0Kind;
        const op1Kind = ins.opCount > 1 ? ins.op1Kind : -1;
        let immediate = 0;
        for (let i = 0; i < ins.opCount; i++) {
          const k = ins.opKind(i);
          if (k === OpKind.Immediate8) immediate = ins.immediate8;
          else if (k === OpKind.Immediate16) immediate = ins.immediate16;
          else if (k === OpKind.Immediate32) immediate = ins.immediate32;
          else if (k === OpKind.Immediate8to32) immediate = ins.immediate8to32 >>> 0;
        }
        const isFar = op0Kind === OpKind.FarBranch32 || op0Kind === OpKind.FarBranch16;
        let writesMemory = false;
        const info = this.#info.info(ins);
        for (const m of info.usedMemory()) {
          const a = m.access;
          if (
            a === OpAccess.Write || a === OpAccess.CondWrite || a === OpAccess.ReadWrite ||
            a === OpAccess.ReadCondWrite
          ) writesMemory = true;
          m.free();
        }
        info.free();
        return {
          bytes: bytes.slice(0, ins.length),
          length: ins.length,
          mnemonic: ins.mnemonic,
          code: ins.code,
          opCount: ins.opCount,
          op0Kind,
          op1Kind,
          op0Register: op0Kind === OpKind.Register ? ins.op0Register : Register.None,
          op1Register: op1Kind === OpKind.Register ? ins.op1Register : Register.None,
          immediate,
          memBase: ins.memoryBase,
          memIndex: ins.memoryIndex,
          memScale: ins.memoryIndexScale,
          memDisplacement: Number(BigInt.asUintN(32, ins.memoryDisplacement)),
          memDisplacement64: Number(BigInt.asIntN(64, ins.memoryDisplacement)),
          memSegment: ins.memorySegment,
          farSelector: isFar ? ins.farBranchSelector : 0,
          farOffset: isFar
            ? (op0Kind === OpKind.FarBranch32 ? ins.farBranch32 : ins.farBranch16)
            : 0,
          hasRep: ins.hasRepPrefix || ins.hasRepePrefix,
          writesMemory,
          bitness,
          text: this.#formatter.format(ins),
        };
      } finally {
        ins.free();
      }
    } finally {
      decoder.free();
    }
  }

  /** Drops every cached instruction (after the guest rewrote code the cache cannot see). */
  flush(): void {
    this.#cache.clear();
  }
}

/** What a register operand of iced-x86 is, in the emulator's terms. */
export interface RegisterInfo {
  kind: "gpr" | "sreg" | "cr" | "dr" | "other";
  /** gpr: 0..15 in ModRM order (8 = r8); sreg: SREG number; cr/dr: n. */
  index: number;
  /** gpr: 1, 2, 4 or 8 bytes. */
  size: number;
  /** gpr: an 8-bit high register (ah, ch, dh, bh). */
  high: boolean;
}

const REGISTER_INFO = new Map<number, RegisterInfo>();
{
  const gpr8 = ["AL", "CL", "DL", "BL"];
  const gpr8h = ["AH", "CH", "DH", "BH"];
  const gpr16 = ["AX", "CX", "DX", "BX", "SP", "BP", "SI", "DI"];
  const gpr32 = ["EAX", "ECX", "EDX", "EBX", "ESP", "EBP", "ESI", "EDI"];
  const sreg = ["ES", "CS", "SS", "DS", "FS", "GS"];
  const R = Register as unknown as Record<string, number>;
  gpr8.forEach((n, i) => REGISTER_INFO.set(R[n], { kind: "gpr", index: i, size: 1, high: false }));
  gpr8h.forEach((n, i) => REGISTER_INFO.set(R[n], { kind: "gpr", index: i, size: 1, high: true }));
  gpr16.forEach((n, i) => REGISTER_INFO.set(R[n], { kind: "gpr", index: i, size: 2, high: false }));
  gpr32.forEach((n, i) => REGISTER_INFO.set(R[n], { kind: "gpr", index: i, size: 4, high: false }));
  sreg.forEach((n, i) => REGISTER_INFO.set(R[n], { kind: "sreg", index: i, size: 2, high: false }));
  // 64-bit mode: rax..r15, r8d..r15d, r8w..r15w, spl/bpl/sil/dil and r8l..r15l.
  const gpr64 = ["RAX", "RCX", "RDX", "RBX", "RSP", "RBP", "RSI", "RDI"];
  gpr64.forEach((n, i) => REGISTER_INFO.set(R[n], { kind: "gpr", index: i, size: 8, high: false }));
  ["SPL", "BPL", "SIL", "DIL"].forEach((n, i) =>
    REGISTER_INFO.set(R[n], { kind: "gpr", index: 4 + i, size: 1, high: false })
  );
  for (let i = 8; i < 16; i++) {
    REGISTER_INFO.set(R[`R${i}`], { kind: "gpr", index: i, size: 8, high: false });
    REGISTER_INFO.set(R[`R${i}D`], { kind: "gpr", index: i, size: 4, high: false });
    REGISTER_INFO.set(R[`R${i}W`], { kind: "gpr", index: i, size: 2, high: false });
    REGISTER_INFO.set(R[`R${i}L`], { kind: "gpr", index: i, size: 1, high: false });
  }
  for (let i = 0; i < 16; i++) {
    if (R[`CR${i}`] !== undefined) {
      REGISTER_INFO.set(R[`CR${i}`], { kind: "cr", index: i, size: 4, high: false });
    }
    if (R[`DR${i}`] !== undefined) {
      REGISTER_INFO.set(R[`DR${i}`], { kind: "dr", index: i, size: 4, high: false });
    }
  }
}
const OTHER: RegisterInfo = { kind: "other", index: -1, size: 0, high: false };

/**
 * Classifies an iced-x86 register.
 *
 * @param register a Register value
 * @returns what it is
 */
export function registerInfo(register: number): RegisterInfo {
  return REGISTER_INFO.get(register) ?? OTHER;
}
