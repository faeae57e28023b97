// Txn: compares (every target and result), branches, nesting, validation.
import assert from "node:assert/strict";
import { conformance } from "./framework.js";
import { b, s, pairs, keys, rev, expectError, Code } from "./expect.js";
import { Compare_CompareResult as R, Compare_CompareTarget as T } from "../../node/gen/etcdserverpb/rpc_pb.js";
import type { Compare, RequestOp, TxnResponse } from "../../node/gen/etcdserverpb/rpc_pb.js";
import type { MessageInitShape } from "@bufbuild/protobuf";
import type { CompareSchema, RequestOpSchema } from "../../node/gen/etcdserverpb/rpc_pb.js";

type Cmp = MessageInitShape<typeof CompareSchema>;
type Op = MessageInitShape<typeof RequestOpSchema>;

const cmp = {
  version: (key: string, result: R, v: bigint, rangeEnd?: string): Cmp => ({ key: b(key), target: T.VERSION, result, targetUnion: { case: "version", value: v }, ...(rangeEnd ? { rangeEnd: b(rangeEnd) } : {}) }),
  create: (key: string, result: R, v: bigint, rangeEnd?: string): Cmp => ({ key: b(key), target: T.CREATE, result, targetUnion: { case: "createRevision", value: v }, ...(rangeEnd ? { rangeEnd: b(rangeEnd) } : {}) }),
  mod: (key: string, result: R, v: bigint, rangeEnd?: string): Cmp => ({ key: b(key), target: T.MOD, result, targetUnion: { case: "modRevision", value: v }, ...(rangeEnd ? { rangeEnd: b(rangeEnd) } : {}) }),
  value: (key: string, result: R, v: string, rangeEnd?: string): Cmp => ({ key: b(key), target: T.VALUE, result, targetUnion: { case: "value", value: b(v) }, ...(rangeEnd ? { rangeEnd: b(rangeEnd) } : {}) }),
  lease: (key: string, result: R, v: bigint, rangeEnd?: string): Cmp => ({ key: b(key), target: T.LEASE, result, targetUnion: { case: "lease", value: v }, ...(rangeEnd ? { rangeEnd: b(rangeEnd) } : {}) }),
};
const op = {
  put: (key: string, value: string, lease?: bigint): Op => ({ request: { case: "requestPut", value: { key: b(key), value: b(value), ...(lease ? { lease } : {}) } } }),
  get: (key: string, rangeEnd?: string): Op => ({ request: { case: "requestRange", value: { key: b(key), ...(rangeEnd ? { rangeEnd: b(rangeEnd) } : {}) } } }),
  del: (key: string, rangeEnd?: string): Op => ({ request: { case: "requestDeleteRange", value: { key: b(key), ...(rangeEnd ? { rangeEnd: b(rangeEnd) } : {}) } } }),
  txn: (compare: Cmp[], success: Op[], failure: Op[] = []): Op => ({ request: { case: "requestTxn", value: { compare, success, failure } } }),
};

/** Whether a single compare holds, via a txn whose branches are both reads. */
function probeOf(c: { txn: (r: { compare: Cmp[]; success: Op[]; failure: Op[] }) => Promise<TxnResponse> }) {
  return async (x: Cmp): Promise<boolean> => (await c.txn({ compare: [x], success: [op.get("probe-s")], failure: [op.get("probe-f")] })).succeeded;
}

