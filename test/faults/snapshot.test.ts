// A member that was down while the leader compacted its log (small
// --snapshot-count) and the key space was compacted must catch up by a
// snapshot from the leader, and then read exactly what the leader reads.

import { test } from "node:test";
import { KV } from "../../node/gen/etcdserverpb/rpc_pb.js";
import { fill } from "./checks.js";
import { scenarioTests, type Scenario } from "./scenario.js";

// etcd keeps this many entries behind its latest snapshot for slow followers
// (SnapshotCatchUpEntries, fixed in 3.4); a follower further behind than that
// needs a snapshot.
const CATCH_UP_ENTRIES = 5000;
const SNAPSHOT_COUNT = 500;

export const snapshotScenarios: Scenario[] = [
  {
    name: "a follower down during log and key-space compaction catches up by snapshot",
    size: 3,
    cluster: { snapshotCount: SNAPSHOT_COUNT },
    async run({ cluster, traffic, leader, note }) {
      await traffic(2000);
      const l = await leader("before the fault");
      const f = cluster.members.map((m) => m.index).find((i) => i !== l)!;
      const before = await cluster.status(l);
      await cluster.kill9(f);
      note(`killed follower ${cluster.members[f]!.name} at leader index ${before?.raftIndex}`);
      const t0 = performance.now();
      const wrote = await fill(cluster, l, CATCH_UP_ENTRIES + 3 * SNAPSHOT_COUNT);
      const after = await cluster.status(l);
      note(`wrote ${wrote} filler entries in ${Math.round(performance.now() - t0)} ms; leader index ${after?.raftIndex}`);
      const rev = (await cluster.members[l]!.admin().unary(KV.method.range, { key: new TextEncoder().encode("/filler/0") })).header?.revision ?? 0n;
      await cluster.members[l]!.admin().unary(KV.method.compact, { revision: rev, physical: true }, { deadlineMs: 10_000 });
      note(`compacted the key space at revision ${rev}`);
      const logBefore = cluster.members[f]!.log().length;
      cluster.restart(f);
      // The checks after heal require the follower to equal the leader; here, that it got there by snapshot.
      const t1 = performance.now();
      let evidence: RegExpExecArray | null = null;
      while (evidence === null && performance.now() - t1 < 60_000) {
        await traffic(250);
        evidence = cluster.target.snapshotEvidence.exec(cluster.members[f]!.log().slice(logBefore));
      }
      await traffic(2000);
      if (evidence === null) throw new Error(`${cluster.members[f]!.name} restarted but its log shows no snapshot from the leader (looked for ${cluster.target.snapshotEvidence})`);
      note(`${cluster.members[f]!.name} log: ${evidence[0]}`);
    },
  },
  {
    name: "a follower cut off during log compaction catches up by snapshot when healed",
    size: 3,
    cluster: { snapshotCount: SNAPSHOT_COUNT },
    async run({ cluster, traffic, leader, note }) {
      await traffic(2000);
      const l = await leader("before the fault");
      const f = cluster.members.map((m) => m.index).find((i) => i !== l)!;
      cluster.net.isolate(f);
      note(`isolated follower ${cluster.members[f]!.name} (it keeps running; its clients keep asking it)`);
      const t0 = performance.now();
      const wrote = await fill(cluster, l, CATCH_UP_ENTRIES + 3 * SNAPSHOT_COUNT);
      note(`wrote ${wrote} filler entries in ${Math.round(performance.now() - t0)} ms; leader index ${(await cluster.status(l))?.raftIndex}`);
      const logBefore = cluster.members[f]!.log().length;
      cluster.net.heal();
      note("healed");
      const t1 = performance.now();
      let evidence: RegExpExecArray | null = null;
      while (evidence === null && performance.now() - t1 < 60_000) {
        await traffic(250);
        evidence = cluster.target.snapshotEvidence.exec(cluster.members[f]!.log().slice(logBefore));
      }
      await traffic(2000);
      if (evidence === null) throw new Error(`${cluster.members[f]!.name} was healed but its log shows no snapshot from the leader (looked for ${cluster.target.snapshotEvidence})`);
      note(`${cluster.members[f]!.name} log: ${evidence[0]}`);
    },
  },
];

scenarioTests(test, snapshotScenarios);
