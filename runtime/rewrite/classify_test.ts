import assert from "node:assert/strict";
import iced from "iced-x86";
import { type Classification, classifyCode, isCandidateCode } from "./classify.ts";

function classifyBytes(bits: number, bytes: number[]): Classification | undefined {
  const decoder = new iced.Decoder(bits, Uint8Array.from(bytes), iced.DecoderOptions.None);
  const instr = decoder.decode();
  try {
    assert.equal(instr.isInvalid, false, `${bytes} must decode`);
    assert.equal(instr.length, bytes.length, `${bytes} is one instruction`);
    return classifyCode(instr.code, instr.code === iced.Code.Int_imm8 ? instr.immediate8 : 0);
  } finally {
    instr.free();
    decoder.free();
  }
}

const SENSITIVE: [string, number, number[]][] = [
  ["pushf", 32, [0x9c]],
  ["pushf", 32, [0x66, 0x9c]],
  ["pushf", 64, [0x9c]],
  ["popf", 32, [0x9d]],
  ["popf", 64, [0x9d]],
  ["mov %sreg,r/m", 32, [0x8c, 0xc8]], // mov %cs,%eax
  ["mov %sreg,r/m", 32, [0x66, 0x8c, 0xd0]], // mov %ss,%ax
  ["mov %sreg,r/m", 32, [0x8c, 0x1d, 0, 0, 0, 0]], // mov %ds,0x0
  ["mov %sreg,r/m", 64, [0x8c, 0xc8]],
  ["push %sreg", 32, [0x0e]], // push %cs
  ["push %sreg", 32, [0x16]], // push %ss
  ["push %sreg", 32, [0x1e]], // push %ds
  ["push %sreg", 32, [0x06]], // push %es
  ["push %sreg", 32, [0x0f, 0xa0]], // push %fs
  ["push %sreg", 64, [0x0f, 0xa8]], // push %gs
  ["lar", 32, [0x0f, 0x02, 0xc1]],
  ["lsl", 32, [0x0f, 0x03, 0xc1]],
  ["verr", 32, [0x0f, 0x00, 0xe0]],
  ["verw", 32, [0x0f, 0x00, 0xe8]],
  ["sgdt", 32, [0x0f, 0x01, 0x00]],
  ["sidt", 32, [0x0f, 0x01, 0x08]],
  ["sldt", 32, [0x0f, 0x00, 0xc0]],
  ["str", 32, [0x0f, 0x00, 0xc8]],
  ["smsw", 32, [0x0f, 0x01, 0xe0]],
  ["cpuid", 32, [0x0f, 0xa2]],
  ["rdtsc", 32, [0x0f, 0x31]],
  ["rdtscp", 32, [0x0f, 0x01, 0xf9]],
  ["syscall", 32, [0x0f, 0x05]],
  ["syscall", 64, [0x0f, 0x05]],
  ["sysenter", 32, [0x0f, 0x34]],
];

