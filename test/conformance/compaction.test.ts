// Compaction: what stays readable, the errors around it, HashKV's view of it.
import assert from "node:assert/strict";
import { conformance } from "./framework.js";
import { b, pairs, rev, expectError, Code } from "./expect.js";
import type { Client } from "./client.js";

const compacted = { code: Code.OutOfRange, message: "etcdserver: mvcc: required revision has been compacted" };
const future = { code: Code.OutOfRange, message: "etcdserver: mvcc: required revision is a future revision" };

async function history(c: Client): Promise<void> {
  await c.put({ key: b("a"), value: b("1") }); // 2
  await c.put({ key: b("a"), value: b("2") }); // 3
  await c.put({ key: b("b"), value: b("x") }); // 4
  await c.deleteRange({ key: b("b") }); // 5
  await c.put({ key: b("a"), value: b("3") }); // 6
}

conformance("compact: reads below fail, at the compact revision and above work", async ({ c, kind }) => {
  await history(c);
  const r = await c.compact({ revision: 4n });
  if (kind !== "etcdctl") assert.equal(rev(r.header), 6n, "compaction makes no revision");
  await expectError(c.range({ key: b("a"), revision: 3n }), compacted);
  await expectError(c.range({ key: b("a"), revision: 2n }), compacted);
  assert.deepEqual(pairs((await c.range({ key: b("a"), revision: 4n })).kvs), [["a", "2"]]);
  assert.deepEqual(pairs((await c.range({ key: b("b"), revision: 4n })).kvs), [["b", "x"]]);
  assert.deepEqual(pairs((await c.range({ key: b("b"), revision: 5n })).kvs), []);
  assert.deepEqual(pairs((await c.range({ key: b("a") })).kvs), [["a", "3"]]);
  const cur = await c.range({ key: b("a") });
  assert.equal(cur.kvs[0]?.createRevision, 2n, "create revision survives compaction");
  assert.equal(cur.kvs[0]?.version, 3n, "version survives compaction");
  assert.equal(rev(cur.header), 6n);
});

conformance("compact errors: same revision twice, lower, future", async ({ c }) => {
  await history(c);
  await c.compact({ revision: 3n });
  await expectError(c.compact({ revision: 3n }), compacted);
  await expectError(c.compact({ revision: 2n }), compacted);
  await expectError(c.compact({ revision: 7n }), future);
  await expectError(c.compact({ revision: 100n }), future);
  await c.compact({ revision: 6n }); // the current revision is allowed
  await expectError(c.range({ key: b("a"), revision: 5n }), compacted);
  assert.deepEqual(pairs((await c.range({ key: b("a"), revision: 6n })).kvs), [["a", "3"]]);
});

conformance("physical compaction", async ({ c }) => {
  await history(c);
  await c.compact({ revision: 5n, physical: true });
  await expectError(c.range({ key: b("a"), revision: 4n }), compacted);
  assert.deepEqual(pairs((await c.range({ key: b("a") })).kvs), [["a", "3"]]);
}, { clients: ["grpc", "http", "etcdctl", "etcd3"] });

conformance("compact at revision 0 on a fresh store succeeds; then negative is 'compacted'", async ({ c }) => {
  const r = await c.compact({ revision: 0n });
  assert.equal(rev(r.header), 1n);
  await expectError(c.compact({ revision: -1n }), compacted);
  await expectError(c.compact({ revision: 0n }), compacted);
}, { clients: ["grpc", "http"] });

conformance("HashKV: compact_revision, compacted and future revisions", async ({ c }) => {
  await history(c);
  const h0 = await c.hashKV(0n);
  assert.equal(rev(h0.header), 6n);
  assert.equal(h0.compactRevision, -1n, "no compaction yet");
  const again = await c.hashKV(0n);
  assert.equal(again.hash, h0.hash, "the hash is a function of the data");
  const at4 = await c.hashKV(4n);
  assert.notEqual(at4.hash, h0.hash);
  await c.compact({ revision: 4n });
  const h1 = await c.hashKV(0n);
  assert.equal(h1.compactRevision, 4n);
  await expectError(c.hashKV(3n), compacted);
  await expectError(c.hashKV(100n), future);
  await c.put({ key: b("c"), value: b("new") });
  assert.notEqual((await c.hashKV(0n)).hash, h1.hash, "a write changes the hash");
}, { clients: ["grpc"] }); // HashKV: not in the 3.4 gateway flavour the http client speaks, nor in etcd3; etcdctl has no revision argument
