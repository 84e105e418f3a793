import assert from "node:assert/strict";
import { DROP_WINDOW, FaultInjector, type FaultPlan } from "./fault_plan.ts";

/** Which due interrupts (1-based) a plan drops among the first `n`, and its log. */
function drops(plan: FaultPlan, seed: number, n = 60) {
  const log: string[] = [];
  const f = new FaultInjector(plan, seed, (d) => log.push(d));
  const dropped: number[] = [];
  for (let i = 1; i <= n; i++) {
    if (f.drop()) {
      f.dropped(0x20);
      dropped.push(i);
    }
  }
  return { dropped, log };
}

Deno.test("drop-interrupt picks the same due interrupt from the same seed, within its window", () => {
  const plan: FaultPlan = [{ fault: "drop-interrupt" }];
  const picks = new Set<number>();
  for (let seed = 1; seed <= 30; seed++) {
    const a = drops(plan, seed);
    assert.deepEqual(drops(plan, seed), a, `seed ${seed} repeats`);
    assert.equal(a.dropped.length, 1);
    assert.ok(a.dropped[0] >= 1 && a.dropped[0] <= DROP_WINDOW);
    assert.match(a.log[0], new RegExp(`due interrupt ${a.dropped[0]} \\(picked by the seed`));
    picks.add(a.dropped[0]);
  }
  assert.ok(picks.size > 5, "seeds pick different interrupts");
});

Deno.test("drop-interrupt with nth and count drops exactly those", () => {
  const { dropped, log } = drops([{ fault: "drop-interrupt", nth: 4, count: 3 }], 1);
  assert.deepEqual(dropped, [4, 5, 6]);
  assert.match(log[0], /^drop-interrupt: due interrupt 4, vector 0x20, lost/);
});

Deno.test("the drop choice does not depend on garbage port reads made before it", () => {
  const plan: FaultPlan = [
    { fault: "port-garbage", port: 0x3f8 },
    { fault: "drop-interrupt", within: 50 },
  ];
  const a = new FaultInjector(plan, 9, () => {});
  const b = new FaultInjector(plan, 9, () => {});
  for (let i = 0; i < 10; i++) b.portRead(0x3f8, 1, 0);
  const first = (f: FaultInjector) => {
    for (let i = 1; i <= 50; i++) if (f.drop()) return i;
    return -1;
  };
  assert.equal(first(a), first(b));
});

Deno.test("kill-guest needs a trap count or a guest time; unknown faults are refused", () => {
  assert.throws(
    () => new FaultInjector([{ fault: "kill-guest" }], 1, () => {}),
    /afterTraps or at/,
  );
  assert.throws(
    () => new FaultInjector([{ fault: "kill-guest", at: "soon" }], 1, () => {}),
    /not a duration/,
  );
  const f = new FaultInjector([{ fault: "kill-guest", at: "300ms" }], 1, () => {});
  assert.deepEqual(f.killTimes, [300e6]);
  assert.throws(
    () => new FaultInjector([{ fault: "nope" } as unknown as FaultPlan[0]], 1, () => {}),
    /unknown fault "nope"/,
  );
});
