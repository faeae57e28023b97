// The WAL's behaviour on a well-behaved disk (SimFs): round trips, conflicts,
// markers, segments and their release, group commit, refusals and failures.
import assert from "node:assert/strict";
import { posix } from "node:path";
import { test } from "node:test";
import { SeededRand } from "../raft/rand.js";
import { WalClosedError, WalCorruptError, WalExistsError, WalFailedError, WalMetadataMismatchError, WalNotFoundError } from "./errors.js";
import { encodeBatch, entrySpec, hardStateSpec, metadataSpec, snapshotSpec, type RecordSpec } from "./record.js";
import { SimFs } from "./sim_fs.js";
import { Wal } from "./wal.js";
import { copyFs, ent, ents, hs, META, Model, segmentNames, simWithDir, snapMeta, stateKey } from "./wal.testlib.js";

const DIR = "/data/wal";

async function reopen(fs: SimFs, opts: { segmentBytes?: number } = {}) {
  return await Wal.open(DIR, META, { fs, ...opts });
}

test("create then open: an empty log, and the metadata comes back", async () => {
  const fs = await simWithDir();
  assert.equal(await Wal.exists(DIR, fs), false);
  const w = await Wal.create(DIR, META, { fs });
  assert.equal(w.lastIndex(), 0n);
  await w.close();
  assert.equal(await Wal.exists(DIR, fs), true);
  assert.deepEqual(await fs.readdir("/data"), ["wal"], "the temp directory was renamed away");
  const { wal, meta, state } = await Wal.open(DIR, undefined, { fs });
  assert.deepEqual(meta, META);
  assert.equal(stateKey(state), new Model().key());
  assert.equal(state.repairedTail, undefined);
  await wal.close();
});

test("create refuses an existing WAL; open refuses a missing one and other members' logs", async () => {
  const fs = await simWithDir();
  await (await Wal.create(DIR, META, { fs })).close();
  await assert.rejects(Wal.create(DIR, META, { fs }), WalExistsError);
  await assert.rejects(Wal.create(`${DIR}/`, META, { fs }), WalExistsError);
  await (await Wal.open(`${DIR}//`, META, { fs })).wal.close();
  await assert.rejects(Wal.open("/data/nowal", META, { fs }), WalNotFoundError);
  await assert.rejects(Wal.open(DIR, { memberId: 1n, clusterId: META.clusterId }, { fs }), (e) => {
    assert.ok(e instanceof WalMetadataMismatchError);
    assert.equal(e.found.memberId, META.memberId);
    assert.equal(e.expected.memberId, 1n);
    return true;
  });
  await assert.rejects(Wal.open(DIR, { memberId: META.memberId, clusterId: 7n }, { fs }), WalMetadataMismatchError);
});

test("create survives a crash at any point: afterwards there is no WAL or a complete one", async () => {
  for (let seed = 1; seed <= 40; seed++) {
    const rand = new SeededRand(seed);
    const fs = await simWithDir();
    let crashed: SimFs | undefined;
    const stopAt = rand.intn(5);
    let syncs = 0;
    fs.onSync = async () => {
      if (syncs++ === stopAt && crashed === undefined) crashed = fs.crash(rand);
    };
    let created = false;
    try {
      await (await Wal.create(DIR, META, { fs })).close();
      created = true;
    } catch {
      /* the crash interrupted it */
    }
    const after = crashed ?? fs.crash(rand);
    if (await Wal.exists(DIR, after)) {
      const { wal, state } = await Wal.open(DIR, META, { fs: after });
      assert.equal(stateKey(state), new Model().key(), `seed ${seed}`);
      await wal.close();
    } else {
      assert.equal(created, false, `seed ${seed}: a created WAL vanished`);
      // A retry cleans up whatever the crash left and succeeds.
      await (await Wal.create(DIR, META, { fs: after })).close();
      assert.equal(await Wal.exists(DIR, after), true);
    }
  }
});

