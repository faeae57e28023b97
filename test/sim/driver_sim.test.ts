// The production raft driver (RaftNode + WAL on SimFs) under seeded faults:
// many seeds, each a different fault schedule, each checked for safety
// (invariants, linearizability) and liveness. See driver_sim.ts.
//
//   DRIVER_SIM_SEEDS=N   run N seeds per cluster size instead of the default
//   DRIVER_SIM_SEED=S    run only seed S (a failure message prints it)
//   DRIVER_SIM_TRACE=1   with DRIVER_SIM_SEED, print the last events on failure
import assert from "node:assert/strict";
import { test } from "node:test";
import { DriverSim, type DriverSimBug, DriverSimFailure, type DriverSimResult } from "./driver_sim.js";

/** Seeds at or above this run five members; below, three. */
const FIVE_NODE_BASE = 1_000_000;
const only = process.env["DRIVER_SIM_SEED"];
const count = Number(process.env["DRIVER_SIM_SEEDS"] ?? "0");

function runSeed(seed: number, bug?: DriverSimBug): Promise<DriverSimResult> {
  return new DriverSim({
    seed,
    nodes: seed >= FIVE_NODE_BASE ? 5 : 3,
    faultMs: 3000,
    livenessTicks: 300,
    clients: 4,
    trace: process.env["DRIVER_SIM_TRACE"] === "1",
    ...(bug !== undefined ? { bug } : {}),
  }).run();
}

async function runSeeds(label: string, seeds: number[]): Promise<void> {
  const t0 = performance.now();
  const sum = { confChanges: 0, confRefused: 0, ops: 0, ok: 0, unknown: 0, crashes: 0, diskFaults: 0, torn: 0, sent: 0, restored: 0, local: 0, fsyncs: 0, casOk: 0, casFail: 0, maxLive: 0 };
  const kinds = { put: 0, delete: 0, cas: 0, get: 0 };
  for (const seed of seeds) {
    const r = await runSeed(seed);
    sum.ops += r.ops;
    sum.ok += r.okOps;
    sum.unknown += r.unknownOps;
    sum.crashes += r.crashes;
    sum.confChanges += r.confChanges;
    sum.confRefused += r.confRefused;
    sum.diskFaults += r.diskFaults;
    sum.torn += r.tornTails;
    sum.sent += r.snapshotsSent;
    sum.restored += r.snapshotsRestored;
    sum.local += r.localSnapshots;
    sum.fsyncs += r.fsyncs;
    sum.casOk += r.casSucceeded;
    sum.casFail += r.casFailed;
    sum.maxLive = Math.max(sum.maxLive, r.livenessTicks);
    for (const k of Object.keys(kinds) as (keyof typeof kinds)[]) kinds[k] += r.kinds[k];
  }
  const secs = ((performance.now() - t0) / 1000).toFixed(1);
  console.log(
    `${label}: ${seeds.length} seeds [${seeds[0]}..${seeds[seeds.length - 1]}] in ${secs}s, ${sum.ops} client ops (${sum.ok} ok, ${sum.unknown} unknown; ` +
      `${kinds.put} puts, ${kinds.delete} deletes, ${kinds.cas} txns (${sum.casOk} succeeded, ${sum.casFail} compare failed), ${kinds.get} gets), ` +
      `${sum.crashes} power cuts, ${sum.diskFaults} disk errors, ${sum.torn} torn WAL tails repaired, ${sum.local} local snapshots+compactions, ` +
      `${sum.sent} snapshots sent, ${sum.restored} restored, ${sum.confChanges} membership changes proposed (${sum.confRefused} refused when applied), ${sum.fsyncs} fsyncs, slowest recovery ${sum.maxLive} ticks`,
  );
  assert.ok(sum.ok > 0, "clients made progress");
  for (const [k, v] of Object.entries(kinds)) assert.ok(v > 0, `no ${k} operations were issued`);
  assert.ok(sum.casOk > 0 && sum.casFail > 0, `txns took both branches (${sum.casOk} succeeded, ${sum.casFail} failed)`);
}

if (only !== undefined) {
  test(`driver sim: seed ${only}`, async () => {
    const r = await runSeed(Number(only));
    console.log(JSON.stringify({ ...r, check: { ok: r.check.ok, explored: r.check.explored, searched: r.check.searched } }));
  });
} else {
  test("driver sim: the same seed replays the same run; another seed differs", async () => {
    const a = await runSeed(FIVE_NODE_BASE + 3);
    const b = await runSeed(FIVE_NODE_BASE + 3);
    assert.deepEqual(a, b);
    const c = await runSeed(FIVE_NODE_BASE + 4);
    assert.notEqual(c.trace, a.trace);
  });
  // The simulator must be able to fail: with a deliberate bug, some seed's history
  // is refused by the checker, and the failure names the seed.
  for (const bug of ["staleReads", "earlyAck", "lazyFsync"] as const) {
    test(`driver sim: a deliberate bug (${bug}) is caught`, async () => {
      let caught: DriverSimFailure | undefined;
      let tried = 0;
      for (let seed = 1; seed <= 100 && caught === undefined; seed++) {
        tried++;
        try {
          await runSeed(seed, bug);
        } catch (err) {
          if (!(err instanceof DriverSimFailure)) throw err;
          caught = err;
        }
      }
      assert.ok(caught !== undefined, `${bug} went unnoticed over ${tried} seeds`);
      assert.match(caught.message, /reproduce with DRIVER_SIM_SEED=\d+/);
      console.log(`${bug}: caught after ${tried} seeds: ${caught.message.split("\n")[0]}`);
    });
  }
  test("driver sim: 3 members", async () => {
    const n = count > 0 ? count : 300;
    await runSeeds("3 members", Array.from({ length: n }, (_, i) => i + 1));
  });
  test("driver sim: 5 members", async () => {
    const n = count > 0 ? count : 120;
    await runSeeds("5 members", Array.from({ length: n }, (_, i) => FIVE_NODE_BASE + i + 1));
  });
}
