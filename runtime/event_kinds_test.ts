import assert from "node:assert/strict";
import { EventRegistry } from "./event_kinds.ts";

Deno.test("a device adds an event kind to the registry; the registry applies and describes it", () => {
  const r = new EventRegistry();
  const sectors: number[] = [];
  r.register({
    kind: "disk-error",
    owner: "ata0",
    summary: "sector: number",
    apply: (e) => {
      if (typeof e.sector !== "number") throw new RangeError("sector must be a number");
      sectors.push(e.sector);
      return `sector ${e.sector} fails once`;
    },
  });
  assert.deepEqual(r.apply({ kind: "disk-error", sector: 42 }), {
    outcome: "applied",
    detail: "sector 42 fails once",
  });
  assert.deepEqual(sectors, [42]);
  assert.deepEqual(r.apply({ kind: "disk-error" }), {
    outcome: "rejected",
    detail: "sector must be a number",
  });
  assert.match(
    r.apply({ kind: "nic-drop" }).detail,
    /unknown event kind "nic-drop" \(known: disk-error\)/,
  );
  assert.throws(
    () => r.register({ kind: "disk-error", owner: "ata1", summary: "", apply: () => "" }),
    /already registered by ata0/,
  );
  assert.deepEqual(r.kinds.map((k) => k.kind), ["disk-error"]);
});
