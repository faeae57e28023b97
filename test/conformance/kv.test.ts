// KV: put/get/range/delete, revisions and versions, range options.
import assert from "node:assert/strict";
import { conformance } from "./framework.js";
import { b, s, pairs, keys, revs, rev, expectError, Code } from "./expect.js";
import { RangeRequest_SortOrder as Order, RangeRequest_SortTarget as Target } from "../../node/gen/etcdserverpb/rpc_pb.js";
import type { Client } from "./client.js";

async function putAll(c: Client, kvs: Array<[string, string]>): Promise<void> {
  for (const [k, v] of kvs) await c.put({ key: b(k), value: b(v) });
}

conformance("fresh store is at revision 1; first write is revision 2; create/mod/version", async ({ c }) => {
  const r0 = await c.range({ key: b("foo") });
  assert.equal(rev(r0.header), 1n);
  assert.equal(r0.count, 0n);
  assert.deepEqual(r0.kvs, []);
  const p1 = await c.put({ key: b("foo"), value: b("bar") });
  assert.equal(rev(p1.header), 2n);
  const r1 = await c.range({ key: b("foo") });
  assert.deepEqual(revs(r1.kvs[0]), ["foo", 2n, 2n, 1n]);
  assert.equal(s(r1.kvs[0]?.value), "bar");
  const p2 = await c.put({ key: b("foo"), value: b("baz") });
  assert.equal(rev(p2.header), 3n);
  assert.deepEqual(revs((await c.range({ key: b("foo") })).kvs[0]), ["foo", 2n, 3n, 2n]);
  const other = await c.put({ key: b("other"), value: b("x") });
  assert.equal(rev(other.header), 4n);
  const d = await c.deleteRange({ key: b("foo") });
  assert.equal(d.deleted, 1n);
  assert.equal(rev(d.header), 5n);
  const p3 = await c.put({ key: b("foo"), value: b("again") });
  assert.equal(rev(p3.header), 6n);
  const r3 = await c.range({ key: b("foo") });
  assert.deepEqual(revs(r3.kvs[0]), ["foo", 6n, 6n, 1n], "a deleted key starts a new generation");
  assert.equal(rev(r3.header), 6n);
  // An identical value still makes a new revision.
  const p4 = await c.put({ key: b("foo"), value: b("again") });
  assert.equal(rev(p4.header), 7n);
  assert.deepEqual(revs((await c.range({ key: b("foo") })).kvs[0]), ["foo", 6n, 7n, 2n]);
});

conformance("empty value and empty-looking keys", async ({ c }) => {
  await c.put({ key: b("k"), value: b("") });
  const r = await c.range({ key: b("k") });
  assert.deepEqual(pairs(r.kvs), [["k", ""]]);
  assert.equal(r.count, 1n);
});

conformance("binary keys and values (NUL, 0xff)", async ({ c }) => {
  await c.put({ key: b("a\0b"), value: b("\0\x01\xff") });
  await c.put({ key: b("\xff\xfe"), value: b("hi") });
  const r = await c.range({ key: b("a\0b") });
  assert.deepEqual(pairs(r.kvs), [["a\0b", "\0\x01\xff"]]);
  const all = await c.range({ key: b("\0"), rangeEnd: b("\0") });
  assert.deepEqual(keys(all.kvs), ["a\0b", "\xff\xfe"]);
}, { clients: ["grpc", "http", "etcd3"] });

const tree: Array<[string, string]> = [
  ["a", "1"], ["ab", "2"], ["abc", "3"], ["abd", "4"], ["b", "5"], ["ba", "6"], ["c", "7"],
];

conformance("ranges: single key, [key, end), prefix, from-key, all keys", async ({ c }) => {
  await putAll(c, tree);
  assert.deepEqual(keys((await c.range({ key: b("ab") })).kvs), ["ab"]);
  assert.deepEqual(keys((await c.range({ key: b("ab"), rangeEnd: b("b") })).kvs), ["ab", "abc", "abd"]);
  assert.deepEqual(keys((await c.range({ key: b("ab"), rangeEnd: b("ac") })).kvs), ["ab", "abc", "abd"], "prefix ab");
  assert.deepEqual(keys((await c.range({ key: b("b"), rangeEnd: b("\0") })).kvs), ["b", "ba", "c"], "from-key b");
  const all = await c.range({ key: b("\0"), rangeEnd: b("\0") });
  assert.deepEqual(keys(all.kvs), tree.map(([k]) => k));
  assert.equal(all.count, 7n);
  assert.deepEqual(keys((await c.range({ key: b("zz"), rangeEnd: b("\0") })).kvs), []);
  assert.deepEqual(keys((await c.range({ key: b("abc"), rangeEnd: b("abc") })).kvs), [], "empty interval");
  assert.deepEqual(keys((await c.range({ key: b("b"), rangeEnd: b("a") })).kvs), [], "end before key");
  assert.deepEqual(keys((await c.range({ key: b("nope") })).kvs), []);
});