test("round trip: entries, hard states and conflicts overwriting a suffix", async () => {
  const fs = await simWithDir();
  const w = await Wal.create(DIR, META, { fs });
  const m = new Model();
  const calls: [ReturnType<typeof hs> | undefined, ReturnType<typeof ents>][] = [
    [hs(1, 1, 0), ents(1, 5, 1)],
    [hs(1, 1, 3), []],
    [undefined, ents(6, 8, 1)],
    [hs(2, 2, 3), ents(5, 7, 2, "x")], // conflict: replaces 5..8 with 5..7 at term 2
    [hs(3, 0, 4), ents(8, 8, 3)],
    [undefined, [{ ...ent(9, 3), type: "confChange" }]],
    [hs(3, 0, 4), []], // an unchanged hard state writes nothing new
  ];
  for (const [h, es] of calls) {
    await w.save(h, es);
    m.save(h, es);
  }
  assert.equal(w.lastIndex(), 9n);
  await w.close();
  const { wal, state } = await reopen(fs);
  assert.equal(stateKey(state), m.key());
  assert.equal(wal.lastIndex(), 9n);
  // The reopened WAL continues the same log.
  await wal.save(hs(4, 1, 9), ents(7, 7, 4, "y"));
  m.save(hs(4, 1, 9), ents(7, 7, 4, "y"));
  await wal.close();
  const again = await reopen(fs);
  assert.equal(stateKey(again.state), m.key());
  await again.wal.close();
});

test("save refuses entries that do not fit the log, and writes nothing for them", async () => {
  const fs = await simWithDir();
  const w = await Wal.create(DIR, META, { fs });
  await w.save(hs(2, 1, 2), ents(1, 3, 2));
  await assert.rejects(w.save(undefined, ents(5, 5, 2)), RangeError, "gap");
  await assert.rejects(w.save(undefined, [ent(4, 2), ent(6, 2)]), RangeError, "not contiguous");
  await assert.rejects(w.save(undefined, ents(4, 4, 1)), RangeError, "term below its predecessor");
  await assert.rejects(w.save(hs(1, 1, 3), []), RangeError, "term goes back");
  await assert.rejects(w.save(hs(2, 1, 1), []), RangeError, "commit goes back");
  await w.saveSnapshot(snapMeta(2, 2));
  await assert.rejects(w.save(undefined, ents(2, 2, 3)), RangeError, "at or below the snapshot");
  await assert.rejects(w.saveSnapshot(snapMeta(1, 2)), RangeError, "older marker");
  assert.equal(w.lastIndex(), 3n);
  await w.close();
  const { state } = await reopen(fs);
  const m = new Model();
  m.save(hs(2, 1, 2), ents(1, 3, 2));
  m.saveSnapshot(snapMeta(2, 2));
  assert.equal(stateKey(state), m.key());
});

test("snapshot markers: compaction keeps the entries after it, a newer snapshot replaces the log", async () => {
  const fs = await simWithDir();
  const w = await Wal.create(DIR, META, { fs });
  const m = new Model();
  const run = async (f: () => Promise<void>, g: () => void) => {
    await f();
    g();
  };
  await run(() => w.save(hs(1, 1, 6), ents(1, 8, 1)), () => m.save(hs(1, 1, 6), ents(1, 8, 1)));
  await run(() => w.saveSnapshot(snapMeta(5, 1)), () => m.saveSnapshot(snapMeta(5, 1)));
  await w.close();
  let r = await reopen(fs);
  assert.equal(stateKey(r.state), m.key());
  assert.deepEqual(r.state.entries.map((e) => e.index), [6n, 7n, 8n]);
  // A snapshot from the leader at index 20 (term 3) replaces the whole log.
  await run(() => r.wal.saveSnapshot(snapMeta(20, 3, [1n, 2n])), () => m.saveSnapshot(snapMeta(20, 3, [1n, 2n])));
  await run(() => r.wal.save(hs(3, 0, 20), ents(21, 22, 3)), () => m.save(hs(3, 0, 20), ents(21, 22, 3)));
  assert.equal(r.wal.lastIndex(), 22n);
  await r.wal.close();
  r = await reopen(fs);
  assert.equal(stateKey(r.state), m.key());
  assert.equal(r.state.snapshot.index, 20n);
  assert.deepEqual(r.state.snapshot.confState.voters, [1n, 2n]);
  await r.wal.close();
});

