// The whole pipeline (network faults, recorder, checker) must catch a real
// stale read, not only the hand-made ones of kvcheck.test.ts. Serializable
// reads are allowed to be stale (a follower's lag by a few milliseconds; a
// leader cut off from its peers, for as long as the cut lasts, while the
// majority elects a new leader and keeps writing), so when the clients read
// serializably the history is not linearizable and the checks must say so.
// Real etcd serves those stale reads, which makes it the reference here: this
// runs against the etcd targets only (it tests the suite, not the server).

import { test } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { faultTargets } from "./targets.js";
import { runScenario, type Scenario } from "./scenario.js";
import type { Recorder } from "./recorder.js";

/**
 * Whether the history already holds a read that must be refused: an ok read by
 * a client bound to member `isolated`, invoked after a write by a client of
 * another member had returned ok on the same key with another value, where the
 * value read can only be older than that write. It must have exactly one
 * writer, which returned ok before the newer write began: a value that a write
 * of unknown outcome also carried (or an absent key, which a delete of unknown
 * outcome could explain) may legally be read later, and the checker rightly
 * accepts such a history (CI15 once waited for a read the checker could
 * explain). Clients of the cut-off member spend most of their time in writes
 * that time out, so how soon such a read happens varies from run to run; the
 * test waits for one (bounded) instead of hoping a fixed stretch of traffic
 * holds it.
 */
function staleReadRecorded(rec: Recorder, isolated: number, size: number, after: number): boolean {
  const carried = (e: Recorder["history"][number]): string | undefined => (e.op.kind === "put" || e.op.kind === "cas" ? e.op.value : undefined);
  const writes = rec.history.filter(
    (e) => e.outcome === "ok" && e.client % size !== isolated && e.ret > after && (e.op.kind === "put" || (e.op.kind === "cas" && e.op.succeeded === true)),
  );
  return rec.history.some((r) => {
    if (r.outcome !== "ok" || r.op.kind !== "get" || r.client % size !== isolated) return false;
    const observed = r.op.observed;
    if (observed === null) return false;
    const writers = rec.history.filter((e) => e.key === r.key && carried(e) === observed);
    const src = writers[0];
    if (writers.length !== 1 || src === undefined || src.outcome !== "ok") return false;
    return writes.some((w) => w.key === r.key && w.ret < r.invoke && src.ret < w.invoke && carried(w) !== observed);
  });
}

const staleReads: Scenario = {
  name: "self-test: serializable reads from an isolated leader are caught as stale",
  size: 3,
  recorder: { serializableReads: true },
  expectViolation: /^linearizability violated during the faults/,
  async run({ cluster, recorder, traffic, leader, note }) {
    await traffic(1500);
    const old = await leader("before the fault");
    cluster.net.isolate(old);
    note(`isolated leader ${cluster.members[old]!.name}`);
    await leader("in the majority", { among: cluster.members.map((m) => m.index).filter((i) => i !== old), notIn: [old] });
    const since = recorder.now();
    await traffic(1000);
    const deadline = performance.now() + 60_000;
    while (!staleReadRecorded(recorder, old, cluster.size, since)) {
      if (performance.now() > deadline) throw new Error("no read on the isolated member came after a majority write in 60 s of traffic (the self-test had nothing to catch)");
      await sleep(250);
    }
    note("a read on the isolated member followed a majority write to its key");
  },
};

for (const status of faultTargets().filter((s) => s.name !== "ours")) {
  test(`${staleReads.name} [${status.name}]`, { timeout: 240_000 }, (t) => runScenario(t, status, staleReads));
}
