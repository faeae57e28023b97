// The whole pipeline (network faults, recorder, checker) must catch a real
// stale read, not only the hand-made ones of kvcheck.test.ts. Serializable
// reads are allowed to be stale (a follower's lag by a few milliseconds; a
// leader cut off from its peers, for as long as the cut lasts, while the
// majority elects a new leader and keeps writing), so when the clients read
// serializably the history is not linearizable and the checks must say so.
// Real etcd serves those stale reads, which makes it the reference here: this
// runs against the etcd targets only (it tests the suite, not the server).

import { test } from "node:test";
import { faultTargets } from "./targets.js";
import { runScenario, type Scenario } from "./scenario.js";

const staleReads: Scenario = {
  name: "self-test: serializable reads from an isolated leader are caught as stale",
  size: 3,
  recorder: { serializableReads: true },
  expectViolation: /^linearizability violated during the faults/,
  async run({ cluster, traffic, leader, note }) {
    await traffic(1500);
    const old = await leader("before the fault");
    cluster.net.isolate(old);
    note(`isolated leader ${cluster.members[old]!.name}`);
    await leader("in the majority", { among: cluster.members.map((m) => m.index).filter((i) => i !== old), notIn: [old] });
    await traffic(3000);
  },
};

for (const status of faultTargets().filter((s) => s.name !== "ours")) {
  test(`${staleReads.name} [${status.name}]`, { timeout: 240_000 }, (t) => runScenario(t, status, staleReads));
}