test("segments roll over at segmentBytes; each header lets the log be replayed; release keeps what replay needs", async () => {
  const fs = await simWithDir();
  const opts = { fs, segmentBytes: 300 };
  const w = await Wal.create(DIR, META, opts);
  const m = new Model();
  for (let i = 1; i <= 40; i++) {
    const h = hs(1 + Math.floor(i / 10), 1, i - 1);
    await w.save(h, [ent(i, h.term)]);
    m.save(h, [ent(i, h.term)]);
  }
  const segs = await segmentNames(fs, DIR);
  assert.ok(segs.length >= 5, `${segs.length} segments`);
  // releaseTo without a covering snapshot marker keeps everything.
  await w.releaseTo(40n);
  assert.deepEqual(await segmentNames(fs, DIR), segs);
  await w.saveSnapshot(snapMeta(25, 3));
  m.saveSnapshot(snapMeta(25, 3));
  // The marker covers 25, but releaseTo(10) limits release to segments with entries <= 10.
  await w.releaseTo(10n);
  const afterTen = await segmentNames(fs, DIR);
  const tails = (names: string[]) => names.map((n) => BigInt("0x" + n.slice(17, 33)));
  assert.ok(afterTen.length < segs.length, "something was released");
  assert.ok(tails(afterTen)[0]! <= 10n && tails(afterTen)[0]! > 0n, `first kept segment starts at ${tails(afterTen)[0]}`);
  await w.releaseTo(25n);
  const after = await segmentNames(fs, DIR);
  assert.ok(after.length < afterTen.length);
  assert.ok(tails(after)[0]! <= 25n, "the kept segments still hold everything after the snapshot");
  for (let i = 41; i <= 45; i++) {
    await w.save(undefined, [ent(i, 5)]);
    m.save(undefined, [ent(i, 5)]);
  }
  await w.close();
  const r = await reopen(fs, { segmentBytes: 300 });
  assert.equal(stateKey(r.state), m.key());
  await r.wal.close();
});

test("a segmentBytes below the header size gives one batch per segment, never an empty segment", async () => {
  const fs = await simWithDir();
  const w = await Wal.create(DIR, META, { fs, segmentBytes: 1 });
  const m = new Model();
  await w.save(hs(1, 1, 0), ents(1, 2, 1));
  m.save(hs(1, 1, 0), ents(1, 2, 1));
  await w.saveSnapshot(snapMeta(1, 1));
  m.saveSnapshot(snapMeta(1, 1));
  for (let i = 3; i <= 6; i++) {
    await w.save(hs(1, 1, i - 1), [ent(i, 1)]);
    m.save(hs(1, 1, i - 1), [ent(i, 1)]);
  }
  await w.close();
  assert.equal((await segmentNames(fs, DIR)).length, 6, "the first segment plus one per later call");
  const r = await reopen(fs, { segmentBytes: 1 });
  assert.equal(stateKey(r.state), m.key());
  await r.wal.close();
});

test("a log starting after released segments that no marker covers is refused", async () => {
  const fs = await simWithDir();
  const w = await Wal.create(DIR, META, { fs, segmentBytes: 200 });
  for (let i = 1; i <= 20; i++) await w.save(undefined, [ent(i, 1)]);
  await w.close();
  const segs = await segmentNames(fs, DIR);
  assert.ok(segs.length >= 3);
  await fs.unlink(posix.join(DIR, segs[0]!));
  await assert.rejects(reopen(fs), (e) => {
    assert.ok(e instanceof WalCorruptError, String(e));
    assert.equal(e.file, posix.join(DIR, segs[1]!));
    assert.match(e.reason, /missing/);
    return true;
  });
});

test("a missing segment in the middle is refused, naming the segment after the gap", async () => {
  const fs = await simWithDir();
  const w = await Wal.create(DIR, META, { fs, segmentBytes: 200 });
  for (let i = 1; i <= 20; i++) await w.save(undefined, [ent(i, 1)]);
  await w.close();
  const segs = await segmentNames(fs, DIR);
  await fs.unlink(posix.join(DIR, segs[1]!));
  await assert.rejects(reopen(fs), (e) => e instanceof WalCorruptError && e.file === posix.join(DIR, segs[2]!) && e.offset === 0);
});

