import assert from "node:assert/strict";
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readdir, rename, rm, stat, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { create } from "@bufbuild/protobuf";
import { RangeRequestSchema, type PutResponse } from "../../gen/etcdserverpb/rpc_pb.js";
import { Backend, metaKey } from "../mvcc/backend.js";
import { EtcdServer } from "./server.js";
import { testServerOptions } from "./options.testlib.js";
import { receiveSnapshotFile, restoreBackend, snapshotStream } from "./snapshot.js";

setFlagsFromString("--expose-gc");
const gc = runInNewContext("gc") as () => void;

const MB = 1024 * 1024;

/**
 * Samples this process's memory while `fn` runs: peaks above the level at the
 * start. `heap`/`buffers` are what was live (a full GC before each sample,
 * every 50 ms, so garbage not yet collected is not counted); `rss` is the
 * resident set as the OS saw it, garbage included.
 */
async function peakDuring<T>(fn: () => Promise<T>): Promise<{ result: T; heap: number; buffers: number; rss: number }> {
  gc();
  const base = process.memoryUsage();
  let heap = 0;
  let buffers = 0;
  let rss = 0;
  const sample = () => {
    rss = Math.max(rss, process.memoryUsage().rss - base.rss);
    gc();
    const m = process.memoryUsage();
    heap = Math.max(heap, m.heapUsed - base.heapUsed);
    buffers = Math.max(buffers, m.arrayBuffers - base.arrayBuffers);
  };
  const t = setInterval(sample, 50);
  try {
    const result = await fn();
    sample();
    return { result, heap, buffers, rss };
  } finally {
    clearInterval(t);
  }
}

const mb = (n: number) => `${(n / MB).toFixed(1)} MB`;

test("a store much bigger than a chunk streams to a file and restores record by record into an equal store (HashKV), with the file deleted", async (t) => {
  const root = await mkdtemp(join(tmpdir(), "etcdts-snapstream-"));
  const src = await EtcdServer.start(testServerOptions(join(root, "src"), { watchProgressNotifyIntervalMs: 0 }));
  let dst: EtcdServer | undefined;
  try {
    // 16 keys rewritten 40 times with 48 KiB values: ~30 MB of history (every
    // revision is kept), of which only the latest 16 values are live.
    const value = (k: number, i: number) => Buffer.alloc(48 * 1024, (k * 40 + i) % 251);
    for (let i = 0; i < 40; i++) {
      await Promise.all(
        Array.from({ length: 16 }, (_, k) => src.propose<PutResponse>({ request: { case: "put", value: { key: Buffer.from(`big/${k}`), value: value(k, i) } } })),
      );
    }
    await src.propose({ request: { case: "leaseGrant", value: { ID: 77n, TTL: 600n } } });
    await src.propose({ request: { case: "put", value: { key: Buffer.from("leased"), value: Buffer.from("x"), lease: 77n } } });
    await src.propose({ request: { case: "deleteRange", value: { key: Buffer.from("big/3") } } });
    await src.propose({ request: { case: "compaction", value: { revision: 100n, physical: true } } });
    await src.store.compactionDone();
    const want = await src.hashKV(0n);

    // The sender's dump, read from one LevelDB snapshot, into the receiver's checked file.
    const path = join(root, "dst", "member", "snap", "0000000000000fff.snap.db");
    await mkdir(join(root, "dst", "member", "snap"), { recursive: true });
    const sent = await peakDuring(async () => {
      const { chunks } = await snapshotStream(src.backend);
      let pieces = 0;
      async function* counted() {
        for await (const c of chunks) {
          pieces++;
          yield c;
        }
      }
      const bytes = await receiveSnapshotFile(path, counted());
      return { bytes, pieces };
    });
    const fileBytes = (await stat(path)).size;
    assert.equal(fileBytes, sent.result.bytes);
    assert.ok(fileBytes > 25 * MB, `the dump is ${mb(fileBytes)}`);
    assert.ok(sent.result.pieces > 50, `${sent.result.pieces} pieces: streamed, not sent whole`);

    // A fresh member of the same (one-member) cluster restores from the file.
    dst = await EtcdServer.start(testServerOptions(join(root, "dst"), { watchProgressNotifyIntervalMs: 0 }));
    const d = dst;
    const restored = await peakDuring(() => d.restoreFromFile(path));
    const got = await dst.hashKV(0n);
    assert.deepEqual(got, want, "HashKV of the restored store equals the source's");
    assert.equal(dst.store.currentRev, src.store.currentRev);
    assert.equal(dst.store.compactRev, src.store.compactRev);
    assert.equal(dst.appliedIndex, src.appliedIndex, "the applied index is the dump's consistent_index");
    const r = await dst.range(create(RangeRequestSchema, { key: Buffer.from("big/"), rangeEnd: Buffer.from("big0") }));
    assert.equal(r.kvs.length, 15);
    assert.deepEqual(Buffer.from(r.kvs[0]!.value), value(0, 39));
    assert.deepEqual([...dst.lessor.lookup(77n)!.keys], ["leased"]);
    assert.equal(existsSync(path), false, "the applied snapshot file is deleted");
    assert.deepEqual(
      (await readdir(join(root, "dst", "member"))).sort(),
      ["snap", "store", "wal"],
      "no store.restore or store.old left behind",
    );

    t.diagnostic(`dump: ${mb(fileBytes)} in ${sent.result.pieces} pieces`);
    t.diagnostic(`send+receive, peaks above start: live heap ${mb(sent.heap)}, live buffers ${mb(sent.buffers)}, rss ${mb(sent.rss)}`);
    t.diagnostic(
      `restore, peaks above start: live heap ${mb(restored.heap)}, live buffers ${mb(restored.buffers)}, rss ${mb(restored.rss)} (the store keeps the 15 live values, 0.7 MB)`,
    );
  } finally {
    await dst?.stop();
    await src.stop();
    await rm(root, { recursive: true, force: true });
  }
});

