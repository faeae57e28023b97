// Unit tests of the building blocks: storage, the unstable log, the raft log,
// inflights, progress, quorum, the PRNG.
import assert from "node:assert/strict";
import { test } from "node:test";
import { isRaftError } from "./errors.js";
import { RaftLog } from "./log.js";
import { Unstable } from "./log_unstable.js";
import { majorityCommitted, majorityVoteResult } from "./quorum.js";
import { SeededRand } from "./rand.js";
import { MemoryStorage } from "./storage.js";
import { Inflights } from "./tracker/inflights.js";
import { Progress } from "./tracker/progress.js";
import { sortIds } from "./tracker/tracker.js";
import { type Entry, decodeConfChange, encodeConfChange, limitSize } from "./types.js";

function ent(index: bigint, term: bigint, data = ""): Entry {
  return { index, term, type: "normal", data: new TextEncoder().encode(data) };
}
function ents(...pairs: [number, number][]): Entry[] {
  return pairs.map(([i, t]) => ent(BigInt(i), BigInt(t)));
}
function ids(es: readonly Entry[]): string[] {
  return es.map((e) => `${e.term}/${e.index}`);
}

test("MemoryStorage: bounds, compaction and append replacing a suffix", () => {
  const s = new MemoryStorage({
    metadata: { index: 3n, term: 3n, confState: { voters: [1n], learners: [] } },
    data: new Uint8Array(0),
  });
  s.append(ents([4, 4], [5, 5], [6, 6]));
  assert.equal(s.firstIndex(), 4n);
  assert.equal(s.lastIndex(), 6n);
  assert.equal(s.term(3n), 3n, "the snapshot's term answers for firstIndex-1");
  assert.throws(() => s.term(2n), (e) => isRaftError(e, "ErrCompacted"));
  assert.throws(() => s.term(7n), (e) => isRaftError(e, "ErrUnavailable"));
  assert.throws(() => s.entries(3n, 5n, Infinity), (e) => isRaftError(e, "ErrCompacted"));
  assert.throws(() => s.entries(4n, 8n, Infinity), (e) => isRaftError(e, "ErrUnavailable"));
  assert.deepEqual(ids(s.entries(4n, 7n, Infinity)), ["4/4", "5/5", "6/6"]);
  // maxSize: always at least one entry.
  assert.deepEqual(ids(s.entries(4n, 7n, 0)), ["4/4"]);
  // Append replaces the conflicting suffix.
  s.append(ents([5, 7], [6, 7], [7, 7]));
  assert.deepEqual(ids(s.entries(4n, 8n, Infinity)), ["4/4", "7/5", "7/6", "7/7"]);
  // A gap is a caller bug.
  assert.throws(() => s.append(ents([9, 7])), (e) => isRaftError(e, "ErrInvalid"));
  // Compact keeps term(first-1) answering.
  s.createSnapshot(5n, { voters: [1n], learners: [] }, new Uint8Array([1]));
  s.compact(5n);
  assert.equal(s.firstIndex(), 6n);
  assert.equal(s.term(5n), 7n);
  assert.throws(() => s.compact(4n), (e) => isRaftError(e, "ErrCompacted"));
  assert.equal(s.snapshot().metadata.index, 5n);
  // An older snapshot is refused.
  assert.throws(
    () => s.applySnapshot({ metadata: { index: 4n, term: 4n, confState: { voters: [1n], learners: [] } }, data: new Uint8Array(0) }),
    (e) => isRaftError(e, "ErrSnapOutOfDate"),
  );
});

test("Unstable: truncateAndAppend in all three positions, stableTo respects terms", () => {
  const u = new Unstable(5n);
  u.truncateAndAppend(ents([5, 1], [6, 1], [7, 1]));
  assert.equal(u.maybeLastIndex(), 7n);
  u.truncateAndAppend(ents([8, 1])); // directly after
  assert.deepEqual(ids(u.entries), ["1/5", "1/6", "1/7", "1/8"]);
  u.truncateAndAppend(ents([7, 2])); // inside: keep the prefix
  assert.deepEqual(ids(u.entries), ["1/5", "1/6", "2/7"]);
  u.truncateAndAppend(ents([4, 3])); // before offset: replace all
  assert.equal(u.offset, 4n);
  assert.deepEqual(ids(u.entries), ["3/4"]);
  u.stableTo(4n, 2n); // wrong term: the entry was replaced meanwhile
  assert.equal(u.entries.length, 1);
  u.stableTo(4n, 3n);
  assert.equal(u.entries.length, 0);
  assert.equal(u.offset, 5n);
});

