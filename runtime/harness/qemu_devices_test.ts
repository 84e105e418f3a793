import assert from "node:assert/strict";
import { qemuKeystrokes, qemuSerialArgs, scancodesToQmp, screenFromText } from "./qemu_devices.ts";

Deno.test("QEMU key numbers: set 1 make codes, extended keys as 0x80 | code", () => {
  assert.deepEqual(qemuKeystrokes({ kind: "keyboard", text: "aA" }), [[0x1e], [0x2a, 0x1e]]);
  assert.deepEqual(qemuKeystrokes({ kind: "keyboard", chord: "ArrowUp" }), [[0xc8]]);
  assert.deepEqual(scancodesToQmp([0x1d, 0x2e, 0xae, 0x9d]).map((e) => e.data.down), [
    true,
    true,
    false,
    false,
  ]);
});

Deno.test("QEMU -serial arguments fill the lines before the last one named with null", () => {
  assert.deepEqual(qemuSerialArgs(undefined), []);
  assert.deepEqual(qemuSerialArgs({ com3: { pty: true } }), ["-serial", "null", "-serial", "pty"]);
  assert.deepEqual(qemuSerialArgs({ com2: { file: "/tmp/x" }, com4: { pipe: "/tmp/p" } }), [
    "-serial",
    "file:/tmp/x",
    "-serial",
    "null",
    "-serial",
    "pipe:/tmp/p",
  ]);
  assert.throws(() => qemuSerialArgs({ com2: "console" }), /not available on the QEMU backend/);
});

Deno.test("a QEMU screen dump becomes a snapshot with the cursor relative to the start address", () => {
  const cells = new Uint8Array(4000);
  const s = screenFromText(cells, 80, { location: 85, shape: [14, 15] });
  assert.deepEqual(s.cursor, { row: 0, column: 5, start: 14, end: 15 });
  assert.equal(screenFromText(cells, 0, { location: 5, shape: [0x20 | 14, 15] }).cursor, null);
  assert.equal(screenFromText(cells, 0, { location: NaN, shape: [14, 15] }).cursor, null);
  assert.equal(screenFromText(cells).cursor, null);
});