test("group commit: concurrent saves share fsyncs, and all of them are durable when they resolve", async () => {
  const fs = await simWithDir();
  const w = await Wal.create(DIR, META, { fs });
  // Calls made in one tick go into one batch.
  const syncs0 = fs.counts.sync;
  const appends0 = fs.counts.append;
  await Promise.all([1, 2, 3, 4, 5, 6, 7, 8].map((i) => w.save(hs(1, 1, i - 1), [ent(i, 1)])));
  assert.equal(fs.counts.sync - syncs0, 1);
  assert.equal(fs.counts.append - appends0, 1);
  // Calls made while an fsync is in flight queue up and share the next one.
  let release: () => void = () => {};
  let held = 0;
  fs.onSync = () =>
    held++ === 0
      ? new Promise<void>((r) => {
          release = r;
        })
      : Promise.resolve();
  const syncs1 = fs.counts.sync;
  const first = w.save(undefined, [ent(9, 1)]);
  await new Promise((r) => setImmediate(r)); // the first batch is now waiting in fsync
  assert.equal(fs.counts.sync - syncs1, 1);
  const rest: Promise<void>[] = [];
  for (let i = 10; i <= 29; i++) rest.push(w.save(hs(1, 1, i - 1), [ent(i, 1)]));
  let resolved = 0;
  for (const p of rest) void p.then(() => resolved++);
  await new Promise((r) => setImmediate(r));
  assert.equal(resolved, 0, "nothing resolves before its fsync");
  release();
  await first;
  await Promise.all(rest);
  assert.equal(fs.counts.sync - syncs1, 2, "21 saves, 2 fsyncs");
  // Everything resolved is durable: it survives a crash.
  const after = fs.crash(new SeededRand(7));
  const { state } = await Wal.open(DIR, META, { fs: after });
  assert.equal(state.entries.length, 29);
  assert.deepEqual(state.hardState, hs(1, 1, 28));
});

test("must-sync rule: a commit-only hard state costs no write; the next written batch carries it", async () => {
  const fs = await simWithDir();
  const w = await Wal.create(DIR, META, { fs });
  await w.save(hs(2, 1, 0), ents(1, 3, 2));
  const syncs = fs.counts.sync;
  const appends = fs.counts.append;
  await w.save(hs(2, 1, 2), []);
  await w.save(hs(2, 1, 3), []);
  assert.equal(fs.counts.sync - syncs, 0, "no fsync for a commit-only change");
  assert.equal(fs.counts.append - appends, 0, "nor a write");
  // A crash now loses only the commit (volatile in raft): entries and term/vote stay.
  const lost = await Wal.open(DIR, META, { fs: fs.crashImage(new SeededRand(1)) });
  assert.deepEqual(lost.state.hardState, hs(2, 1, 0));
  assert.equal(lost.state.entries.length, 3);
  await lost.wal.close();
  // A term or vote change is synced at once, and so is the newest commit with it.
  await w.save(hs(3, 2, 3), []);
  assert.equal(fs.counts.sync - syncs, 1);
  const voted = await Wal.open(DIR, META, { fs: fs.crashImage(new SeededRand(2)) });
  assert.deepEqual(voted.state.hardState, hs(3, 2, 3));
  await voted.wal.close();
  // Entries without a hard state carry a skipped commit along.
  await w.save(hs(3, 2, 4), []);
  await w.save(undefined, [ent(4, 3)]);
  assert.equal(fs.counts.sync - syncs, 2);
  const carried = await Wal.open(DIR, META, { fs: fs.crashImage(new SeededRand(3)) });
  assert.deepEqual(carried.state.hardState, hs(3, 2, 4));
  assert.equal(carried.state.entries.length, 4);
  await carried.wal.close();
  // While a batch is in flight, a commit-only save waits behind it (call order) and is
  // written only if a later call in its group must be durable.
  let release: () => void = () => {};
  fs.onSync = () => new Promise<void>((r) => (release = r));
  const inFlight = w.save(undefined, [ent(5, 3)]);
  await new Promise((r) => setImmediate(r));
  const lazy = w.save(hs(3, 2, 5), []);
  let lazyDone = false;
  void lazy.then(() => (lazyDone = true));
  await new Promise((r) => setImmediate(r));
  assert.equal(lazyDone, false, "queued behind the batch in flight");
  fs.onSync = undefined;
  release();
  await inFlight;
  await lazy;
  const queued = await Wal.open(DIR, META, { fs: fs.crashImage(new SeededRand(4)) });
  assert.deepEqual(queued.state.hardState, hs(3, 2, 4), "commit 5 was not written");
  assert.equal(queued.state.entries.length, 5);
  await queued.wal.close();
  await w.close();
});