conformance("compare every target with every result on an existing key", async ({ c }) => {
  const l = await c.leaseGrant({ TTL: 600n });
  await c.put({ key: b("k"), value: b("m") }); // create 2
  await c.put({ key: b("k"), value: b("m"), lease: l.ID }); // mod 3, version 2
  const holds = probeOf(c);
  const table: Array<[Cmp, boolean]> = [
    [cmp.version("k", R.EQUAL, 2n), true], [cmp.version("k", R.EQUAL, 1n), false],
    [cmp.version("k", R.GREATER, 1n), true], [cmp.version("k", R.GREATER, 2n), false],
    [cmp.version("k", R.LESS, 3n), true], [cmp.version("k", R.LESS, 2n), false],
    [cmp.version("k", R.NOT_EQUAL, 1n), true], [cmp.version("k", R.NOT_EQUAL, 2n), false],
    [cmp.create("k", R.EQUAL, 2n), true], [cmp.create("k", R.GREATER, 1n), true], [cmp.create("k", R.LESS, 2n), false], [cmp.create("k", R.NOT_EQUAL, 2n), false],
    [cmp.mod("k", R.EQUAL, 3n), true], [cmp.mod("k", R.GREATER, 3n), false], [cmp.mod("k", R.LESS, 4n), true], [cmp.mod("k", R.NOT_EQUAL, 2n), true],
    [cmp.value("k", R.EQUAL, "m"), true], [cmp.value("k", R.EQUAL, "n"), false],
    [cmp.value("k", R.GREATER, "l"), true], [cmp.value("k", R.GREATER, "m"), false], [cmp.value("k", R.GREATER, ""), true],
    [cmp.value("k", R.LESS, "mm"), true], [cmp.value("k", R.LESS, "m"), false],
    [cmp.value("k", R.NOT_EQUAL, "x"), true], [cmp.value("k", R.NOT_EQUAL, "m"), false],
    [cmp.lease("k", R.EQUAL, l.ID), true], [cmp.lease("k", R.NOT_EQUAL, l.ID), false], [cmp.lease("k", R.GREATER, 0n), true], [cmp.lease("k", R.LESS, 1n), false],
  ];
  const got: boolean[] = [];
  for (const [x] of table) got.push(await holds(x));
  assert.deepEqual(got, table.map(([, want]) => want));
}, { clients: ["grpc", "http", "etcd3"] });

conformance("a missing key compares as zero, except VALUE which always fails", async ({ c }) => {
  const holds = probeOf(c);
  assert.equal(await holds(cmp.version("nope", R.EQUAL, 0n)), true);
  assert.equal(await holds(cmp.create("nope", R.EQUAL, 0n)), true);
  assert.equal(await holds(cmp.mod("nope", R.EQUAL, 0n)), true);
  assert.equal(await holds(cmp.lease("nope", R.EQUAL, 0n)), true);
  assert.equal(await holds(cmp.mod("nope", R.LESS, 1n)), true);
  assert.equal(await holds(cmp.mod("nope", R.GREATER, 0n)), false);
  assert.equal(await holds(cmp.version("nope", R.NOT_EQUAL, 0n)), false);
  assert.equal(await holds(cmp.value("nope", R.EQUAL, "")), false);
  assert.equal(await holds(cmp.value("nope", R.NOT_EQUAL, "x")), false);
  assert.equal(await holds(cmp.value("nope", R.GREATER, "")), false);
  assert.equal(await holds(cmp.value("nope", R.LESS, "zzz")), false);
  // Kubernetes-style create: if mod_revision == 0 then put.
  const created = await c.txn({ compare: [cmp.mod("new", R.EQUAL, 0n)], success: [op.put("new", "v")], failure: [op.get("new")] });
  assert.equal(created.succeeded, true);
  assert.equal(rev(created.header), 2n);
  const again = await c.txn({ compare: [cmp.mod("new", R.EQUAL, 0n)], success: [op.put("new", "v")], failure: [op.get("new")] });
  assert.equal(again.succeeded, false);
  assert.equal(rev(again.header), 2n, "failure branch with only reads makes no revision");
  const rr = again.responses[0]?.response;
  assert.equal(rr?.case, "responseRange");
  assert.deepEqual(rr?.case === "responseRange" ? pairs(rr.value.kvs) : [], [["new", "v"]]);
}, { clients: ["grpc", "http", "etcd3"] });

