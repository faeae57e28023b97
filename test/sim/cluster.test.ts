// Deterministic cluster simulation: many seeds, each a different random fault
// schedule, each checked for safety (invariants, linearizability) and liveness.
//
//   SIM_SEEDS=N   run N seeds per cluster size instead of the default
//   SIM_SEED=S    run only seed S (the failure message prints it)
//   SIM_TRACE=1   with SIM_SEED, print the last events on failure
import assert from "node:assert/strict";
import { test } from "node:test";
import { ClusterSim, type SimResult } from "./cluster_sim.js";

const FIVE_NODE_BASE = 1_000_000;
const only = process.env["SIM_SEED"];
const count = Number(process.env["SIM_SEEDS"] ?? "0");

function runSeed(seed: number): SimResult {
  const sim = new ClusterSim({
    seed,
    nodes: seed >= FIVE_NODE_BASE ? 5 : 3,
    faultMs: 4000,
    livenessTicks: 300,
    clients: 4,
    trace: process.env["SIM_TRACE"] === "1",
  });
  return sim.run();
}

function runSeeds(label: string, seeds: number[]): void {
  let ops = 0;
  let ok = 0;
  let unknown = 0;
  let crashes = 0;
  let snaps = 0;
  let confChanges = 0;
  let confApplied = 0;
  let maxLive = 0;
  for (const seed of seeds) {
    const r = runSeed(seed);
    ops += r.ops;
    ok += r.okOps;
    unknown += r.unknownOps;
    crashes += r.crashes;
    snaps += r.snapshotsSent;
    confChanges += r.confChanges;
    confApplied += r.confChangesApplied;
    maxLive = Math.max(maxLive, r.livenessTicks);
  }
  console.log(
    `${label}: ${seeds.length} seeds [${seeds[0]}..${seeds[seeds.length - 1]}], ${ops} client ops (${ok} ok, ${unknown} unknown), ` +
      `${crashes} crashes, ${snaps} snapshots sent, ${confChanges} conf changes proposed (${confApplied} committed), slowest recovery ${maxLive} ticks`,
  );
  assert.ok(ok > 0, "clients made progress");
}

if (only !== undefined) {
  test(`cluster sim: seed ${only}`, () => {
    const r = runSeed(Number(only));
    console.log(JSON.stringify({ ...r, check: { ok: r.check.ok, explored: r.check.explored } }));
  });
} else {
  test("cluster sim: the same seed replays the same run", () => {
    const a = runSeed(FIVE_NODE_BASE + 7);
    const b = runSeed(FIVE_NODE_BASE + 7);
    assert.deepEqual(a, b);
    assert.notDeepEqual(runSeed(8), a);
  });
  test("cluster sim: 3 nodes", () => {
    const n = count > 0 ? count : 800;
    runSeeds("3 nodes", Array.from({ length: n }, (_, i) => i + 1));
  });
  test("cluster sim: 5 nodes", () => {
    const n = count > 0 ? count : 500;
    runSeeds("5 nodes", Array.from({ length: n }, (_, i) => FIVE_NODE_BASE + i + 1));
  });
}