test("RaftLog: maybeAppend, findConflict, commit rules", () => {
  const s = new MemoryStorage();
  s.append(ents([1, 1], [2, 2], [3, 3]));
  const log = new RaftLog(s);
  assert.equal(log.lastIndex(), 3n);
  // Mismatched prev term: refused.
  assert.equal(log.maybeAppend(3n, 2n, 3n, ents([4, 4])), undefined);
  // Matching prev: appended, commit capped at the last new entry.
  assert.equal(log.maybeAppend(3n, 3n, 10n, ents([4, 4])), 4n);
  assert.equal(log.committed, 4n);
  // Already present entries are not a conflict.
  assert.equal(log.findConflict(ents([2, 2], [3, 3])), 0n);
  assert.equal(log.findConflict(ents([3, 3], [4, 4], [5, 4])), 5n);
  assert.equal(log.findConflict(ents([2, 2], [3, 9])), 3n);
  // Replacing a committed entry is a safety violation.
  assert.throws(() => log.maybeAppend(2n, 2n, 4n, ents([3, 9])));
  // The leader commit rule only counts entries of the given term.
  const s2 = new MemoryStorage();
  s2.append(ents([1, 1], [2, 2], [3, 3]));
  const l2 = new RaftLog(s2);
  assert.equal(l2.maybeCommit(2n, 3n), false, "entry 2 is from term 2");
  assert.equal(l2.maybeCommit(3n, 3n), true);
  assert.equal(l2.committed, 3n);
  // isUpToDate: later last term wins, then length.
  assert.equal(l2.isUpToDate(1n, 4n), true);
  assert.equal(l2.isUpToDate(2n, 3n), false);
  assert.equal(l2.isUpToDate(3n, 3n), true);
  assert.equal(l2.isUpToDate(9n, 2n), false);
});

test("RaftLog.findConflictByTerm skips whole terms", () => {
  const s = new MemoryStorage();
  // idx 1 2 3 4 5 6 7 8 9 / term 1 3 3 3 5 5 5 5 5 (the example in etcd's raft.go)
  s.append(ents([1, 1], [2, 3], [3, 3], [4, 3], [5, 5], [6, 5], [7, 5], [8, 5], [9, 5]));
  const log = new RaftLog(s);
  assert.deepEqual(log.findConflictByTerm(6n, 2n), { index: 1n, term: 1n });
  assert.deepEqual(log.findConflictByTerm(9n, 4n), { index: 4n, term: 3n });
  assert.deepEqual(log.findConflictByTerm(9n, 5n), { index: 9n, term: 5n });
  assert.deepEqual(log.findConflictByTerm(9n, 0n), { index: 0n, term: 0n });
});

test("RaftLog.slice spans storage and unstable, honouring maxSize", () => {
  const s = new MemoryStorage();
  s.append([ent(1n, 1n, "aaaa"), ent(2n, 1n, "bbbb")]);
  const log = new RaftLog(s);
  log.append([ent(3n, 1n, "cccc"), ent(4n, 1n, "dddd")]);
  assert.deepEqual(ids(log.slice(1n, 5n, Infinity)), ["1/1", "1/2", "1/3", "1/4"]);
  assert.deepEqual(ids(log.slice(2n, 4n, Infinity)), ["1/2", "1/3"]);
  assert.deepEqual(ids(log.slice(1n, 5n, 40)), ["1/1", "1/2"], "20 bytes each");
  assert.deepEqual(ids(log.slice(1n, 5n, 1)), ["1/1"], "at least one");
  assert.deepEqual(ids(log.slice(1n, 5n, 60)), ["1/1", "1/2", "1/3"]);
});

test("Inflights: count and byte limits, freeLE across the ring", () => {
  const inf = new Inflights(3, 100);
  inf.add(1n, 10);
  inf.add(2n, 10);
  inf.add(3n, 10);
  assert.equal(inf.full(), true, "count limit");
  inf.freeLE(1n);
  assert.equal(inf.count(), 2);
  inf.add(4n, 10); // wraps around
  inf.freeLE(3n);
  assert.equal(inf.count(), 1);
  assert.equal(inf.inflightBytes(), 10);
  inf.freeLE(0n); // stale ack: nothing
  assert.equal(inf.count(), 1);
  inf.add(5n, 95);
  assert.equal(inf.full(), true, "byte limit reached with room in count");
  inf.freeLE(10n);
  assert.equal(inf.count(), 0);
  assert.equal(inf.inflightBytes(), 0);
  assert.throws(() => {
    const f = new Inflights(1, 0);
    f.add(1n, 0);
    f.add(2n, 0);
  });
});

