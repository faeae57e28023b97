// Raft's configuration after a restart (or a restore) is the membership the
// backend holds. Found by the driver simulator (test/sim/driver_sim.ts, seeds
// 1000009, 1000017, 1000051 and 1000082 with membership proposals through lagging
// members): a conf change the state machine refused when it first applied it was
// applied by raft when the entry was delivered again, so raft's configuration
// grew a member the membership does not have, on that member only.

import assert from "node:assert/strict";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { test } from "node:test";
import { encodeCcContext } from "./membership.js";
import { testServerOptions } from "./options.testlib.js";
import { EtcdServer } from "./server.js";

async function until(what: string, cond: () => boolean): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (cond()) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  assert.fail(`not reached: ${what}`);
}

test("a membership change refused when applied stays out of raft's configuration after a restart", async () => {
  const dir = await mkdtemp(join(tmpdir(), "etcdts-confreplay-"));
  let s = await EtcdServer.start(testServerOptions(dir));
  try {
    await until("leader", () => s.raft.isLeader);
    const learner = await s.addMember(["http://127.0.0.1:40001"], true);
    // A second learner over --max-learners (1), as a proposal checked on a lagging
    // member would commit it: the state machine refuses it when it applies it.
    const extra = { id: 0x1234n, name: "", peerURLs: ["http://127.0.0.1:40002"], clientURLs: [], isLearner: true };
    // (Raft takes one conf change at a time: wait until it has applied the first.)
    await until("raft applied the first change", () => s.raft.rn.raft.raftLog.applied >= s.raft.lastIndex);
    s.raft.proposeConfChange({ type: "addLearnerNode", nodeId: extra.id, context: encodeCcContext(extra, 0n) });
    const target = s.raft.lastIndex;
    await until("applied", () => s.appliedIndex >= target && s.raft.rn.raft.raftLog.applied >= target);
    const [e] = s.raft.rn.raft.raftLog.slice(target, target + 1n, Number.MAX_SAFE_INTEGER);
    assert.equal(e?.type, "confChange", "the change was committed as a conf change");
    assert.deepEqual(s.raft.rn.raft.trk.confState().learners, [learner.id], "refused: raft applied it as a no-op");
    await s.stop();

    s = await EtcdServer.start(testServerOptions(dir));
    await until("replayed", () => s.raft.rn.raft.raftLog.applied >= target);
    assert.deepEqual(s.membership.list().filter((m) => m.isLearner).map((m) => m.id), [learner.id]);
    assert.deepEqual(s.raft.rn.raft.trk.confState().learners, [learner.id], "the replayed entry is a no-op for raft too");
  } finally {
    await s.stop();
    await rm(dir, { recursive: true, force: true });
  }
});
