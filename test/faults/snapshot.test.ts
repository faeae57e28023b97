// A member that was down while the leader compacted its log (small
// --snapshot-count) and the key space was compacted must catch up by a
// snapshot from the leader, and then read exactly what the leader reads.
// A member cut off (alive) that catches up by snapshot keeps its watches:
// they resume from the restored state without a gap, a duplicate or a step
// back in time (etcd's #15271 was a watch "traveling back in time" here).

import { test } from "node:test";
import { create } from "@bufbuild/protobuf";
import { KV, Watch, WatchRequestSchema, type WatchResponse } from "../../node/gen/etcdserverpb/rpc_pb.js";
import { GrpcConn } from "../harness/grpc.js";
import { fill } from "./checks.js";
import { scenarioTests, type Scenario } from "./scenario.js";

/** A watch on the whole key space from `start`, recording every event as "rev/type/key=value". */
function watchAll(target: string, start: bigint) {
  const conn = new GrpcConn(target);
  const s = conn.bidi(Watch.method.watch);
  const w = {
    events: [] as { rev: bigint; text: string }[],
    created: false,
    problem: undefined as string | undefined,
    close: () => {
      s.cancel();
      conn.close();
    },
  };
  s.on("data", (r: WatchResponse) => {
    if (r.created) w.created = true;
    if (r.canceled) w.problem = `canceled (compact_revision ${r.compactRevision}): ${r.cancelReason}`;
    for (const e of r.events) {
      const kv = e.kv!;
      w.events.push({ rev: kv.modRevision, text: `${kv.modRevision}/${e.type}/${Buffer.from(kv.key).toString("hex")}=${Buffer.from(kv.value).toString("hex")}` });
    }
  });
  s.on("error", (e: { code?: number; details?: string }) => {
    if (e.code !== 1) w.problem ??= `stream error ${e.code}: ${e.details}`;
  });
  s.write(create(WatchRequestSchema, { requestUnion: { case: "createRequest", value: { key: new Uint8Array([0]), rangeEnd: new Uint8Array([0]), startRevision: start } } }));
  return w;
}

async function until(what: string, f: () => boolean, capMs = 60_000): Promise<void> {
  const t0 = performance.now();
  while (!f()) {
    if (performance.now() - t0 > capMs) throw new Error(`timed out after ${capMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

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
      const revNow = async () => (await cluster.members[l]!.admin().unary(KV.method.range, { key: new Uint8Array([0]), limit: 1n }, { deadlineMs: 10_000 })).header!.revision;
      const start = (await revNow()) + 1n;
      const watch = watchAll(cluster.members[f]!.grpcTarget, start);
      await until("the watch on the follower to be created", () => watch.created || watch.problem !== undefined);
      const fid = (await cluster.status(f))?.id;
      if (fid === undefined || fid === 0n) throw new Error(`no status (member ID) from ${cluster.members[f]!.name}`);
      const leaderLogAt = cluster.members[l]!.log().length;
      cluster.net.isolate(f);
      note(`isolated follower ${cluster.members[f]!.name} (it keeps running; its clients keep asking it)`);
      // Until the leader finds the link down, it keeps pipelining appends to the
      // follower, and those already on their way (in its send queue, in the
      // socket) arrive after the heal: if they reach past the entries the leader
      // compacts, the follower rightly catches up from the log, not a snapshot.
      // The filler goes in after the leader has given up on the link, so what is
      // still on its way ends before the compacted entries.
      const linkLost = cluster.target.linkLostEvidence(fid.toString(16));
      const tCut = performance.now();
      await until(`the leader ${cluster.members[l]!.name} to log ${linkLost} (its link to the follower down)`, () =>
        linkLost.test(cluster.members[l]!.log().slice(leaderLogAt)),
      );
      note(`the leader ${cluster.members[l]!.name} logged ${linkLost} ${Math.round(performance.now() - tCut)} ms after the cut`);
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
      // The watch opened on the follower before the cut: the same events, in the same
      // order, as the history replayed afterwards from the leader, up to a revision both reached.
      const end = await revNow();
      const replay = watchAll(cluster.members[l]!.grpcTarget, start);
      try {
        for (const [who, w] of [["the follower's watch", watch], ["the replay", replay]] as const) {
          await until(`${who} to reach revision ${end}`, () => w.problem !== undefined || (w.events.at(-1)?.rev ?? 0n) >= end);
          if (w.problem !== undefined) throw new Error(`${who}: ${w.problem}`);
        }
        const upTo = (w: typeof watch) => w.events.filter((e) => e.rev <= end).map((e) => e.text);
        const got = upTo(watch);
        const want = upTo(replay);
        const at = got.findIndex((e, i) => e !== want[i]);
        if (at !== -1 || got.length !== want.length) {
          throw new Error(
            `the follower's watch differs from the history at event ${at === -1 ? Math.min(got.length, want.length) : at} of ${want.length}: ` +
              `got ${got[at === -1 ? got.length - 1 : at] ?? "(nothing)"}, want ${want[at === -1 ? got.length - 1 : at] ?? "(nothing)"}`,
          );
        }
        note(`the follower's watch saw all ${got.length} events of revisions ${start}..${end}, in order, as the history has them`);
      } finally {
        watch.close();
        replay.close();
      }
    },
  },
];

scenarioTests(test, snapshotScenarios);
