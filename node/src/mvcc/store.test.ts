import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { Errors } from "../errors.js";
import { Backend, type BatchOp } from "./backend.js";
import { MvccStore } from "./store.js";

const b = (s: string) => Buffer.from(s);
const none = new Uint8Array(0);

async function withStore(fn: (open: () => Promise<MvccStore>, dir: string) => Promise<void>) {
  const dir = await mkdtemp(join(tmpdir(), "etcdts-store-"));
  const opened: Backend[] = [];
  try {
    await fn(async () => {
      for (const x of opened.splice(0)) await x.close().catch(() => undefined);
      const be = await Backend.open(dir);
      opened.push(be);
      return MvccStore.open(be);
    }, dir);
  } finally {
    for (const x of opened) await x.close().catch(() => undefined);
    await rm(dir, { recursive: true, force: true });
  }
}

/** Applies one write txn and makes it durable, as the apply loop does. */
async function write(s: MvccStore, fn: (w: ReturnType<MvccStore["beginWrite"]>) => void) {
  const ops: BatchOp[] = [];
  const w = s.beginWrite(ops);
  fn(w);
  const rev = w.end();
  await s.backend.write(ops, true);
  s.markDurable(rev);
  return rev;
}

test("revisions start at 1; the first write is revision 2; versions count puts", async () => {
  await withStore(async (open) => {
    const s = await open();
    assert.equal(s.currentRev, 1n);
    assert.equal(await write(s, (w) => w.put(b("a"), b("1"), 0n)), 2n);
    assert.equal(await write(s, (w) => w.put(b("a"), b("2"), 0n)), 3n);
    const r = await s.range(b("a"), none);
    assert.equal(r.rev, 3n);
    assert.equal(r.kvs[0]!.createRevision, 2n);
    assert.equal(r.kvs[0]!.modRevision, 3n);
    assert.equal(r.kvs[0]!.version, 2n);
    assert.equal(Buffer.from(r.kvs[0]!.value).toString(), "2");
    const old = await s.range(b("a"), none, { rev: 2n });
    assert.equal(Buffer.from(old.kvs[0]!.value).toString(), "1");
  });
});

test("a delete that deletes nothing makes no revision; one txn is one revision", async () => {
  await withStore(async (open) => {
    const s = await open();
    await write(s, (w) => w.put(b("a"), b("1"), 0n));
    assert.equal(await write(s, (w) => void w.deleteRange(b("zzz"), none)), 2n);
    assert.equal(await write(s, (w) => {
      w.put(b("x"), b("1"), 0n);
      w.put(b("y"), b("1"), 0n);
      w.deleteRange(b("a"), none);
    }), 3n);
    const all = await s.range(b("\0"), b("\0"));
    assert.deepEqual(all.kvs.map((kv) => Buffer.from(kv.key).toString()), ["x", "y"]);
    assert.equal(all.count, 2);
  });
});

test("reads never see what is not durable", async () => {
  await withStore(async (open) => {
    const s = await open();
    await write(s, (w) => w.put(b("a"), b("1"), 0n));
    const ops: BatchOp[] = [];
    const w = s.beginWrite(ops);
    w.put(b("a"), b("2"), 0n);
    w.end();
    // applied in memory, not yet written: readers still see revision 2
    const r = await s.range(b("a"), none);
    assert.equal(r.rev, 2n);
    assert.equal(Buffer.from(r.kvs[0]!.value).toString(), "1");
    await assert.rejects(s.range(b("a"), none, { rev: 3n }), (e) => e === Errors.FutureRev);
  });
});

test("restart rebuilds the index, revisions and versions from the backend", async () => {
  await withStore(async (open) => {
    let s = await open();
    await write(s, (w) => w.put(b("a"), b("1"), 0n));
    await write(s, (w) => w.put(b("a"), b("2"), 7n));
    await write(s, (w) => void w.deleteRange(b("a"), none));
    await write(s, (w) => w.put(b("a"), b("3"), 0n));
    s = await open();
    assert.equal(s.currentRev, 5n);
    const r = await s.range(b("a"), none);
    assert.equal(r.kvs[0]!.version, 1n);
    assert.equal(r.kvs[0]!.createRevision, 5n);
    assert.deepEqual((await s.range(b("a"), none, { rev: 4n })).kvs, []);
    assert.equal((await s.range(b("a"), none, { rev: 3n })).kvs[0]!.lease, 7n);
  });
});

