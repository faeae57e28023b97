// Deterministic cluster simulation: many seeds, each a different random fault
// schedule, each checked for safety (invariants, linearizability) and liveness.
//
//   SIM_SEEDS=N   run N seeds per cluster size instead of the default
//   SIM_SEED=S    run only seed S (the failure message prints it)
//   SIM_TRACE=1   with SIM_SEED, print the last events on failure
import assert from "node:assert/strict";
import { test } from "node:test";
import { ClusterSim, SimFailure, type SimResult } from "./cluster_sim.js";

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
  const kinds = { put: 0, delete: 0, cas: 0, get: 0 };
  let casOk = 0;
  let casFail = 0;
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
    for (const k of Object.keys(kinds) as (keyof typeof kinds)[]) kinds[k] += r.kinds[k];
    casOk += r.casSucceeded;
    casFail += r.casFailed;
  }
  console.log(
    `${label}: ${seeds.length} seeds [${seeds[0]}..${seeds[seeds.length - 1]}], ${ops} client ops (${ok} ok, ${unknown} unknown; ` +
      `${kinds.put} puts, ${kinds.delete} deletes, ${kinds.cas} txns (${casOk} succeeded, ${casFail} compare failed), ${kinds.get} gets), ` +
      `${crashes} crashes, ${snaps} snapshots sent, ${confChanges} conf changes proposed (${confApplied} committed), slowest recovery ${maxLive} ticks`,
  );
  assert.ok(ok > 0, "clients made progress");
  // The workload must exercise every kind, and txns must take both branches.
  for (const [k, v] of Object.entries(kinds)) assert.ok(v > 0, `no ${k} operations were issued`);
  assert.ok(casOk > 0 && casFail > 0, `txns took both branches (${casOk} succeeded, ${casFail} failed)`);
}

if (only !== undefined) {
  test(`cluster sim: seed ${only}`, () => {
    const r = runSeed(Number(only));
    console.log(JSON.stringify({ ...r, check: { ok: r.check.ok, explored: r.check.explored, searched: r.check.searched } }));
  });
} else {
  test("cluster sim: the same seed replays the same run", () => {
    const a = runSeed(FIVE_NODE_BASE + 7);
    const b = runSeed(FIVE_NODE_BASE + 7);
    assert.deepEqual(a, b);
    assert.notDeepEqual(runSeed(8), a);
  });
  // The simulator must be able to fail: with a deliberate bug, some seeds' histories
  // are refused by the checker (and the failure names the seed).
  for (const bug of ["staleReads", "earlyAck"] as const) {
    test(`cluster sim: a deliberate bug (${bug}) is caught`, () => {
      let caught: SimFailure | undefined;
      let seeds = 0;
      for (let seed = 1; seed <= 300 && caught === undefined; seed++) {
        seeds++;
        try {
          new ClusterSim({ seed, nodes: 3, faultMs: 4000, livenessTicks: 300, clients: 4, bug }).run();
        } catch (err) {
          if (!(err instanceof SimFailure)) throw err;
          caught = err;
        }
      }
      assert.ok(caught !== undefined, `no seed in 1..300 caught ${bug}`);
      assert.match(caught.message, /history is not linearizable/);
      assert.match(caught.message, /reproduce with SIM_SEED=\d+/);
      console.log(`${bug}: caught after ${seeds} seeds: ${caught.message.split("\n")[0]}`);
    });
  }
  test("cluster sim: 3 nodes", () => {
    const n = count > 0 ? count : 800;
    runSeeds("3 nodes", Array.from({ length: n }, (_, i) => i + 1));
  });
  test("cluster sim: 5 nodes", () => {
    const n = count > 0 ? count : 500;
    runSeeds("5 nodes", Array.from({ length: n }, (_, i) => FIVE_NODE_BASE + i + 1));
  });
}
