// RaftNode on the real WAL (SimFs): crash points inside one Ready's persist.
// Found by the driver simulator (test/sim/driver_sim.ts, seeds 34, 114, 464,
// 489 and 1000125 before the fix).

import assert from "node:assert/strict";
import { test } from "node:test";
import { encodeConfChange, type Entry, type Message, type Rand } from "../raft/index.js";
import { SimFs } from "../wal/sim_fs.js";
import { Wal } from "../wal/wal.js";
import { restoreStorage } from "./raft_log.js";
import { RaftNode, type Ticker } from "./raft_node.js";

const NO_TICKS: Ticker = { every: () => () => {} };
/** A power cut that keeps only what was synced. */
const KEEP_SYNCED_ONLY: Rand = { intn: () => 0 };
const settle = async (): Promise<void> => {
  for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
};
const ids = [1n, 2n, 3n];
const META = { memberId: 2n, clusterId: 7n };

function follower(wal: Wal, st: Awaited<ReturnType<typeof Wal.open>>["state"]): RaftNode {
  const node = new RaftNode({
    id: 2n,
    storage: restoreStorage(st),
    log: wal,
    sink: { send: () => {} },
    sm: { apply: async () => {}, readStates: () => {}, softState: () => {}, restore: async () => {} },
    tickMs: 100,
    electionTick: 10,
    heartbeatTick: 1,
    applied: st.snapshot.index,
    ticker: NO_TICKS,
    seed: 1,
    onFatal: (err) => {
      throw err;
    },
  });
  for (const id of ids) node.rn.raft.applyConfChange({ type: "addNode", nodeId: id });
  return node;
}

test("a crash after a leader snapshot's marker is durable but before the Ready's hard state is: the member restarts", async () => {
  const fs = new SimFs();
  const wal = await Wal.create("/wal", META, { fs });
  const boot: Entry[] = ids.map((id, i) => ({ term: 1n, index: BigInt(i + 1), type: "confChange", data: encodeConfChange({ type: "addNode", nodeId: id }) }));
  await wal.save({ term: 1n, vote: 0n, commit: 3n }, boot);
  const node = follower(wal, { hardState: { term: 1n, vote: 0n, commit: 3n }, snapshot: { index: 0n, term: 0n, confState: { voters: [], learners: [] } }, entries: boot });
  node.start();
  await settle();
  // The leader of term 2 sends a snapshot at 12. The marker's batch syncs; the hard
  // state's batch (commit 12) is held at its fsync, and the power goes.
  let syncs = 0;
  fs.onSync = () => (++syncs >= 2 ? new Promise<void>(() => {}) : Promise.resolve());
  node.step({
    type: "MsgSnap",
    from: 1n,
    to: 2n,
    term: 2n,
    snapshot: { metadata: { index: 12n, term: 2n, confState: { voters: ids, learners: [] } }, data: new Uint8Array(0) },
  } as unknown as Message);
  await settle();
  assert.equal(syncs, 2, "the marker synced, the hard state's fsync is in progress");
  const disk = fs.crash(KEEP_SYNCED_ONLY);
  void node.stop();

  const o = await Wal.open("/wal", META, { fs: disk });
  assert.equal(o.state.snapshot.index, 12n);
  assert.ok(o.state.hardState.commit < 12n, "the WAL holds the marker with the older hard state");
  // Before the fix raft refused this log: "state.commit 3 is out of range [12, 12]".
  const again = follower(o.wal, o.state);
  assert.equal(again.committed, 12n, "the snapshot's entries are committed");
  await again.stop();
  await o.wal.close();
});