conformance("limit, more and count", async ({ c }) => {
  await putAll(c, tree);
  const r = await c.range({ key: b("a"), rangeEnd: b("\0"), limit: 2n });
  assert.deepEqual(keys(r.kvs), ["a", "ab"]);
  assert.equal(r.more, true);
  assert.equal(r.count, 7n, "count ignores the limit");
  const exact = await c.range({ key: b("a"), rangeEnd: b("\0"), limit: 7n });
  assert.equal(exact.more, false);
  assert.equal(exact.kvs.length, 7);
  const over = await c.range({ key: b("a"), rangeEnd: b("\0"), limit: 100n });
  assert.equal(over.more, false);
  const one = await c.range({ key: b("ab"), rangeEnd: b("ac"), limit: 1n });
  assert.deepEqual(keys(one.kvs), ["ab"]);
  assert.equal(one.more, true);
  assert.equal(one.count, 3n);
});

conformance("sort: every target and order, and the default-order rules", async ({ c }) => {
  // Values, versions and revisions all order differently from keys.
  await c.put({ key: b("k1"), value: b("c") }); // rev 2
  await c.put({ key: b("k2"), value: b("a") }); // rev 3
  await c.put({ key: b("k3"), value: b("b") }); // rev 4
  await c.put({ key: b("k2"), value: b("a") }); // rev 5: k2 version 2
  await c.put({ key: b("k2"), value: b("a") }); // rev 6: k2 version 3
  await c.put({ key: b("k1"), value: b("c") }); // rev 7: k1 version 2
  const all = { key: b("k"), rangeEnd: b("l") };
  const order = async (sortTarget: Target, sortOrder: Order) => keys((await c.range({ ...all, sortTarget, sortOrder })).kvs);
  assert.deepEqual(await order(Target.KEY, Order.NONE), ["k1", "k2", "k3"]);
  assert.deepEqual(await order(Target.KEY, Order.ASCEND), ["k1", "k2", "k3"]);
  assert.deepEqual(await order(Target.KEY, Order.DESCEND), ["k3", "k2", "k1"]);
  assert.deepEqual(await order(Target.VERSION, Order.ASCEND), ["k3", "k1", "k2"]);
  assert.deepEqual(await order(Target.VERSION, Order.DESCEND), ["k2", "k1", "k3"]);
  assert.deepEqual(await order(Target.VERSION, Order.NONE), ["k3", "k1", "k2"], "order NONE with a non-key target sorts ascending");
  assert.deepEqual(await order(Target.CREATE, Order.ASCEND), ["k1", "k2", "k3"]);
  assert.deepEqual(await order(Target.CREATE, Order.DESCEND), ["k3", "k2", "k1"]);
  assert.deepEqual(await order(Target.CREATE, Order.NONE), ["k1", "k2", "k3"]);
  assert.deepEqual(await order(Target.MOD, Order.ASCEND), ["k3", "k2", "k1"]);
  assert.deepEqual(await order(Target.MOD, Order.DESCEND), ["k1", "k2", "k3"]);
  assert.deepEqual(await order(Target.MOD, Order.NONE), ["k3", "k2", "k1"]);
  assert.deepEqual(await order(Target.VALUE, Order.ASCEND), ["k2", "k3", "k1"]);
  assert.deepEqual(await order(Target.VALUE, Order.DESCEND), ["k1", "k3", "k2"]);
  assert.deepEqual(await order(Target.VALUE, Order.NONE), ["k2", "k3", "k1"]);
  // Sorting happens before the limit.
  const top = await c.range({ ...all, sortTarget: Target.MOD, sortOrder: Order.DESCEND, limit: 1n });
  assert.deepEqual(keys(top.kvs), ["k1"]);
  assert.equal(top.more, true);
  assert.equal(top.count, 3n);
  const lowest = await c.range({ ...all, sortTarget: Target.KEY, sortOrder: Order.DESCEND, limit: 2n });
  assert.deepEqual(keys(lowest.kvs), ["k3", "k2"]);
});

conformance("sort ties keep key order", async ({ c }) => {
  await putAll(c, [["t3", "same"], ["t1", "same"], ["t2", "same"]]);
  const r = await c.range({ key: b("t"), rangeEnd: b("u"), sortTarget: Target.VALUE, sortOrder: Order.ASCEND });
  assert.deepEqual(keys(r.kvs), ["t1", "t2", "t3"]);
  const d = await c.range({ key: b("t"), rangeEnd: b("u"), sortTarget: Target.VERSION, sortOrder: Order.DESCEND });
  assert.deepEqual(keys(d.kvs).length, 3);
});