const PRIVILEGED: [string, number, number[]][] = [
  ["in", 32, [0xec]],
  ["in", 32, [0xe4, 0x60]],
  ["out", 32, [0xee]],
  ["out", 32, [0xe6, 0x80]],
  ["ins", 32, [0x6c]],
  ["outs", 32, [0xf3, 0x6f]],
  ["cli", 32, [0xfa]],
  ["sti", 32, [0xfb]],
  ["hlt", 32, [0xf4]],
  ["lgdt", 32, [0x0f, 0x01, 0x10]],
  ["lidt", 32, [0x0f, 0x01, 0x18]],
  ["lldt", 32, [0x0f, 0x00, 0xd0]],
  ["ltr", 32, [0x0f, 0x00, 0xd8]],
  ["mov %crN", 32, [0x0f, 0x20, 0xc0]],
  ["mov %crN", 32, [0x0f, 0x22, 0xd8]],
  ["mov %drN", 32, [0x0f, 0x21, 0xc0]],
  ["mov %drN", 32, [0x0f, 0x23, 0xf8]],
  ["clts", 32, [0x0f, 0x06]],
  ["lmsw", 32, [0x0f, 0x01, 0xf0]],
  ["invlpg", 32, [0x0f, 0x01, 0x38]],
  ["wbinvd", 32, [0x0f, 0x09]],
  ["invd", 32, [0x0f, 0x08]],
  ["rdmsr", 32, [0x0f, 0x32]],
  ["wrmsr", 32, [0x0f, 0x30]],
  ["int n", 32, [0xcd, 0x40]],
  ["int n", 32, [0xcd, 0x00]],
  ["iret", 32, [0xcf]],
  ["iret", 64, [0x48, 0xcf]],
  ["ljmp", 32, [0xea, 0, 0, 0x10, 0, 0x08, 0]],
  ["ljmp", 32, [0xff, 0x28]],
  ["lcall", 32, [0x9a, 0, 0, 0x10, 0, 0x08, 0]],
  ["lret", 32, [0xcb]],
  ["lret", 32, [0xca, 0x04, 0x00]],
  ["mov r/m,%sreg", 32, [0x8e, 0xd8]],
  ["pop %sreg", 32, [0x1f]],
  ["pop %sreg", 32, [0x0f, 0xa1]],
  ["lds", 32, [0xc5, 0x00]],
  ["les", 32, [0xc4, 0x00]],
  ["lfs", 32, [0x0f, 0xb4, 0x00]],
  ["lgs", 32, [0x0f, 0xb5, 0x00]],
  ["lss", 32, [0x0f, 0xb2, 0x00]],
  ["sysexit", 32, [0x0f, 0x35]],
  ["sysret", 64, [0x0f, 0x07]],
  ["swapgs", 64, [0x0f, 0x01, 0xf8]],
];

Deno.test("classifyCode() marks every sensitive instruction in every encoding", () => {
  for (const [kind, bits, bytes] of SENSITIVE) {
    assert.deepEqual(classifyBytes(bits, bytes), { class: "sensitive", kind }, `${bits} ${bytes}`);
  }
});

// Segment loads and far transfers trap only for selectors that are not host ones, so they are
// rewritten with the sensitive class (see classify.ts).
const LOADS_SELECTOR = new Set([
  "iret",
  "ljmp",
  "lcall",
  "lret",
  "mov r/m,%sreg",
  "pop %sreg",
  "lds",
  "les",
  "lfs",
  "lgs",
  "lss",
]);

Deno.test("classifyCode() marks every privileged instruction", () => {
  for (const [kind, bits, bytes] of PRIVILEGED) {
    const cls = LOADS_SELECTOR.has(kind) ? "sensitive" : "privileged";
    assert.deepEqual(classifyBytes(bits, bytes), { class: cls, kind }, `${bits} ${bytes}`);
  }
});

Deno.test("classifyCode() leaves int3, int $3, int $0x80 and ordinary code alone", () => {
  for (
    const bytes of [
      [0xcc], // int3
      [0xcd, 0x03], // int $3
      [0xcd, 0x80], // int $0x80
      [0x89, 0xd8], // mov %ebx,%eax
      [0x50], // push %eax
      [0x0f, 0x01, 0xd0], // xgetbv
      [0xe8, 0, 0, 0, 0], // call
      [0xc3], // ret
      [0x0f, 0x0b], // ud2
    ]
  ) {
    assert.equal(classifyBytes(32, bytes), undefined, `${bytes}`);
  }
});

Deno.test("isCandidateCode() is true exactly where classifyCode() can answer", () => {
  assert.equal(isCandidateCode(iced.Code.Pushfd), true);
  assert.equal(isCandidateCode(iced.Code.Int_imm8), true);
  assert.equal(isCandidateCode(iced.Code.Int3), false);
  assert.equal(isCandidateCode(iced.Code.Nopd), false);
});
