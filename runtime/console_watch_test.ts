import assert from "node:assert/strict";
import { consoleLimits, ConsoleWatch, DEFAULT_CONSOLE_FLOOD } from "./console_watch.ts";

Deno.test("a console over its byte limit within a guest-time window is a flood", () => {
  const w = new ConsoleWatch(consoleLimits([], { bytes: 100, window: "1s" }));
  assert.equal(w.count(60, 0), null);
  assert.equal(w.count(40, 0.5e9), null);
  const v = w.count(1, 0.9e9);
  assert.equal(v?.kind, "console-flood");
  assert.match(v!.message, /more than 100 bytes .* within 1000 ms/);
});

Deno.test("a new window starts the count again", () => {
  const w = new ConsoleWatch(consoleLimits([], { bytes: 100, window: "1s" }));
  assert.equal(w.count(90, 0), null);
  assert.equal(w.count(90, 1.2e9), null);
  assert.equal(new ConsoleWatch(consoleLimits([], false)).count(1e9, 0), null);
});

Deno.test("the default flood limit and failure patterns apply when none are given", () => {
  const l = consoleLimits(undefined, undefined);
  assert.equal(l.flood?.bytes, DEFAULT_CONSOLE_FLOOD.bytes);
  const w = new ConsoleWatch(l);
  assert.equal(w.scan("booting\nall fine\n"), null);
  const v = w.scan("[ 1.0] Kernel panic - not syncing: VFS: Unable to mount root fs\n");
  assert.equal(v?.kind, "panic");
  assert.match(v!.message, /"\[ 1\.0\] Kernel panic - not syncing: VFS: Unable to mount root fs"/);
  assert.throws(() => consoleLimits([], { bytes: 0, window: "1s" }), RangeError);
});

Deno.test("a failure pattern split across chunks is found, and strings match too", () => {
  const w = new ConsoleWatch(consoleLimits(["BUG: "], false));
  assert.equal(w.scan("ok\nBU"), null);
  const v = w.scan("G: unable to handle page fault\nmore\n");
  assert.match(v!.message, /"BUG: unable to handle page fault"/);
  const none = new ConsoleWatch(consoleLimits(false, false));
  assert.equal(none.scan("Kernel panic - not syncing\n"), null);
});