conformance("keys_only and count_only", async ({ c }) => {
  await putAll(c, tree);
  const ko = await c.range({ key: b("a"), rangeEnd: b("b"), keysOnly: true });
  assert.deepEqual(keys(ko.kvs), ["a", "ab", "abc", "abd"]);
  assert.ok(ko.kvs.every((kv) => kv.value.length === 0), "keys_only drops values");
  assert.deepEqual(revs(ko.kvs[0]), ["a", 2n, 2n, 1n], "keys_only keeps revisions");
  const co = await c.range({ key: b("a"), rangeEnd: b("b"), countOnly: true });
  assert.deepEqual(co.kvs, []);
  assert.equal(co.count, 4n);
  assert.equal(co.more, false);
  const col = await c.range({ key: b("a"), rangeEnd: b("b"), countOnly: true, limit: 1n });
  assert.equal(col.count, 4n);
}, { clients: ["grpc", "http", "etcd3"] });

conformance("min/max mod and create revision filters", async ({ c }) => {
  await putAll(c, [["f1", "a"], ["f2", "a"], ["f3", "a"]]); // created 2,3,4
  await c.put({ key: b("f1"), value: b("b") }); // f1 mod 5
  const all = { key: b("f"), rangeEnd: b("g") };
  assert.deepEqual(keys((await c.range({ ...all, minModRevision: 4n })).kvs), ["f1", "f3"]);
  assert.deepEqual(keys((await c.range({ ...all, maxModRevision: 3n })).kvs), ["f2"]);
  assert.deepEqual(keys((await c.range({ ...all, minCreateRevision: 3n })).kvs), ["f2", "f3"]);
  assert.deepEqual(keys((await c.range({ ...all, maxCreateRevision: 3n })).kvs), ["f1", "f2"]);
  const both = await c.range({ ...all, minCreateRevision: 3n, maxModRevision: 4n });
  assert.deepEqual(keys(both.kvs), ["f2", "f3"]);
  assert.equal(both.count, 3n, "count is not affected by filters");
  const lim = await c.range({ ...all, minModRevision: 3n, limit: 1n });
  assert.deepEqual(keys(lim.kvs), ["f1"]);
}, { clients: ["grpc", "http", "etcd3"] });

conformance("historical reads by revision; header is the current revision", async ({ c }) => {
  await c.put({ key: b("h"), value: b("v1") }); // 2
  await c.put({ key: b("h"), value: b("v2") }); // 3
  await c.put({ key: b("h2"), value: b("x") }); // 4
  await c.deleteRange({ key: b("h") }); // 5
  const at2 = await c.range({ key: b("h"), revision: 2n });
  assert.deepEqual(pairs(at2.kvs), [["h", "v1"]]);
  assert.equal(rev(at2.header), 5n);
  assert.deepEqual(pairs((await c.range({ key: b("h"), revision: 3n })).kvs), [["h", "v2"]]);
  assert.deepEqual(pairs((await c.range({ key: b("h"), revision: 5n })).kvs), []);
  assert.deepEqual(pairs((await c.range({ key: b("h"), revision: 1n })).kvs), []);
  const r4 = await c.range({ key: b("h"), rangeEnd: b("i"), revision: 4n });
  assert.deepEqual(keys(r4.kvs), ["h", "h2"]);
  assert.equal(r4.count, 2n);
  await expectError(c.range({ key: b("h"), revision: 6n }), { code: Code.OutOfRange, message: "etcdserver: mvcc: required revision is a future revision" });
  await expectError(c.range({ key: b("h"), revision: 1000n }), { code: Code.OutOfRange, message: "etcdserver: mvcc: required revision is a future revision" });
});

conformance("serializable reads", async ({ c }) => {
  await c.put({ key: b("s"), value: b("1") });
  const r = await c.range({ key: b("s"), serializable: true });
  assert.deepEqual(pairs(r.kvs), [["s", "1"]]);
  assert.equal(rev(r.header), 2n);
});

conformance("empty key is rejected by range, put and delete", async ({ c }) => {
  const want = { code: Code.InvalidArgument, message: "etcdserver: key is not provided" };
  await expectError(c.range({ key: b("") }), want);
  await expectError(c.put({ key: b(""), value: b("v") }), want);
  await expectError(c.deleteRange({ key: b("") }), want);
  const r = await c.range({ key: b("x") });
  assert.equal(rev(r.header), 1n, "rejected requests make no revision");
});