conformance("range compares: every key in [key, range_end) must hold", async ({ c }) => {
  await c.put({ key: b("r1"), value: b("a") }); // 2
  await c.put({ key: b("r2"), value: b("a") }); // 3
  await c.put({ key: b("r3"), value: b("b") }); // 4
  const holds = probeOf(c);
  assert.equal(await holds(cmp.value("r", R.EQUAL, "a", "r3")), true);
  assert.equal(await holds(cmp.value("r", R.EQUAL, "a", "s")), false);
  assert.equal(await holds(cmp.mod("r1", R.LESS, 5n, "r4")), true);
  assert.equal(await holds(cmp.mod("r1", R.GREATER, 2n, "r4")), false);
  assert.equal(await holds(cmp.create("r", R.GREATER, 1n, "\0")), true, "from-key range compare");
  assert.equal(await holds(cmp.version("x", R.EQUAL, 0n, "y")), true, "empty range compares as a missing key");
  assert.equal(await holds(cmp.value("x", R.EQUAL, "", "y")), false, "empty range VALUE compare fails");
}, { clients: ["grpc", "http"] });

conformance("success and failure branches: responses, revisions, reads see the txn's own writes", async ({ c }) => {
  await c.put({ key: b("x"), value: b("1") }); // 2
  const t1 = await c.txn({
    compare: [cmp.value("x", R.EQUAL, "1")],
    success: [op.put("x", "2"), op.put("y", "3"), op.get("x"), op.del("zz")],
    failure: [op.put("never", "1")],
  });
  assert.equal(t1.succeeded, true);
  assert.equal(rev(t1.header), 3n, "all writes of one txn share one revision");
  assert.deepEqual(t1.responses.map((r) => r.response.case), ["responsePut", "responsePut", "responseRange", "responseDeleteRange"]);
  const inner = t1.responses[2]?.response;
  assert.deepEqual(inner?.case === "responseRange" ? pairs(inner.value.kvs) : null, [["x", "2"]], "a read after a write in the same txn sees it");
  const got = await c.range({ key: b("x"), rangeEnd: b("z") });
  assert.deepEqual(pairs(got.kvs), [["x", "2"], ["y", "3"]]);
  assert.equal(got.kvs[0]?.modRevision, 3n);
  assert.equal(got.kvs[1]?.modRevision, 3n);
  const t2 = await c.txn({ compare: [cmp.value("x", R.EQUAL, "1")], success: [op.put("never", "1")], failure: [op.del("y"), op.get("y")] });
  assert.equal(t2.succeeded, false);
  assert.equal(rev(t2.header), 4n);
  const d = t2.responses[0]?.response;
  assert.equal(d?.case === "responseDeleteRange" ? d.value.deleted : -1n, 1n);
  assert.deepEqual(keys((await c.range({ key: b("never") })).kvs), []);
});

conformance("multiple compares are ANDed", async ({ c }) => {
  await c.put({ key: b("a"), value: b("1") });
  await c.put({ key: b("b"), value: b("2") });
  const yes = await c.txn({ compare: [cmp.value("a", R.EQUAL, "1"), cmp.value("b", R.EQUAL, "2")], success: [op.get("a")], failure: [op.get("b")] });
  assert.equal(yes.succeeded, true);
  const no = await c.txn({ compare: [cmp.value("a", R.EQUAL, "1"), cmp.value("b", R.EQUAL, "3")], success: [op.get("a")], failure: [op.get("b")] });
  assert.equal(no.succeeded, false);
});

conformance("read-only and no-op txns do not create a revision; empty txn succeeds", async ({ c }) => {
  await c.put({ key: b("a"), value: b("1") }); // 2
  const ro = await c.txn({ compare: [cmp.version("a", R.GREATER, 0n)], success: [op.get("a"), op.get("b")], failure: [] });
  assert.equal(rev(ro.header), 2n);
  const noop = await c.txn({ compare: [cmp.version("a", R.GREATER, 0n)], success: [op.del("nothing-here")], failure: [] });
  assert.equal(noop.succeeded, true);
  assert.equal(rev(noop.header), 2n, "a txn whose only write deletes nothing makes no revision");
  assert.equal(rev((await c.put({ key: b("a"), value: b("2") })).header), 3n);
}, { clients: ["grpc", "http", "etcdctl", "etcd3"] });

conformance("empty txn", async ({ c }) => {
  const e = await c.txn({});
  assert.equal(e.succeeded, true);
  assert.deepEqual(e.responses, []);
  assert.equal(rev(e.header), 1n);
}, { clients: ["grpc", "http"] });

