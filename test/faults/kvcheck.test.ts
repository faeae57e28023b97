// The checker must accept what a correct store can produce and refuse what it
// cannot: each refusal below is a known non-linearizable history (stale read,
// lost write, read from nowhere, double-applied compare-and-swap, a read seeing
// the future).

import { test } from "node:test";
import assert from "node:assert/strict";
import { checkKvHistory, type KvEvent, type KvOp, type Outcome } from "./kvcheck.js";

let nextId = 0;
function ev(client: number, op: KvOp, invoke: number, ret: number, outcome: Outcome = "ok", key = "k"): KvEvent {
  return { id: nextId++, client, key, op, invoke, ret, outcome };
}
const put = (value: string): KvOp => ({ kind: "put", value });
const get = (observed: string | null): KvOp => ({ kind: "get", observed });
const del = (): KvOp => ({ kind: "delete" });
const cas = (expect: string | null, value: string, succeeded: boolean, observed?: string | null): KvOp => ({ kind: "cas", expect, value, succeeded, observed });

function accepts(h: KvEvent[]): void {
  const r = checkKvHistory(h);
  assert.equal(r.ok, true, r.reason);
}
function refuses(h: KvEvent[], key = "k"): void {
  const r = checkKvHistory(h);
  assert.equal(r.ok, false, "a non-linearizable history was accepted");
  assert.equal(r.key, key);
  assert.match(r.reason ?? "", /not linearizable/);
}

test("a sequential history of every kind of operation is accepted", () => {
  accepts([
    ev(0, get(null), 0, 1),
    ev(0, put("a"), 2, 3),
    ev(1, get("a"), 4, 5),
    ev(1, cas("a", "b", true), 6, 7),
    ev(0, cas("a", "c", false, "b"), 8, 9),
    ev(0, del(), 10, 11),
    ev(1, cas(null, "d", true), 12, 13),
    ev(1, get("d"), 14, 15),
  ]);
});

test("stale read: a read after a completed overwrite sees the old value", () => {
  refuses([ev(0, put("a"), 0, 1), ev(1, put("b"), 2, 3), ev(2, get("a"), 4, 5)]);
});

test("lost write: an acknowledged put is not visible to a later read", () => {
  refuses([ev(0, put("a"), 0, 1), ev(1, get(null), 5, 6)]);
});

test("a read of a value nobody wrote is refused", () => {
  refuses([ev(0, put("a"), 0, 1), ev(1, get("zzz"), 2, 3)]);
});

test("a read cannot see a write invoked after the read returned", () => {
  refuses([ev(1, get("a"), 0, 1), ev(0, put("a"), 2, 3)]);
});

test("two compare-and-swaps from the same value cannot both succeed", () => {
  refuses([ev(0, put("a"), 0, 1), ev(1, cas("a", "b", true), 2, 5), ev(2, cas("a", "c", true), 3, 6)]);
});

test("a failed compare must have seen a value other than the expected one", () => {
  refuses([ev(0, put("a"), 0, 1), ev(1, cas("a", "b", false, "a"), 2, 3)]);
});

test("concurrent put and get: the read may see the old or the new value", () => {
  accepts([ev(0, put("a"), 0, 1), ev(0, put("b"), 2, 10), ev(1, get("a"), 3, 4)]);
  accepts([ev(0, put("a"), 0, 1), ev(0, put("b"), 2, 10), ev(1, get("b"), 3, 4)]);
  // ...but once one read saw the new value, a later read cannot see the old one.
  refuses([ev(0, put("a"), 0, 1), ev(0, put("b"), 2, 10), ev(1, get("b"), 3, 4), ev(2, get("a"), 5, 6)]);
});

test("an unknown write may have taken effect, late, or never", () => {
  // Observed long after its invocation: it took effect.
  accepts([ev(0, put("a"), 0, 1, "unknown"), ev(1, get(null), 2, 3), ev(1, get("a"), 50, 51)]);
  // Never observed: it did not.
  accepts([ev(0, put("a"), 0, 1), ev(1, put("b"), 2, 3, "unknown"), ev(2, get("a"), 4, 5)]);
  // But it cannot take effect before it was invoked.
  refuses([ev(1, get("a"), 0, 1), ev(0, put("a"), 2, 3, "unknown")]);
  // And it takes effect at most once: a later overwrite then a read of it again is stale.
  refuses([ev(0, put("a"), 0, 1, "unknown"), ev(1, get("a"), 2, 3), ev(1, put("b"), 4, 5), ev(1, get("a"), 6, 7)]);
});

test("concurrent writes cannot be observed in two different orders", () => {
  accepts([ev(0, put("a"), 0, 100), ev(1, put("b"), 0.5, 100), ev(2, get("a"), 1, 2), ev(2, get("b"), 3, 4)]);
  refuses([
    ev(0, put("a"), 0, 100),
    ev(1, put("b"), 0.5, 100),
    ev(2, get("a"), 1, 2),
    ev(2, get("b"), 3, 4),
    ev(3, get("b"), 5, 6),
    ev(3, get("a"), 7, 8),
  ]);
});