test("Progress: probe pauses after one message; replicate streams; stale rejections ignored", () => {
  const pr = new Progress(5n, new Inflights(2, 0), false);
  assert.equal(pr.isPaused(), false);
  pr.sentEntries(3, 30);
  assert.equal(pr.next, 5n, "probe does not advance next optimistically");
  assert.equal(pr.isPaused(), true);
  assert.equal(pr.maybeDecrTo(3n, 2n), false, "only a rejection of next-1 counts in probe");
  assert.equal(pr.maybeDecrTo(4n, 2n), true);
  assert.equal(pr.next, 3n);
  assert.equal(pr.isPaused(), false);
  assert.equal(pr.maybeUpdate(4n), true);
  pr.becomeReplicate();
  assert.equal(pr.next, 5n);
  pr.sentEntries(2, 0);
  pr.sentEntries(2, 0);
  assert.equal(pr.next, 9n);
  assert.equal(pr.inflights.full(), true);
  assert.equal(pr.isPaused(), true);
  assert.equal(pr.maybeDecrTo(4n, 0n), false, "rejection at or below match is stale");
  assert.equal(pr.maybeDecrTo(7n, 0n), true);
  assert.equal(pr.next, 5n, "back to match+1");
  pr.becomeSnapshot(20n);
  assert.equal(pr.isPaused(), true);
  pr.becomeProbe();
  assert.equal(pr.next, 21n, "after a snapshot, probe from after it");
});

test("quorum: commit index and vote results", () => {
  const acked = new Map<bigint, bigint>([
    [1n, 5n],
    [2n, 3n],
    [3n, 9n],
  ]);
  assert.equal(majorityCommitted([1n, 2n, 3n], (id) => acked.get(id)), 5n);
  assert.equal(majorityCommitted([1n, 2n, 3n, 4n], (id) => acked.get(id)), 3n, "4 voters need 3 acks");
  assert.equal(majorityCommitted([1n], (id) => acked.get(id)), 5n);
  assert.equal(majorityCommitted([], () => 0n), 0n);
  const votes = new Map<bigint, boolean>([
    [1n, true],
    [2n, false],
  ]);
  assert.equal(majorityVoteResult([1n, 2n, 3n], votes), "pending");
  votes.set(3n, true);
  assert.equal(majorityVoteResult([1n, 2n, 3n], votes), "won");
  votes.set(3n, false);
  assert.equal(majorityVoteResult([1n, 2n, 3n], votes), "lost");
  assert.equal(majorityVoteResult([1n, 2n, 3n, 4n], new Map([[1n, true], [2n, true]])), "pending", "2 of 4 is not a majority");
});

test("sortIds and majorityCommitted agree with Array.prototype.sort on random inputs, duplicates and 2^64-1 included", () => {
  const rand = new SeededRand(11n);
  const pool = [0n, 1n, 2n, 7n, 0xffff_ffff_ffff_ffffn, 0x8211f1d0f64f3269n, 0x91bc3c398fb3c146n];
  const cmp = (a: bigint, b: bigint) => (a < b ? -1 : a > b ? 1 : 0);
  for (let round = 0; round < 2000; round++) {
    const n = rand.intn(8);
    const xs = Array.from({ length: n }, () => (rand.intn(2) === 0 ? pool[rand.intn(pool.length)]! : BigInt(rand.intn(50))));
    assert.deepStrictEqual(sortIds(new Set(xs)), [...new Set(xs)].sort(cmp));
    assert.deepStrictEqual(sortIds(xs), [...xs].sort(cmp));
    const voters = xs.map((_, i) => BigInt(i + 1));
    const want = n === 0 ? 0n : [...xs].sort(cmp).reverse()[Math.floor(n / 2)]!;
    assert.equal(majorityCommitted(voters, (id) => xs[Number(id) - 1]), want, `acks ${xs.join(",")}`);
  }
});

test("SeededRand is deterministic and in range", () => {
  const a = new SeededRand(42);
  const b = new SeededRand(42);
  const xs = Array.from({ length: 1000 }, () => a.intn(7));
  const ys = Array.from({ length: 1000 }, () => b.intn(7));
  assert.deepEqual(xs, ys);
  assert.ok(xs.every((x) => x >= 0 && x < 7));
  const counts = new Array<number>(7).fill(0);
  for (const x of xs) counts[x]!++;
  assert.ok(counts.every((c) => c > 100), `roughly uniform: ${counts.join(",")}`);
  assert.notDeepEqual(Array.from({ length: 10 }, () => new SeededRand(1).next()), Array.from({ length: 10 }, () => new SeededRand(2).next()));
});

test("conf change encoding round-trips; limitSize keeps at least one entry", () => {
  const cc = { type: "addLearnerNode" as const, nodeId: 0xfedcba9876543210n, context: new Uint8Array([1, 2]) };
  assert.deepEqual(decodeConfChange(encodeConfChange(cc)), cc);
  assert.deepEqual(decodeConfChange(encodeConfChange({ type: "removeNode", nodeId: 3n })), { type: "removeNode", nodeId: 3n });
  assert.equal(limitSize([ent(1n, 1n, "x".repeat(100))], 10).length, 1);
  assert.equal(limitSize([], 10).length, 0);
});
