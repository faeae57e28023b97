// The checker must be trusted before the simulator's verdicts are: it accepts
// known linearizable histories and rejects known non-linearizable ones.
import assert from "node:assert/strict";
import { test } from "node:test";
import { type Operation, type Outcome, checkLinearizable } from "./linearizability.js";
import { SeededRand } from "../../node/src/raft/rand.js";

let n = 0;
function put(client: number, value: string, invoke: number, ret: number, outcome: Outcome = "ok", key = "k"): Operation {
  return { id: `op${n++}`, client, key, kind: "put", value, invoke, ret, outcome };
}
function get(client: number, value: string | null, invoke: number, ret: number, outcome: Outcome = "ok", key = "k"): Operation {
  return { id: `op${n++}`, client, key, kind: "get", value, invoke, ret, outcome };
}

test("accepts sequential and overlapping linearizable histories", () => {
  assert.equal(checkLinearizable([]).ok, true);
  assert.equal(checkLinearizable([get(1, null, 0, 1)]).ok, true, "a read of a never-written key");
  assert.equal(checkLinearizable([put(1, "a", 0, 1), get(2, "a", 2, 3), put(1, "b", 4, 5), get(2, "b", 6, 7)]).ok, true);
  // A read overlapping a write may see either value.
  assert.equal(checkLinearizable([put(1, "a", 0, 1), put(1, "b", 2, 10), get(2, "a", 3, 4), get(3, "b", 5, 6)]).ok, true);
  // Concurrent writes may take effect in either order.
  assert.equal(checkLinearizable([put(1, "a", 0, 10), put(2, "b", 1, 9), get(3, "a", 11, 12)]).ok, true);
  assert.equal(checkLinearizable([put(1, "a", 0, 10), put(2, "b", 1, 9), get(3, "b", 11, 12)]).ok, true);
});

test("rejects a stale read after a completed write", () => {
  const r = checkLinearizable([put(1, "a", 0, 1), put(1, "b", 2, 3), get(2, "a", 4, 5)]);
  assert.equal(r.ok, false);
  assert.equal(r.key, "k");
  assert.match(r.reason ?? "", /no linearization/);
});

test("rejects a read of a value nobody wrote, and reads going back in time", () => {
  assert.equal(checkLinearizable([put(1, "a", 0, 1), get(2, "z", 2, 3)]).ok, false);
  // The write overlaps both reads, but once a read has seen "b", a later read cannot see "a".
  assert.equal(checkLinearizable([put(1, "a", 0, 1), put(1, "b", 2, 20), get(2, "b", 3, 4), get(3, "a", 5, 6)]).ok, false);
  // And concurrent writes cannot be observed in two different orders.
  assert.equal(
    checkLinearizable([
      put(1, "a", 0, 100),
      put(2, "b", 0.5, 100),
      get(3, "a", 1, 2),
      get(3, "b", 3, 4),
      get(4, "b", 5, 6),
      get(4, "a", 7, 8),
    ]).ok,
    false,
  );
});

test("unknown writes may or may not have happened, at any time after their invocation", () => {
  // Observed long after it was invoked: fine.
  assert.equal(checkLinearizable([put(1, "a", 0, 1), put(2, "b", 2, 0, "unknown"), get(3, "b", 50, 51)]).ok, true);
  // Never observed: fine.
  assert.equal(checkLinearizable([put(1, "a", 0, 1), put(2, "b", 2, 0, "unknown"), get(3, "a", 50, 51)]).ok, true);
  // But it cannot take effect before it was invoked.
  assert.equal(checkLinearizable([put(1, "a", 0, 1), get(3, "b", 2, 3), put(2, "b", 4, 0, "unknown")]).ok, false);
  // Nor be seen and then un-seen.
  assert.equal(
    checkLinearizable([put(1, "a", 0, 1), put(2, "b", 2, 0, "unknown"), get(3, "b", 5, 6), get(3, "a", 7, 8)]).ok,
    false,
  );
});

test("failed writes had no effect; failed and unknown reads are ignored", () => {
  assert.equal(checkLinearizable([put(1, "a", 0, 1), put(2, "b", 2, 3, "failed"), get(3, "b", 4, 5)]).ok, false);
  assert.equal(checkLinearizable([put(1, "a", 0, 1), put(2, "b", 2, 3, "failed"), get(3, "a", 4, 5)]).ok, true);
  assert.equal(checkLinearizable([put(1, "a", 0, 1), get(3, "zzz", 4, 5, "failed"), get(3, "q", 6, 7, "unknown")]).ok, true);
});

test("keys are checked independently", () => {
  const ok = [put(1, "a", 0, 1, "ok", "x"), put(1, "b", 2, 3, "ok", "y"), get(2, "a", 4, 5, "ok", "x"), get(2, "b", 4, 5, "ok", "y")];
  assert.equal(checkLinearizable(ok).ok, true);
  const bad = [...ok, get(2, "b", 6, 7, "ok", "x")];
  const r = checkLinearizable(bad);
  assert.equal(r.ok, false);
  assert.equal(r.key, "x");
});

test("random sequential histories are accepted; a corrupted read is rejected", () => {
  const rand = new SeededRand(7);
  for (let round = 0; round < 50; round++) {
    // Build a real execution: each op takes effect at a random point inside its interval.
    const ops: Operation[] = [];
    let value: string | null = null;
    const events: { at: number; apply: () => void }[] = [];
    for (let i = 0; i < 30; i++) {
      const invoke = rand.range(0, 1000);
      const len = rand.range(1, 100);
      const at = invoke + rand.float() * len;
      const id = ops.length;
      if (rand.chance(0.5)) {
        const v = `v${round}-${i}`;
        const outcome: Outcome = rand.chance(0.1) ? "unknown" : "ok";
        ops.push(put(1 + (i % 4), v, invoke, invoke + len, outcome));
        if (outcome === "ok" || rand.chance(0.5)) events.push({ at, apply: () => (value = v) });
      } else {
        const slot = { v: null as string | null };
        ops.push(get(1 + (i % 4), null, invoke, invoke + len));
        events.push({ at, apply: () => (slot.v = value) });
        events.push({ at: at + 1e-9, apply: () => (ops[id] = { ...ops[id]!, value: slot.v }) });
      }
    }
    events.sort((a, b) => a.at - b.at);
    for (const e of events) e.apply();
    const r = checkLinearizable(ops);
    assert.equal(r.ok, true, r.reason);
    // Corrupt one completed read to a value that was never written: always rejected.
    const gi = ops.findIndex((o) => o.kind === "get");
    if (gi >= 0) {
      const bad = ops.slice();
      bad[gi] = { ...bad[gi]!, value: "never-written" };
      assert.equal(checkLinearizable(bad).ok, false);
    }
  }
});
