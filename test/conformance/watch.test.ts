// Watch: keys, ranges, history, prev_kv, filters, cancel, compaction,
// progress, many watchers per stream, client-chosen IDs.
import assert from "node:assert/strict";
import { conformance } from "./framework.js";
import { b, s, rev, evs, createWatch, createWatches, collectEvents } from "./expect.js";
import { WatchCreateRequest_FilterType as Filter } from "../../node/gen/etcdserverpb/rpc_pb.js";
import { Event_EventType } from "../../node/gen/mvccpb/kv_pb.js";

conformance("watch one key: created response, PUT and DELETE events", async ({ c, kind }) => {
  await c.put({ key: b("other"), value: b("x") }); // 2
  const w = await c.watch();
  try {
    const created = await createWatch(w, kind, { key: b("k"), ...(kind === "etcdctl" ? { startRevision: 3n } : {}) });
    if (created) {
      assert.equal(created.watchId, 0n, "first server-assigned watch id is 0");
      assert.equal(rev(created.header), 2n);
      assert.deepEqual(created.events, []);
    }
    const p = await c.put({ key: b("k"), value: b("v1") }); // 3
    await c.put({ key: b("unwatched"), value: b("x") }); // 4
    await c.put({ key: b("k"), value: b("v2") }); // 5
    await c.deleteRange({ key: b("k") }); // 6
    const got = await collectEvents(w, 3);
    assert.deepEqual(evs(got), [["PUT", "k", "v1", 3n], ["PUT", "k", "v2", 5n], ["DELETE", "k", "", 6n]]);
    assert.equal(rev(p.header), 3n);
    const del = got[2]!;
    assert.equal(del.type, Event_EventType.DELETE);
    assert.equal(del.kv?.createRevision, 0n, "a DELETE event's kv has only key and mod_revision");
    assert.equal(del.kv?.version, 0n);
    assert.equal(got[1]?.kv?.createRevision, 3n);
    assert.equal(got[1]?.kv?.version, 2n);
  } finally {
    await w.close();
  }
});

conformance("live event responses carry the event's revision in the header, one response per revision", async ({ c, kind }) => {
  const w = await c.watch();
  try {
    await createWatch(w, kind, { key: b("k") });
    await c.put({ key: b("k"), value: b("1") }); // 2
    const r1 = await w.next();
    assert.equal(rev(r1.header), 2n);
    assert.deepEqual(evs(r1.events), [["PUT", "k", "1", 2n]]);
    await c.put({ key: b("k"), value: b("2") }); // 3
    const r2 = await w.next();
    assert.equal(rev(r2.header), 3n);
  } finally {
    await w.close();
  }
}, { clients: ["grpc", "http", "etcd3"] });

conformance("watch a prefix and a range; one txn's events arrive together", async ({ c, kind }) => {
  const w = await c.watch();
  try {
    await createWatch(w, kind, { key: b("p/"), rangeEnd: b("p0"), ...(kind === "etcdctl" ? { startRevision: 2n } : {}) });
    await c.put({ key: b("p/a"), value: b("1") }); // 2
    await c.put({ key: b("q"), value: b("no") }); // 3
    await c.txn({ success: [
      { request: { case: "requestPut", value: { key: b("p/b"), value: b("2") } } },
      { request: { case: "requestPut", value: { key: b("p/c"), value: b("3") } } },
      { request: { case: "requestPut", value: { key: b("pz"), value: b("no") } } },
    ] }); // 4
    await c.deleteRange({ key: b("p/"), rangeEnd: b("p0") }); // 5
    const got = await collectEvents(w, 6);
    assert.deepEqual(evs(got), [
      ["PUT", "p/a", "1", 2n], ["PUT", "p/b", "2", 4n], ["PUT", "p/c", "3", 4n],
      ["DELETE", "p/a", "", 5n], ["DELETE", "p/b", "", 5n], ["DELETE", "p/c", "", 5n],
    ]);
  } finally {
    await w.close();
  }
}, { clients: ["grpc", "http", "etcdctl"] });

