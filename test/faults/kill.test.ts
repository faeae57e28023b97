// kill -9 under recorded traffic: the leader, a follower, every member at
// once, and two of five. See scenario.ts for what every run checks.

import { test } from "node:test";
import { scenarioTests, type Scenario } from "./scenario.js";

const others = (size: number, i: number): number[] => Array.from({ length: size }, (_, j) => j).filter((j) => j !== i);

export const killScenarios: Scenario[] = [
  {
    name: "kill -9 the leader, then restart it",
    size: 3,
    async run({ cluster, traffic, leader, note }) {
      await traffic(2500);
      const old = await leader("before the fault");
      await cluster.kill9(old);
      note(`killed leader ${cluster.members[old]!.name}`);
      await leader("after killing the leader", { notIn: [old] });
      await traffic(2500);
      cluster.restart(old);
      await traffic(2500);
    },
  },
  {
    name: "kill -9 a follower, then restart it",
    size: 3,
    async run({ cluster, traffic, leader, note }) {
      await traffic(2500);
      const l = await leader("before the fault");
      const f = others(3, l)[0]!;
      await cluster.kill9(f);
      note(`killed follower ${cluster.members[f]!.name}`);
      await leader("with the follower down", { notIn: [f] });
      await traffic(2500);
      cluster.restart(f);
      await traffic(2500);
    },
  },
  {
    name: "kill -9 every member at once, then restart all",
    size: 3,
    async run({ cluster, traffic, leader, note }) {
      await traffic(2500);
      await Promise.all(cluster.members.map((m) => cluster.kill9(m.index)));
      note("killed every member");
      await traffic(500);
      for (const m of cluster.members) cluster.restart(m.index);
      // Counted from the restart, so it includes process start-up and WAL replay.
      await leader("after restarting every member", { boundElectionTimeouts: 20 });
      await traffic(3000);
    },
  },
  {
    name: "5 members: kill -9 the leader and a follower, then restart them",
    size: 5,
    async run({ cluster, traffic, leader, note }) {
      await traffic(2500);
      const l = await leader("before the fault");
      const f = others(5, l)[0]!;
      await Promise.all([cluster.kill9(l), cluster.kill9(f)]);
      note(`killed leader ${cluster.members[l]!.name} and follower ${cluster.members[f]!.name}`);
      await leader("with two of five down", { notIn: [l, f] });
      await traffic(2500);
      cluster.restart(l);
      cluster.restart(f);
      await traffic(2500);
    },
  },
];

scenarioTests(test, killScenarios);
