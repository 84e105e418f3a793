import assert from "node:assert/strict";
import { RewriteError } from "./rewrite_error.ts";

Deno.test("RewriteError carries its name, reason, message and cause", () => {
  const cause = new Error("underlying");
  const e = new RewriteError("sidecar does not match", { reason: "sidecar-mismatch", cause });
  assert.ok(e instanceof Error);
  assert.equal(e.name, "RewriteError");
  assert.equal(e.reason, "sidecar-mismatch");
  assert.equal(e.cause, cause);
  assert.match(String(e), /^RewriteError: sidecar does not match/);
});

Deno.test("RewriteError defaults its reason to invalid and has no cause", () => {
  const e = new RewriteError("odd");
  assert.equal(e.reason, "invalid");
  assert.equal("cause" in e, false);
});