conformance("nested txns", async ({ c }) => {
  await c.put({ key: b("n"), value: b("1") }); // 2
  const t = await c.txn({
    compare: [cmp.value("n", R.EQUAL, "1")],
    success: [
      op.txn([cmp.value("n", R.EQUAL, "nope")], [op.put("inner-s", "x")], [op.put("inner-f", "y"), op.get("n")]),
      op.put("outer", "z"),
    ],
  });
  assert.equal(t.succeeded, true);
  assert.equal(rev(t.header), 3n);
  const nested = t.responses[0]?.response;
  assert.equal(nested?.case, "responseTxn");
  if (nested?.case === "responseTxn") {
    assert.equal(nested.value.succeeded, false);
    assert.deepEqual(nested.value.responses.map((r) => r.response.case), ["responsePut", "responseRange"]);
  }
  const all = await c.range({ key: b("\0"), rangeEnd: b("\0") });
  assert.deepEqual(keys(all.kvs), ["inner-f", "n", "outer"]);
  assert.deepEqual(all.kvs.map((kv) => [s(kv.key), kv.modRevision]), [["inner-f", 3n], ["n", 2n], ["outer", 3n]]);
}, { clients: ["grpc", "http"] });

conformance("duplicate keys in one txn are rejected; exclusive nested branches may share a key", async ({ c }) => {
  const dup = { code: Code.InvalidArgument, message: "etcdserver: duplicate key given in txn request" };
  await expectError(c.txn({ compare: [cmp.version("a", R.EQUAL, 0n)], success: [op.put("a", "1"), op.put("a", "2")] }), dup);
  await expectError(c.txn({ compare: [cmp.version("a", R.EQUAL, 0n)], success: [op.del("a", "c"), op.put("b", "2")] }), dup);
  await expectError(c.txn({ compare: [cmp.version("a", R.EQUAL, 0n)], success: [op.put("b", "2"), op.del("a", "c")] }), dup);
  // The same key in success and failure is fine: only one branch runs.
  const ok = await c.txn({ compare: [cmp.version("a", R.EQUAL, 0n)], success: [op.put("a", "1")], failure: [op.put("a", "2")] });
  assert.equal(ok.succeeded, true);
  // Two deletes of the same range are not duplicates; a get and a put of one key are not either.
  const dd = await c.txn({ compare: [cmp.version("a", R.EQUAL, 1n)], success: [op.del("q"), op.del("q"), op.get("a"), op.put("a", "3")] });
  assert.equal(dd.succeeded, true);
  assert.equal(rev(dd.header), 3n);
});

conformance("duplicate keys across nesting levels", async ({ c }) => {
  const dup = { code: Code.InvalidArgument, message: "etcdserver: duplicate key given in txn request" };
  await expectError(c.txn({ success: [op.put("a", "1"), op.txn([], [op.put("a", "2")])] }), dup);
  await expectError(c.txn({ success: [op.del("a", "c"), op.txn([], [op.put("b", "2")])] }), dup);
  const ok = await c.txn({ success: [op.txn([cmp.version("a", R.EQUAL, 0n)], [op.put("a", "1")], [op.put("a", "2")])] });
  assert.equal(ok.succeeded, true);
  assert.equal(rev(ok.header), 2n);
}, { clients: ["grpc", "http"] });

conformance("too many operations (> 128 by default)", async ({ c }) => {
  const many = (n: number) => Array.from({ length: n }, (_, i) => op.get(`k${i}`));
  const tooMany = { code: Code.InvalidArgument, message: "etcdserver: too many operations in txn request" };
  await expectError(c.txn({ compare: [cmp.version("a", R.EQUAL, 0n)], success: many(129) }), tooMany);
  await expectError(c.txn({ compare: [cmp.version("a", R.EQUAL, 0n)], failure: many(129) }), tooMany);
  const ok = await c.txn({ compare: [cmp.version("a", R.EQUAL, 0n)], success: many(128) });
  assert.equal(ok.responses.length, 128);
  const puts = Array.from({ length: 128 }, (_, i) => op.put(`p${i}`, "v"));
  const wrote = await c.txn({ compare: [cmp.version("a", R.EQUAL, 0n)], success: puts });
  assert.equal(rev(wrote.header), 2n);
  assert.equal((await c.range({ key: b("p"), rangeEnd: b("q"), countOnly: true })).count, 128n);
}, { clients: ["grpc", "http", "etcd3"], timeoutMs: 180_000 });