conformance("watch from a past start_revision replays history, with prev_kv", async ({ c, kind }) => {
  await c.put({ key: b("h"), value: b("1") }); // 2
  await c.put({ key: b("h"), value: b("2") }); // 3
  await c.deleteRange({ key: b("h") }); // 4
  await c.put({ key: b("h"), value: b("3") }); // 5
  const w = await c.watch();
  try {
    await createWatch(w, kind, { key: b("h"), startRevision: 2n, prevKv: true });
    const got = await collectEvents(w, 4);
    assert.deepEqual(evs(got), [["PUT", "h", "1", 2n], ["PUT", "h", "2", 3n], ["DELETE", "h", "", 4n], ["PUT", "h", "3", 5n]]);
    assert.equal(got[0]?.prevKv, undefined, "no prev_kv for a create");
    assert.equal(s(got[1]?.prevKv?.value), "1");
    assert.equal(s(got[2]?.prevKv?.value), "2", "a DELETE carries the deleted value as prev_kv");
    assert.equal(got[3]?.prevKv, undefined, "re-created after delete: no prev_kv");
    await c.put({ key: b("h"), value: b("4") }); // 6
    const live = await collectEvents(w, 1);
    assert.deepEqual(evs(live), [["PUT", "h", "4", 6n]]);
    assert.equal(s(live[0]?.prevKv?.value), "3");
  } finally {
    await w.close();
  }
});

conformance("start_revision in the future waits for that revision", async ({ c, kind }) => {
  const w = await c.watch();
  try {
    const created = await createWatch(w, kind, { key: b("f"), startRevision: 4n });
    if (created) assert.equal(rev(created.header), 1n);
    await c.put({ key: b("f"), value: b("2") }); // 2
    await c.put({ key: b("f"), value: b("3") }); // 3
    await c.put({ key: b("f"), value: b("4") }); // 4
    assert.deepEqual(evs(await collectEvents(w, 1)), [["PUT", "f", "4", 4n]]);
  } finally {
    await w.close();
  }
});

conformance("filters: NOPUT and NODELETE", async ({ c }) => {
  const w = await c.watch();
  try {
    const [a, d] = await createWatches(w, [{ key: b("x"), filters: [Filter.NOPUT] }, { key: b("x"), filters: [Filter.NODELETE] }]);
    assert.equal(a?.watchId, 0n);
    assert.equal(d?.watchId, 1n);
    await c.put({ key: b("x"), value: b("1") }); // 2
    await c.deleteRange({ key: b("x") }); // 3
    // Per revision, in order: rev 2 goes to watcher 1 only, rev 3 to watcher 0 only.
    const r1 = await w.next();
    assert.equal(r1.watchId, 1n);
    assert.deepEqual(evs(r1.events), [["PUT", "x", "1", 2n]]);
    const r2 = await w.next();
    assert.equal(r2.watchId, 0n);
    assert.deepEqual(evs(r2.events), [["DELETE", "x", "", 3n]]);
  } finally {
    await w.close();
  }
}, { clients: ["grpc", "http"] });

conformance("filters through etcd3's ignore()", async ({ c, kind }) => {
  const w = await c.watch();
  try {
    await createWatch(w, kind, { key: b("x"), filters: [Filter.NOPUT] });
    await c.put({ key: b("x"), value: b("1") });
    await c.deleteRange({ key: b("x") });
    assert.deepEqual(evs(await collectEvents(w, 1)), [["DELETE", "x", "", 3n]]);
  } finally {
    await w.close();
  }
}, { clients: ["etcd3"] });

conformance("several watchers on one stream get server-assigned ids 0,1,2 and their own events", async ({ c }) => {
  const w = await c.watch();
  try {
    const created = await createWatches(w, ["a", "b", "a"].map((key) => ({ key: b(key) })));
    assert.deepEqual(created.map((r) => r.watchId), [0n, 1n, 2n]);
    await c.put({ key: b("b"), value: b("1") }); // 2
    const rb = await w.next();
    assert.equal(rb.watchId, 1n);
    assert.deepEqual(evs(rb.events), [["PUT", "b", "1", 2n]]);
    await c.put({ key: b("a"), value: b("2") }); // 3
    const got = [await w.next(), await w.next()];
    assert.deepEqual(got.map((r) => r.watchId).sort(), [0n, 2n]);
    for (const r of got) assert.deepEqual(evs(r.events), [["PUT", "a", "2", 3n]]);
  } finally {
    await w.close();
  }
}, { clients: ["grpc", "http"] });

