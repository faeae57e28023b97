// Network partitions between members (nftables DROP inside their namespaces)
// under recorded traffic; clients keep reaching every member, so clients of
// a cut-off leader are where a stale read would show. See scenario.ts for
// what every run checks.

import { test } from "node:test";
import { scenarioTests, type Scenario } from "./scenario.js";

export const partitionScenarios: Scenario[] = [
  {
    name: "isolate the leader from its peers, then heal",
    size: 3,
    async run({ cluster, traffic, leader, note }) {
      await traffic(2500);
      const old = await leader("before the fault");
      cluster.net.isolate(old);
      note(`isolated leader ${cluster.members[old]!.name}; cuts: ${cluster.net.describeCuts()}`);
      const rest = cluster.members.map((m) => m.index).filter((i) => i !== old);
      await leader("in the majority after isolating the leader", { among: rest, notIn: [old] });
      await traffic(3000);
      cluster.net.heal();
      note("healed");
      await traffic(2500);
    },
  },
  {
    name: "5 members: the leader and one follower split from the other three, then heal",
    size: 5,
    async run({ cluster, traffic, leader, note }) {
      await traffic(2500);
      const l = await leader("before the fault");
      const all = cluster.members.map((m) => m.index);
      const minority = [l, all.find((i) => i !== l)!];
      const majority = all.filter((i) => !minority.includes(i));
      cluster.net.partition(minority, majority);
      note(`split ${minority.map((i) => cluster.members[i]!.name).join(",")} | ${majority.map((i) => cluster.members[i]!.name).join(",")}`);
      await leader("in the majority", { among: majority });
      await traffic(3000);
      cluster.net.heal();
      note("healed");
      await traffic(2500);
    },
  },
  {
    name: "5 members: a follower flaps between cut off and healed",
    size: 5,
    async run({ cluster, traffic, leader, note }) {
      await traffic(2000);
      for (let round = 0; round < 3; round++) {
        const l = await leader(`round ${round + 1}`);
        const f = cluster.members.map((m) => m.index).find((i) => i !== l && (i + round) % 2 === 0) ?? (l + 1) % 5;
        cluster.net.isolate(f);
        note(`round ${round + 1}: isolated ${cluster.members[f]!.name}`);
        await traffic(1500);
        cluster.net.heal();
        await traffic(1000);
      }
    },
  },
];

scenarioTests(test, partitionScenarios);
