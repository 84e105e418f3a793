import assert from "node:assert/strict";
import { ImageFormatError } from "./image_error.ts";

Deno.test("ImageFormatError carries its name, reason, message and cause", () => {
  const cause = new RangeError("offset is out of bounds");
  const e = new ImageFormatError("program header 2 extends past the end of the file", {
    reason: "truncated",
    cause,
  });
  assert.ok(e instanceof Error);
  assert.equal(e.name, "ImageFormatError");
  assert.equal(e.reason, "truncated");
  assert.equal(e.message, "program header 2 extends past the end of the file");
  assert.equal(e.cause, cause);
  assert.match(String(e), /^ImageFormatError: program header 2/);
});

Deno.test("ImageFormatError defaults its reason to invalid and has no cause", () => {
  const e = new ImageFormatError("something odd");
  assert.equal(e.reason, "invalid");
  assert.equal("cause" in e, false);
});