conformance("cancel: canceled response, no more events for that watcher; unknown id is ignored", async ({ c }) => {
  const w = await c.watch();
  try {
    await w.create({ key: b("a") }); // id 0
    await w.create({ key: b("b") }); // id 1
    await w.cancel(7n); // unknown: no response
    await w.cancel(0n);
    assert.deepEqual([(await w.next()).created, (await w.next()).created], [true, true]);
    const r = await w.next();
    assert.equal(r.watchId, 0n);
    assert.equal(r.canceled, true);
    assert.equal(r.created, false);
    assert.equal(r.cancelReason, "");
    await c.put({ key: b("a"), value: b("1") }); // 2: nobody watches a any more
    await c.put({ key: b("b"), value: b("2") }); // 3
    const next = await w.next();
    assert.equal(next.watchId, 1n, "the canceled watcher sent nothing; the next response is the other watcher's");
    assert.deepEqual(evs(next.events), [["PUT", "b", "2", 3n]]);
  } finally {
    await w.close();
  }
}, { clients: ["grpc", "http"] });

conformance("client-chosen watch ids, a duplicate id, and auto ids after them", async ({ c }) => {
  const w = await c.watch();
  try {
    // One key per watcher, written in turn, so the events arrive in an order
    // that does not depend on how the server iterates its watchers.
    const [a, dup, auto, one, auto2] = await createWatches(w, [
      { key: b("a"), watchId: 7n },
      { key: b("a"), watchId: 7n },
      { key: b("b") },
      { key: b("c"), watchId: 1n },
      { key: b("d") },
    ], false);
    assert.equal(a?.watchId, 7n);
    assert.equal(dup?.created, true);
    assert.equal(dup?.canceled, true);
    assert.equal(dup?.watchId, -1n);
    assert.equal(dup?.cancelReason, "mvcc: duplicate watch ID provided on the WatchStream");
    assert.equal(auto?.watchId, 0n);
    assert.equal(one?.watchId, 1n);
    assert.equal(auto2?.watchId, 2n, "auto ids skip ids in use");
    const ids: bigint[] = [];
    for (const k of ["a", "b", "c", "d"]) {
      await c.put({ key: b(k), value: b("v") });
      ids.push((await w.next()).watchId);
    }
    assert.deepEqual(ids, [7n, 0n, 1n, 2n]);
  } finally {
    await w.close();
  }
}, { clients: ["grpc", "http"] });

conformance("empty watch range is refused; an empty key is accepted", async ({ c, kind }) => {
  const w = await c.watch();
  try {
    const [r, e] = await createWatches(w, [{ key: b("b"), rangeEnd: b("a") }, { key: b("") }], false);
    assert.deepEqual([r?.created, r?.canceled, r?.watchId, r?.cancelReason], [true, true, -1n, "mvcc: watcher range is empty"]);
    assert.equal(e?.watchId, 0n);
    assert.equal(e?.canceled, false);
    void kind;
  } finally {
    await w.close();
  }
}, { clients: ["grpc", "http"] });

conformance("watch from a compacted revision is canceled with compact_revision", async ({ c, kind }) => {
  for (let i = 0; i < 4; i++) await c.put({ key: b("a"), value: b(`v${i}`) }); // 2..5
  await c.compact({ revision: 4n });
  const w = await c.watch();
  try {
    const created = await createWatch(w, kind, { key: b("a"), startRevision: 2n });
    if (created) assert.equal(created.canceled, false);
    const r = await w.next();
    assert.equal(r.canceled, true);
    assert.equal(r.compactRevision, 4n);
    assert.equal(r.watchId, created?.watchId ?? 0n);
    assert.deepEqual(r.events, []);
    // At exactly the compact revision the history is still there.
    const ok = await createWatch(w, kind, { key: b("a"), startRevision: 4n });
    assert.equal(ok?.canceled, false);
    assert.deepEqual(evs(await collectEvents(w, 2)), [["PUT", "a", "v2", 4n], ["PUT", "a", "v3", 5n]]);
  } finally {
    await w.close();
  }
}, { clients: ["grpc"] }); // the http client's gateway watch is half duplex