conformance("put prev_kv", async ({ c }) => {
  const first = await c.put({ key: b("p"), value: b("1"), prevKv: true });
  assert.equal(first.prevKv, undefined, "no previous kv for a new key");
  const second = await c.put({ key: b("p"), value: b("2"), prevKv: true });
  assert.deepEqual(revs(second.prevKv), ["p", 2n, 2n, 1n]);
  assert.equal(s(second.prevKv?.value), "1");
}, { clients: ["grpc", "http", "etcdctl"] });

conformance("put ignore_value keeps the value; errors for value provided and missing key", async ({ c }) => {
  await expectError(c.put({ key: b("iv"), ignoreValue: true }), { code: Code.InvalidArgument, message: "etcdserver: key not found" });
  await c.put({ key: b("iv"), value: b("keep") });
  const r = await c.put({ key: b("iv"), ignoreValue: true });
  assert.equal(rev(r.header), 3n);
  const g = await c.range({ key: b("iv") });
  assert.deepEqual(pairs(g.kvs), [["iv", "keep"]]);
  assert.deepEqual(revs(g.kvs[0]), ["iv", 2n, 3n, 2n]);
  await expectError(c.put({ key: b("iv"), value: b("x"), ignoreValue: true }), { code: Code.InvalidArgument, message: "etcdserver: value is provided" });
}, { clients: ["grpc", "http"] });

conformance("put ignore_lease keeps the lease; errors for lease provided and missing key", async ({ c }) => {
  await expectError(c.put({ key: b("il"), value: b("v"), ignoreLease: true }), { code: Code.InvalidArgument, message: "etcdserver: key not found" });
  const l = await c.leaseGrant({ TTL: 600n });
  await c.put({ key: b("il"), value: b("v1"), lease: l.ID });
  await c.put({ key: b("il"), value: b("v2"), ignoreLease: true });
  const g = await c.range({ key: b("il") });
  assert.equal(g.kvs[0]?.lease, l.ID, "lease kept");
  assert.equal(s(g.kvs[0]?.value), "v2");
  await expectError(c.put({ key: b("il"), value: b("v3"), lease: l.ID, ignoreLease: true }), { code: Code.InvalidArgument, message: "etcdserver: lease is provided" });
  // A plain put detaches the lease.
  await c.put({ key: b("il"), value: b("v4") });
  assert.equal((await c.range({ key: b("il") })).kvs[0]?.lease, 0n);
});

conformance("put with a lease that does not exist", async ({ c }) => {
  await expectError(c.put({ key: b("nl"), value: b("v"), lease: 12345n }), { code: Code.NotFound, message: "etcdserver: requested lease not found" });
  assert.equal(rev((await c.range({ key: b("nl") })).header), 1n);
});

conformance("delete: single, range, prefix, prev_kv, deleted count; no-op delete makes no revision", async ({ c }) => {
  await putAll(c, tree); // revisions 2..8
  const none = await c.deleteRange({ key: b("zzz") });
  assert.equal(none.deleted, 0n);
  assert.equal(rev(none.header), 8n, "no-op delete does not bump the revision");
  const one = await c.deleteRange({ key: b("a"), prevKv: true });
  assert.equal(one.deleted, 1n);
  assert.deepEqual(pairs(one.prevKvs), [["a", "1"]]);
  assert.equal(rev(one.header), 9n);
  const pre = await c.deleteRange({ key: b("ab"), rangeEnd: b("ac"), prevKv: true });
  assert.equal(pre.deleted, 3n);
  assert.deepEqual(pairs(pre.prevKvs), [["ab", "2"], ["abc", "3"], ["abd", "4"]]);
  assert.equal(rev(pre.header), 10n, "one revision for the whole range");
  const noPrev = await c.deleteRange({ key: b("b"), rangeEnd: b("\0") });
  assert.equal(noPrev.deleted, 3n);
  assert.deepEqual(noPrev.prevKvs, []);
  const left = await c.range({ key: b("\0"), rangeEnd: b("\0") });
  assert.deepEqual(keys(left.kvs), []);
  assert.equal(rev(left.header), 11n);
  const again = await c.deleteRange({ key: b("\0"), rangeEnd: b("\0") });
  assert.equal(again.deleted, 0n);
  assert.equal(rev(again.header), 11n);
});

conformance("negative revision and negative limit read the current state", async ({ c }) => {
  await putAll(c, [["n1", "a"], ["n2", "b"]]);
  const r = await c.range({ key: b("n"), rangeEnd: b("o"), revision: -5n });
  assert.deepEqual(keys(r.kvs), ["n1", "n2"]);
  const l = await c.range({ key: b("n"), rangeEnd: b("o"), limit: -1n });
  assert.deepEqual(keys(l.kvs), ["n1", "n2"]);
}, { clients: ["grpc", "http", "etcd3"] });
