import assert from "node:assert/strict";
import { test } from "node:test";
import { KeyIndex, TreeIndex } from "./key_index.js";
import { rev } from "./revision.js";

function example(): KeyIndex {
  // put(a)@2, put(a)@3, del(a)@4, put(a)@6 — the worked example in key_index.ts
  const ki = new KeyIndex("a");
  ki.put(rev(2n));
  ki.put(rev(3n));
  ki.tombstone(rev(4n));
  ki.put(rev(6n));
  return ki;
}

test("get follows generations", () => {
  const ki = example();
  assert.equal(ki.get(1n), undefined);
  assert.deepEqual(ki.get(2n), { mod: rev(2n), created: rev(2n), version: 1n });
  assert.deepEqual(ki.get(3n), { mod: rev(3n), created: rev(2n), version: 2n });
  assert.equal(ki.get(4n), undefined, "deleted at 4");
  assert.equal(ki.get(5n), undefined, "still deleted at 5");
  assert.deepEqual(ki.get(6n), { mod: rev(6n), created: rev(6n), version: 1n });
  assert.deepEqual(ki.get(100n), { mod: rev(6n), created: rev(6n), version: 1n });
  assert.equal(ki.live, true);
  assert.deepEqual(ki.modified, rev(6n));
});

test("tombstone on a key that is not live is a bug", () => {
  const ki = new KeyIndex("a");
  assert.throws(() => ki.tombstone(rev(2n)), /not live/);
});

test("compaction keeps the state at C and everything after", () => {
  const ki = example();
  assert.equal(ki.compact(3n), false);
  assert.equal(ki.get(2n), undefined, "nothing below C remains (the store refuses such reads)");
  assert.deepEqual(ki.get(3n), { mod: rev(3n), created: rev(2n), version: 2n }, "version survives compaction");
  assert.equal(ki.has(rev(2n)), false);
  assert.equal(ki.has(rev(3n)), true);
  assert.equal(ki.has(rev(4n)), true);
});

test("a tombstone exactly at C is kept (a watch from C sees the delete)", () => {
  const ki = example();
  ki.compact(4n);
  assert.equal(ki.has(rev(4n)), true);
  assert.equal(ki.get(4n), undefined);
  assert.equal(ki.get(6n)?.mod.main, 6n);
});

test("a generation that ended before C is dropped", () => {
  const ki = example();
  ki.compact(5n);
  assert.equal(ki.has(rev(4n)), false);
  assert.equal(ki.has(rev(3n)), false);
  assert.equal(ki.get(6n)?.version, 1n);
});

test("a key deleted before C leaves the index empty", () => {
  const ki = new KeyIndex("b");
  ki.put(rev(2n));
  ki.tombstone(rev(3n));
  assert.equal(ki.compact(4n), true);
  const t = new TreeIndex();
  const k = t.ensure("b");
  k.put(rev(2n));
  k.tombstone(rev(3n));
  t.compact(4n);
  assert.equal(t.size, 0);
});

test("visit: single key, [start,end), and to the end", () => {
  const t = new TreeIndex();
  for (const k of ["a", "ab", "b", "c\u00ff", "d"]) t.ensure(k).put(rev(2n));
  const seen = (s: string, e: string | undefined) => {
    const out: string[] = [];
    t.visit(s, e, (ki) => void out.push(ki.key.toString("latin1")));
    return out;
  };
  assert.deepEqual(seen("ab", undefined), ["ab"]);
  assert.deepEqual(seen("a", "b"), ["a", "ab"]);
  assert.deepEqual(seen("b", ""), ["b", "c\u00ff", "d"]);
  assert.deepEqual(seen("c", "d"), ["c\u00ff"], "byte order: 0xff sorts after ASCII");
  assert.deepEqual(seen("d", "a"), [], "an empty interval");
});

test("ensureLikelyNew: a new key gets a new index, a known key its own", () => {
  const t = new TreeIndex();
  const a = t.ensureLikelyNew("a");
  a.put(rev(2n));
  assert.equal(t.ensureLikelyNew("a"), a, "a second call finds the first index");
  assert.equal(t.ensure("a"), a);
  const b = t.ensureLikelyNew("b");
  assert.notEqual(b, a);
  assert.equal(t.size, 2);
  assert.deepEqual([...b.key], [0x62]);
});