conformance("watch from a negative start revision after a compaction (etcd 3.6: canceled, compact_revision 0; 3.4 said 3)", async ({ c, kind }) => {
  for (let i = 0; i < 3; i++) await c.put({ key: b("a"), value: b(`v${i}`) }); // 2..4
  await c.compact({ revision: 3n });
  const w = await c.watch();
  try {
    await w.create({ key: b("a"), startRevision: -1n });
    const first = await w.next();
    const second = first.canceled ? undefined : await w.next();
    const final = second ?? first;
    assert.equal(final.canceled, true);
    assert.equal(final.compactRevision, 0n);
    void kind;
  } finally {
    await w.close();
  }
}, { clients: ["grpc"] });

conformance("progress request: a watch_id -1 response at the current revision", async ({ c }) => {
  await c.put({ key: b("a"), value: b("1") }); // 2
  await c.put({ key: b("a"), value: b("2") }); // 3
  const w = await c.watch();
  try {
    // One step at a time: sent together, etcd 3.6 may answer the progress
    // request before the created response (it is not ordered after the create).
    await w.create({ key: b("b") });
    const created = await w.next();
    assert.equal(created.created, true);
    assert.equal(rev(created.header), 3n);
    await w.progress();
    const r = await w.next();
    assert.equal(r.watchId, -1n);
    assert.equal(rev(r.header), 3n);
    assert.deepEqual([r.created, r.canceled, r.events.length, r.compactRevision], [false, false, 0, 0n]);
  } finally {
    await w.close();
  }
}, { clients: ["grpc"] });

conformance("progress request with no watchers on the stream (etcd 3.6: no answer, not kept)", async ({ c, kind }) => {
  await c.put({ key: b("a"), value: b("1") }); // 2
  const w = await c.watch();
  try {
    await w.progress();
    // The next message is the created response of a later watcher, not a
    // progress answer: the request with no watchers was dropped.
    const created = await createWatch(w, kind, { key: b("a") });
    assert.equal(created?.watchId, 0n);
    await w.progress();
    const r = await w.next();
    assert.equal(r.watchId, -1n);
    assert.equal(rev(r.header), 2n);
  } finally {
    await w.close();
  }
}, { clients: ["grpc"] });

conformance("prev_kv on live PUT and DELETE events", async ({ c, kind }) => {
  await c.put({ key: b("k"), value: b("old") }); // 2
  const w = await c.watch();
  try {
    await createWatch(w, kind, { key: b("k"), prevKv: true, ...(kind === "etcdctl" ? { startRevision: 3n } : {}) });
    await c.put({ key: b("k"), value: b("new") }); // 3
    await c.deleteRange({ key: b("k") }); // 4
    const got = await collectEvents(w, 2);
    assert.deepEqual(got.map((e) => [s(e.prevKv?.value), e.prevKv?.modRevision]), [["old", 2n], ["new", 3n]]);
  } finally {
    await w.close();
  }
});

conformance("a lease revoke delivers DELETE events for all its keys in one revision", async ({ c, kind }) => {
  const l = await c.leaseGrant({ TTL: 600n });
  await c.put({ key: b("l/1"), value: b("a"), lease: l.ID }); // 2
  await c.put({ key: b("l/2"), value: b("b"), lease: l.ID }); // 3
  const w = await c.watch();
  try {
    await createWatch(w, kind, { key: b("l/"), rangeEnd: b("l0"), ...(kind === "etcdctl" ? { startRevision: 4n } : {}) });
    const rv = await c.leaseRevoke(l.ID);
    assert.equal(rev(rv.header), 4n);
    assert.deepEqual(evs(await collectEvents(w, 2)), [["DELETE", "l/1", "", 4n], ["DELETE", "l/2", "", 4n]]);
  } finally {
    await w.close();
  }
}, { clients: ["grpc", "http", "etcdctl", "etcd3"] });
