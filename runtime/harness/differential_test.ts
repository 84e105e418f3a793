import assert from "node:assert/strict";
import { compareTranscripts, formatDivergence } from "./differential.ts";
import { qemuSystemBinary } from "./qemu_vm.ts";
import { runScenario } from "./scenario.ts";
import { BACKENDS } from "./scenario_vm.ts";
import helloScenario from "../../scenarios/hello.ts";

const RING3_HOST = Deno.build.os === "linux" && Deno.build.arch === "x86_64";
const NO_QEMU = qemuSystemBinary("i386") === null;
if (NO_QEMU) {
  console.log("qemu-system-i386 not installed: skipping the ring3-vs-QEMU scenario test");
}

Deno.test("compareTranscripts: equal transcripts give null", () => {
  assert.equal(compareTranscripts("", ""), null);
  assert.equal(compareTranscripts("a\nb\n", "a\nb\n"), null);
  assert.equal(compareTranscripts("a\n> ", "a\n> "), null);
});

Deno.test("compareTranscripts: the first differing line, with both lines and the column", () => {
  assert.deepEqual(compareTranscripts("boot\nmem=64\nx\n", "boot\nmem=63\ny\n"), {
    line: 2,
    column: 6,
    a: "mem=64",
    b: "mem=63",
    aTerminated: true,
    bTerminated: true,
  });
});

Deno.test("compareTranscripts: one transcript ends early, or only a newline differs", () => {
  assert.deepEqual(compareTranscripts("a\nb\n", "a\nb\nc\n"), {
    line: 3,
    column: 1,
    a: null,
    b: "c",
    aTerminated: false,
    bTerminated: true,
  });
  const d = compareTranscripts("a\n> ", "a\n> x\n");
  assert.equal(d?.line, 2);
  assert.equal(d?.column, 3);
  assert.equal(d?.a, "> ");
  assert.equal(d?.aTerminated, false);
  const nl = compareTranscripts("a\nb", "a\nb\n");
  assert.deepEqual([nl?.line, nl?.a, nl?.b, nl?.aTerminated, nl?.bTerminated], [
    2,
    "b",
    "b",
    false,
    true,
  ]);
});

Deno.test("formatDivergence names both sides", () => {
  const text = formatDivergence(compareTranscripts("a\nb\n", "a\n")!);
  assert.equal(
    text,
    [
      "transcripts differ at line 2, column 1:",
      '  ring3 | "b"',
      "  qemu  | (no such line: the transcript ends before it)",
    ].join("\n"),
  );
});

Deno.test({
  name: "hello prints the same transcript on both backends",
  ignore: NO_QEMU || !RING3_HOST,
  async fn() {
    const transcripts: string[] = [];
    for (const backend of BACKENDS) {
      const out = await runScenario(helloScenario, { backend });
      assert.equal(out.status, "passed", `${backend}: ${out.error?.stack}`);
      transcripts.push(out.machines[0].transcript);
    }
    const d = compareTranscripts(transcripts[0], transcripts[1]);
    assert.equal(d, null, d ? formatDivergence(d) : "");
  },
});