test("compaction: reads below fail, at C succeed, history above survives a restart", async () => {
  await withStore(async (open) => {
    let s = await open();
    for (let i = 0; i < 5; i++) await write(s, (w) => w.put(b("k"), b(String(i)), 0n));
    await write(s, (w) => void w.deleteRange(b("k"), none)); // rev 7
    await write(s, (w) => w.put(b("j"), b("x"), 0n)); // rev 8
    const ops: BatchOp[] = [];
    s.scheduleCompaction(4n, ops);
    await s.backend.write(ops, true);
    await s.startPhysicalCompaction(4n);
    await assert.rejects(s.range(b("k"), none, { rev: 3n }), (e) => e === Errors.Compacted);
    assert.equal(Buffer.from((await s.range(b("k"), none, { rev: 4n })).kvs[0]!.value).toString(), "2");
    assert.throws(() => s.scheduleCompaction(4n, []), (e) => e === Errors.Compacted);
    assert.throws(() => s.scheduleCompaction(100n, []), (e) => e === Errors.FutureRev);
    s = await open();
    assert.equal(s.compactRev, 4n);
    await assert.rejects(s.range(b("k"), none, { rev: 3n }), (e) => e === Errors.Compacted);
    const { changes } = await s.changesBetween(4n, 8n);
    assert.deepEqual(
      changes.map((c) => `${c.kv.modRevision}:${Buffer.from(c.kv.key).toString()}:${c.deleted ? "del" : "put"}`),
      ["4:k:put", "5:k:put", "6:k:put", "7:k:del", "8:j:put"],
    );
  });
});

test("an interrupted compaction resumes on open", async () => {
  await withStore(async (open) => {
    let s = await open();
    for (let i = 0; i < 10; i++) await write(s, (w) => w.put(b("k"), b(String(i)), 0n));
    const ops: BatchOp[] = [];
    s.scheduleCompaction(8n, ops);
    await s.backend.write(ops, true); // crash here: scheduled, never physically run
    s = await open();
    await s.compactionDone();
    assert.equal(s.finishedCompactRev, 8n);
    const { changes } = await s.changesBetween(1n, 11n);
    assert.deepEqual(changes.map((c) => c.kv.modRevision), [8n, 9n, 10n, 11n]);
  });
});

test("changes carry the previous value for watchers", async () => {
  await withStore(async (open) => {
    const s = await open();
    await write(s, (w) => w.put(b("a"), b("1"), 0n));
    const ops: BatchOp[] = [];
    const w = s.beginWrite(ops);
    w.put(b("a"), b("2"), 0n);
    w.deleteRange(b("a"), none);
    w.end();
    await s.backend.write(ops, true);
    const published = s.markDurable(s.currentRev);
    assert.equal(published.length, 1);
    const [put, del] = published[0]!.changes;
    assert.equal(Buffer.from(put!.prev!.value).toString(), "1");
    assert.equal(del!.deleted, true);
    assert.equal(Buffer.from(del!.prev!.value).toString(), "2");
    assert.equal(del!.kv.modRevision, 3n);
    assert.equal(del!.kv.version, 0n);
  });
});

test("several txns in one batch write the revision once (the last), and a restart sees every change", async () => {
  await withStore(async (open) => {
    let s = await open();
    const ops: BatchOp[] = [];
    let rev = 0n;
    for (const k of ["a", "b", "c"]) {
      const w = s.beginWrite(ops);
      w.put(b(k), b(`v${k}`), 0n);
      rev = w.end();
    }
    const metas = ops.filter((o) => o.key.toString("latin1") === "mrev");
    assert.equal(metas.length, 1, "one meta op per batch");
    assert.equal(ops.length, 4, "three changes and the revision");
    assert.equal(metas[0]!.type === "put" && metas[0]!.value.readBigInt64BE(), rev);
    await s.backend.write(ops, true);
    s.markDurable(rev);
    // A new batch gets its own meta op.
    const rev2 = await write(s, (w) => w.put(b("d"), b("vd"), 0n));
    assert.equal(rev2, rev + 1n);
    s = await open();
    assert.equal(s.currentRev, rev2);
    const r = await s.range(b("a"), b("\0"));
    assert.deepEqual(r.kvs.map((kv) => [Buffer.from(kv.key).toString(), Buffer.from(kv.value).toString(), kv.modRevision]), [
      ["a", "va", rev - 2n],
      ["b", "vb", rev - 1n],
      ["c", "vc", rev],
      ["d", "vd", rev2],
    ]);
  });
});

test("backend: a write is visible to every read from the moment it is called, and writes land in call order", async () => {
  await withStore(async (open) => {
    const s = await open();
    const be = s.backend;
    const k = b("mseq");
    const writes: Promise<void>[] = [];
    for (let i = 1; i <= 200; i++) {
      writes.push(be.write([{ type: "put", key: k, value: Buffer.from([i]) }, { type: "put", key: b(`mx${i}`), value: Buffer.from([i]) }], false));
      if (i % 50 === 0) {
        // Not awaited: reads called now see every write called before them.
        assert.deepEqual(await be.get(k), Buffer.from([i]));
        const many = await be.getMany([b(`mx${i}`), b(`mx${i - 1}`)]);
        assert.deepEqual(many, [Buffer.from([i]), Buffer.from([i - 1])]);
        let n = 0;
        for await (const _ of be.range(b("mx"), b("my"))) n++;
        assert.equal(n, i);
      }
    }
    await Promise.all(writes);
    assert.deepEqual(await be.get(k), Buffer.from([200]), "the last write called is the last to land");
  });
});