test("a bad snapshot file is refused and the backend is left as it was; a crash between the swap's renames is finished on open", async () => {
  const root = await mkdtemp(join(tmpdir(), "etcdts-snapswap-"));
  try {
    const dir = join(root, "store");
    const b = await Backend.open(dir);
    await b.write([{ type: "put", key: metaKey("x"), value: Buffer.from("old") }], true);
    // A file cut short: nothing is swapped in.
    const src = await Backend.open(join(root, "src"));
    await src.write([{ type: "put", key: metaKey("x"), value: Buffer.from("new") }], true);
    const { chunks } = await snapshotStream(src);
    const parts: Buffer[] = [];
    for await (const c of chunks) parts.push(c);
    const whole = Buffer.concat(parts);
    await writeFile(join(root, "cut.snap.db"), whole.subarray(0, whole.length - 1));
    await assert.rejects(restoreBackend(b, join(root, "cut.snap.db"), []), /cut short/);
    assert.equal((await b.get(metaKey("x")))!.toString(), "old");
    assert.equal(existsSync(`${dir}.restore`), false, "the unfinished build is deleted");
    // A file written by receiveSnapshotFile from a cut stream is refused and leaves nothing.
    await assert.rejects(
      receiveSnapshotFile(join(root, "r.snap.db"), (async function* () {
        yield whole.subarray(0, 100);
      })()),
      /cut short/,
    );
    assert.equal(existsSync(join(root, "r.snap.db")) || existsSync(join(root, "r.snap.db.tmp")), false);
    // The whole file: swapped in.
    await writeFile(join(root, "ok.snap.db"), whole);
    await restoreBackend(b, join(root, "ok.snap.db"), [{ type: "put", key: metaKey("member_id"), value: Buffer.from("me") }]);
    assert.equal((await b.get(metaKey("x")))!.toString(), "new");
    assert.equal((await b.get(metaKey("member_id")))!.toString(), "me");
    // A crash after <dir> -> <dir>.old, before <dir>.restore -> <dir>: open() completes the swap.
    await b.build(async (write) => write([{ type: "put", key: metaKey("x"), value: Buffer.from("newer") }]));
    await b.close();
    await rename(dir, `${dir}.old`);
    const b2 = await Backend.open(dir);
    assert.equal((await b2.get(metaKey("x")))!.toString(), "newer");
    assert.equal(existsSync(`${dir}.old`) || existsSync(`${dir}.restore`), false);
    // An unfinished build beside a live database is discarded.
    await b2.build(async (write) => write([{ type: "put", key: metaKey("x"), value: Buffer.from("half") }]));
    await b2.close();
    const b3 = await Backend.open(dir);
    assert.equal((await b3.get(metaKey("x")))!.toString(), "newer");
    assert.equal(existsSync(`${dir}.restore`), false);
    await b3.close();
    await src.close();
  } finally {
    await rm(root, { recursive: true, force: true });
  }
});

test("a leader snapshot at or below the applied index restores nothing: a dump restored just before may reach past it and has purged its file", async () => {
  // Found by the driver simulator (test/sim/driver_sim.ts, seed 1000139): raft took
  // snapshots 125 and 129 before the first was restored; the dump for 125 held the
  // leader's backend at 129, its restore purged the file for 129, and restoring 129
  // then failed ("snapshot file ... is missing") and stopped the member.
  const root = await mkdtemp(join(tmpdir(), "etcdts-snapskip-"));
  const s = await EtcdServer.start(testServerOptions(join(root, "m")));
  try {
    await s.propose({ request: { case: "put", value: { key: Buffer.from("a"), value: Buffer.from("1") } } });
    const applied = s.appliedIndex;
    await assert.rejects(s.restoreFromFile(s.snapFile(applied)), /is missing/, "there is no file for it");
    await s.restoreSnapshot(applied);
    assert.equal(s.appliedIndex, applied);
    const r = await s.range(create(RangeRequestSchema, { key: Buffer.from("a") }));
    assert.equal(Buffer.from(r.kvs[0]!.value).toString(), "1");
  } finally {
    await s.stop();
    await rm(root, { recursive: true, force: true });
  }
});