test("a failed write had no effect: reading its value is refused", () => {
  refuses([ev(0, put("a"), 0, 1), ev(1, put("b"), 2, 3, "failed"), ev(2, get("b"), 4, 5)]);
  accepts([ev(0, put("a"), 0, 1), ev(1, put("b"), 2, 3, "failed"), ev(2, get("a"), 4, 5)]);
});

test("failed operations are dropped; unobserved unknown writes are not searched", () => {
  const h = [ev(0, put("a"), 0, 1), ev(1, put("x"), 2, 3, "failed"), ev(1, put("y"), 4, 5, "unknown"), ev(2, get("a"), 6, 7), ev(2, get(null), 8, 9, "failed")];
  const r = checkKvHistory(h);
  assert.equal(r.ok, true, r.reason);
  assert.equal(r.searched, 2);
});

test("keys are independent: a violation names its key", () => {
  refuses(
    [
      ev(0, put("a"), 0, 1, "ok", "k1"),
      ev(1, get("a"), 2, 3, "ok", "k1"),
      ev(0, put("b"), 0, 1, "ok", "k2"),
      ev(1, get(null), 2, 3, "ok", "k2"),
    ],
    "k2",
  );
});

// A small seeded generator of real concurrent executions against one register:
// every op takes effect at a random instant inside its interval, so the
// history is linearizable by construction. The checker must accept all of
// them, and must refuse each after one read is made stale.
function rng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s / 0x1_0000_0000;
  };
}

function generate(seed: number, clients: number, perClient: number): KvEvent[] {
  const rand = rng(seed);
  interface Pending { client: number; invoke: number; ret: number; at: number; kind: "put" | "get" | "delete" | "cas"; value: string; expect: string | null }
  const plans: Pending[] = [];
  let uniq = 0;
  for (let c = 0; c < clients; c++) {
    let t = rand() * 5;
    for (let i = 0; i < perClient; i++) {
      const invoke = t;
      const ret = invoke + 1 + rand() * 10;
      const at = invoke + rand() * (ret - invoke);
      const r = rand();
      const kind = r < 0.35 ? "put" : r < 0.7 ? "get" : r < 0.8 ? "delete" : "cas";
      plans.push({ client: c, invoke, ret, at, kind, value: `v${seed}-${uniq++}`, expect: null });
      t = ret + rand() * 3;
    }
  }
  plans.sort((a, b) => a.at - b.at);
  let state: string | null = null;
  const recent: (string | null)[] = [null];
  const out: KvEvent[] = [];
  for (const p of plans) {
    let op: KvOp;
    if (p.kind === "put") {
      state = p.value;
      op = put(p.value);
    } else if (p.kind === "delete") {
      state = null;
      op = del();
    } else if (p.kind === "get") {
      op = get(state);
    } else {
      const expect: string | null = rand() < 0.6 ? state : (recent[Math.floor(rand() * recent.length)] ?? null);
      if (expect === state) {
        op = cas(expect, p.value, true);
        state = p.value;
      } else {
        op = cas(expect, p.value, false, state);
      }
    }
    recent.push(state);
    out.push({ id: out.length, client: p.client, key: "k", op, invoke: p.invoke, ret: p.ret, outcome: "ok" });
  }
  return out;
}

test("generated concurrent executions are accepted; each with one stale read is refused", () => {
  let refusedCount = 0;
  for (let seed = 1; seed <= 60; seed++) {
    const h = generate(seed, 4, 12);
    const r = checkKvHistory(h);
    assert.equal(r.ok, true, `seed ${seed}: ${r.reason}`);
    // Make the last read that has an earlier, different, completed-before write stale.
    const gets = h.filter((e) => e.op.kind === "get").reverse();
    for (const g of gets) {
      const older = h.find(
        (w) => w.op.kind === "put" && w.ret < g.invoke && (g.op.kind === "get" && g.op.observed !== w.op.value) &&
          h.some((w2) => w2 !== w && (w2.op.kind === "put" || w2.op.kind === "delete" || (w2.op.kind === "cas" && w2.op.succeeded)) && w2.invoke > w.ret && w2.ret < g.invoke),
      );
      if (older === undefined || older.op.kind !== "put") continue;
      const stale = h.map((e) => (e === g ? { ...e, op: get(older.op.kind === "put" ? older.op.value : null) } : e));
      const r2 = checkKvHistory(stale);
      assert.equal(r2.ok, false, `seed ${seed}: a stale read of ${older.op.value} was accepted`);
      refusedCount++;
      break;
    }
  }
  assert.ok(refusedCount >= 30, `only ${refusedCount} seeds produced a stale-read mutation`);
});
