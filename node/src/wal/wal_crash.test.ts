// The WAL under power cuts (SimFs): torn tails at every byte, and many seeded
// runs of save / crash / reopen (some with a failing write, fsync, rename or
// unlink before the crash) checking the durability invariant:
// every call that resolved survives, and the log is always the result of a prefix
// of the calls made (nothing that was never written appears).
import assert from "node:assert/strict";
import { posix } from "node:path";
import { test } from "node:test";
import { SeededRand } from "../raft/rand.js";
import type { Entry, HardState } from "../raft/types.js";
import { WalFailedError } from "./errors.js";
import { SimFs } from "./sim_fs.js";
import { Wal } from "./wal.js";
import { copyFs, ent, hs, META, Model, segmentNames, simWithDir, snapMeta, stateKey } from "./wal.testlib.js";

const DIR = "/data/wal";

test("a torn last batch is cut at every byte offset: cut short, zero-filled or garbled", async () => {
  const fs = await simWithDir();
  const w = await Wal.create(DIR, META, { fs });
  const before = new Model();
  await w.save(hs(1, 1, 0), [ent(1, 1), ent(2, 1)]);
  before.save(hs(1, 1, 0), [ent(1, 1), ent(2, 1)]);
  await w.save(hs(2, 0, 2), [ent(3, 2, "x".repeat(30))]);
  before.save(hs(2, 0, 2), [ent(3, 2, "x".repeat(30))]);
  const seg = posix.join(DIR, (await segmentNames(fs, DIR))[0]!);
  const p = (await fs.readFile(seg)).length;
  // The last batch: a hard state and three entries (one of them empty).
  const lastCall: [HardState, Entry[]] = [hs(3, 2, 3), [ent(4, 3, "four"), ent(5, 3, ""), ent(6, 3, "y".repeat(50))]];
  await w.save(...lastCall);
  await w.close();
  const after = before.clone();
  after.save(...lastCall);
  const full = await fs.readFile(seg);
  const batchLen = full.length - p;
  const rand = new SeededRand(99);
  let checked = 0;
  for (let c = 0; c <= batchLen; c++) {
    for (const fill of ["none", "zeros", "garbage"] as const) {
      if (c === batchLen && fill !== "none") continue;
      const torn = new Uint8Array(fill === "none" ? p + c : p + batchLen + 64);
      torn.set(full.subarray(0, p + c));
      if (fill === "garbage") for (let i = p + c; i < torn.length; i++) torn[i] = rand.intn(256);
      const disk = await copyFs(fs, DIR, () => torn);
      const { wal, state } = await Wal.open(DIR, META, { fs: disk });
      const what = `cut at ${c}/${batchLen}, ${fill}`;
      // Filling can rebuild the batch by chance (its last bytes may be zeros already).
      const complete = Buffer.from(torn.subarray(p, p + batchLen)).equals(full.subarray(p));
      assert.equal(stateKey(state), (complete ? after : before).key(), what);
      const end = complete ? p + batchLen : p;
      if (torn.length === end) assert.equal(state.repairedTail, undefined, what);
      else assert.deepEqual(state.repairedTail, { file: seg, offset: end, droppedBytes: torn.length - end }, what);
      // The cut is durable and the log continues cleanly after it.
      const next = complete ? 7n : 4n;
      await wal.save(undefined, [ent(next, 4, "next")]);
      await wal.close();
      const again = await Wal.open(DIR, META, { fs: disk.crash(rand) });
      const expect = (complete ? after : before).clone();
      expect.save(undefined, [ent(next, 4, "next")]);
      assert.equal(stateKey(again.state), expect.key(), `${what}, after the next save and a crash`);
      assert.equal(again.state.repairedTail, undefined, what);
      await again.wal.close();
      checked++;
    }
  }
  assert.ok(checked > 3 * 200, `${checked} cases`);
});

/** Generates a call that fits the model (as raft would make it), applies it to the model, and returns it. */
function nextCall(m: Model, rand: SeededRand): (w: Wal) => Promise<void> {
  const last = m.lastIndex;
  const snapIdx = m.snapshot.index;
  let term = m.hardState.term;
  const lt = m.termAt(last);
  if (lt !== undefined && lt > term) term = lt;
  if (term === 0n) term = 1n;
  const data = (i: bigint) => {
    const n = rand.intn(4) === 0 ? rand.intn(200) : rand.intn(12);
    return `${i}:` + "abcdefghijklmnopqrstuvwxyz".repeat(8).slice(0, n);
  };
  const mkHs = (t: bigint, maxCommit: bigint): HardState => {
    let commit = m.hardState.commit;
    if (maxCommit > commit && rand.chance(0.7)) commit += BigInt(rand.intn(Number(maxCommit - commit) + 1));
    return { term: t, vote: BigInt(rand.intn(4)), commit };
  };
  const kind = rand.intn(12);
  if (kind <= 4 || last === snapIdx) {
    const n = rand.range(1, 4);
    const es: Entry[] = [];
    for (let k = 1; k <= n; k++) es.push(ent(last + BigInt(k), term, data(last + BigInt(k))));
    const h = rand.chance(0.6) ? mkHs(term, last + BigInt(n)) : undefined;
    m.save(h, es);
    return (w) => w.save(h, es);
  }
  if (kind === 5 || kind === 6) {
    // A new leader overwrites a suffix.
    const from = snapIdx + 1n + BigInt(rand.intn(Number(last - snapIdx)));
    const t = term + 1n;
    const n = rand.range(1, 3);
    const es: Entry[] = [];
    for (let k = 0; k < n; k++) es.push(ent(from + BigInt(k), t, data(from + BigInt(k))));
    const h = { term: t, vote: BigInt(rand.intn(4)), commit: m.hardState.commit };
    m.save(h, es);
    return (w) => w.save(h, es);
  }
  if (kind === 7) {
    const h = mkHs(term + BigInt(rand.intn(2)), last);
    m.save(h, []);
    return (w) => w.save(h, []);
  }
  if (kind === 8 || kind === 9) {
    // Compaction after the state machine snapshotted at idx.
    const idx = snapIdx + 1n + BigInt(rand.intn(Number(last - snapIdx)));
    const meta = snapMeta(idx, m.termAt(idx)!, rand.chance(0.5) ? [1n, 2n, 3n] : [1n, 2n]);
    m.saveSnapshot(meta);
    return (w) => w.saveSnapshot(meta);
  }
  if (kind === 10) {
    // A snapshot from the leader, past the end of the log: it replaces the log.
    const meta = snapMeta(last + BigInt(rand.range(1, 6)), term, [1n, 2n, 3n]);
    m.saveSnapshot(meta);
    return (w) => w.saveSnapshot(meta);
  }
  return (w) => w.save(undefined, []);
}