conformance("too many compares; nested ops count toward the limit", async ({ c }) => {
  const tooMany = { code: Code.InvalidArgument, message: "etcdserver: too many operations in txn request" };
  const cmps = Array.from({ length: 129 }, () => cmp.version("a", R.EQUAL, 0n));
  await expectError(c.txn({ compare: cmps }), tooMany);
  const gets = (n: number) => Array.from({ length: n }, (_, i) => op.get(`k${i}`));
  await expectError(c.txn({ success: [...gets(100), op.txn([], gets(29))] }), tooMany);
  // The nested budget is 128 minus the outer txn's own op count (64 gets + 1 txn = 65).
  await expectError(c.txn({ success: [...gets(64), op.txn([], gets(64))] }), tooMany);
  const ok = await c.txn({ success: [...gets(64), op.txn([], gets(63))] });
  assert.equal(ok.succeeded, true);
}, { clients: ["grpc", "http"] });

conformance("txn --max-txn-ops flag", async ({ c }) => {
  const gets = (n: number) => Array.from({ length: n }, (_, i) => op.get(`k${i}`));
  await expectError(c.txn({ compare: [cmp.version("a", R.EQUAL, 0n)], success: gets(9) }), { code: Code.InvalidArgument, message: "etcdserver: too many operations in txn request" });
  const ok = await c.txn({ compare: [cmp.version("a", R.EQUAL, 0n)], success: gets(8) });
  assert.equal(ok.responses.length, 8);
}, { clients: ["grpc"], flags: ["--max-txn-ops", "8"] });

conformance("txn validation: empty RequestOp, empty compare key, empty op key, missing lease", async ({ c }) => {
  await expectError(c.txn({ success: [{}] }), { code: Code.InvalidArgument, message: "etcdserver: key not found" });
  await expectError(c.txn({ compare: [{ key: b(""), target: T.VERSION, result: R.EQUAL, targetUnion: { case: "version", value: 0n } }] }), { code: Code.InvalidArgument, message: "etcdserver: key is not provided" });
  await expectError(c.txn({ success: [op.put("", "v")] }), { code: Code.InvalidArgument, message: "etcdserver: key is not provided" });
  await expectError(c.txn({ success: [op.put("a", "v", 777n)] }), { code: Code.NotFound, message: "etcdserver: requested lease not found" });
  assert.equal(rev((await c.range({ key: b("a") })).header), 1n);
}, { clients: ["grpc", "http"] });

conformance("txn with a range at a future or compacted revision fails as a whole", async ({ c }) => {
  await c.put({ key: b("a"), value: b("1") }); // 2
  await c.put({ key: b("a"), value: b("2") }); // 3
  await c.compact({ revision: 3n });
  const rangeAt = (revision: bigint): Op => ({ request: { case: "requestRange", value: { key: b("a"), revision } } });
  await expectError(c.txn({ success: [op.put("b", "1"), rangeAt(10n)] }), { code: Code.OutOfRange, message: "etcdserver: mvcc: required revision is a future revision" });
  await expectError(c.txn({ success: [op.put("b", "1"), rangeAt(2n)] }), { code: Code.OutOfRange, message: "etcdserver: mvcc: required revision has been compacted" });
  assert.deepEqual(keys((await c.range({ key: b("b") })).kvs), [], "nothing applied");
  const ok = await c.txn({ success: [rangeAt(3n)] });
  const r = ok.responses[0]?.response;
  assert.deepEqual(r?.case === "responseRange" ? pairs(r.value.kvs) : null, [["a", "2"]]);
}, { clients: ["grpc", "http"] });

// Unused-type guard: keeps the imported message types referenced for readers.
export type { Compare, RequestOp };