test("an fsync failure fails the WAL for good; a reopen recovers everything that resolved", async () => {
  const fs = await simWithDir();
  const w = await Wal.create(DIR, META, { fs });
  await w.save(hs(1, 1, 0), ents(1, 3, 1));
  fs.failNext("sync");
  await assert.rejects(w.save(undefined, ents(4, 4, 1)), WalFailedError);
  await assert.rejects(w.save(undefined, ents(5, 5, 1)), WalFailedError);
  await assert.rejects(w.saveSnapshot(snapMeta(2, 1)), WalFailedError);
  await assert.rejects(w.releaseTo(2n), WalFailedError);
  await w.close();
  await assert.rejects(w.save(undefined, []), WalClosedError);
  const { wal, state } = await reopen(fs);
  assert.ok(state.entries.length >= 3, "the resolved save survived");
  assert.deepEqual(state.entries.slice(0, 3).map((e) => e.index), [1n, 2n, 3n]);
  await wal.save(undefined, [ent(BigInt(state.entries.length + 1), 1)]);
  await wal.close();
});

test("a write failure fails the WAL, and so does a failure while starting a segment", async () => {
  for (const op of ["append", "rename", "syncDir"] as const) {
    const fs = await simWithDir();
    const w = await Wal.create(DIR, META, { fs, segmentBytes: 100 });
    await w.save(undefined, ents(1, 3, 1)); // over 100 bytes: the next save starts a segment
    fs.failNext(op);
    await assert.rejects(w.save(undefined, ents(4, 4, 1)), WalFailedError, op);
    await assert.rejects(w.save(undefined, []), WalFailedError, op);
    const { state } = await reopen(fs);
    assert.deepEqual(state.entries.slice(0, 3).map((e) => e.index), [1n, 2n, 3n], op);
  }
});

test("damage in the middle of the last segment, followed by valid batches, is refused with file and offset", async () => {
  const fs = await simWithDir();
  const w = await Wal.create(DIR, META, { fs });
  await w.save(hs(1, 1, 0), ents(1, 2, 1));
  const seg = posix.join(DIR, (await segmentNames(fs, DIR))[0]!);
  const badAt = (await fs.readFile(seg)).length; // the next batch starts here
  await w.save(undefined, ents(3, 4, 1));
  await w.save(undefined, ents(5, 6, 1));
  await w.close();
  for (const flip of [0, 5, 20, 40]) {
    const broken = await copyFs(fs, DIR, (_n, d) => {
      const c = d.slice();
      c[badAt + flip] = c[badAt + flip]! ^ 0x10;
      return c;
    });
    await assert.rejects(Wal.open(DIR, META, { fs: broken }), (e) => {
      assert.ok(e instanceof WalCorruptError, `flip ${flip}: ${String(e)}`);
      assert.equal(e.file, seg);
      // Entries 3 and 4 are 40-byte records: the error names the record holding the flipped byte.
      assert.equal(e.offset, badAt + (flip >= 40 ? 40 : 0), `flip ${flip}: ${e.message}`);
      assert.match(e.message, /corrupt log in \/data\/wal\/0000000000000000-0000000000000000\.wal at offset/);
      return true;
    });
  }
});