const ticks = async (n: number) => {
  for (let i = 0; i < n; i++) await new Promise((r) => setImmediate(r));
};

async function runSeed(seed: number): Promise<{ rounds: number; maxSegments: number; repaired: number }> {
  const rand = new SeededRand(seed);
  const segmentBytes = rand.pick([200, 600, 4096, 1 << 20]);
  let fs: SimFs = await simWithDir();
  let wal = await Wal.create(DIR, META, { fs, segmentBytes });
  let model = new Model();
  let maxSegments = 0;
  let repaired = 0;
  const rounds = rand.range(3, 7);
  for (let round = 0; round < rounds; round++) {
    const states = [model.key()];
    let resolved = 0;
    let crashed: SimFs | undefined;
    const live = fs;
    const crashNow = () => {
      crashed ??= live.crash(rand);
    };
    const pCrashAtSync = rand.pick([0, 0.05, 0.2]);
    live.onSync = async () => {
      if (rand.chance(pCrashAtSync)) crashNow();
    };
    if (rand.chance(0.15)) live.failNext(rand.pick(["append", "sync", "syncDir", "rename", "unlink", "create"] as const), rand.intn(4));
    const pending: Promise<unknown>[] = [];
    const misuse: string[] = [];
    const bursts = rand.range(1, 6);
    for (let b = 0; b < bursts && crashed === undefined; b++) {
      const n = rand.range(1, 6);
      for (let k = 0; k < n; k++) {
        const call = nextCall(model, rand);
        const idx = states.length; // the state after this call is states[idx]
        states.push(model.key());
        pending.push(
          call(wal).then(
            () => {
              if (crashed === undefined) resolved = Math.max(resolved, idx);
            },
            (e: unknown) => {
              // Only I/O failures (the crash) are expected; a refused call means the generator is wrong.
              if (!(e instanceof WalFailedError)) misuse.push(`seed ${seed}: ${String(e)}`);
            },
          ),
        );
      }
      if (rand.chance(0.5)) await Promise.all(pending);
      else await ticks(rand.intn(4));
      if (rand.chance(0.3) && crashed === undefined) {
        const upTo = model.snapshot.index + BigInt(rand.intn(3));
        pending.push(wal.releaseTo(upTo).catch(() => undefined));
      }
    }
    maxSegments = Math.max(maxSegments, (await segmentNames(live, DIR).catch(() => [])).length);
    if (crashed === undefined) await ticks(rand.intn(3));
    crashNow();
    await Promise.allSettled(pending);
    assert.deepEqual(misuse, []);
    fs = crashed!;
    const r = await Wal.open(DIR, META, { fs, segmentBytes }).catch((e: unknown) => {
      throw new Error(`seed ${seed} round ${round}: reopen failed: ${String(e)}`, { cause: e });
    });
    const got = stateKey(r.state);
    const j = states.indexOf(got, resolved);
    assert.ok(
      j >= 0,
      `seed ${seed} round ${round}: the replayed log is not the result of a prefix of at least ${resolved} of the ${states.length - 1} calls\n` +
        `got      ${got}\nexpected ${states[resolved]}\n      .. ${states[states.length - 1]}`,
    );
    if (r.state.repairedTail !== undefined) repaired++;
    model = Model.from(r.state);
    wal = r.wal;
  }
  await wal.close();
  return { rounds, maxSegments, repaired };
}

test("random save / crash / reopen, with injected I/O failures: every resolved call survives, nothing unwritten appears", async () => {
  let multiSegment = 0;
  let repaired = 0;
  let rounds = 0;
  for (let seed = 1; seed <= 300; seed++) {
    const r = await runSeed(seed);
    rounds += r.rounds;
    repaired += r.repaired;
    if (r.maxSegments > 2) multiSegment++;
  }
  // The runs must actually exercise what they claim to.
  assert.ok(multiSegment > 50, `${multiSegment} runs used several segments`);
  assert.ok(repaired > 50, `${repaired} of ${rounds} reopens repaired a torn tail`);
  console.log(`# ${rounds} crash rounds, ${repaired} torn tails repaired, ${multiSegment} runs with more than two segments`);
});
