import assert from "node:assert/strict";
import { RCR, ResetControl } from "./reset_control.ts";

Deno.test("0xCF9: the FADT's reset value 0x06 resets; SYS_RST alone only sets the mode", () => {
  const resets: string[] = [];
  const rc = new ResetControl((r) => resets.push(r));
  rc.write(0, RCR.SYS_RST, 1);
  assert.equal(resets.length, 0);
  assert.equal(rc.read(), RCR.SYS_RST);
  rc.write(0, 0x06, 1);
  assert.equal(resets.length, 1);
  assert.match(resets[0], /0x6 to the reset control register 0xcf9/);
});