test("damage in a sealed segment is refused even at its very end", async () => {
  const fs = await simWithDir();
  const w = await Wal.create(DIR, META, { fs, segmentBytes: 200 });
  for (let i = 1; i <= 12; i++) await w.save(undefined, [ent(i, 1)]);
  await w.close();
  const segs = await segmentNames(fs, DIR);
  assert.ok(segs.length >= 2);
  const first = posix.join(DIR, segs[0]!);
  const len = (await fs.readFile(first)).length;
  for (const edit of ["flip-last-byte", "cut-8"] as const) {
    const broken = await copyFs(fs, DIR, (n, d) => {
      if (n !== segs[0]) return d;
      if (edit === "cut-8") return d.slice(0, d.length - 8);
      const c = d.slice();
      c[c.length - 9] = c[c.length - 9]! ^ 1;
      return c;
    });
    await assert.rejects(Wal.open(DIR, META, { fs: broken }), (e) => {
      assert.ok(e instanceof WalCorruptError, `${edit}: ${String(e)}`);
      assert.equal(e.file, first);
      assert.ok(e.offset > 0 && e.offset < len);
      return true;
    });
  }
});

test("a segment header that does not restate the log is refused", async () => {
  const fs = await simWithDir();
  const w = await Wal.create(DIR, META, { fs, segmentBytes: 150 });
  for (let i = 1; i <= 8; i++) await w.save(hs(1, 1, i), [ent(i, 1)]);
  await w.close();
  const segs = await segmentNames(fs, DIR);
  assert.ok(segs.length >= 2);
  // Rename the second segment so its name claims another tail index: the name and header disagree.
  const broken = await copyFs(fs, DIR, (n, d) => (n === segs[1] ? undefined : d));
  const orig = await fs.readFile(posix.join(DIR, segs[1]!));
  broken.setBytes(posix.join(DIR, segs[1]!.slice(0, 17) + "00000000000000ff.wal"), orig);
  await assert.rejects(Wal.open(DIR, META, { fs: broken }), (e) => e instanceof WalCorruptError && /file name says/.test(e.reason));
});

test("close waits for pending saves; calls after close are refused", async () => {
  const fs = await simWithDir();
  const w = await Wal.create(DIR, META, { fs });
  const p = w.save(hs(1, 1, 0), ents(1, 3, 1));
  await w.close();
  await p;
  await assert.rejects(w.save(undefined, []), WalClosedError);
  await assert.rejects(w.saveSnapshot(snapMeta(1, 1)), WalClosedError);
  const { state } = await reopen(fs);
  assert.equal(state.entries.length, 3);
});

test("well-formed records that break the log rules are refused, not cut: a gap, a stale batch number, an old marker", async () => {
  const fs = await simWithDir();
  const w = await Wal.create(DIR, META, { fs });
  await w.save(hs(2, 1, 1), ents(1, 3, 2));
  await w.saveSnapshot(snapMeta(2, 2));
  await w.close();
  const name = (await segmentNames(fs, DIR))[0]!;
  const seg = posix.join(DIR, name);
  const good = await fs.readFile(seg);
  // The file holds batches 0 (header), 1 (entries) and 2 (marker); the next is batch 3.
  const cases: [string, number, RecordSpec[], RegExp][] = [
    ["gap", 3, [entrySpec(ent(5, 2))], /gap/],
    ["batch number", 7, [entrySpec(ent(4, 2))], /batch 7 where batch 3/],
    ["old marker", 3, [snapshotSpec({ snapshot: snapMeta(1, 2), replacesLog: false })], /older/],
    ["term going back", 3, [hardStateSpec(hs(1, 1, 1))], /term 1 is below/],
    ["metadata outside a header", 3, [metadataSpec({ ...META, seq: 0n, tailIndex: 0n, tailTerm: 0n })], /unexpected record/],
  ];
  for (const [what, batch, recs, why] of cases) {
    const extra = encodeBatch(0n, good.length, batch, recs);
    const disk = await copyFs(fs, DIR, () => Buffer.concat([good, extra]));
    await assert.rejects(Wal.open(DIR, META, { fs: disk }), (e) => {
      assert.ok(e instanceof WalCorruptError, `${what}: ${String(e)}`);
      assert.equal(e.file, seg, what);
      assert.equal(e.offset, good.length, what);
      assert.match(e.reason, why, what);
      return true;
    });
  }
});
