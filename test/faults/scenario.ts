// One fault scenario, run the same way against any target:
//
//   start a cluster -> start the recorded clients -> the scenario's faults
//   (each fault followed by "a leader within N election timeouts") -> heal
//   every cut, restart every member that is down -> a leader -> stop the
//   clients -> final linearizable reads -> checks: the history is
//   linearizable (no stale read, no lost acknowledged write), and every
//   member's local read equals the leader's.
//
// Everything measured (time to a new leader in election timeouts, operation
// counts, catch-up times) is reported with t.diagnostic, never asserted
// against a clock, except the generous bounds that say "this never happened".

import { writeFileSync } from "node:fs";
import { join } from "node:path";
import type { TestContext } from "node:test";
import { setTimeout as sleep } from "node:timers/promises";
import { Cluster, ClusterStartError, type ClusterOptions } from "./cluster.js";
import { Recorder, type RecorderOptions } from "./recorder.js";
import { checkConverged, checkHistory } from "./checks.js";
import { ensureNetworkTools, removeLeftovers } from "./netns.js";
import { clusteringRefusal, faultTargets, oursClusteringRequired, type TargetStatus } from "./targets.js";
import { banner, isCI } from "../harness/provision.js";

/** A new leader must appear within this many election timeouts after a fault (a generous bound; the measured value is reported). */
export const LEADER_BOUND_ELECTION_TIMEOUTS = 10;

export interface ScenarioContext {
  readonly cluster: Cluster;
  readonly recorder: Recorder;
  /** Lets the recorded traffic run for `ms`. */
  traffic(ms: number): Promise<void>;
  /** Waits for a leader (not in `notIn`, among `among`) within the bound, and reports how long it took. */
  leader(what: string, opts?: { among?: readonly number[]; notIn?: readonly number[]; boundElectionTimeouts?: number }): Promise<number>;
  note(msg: string): void;
}

export interface Scenario {
  readonly name: string;
  readonly size: 3 | 5;
  readonly cluster?: Partial<Omit<ClusterOptions, "target" | "size">>;
  readonly recorder?: Partial<RecorderOptions>;
  /** The history is expected NOT to be linearizable (self-tests of the checks). */
  readonly expectViolation?: RegExp;
  run(ctx: ScenarioContext): Promise<void>;
}

let prepared: string | undefined;
/** Network tools and leftovers, once per process; returns why fault tests cannot run here, or "" when they can. */
function prepare(): string {
  if (prepared !== undefined) return prepared;
  const why = ensureNetworkTools();
  if (why !== undefined) {
    prepared = why;
    banner(["FAULT TESTS CANNOT SET UP NETWORKS", why, isCI ? "CI=true: this is a FAILURE" : "not CI: the fault scenarios are SKIPPED"]);
    return prepared;
  }
  const removed = removeLeftovers();
  if (removed.length > 0) process.stderr.write(`[faults] removed leftovers of earlier runs: ${removed.join(", ")}\n`);
  prepared = "";
  return prepared;
}

export async function runScenario(t: TestContext, status: TargetStatus, sc: Scenario): Promise<void> {
  if (!status.ok) {
    if (isCI) throw new Error(`${status.name} cannot run under CI: ${status.reason}`);
    t.skip(`${status.name} cannot run: ${status.reason}`);
    return;
  }
  const cannot = prepare();
  if (cannot) {
    if (isCI) throw new Error(`fault tests cannot run under CI: ${cannot}`);
    t.skip(`fault tests cannot run: ${cannot}`);
    return;
  }
  const t0 = performance.now();
  let cluster: Cluster;
  try {
    cluster = await Cluster.start({ target: status.target, size: sc.size, ...sc.cluster });
  } catch (e) {
    if (status.name === "ours" && e instanceof ClusterStartError && !oursClusteringRequired) {
      const refusal = clusteringRefusal.exec(e.message)?.[0];
      if (refusal !== undefined) {
        t.diagnostic(`ours refused: ${refusal}`);
        t.todo(`ours: multi-member not supported yet (the server says: "${refusal}")`);
        return;
      }
    }
    if (e instanceof ClusterStartError) throw new Error(`${e.message}\n${e.logs}`);
    throw e;
  }
  const recorder = new Recorder(cluster, {
    clients: sc.size * 2,
    keys: 5,
    opTimeoutMs: 2 * cluster.electionMs,
    thinkMs: 10,
    seed: Number(process.env["FAULT_SEED"] ?? Date.now() % 100_000),
    ...sc.recorder,
  });
  t.diagnostic(`${status.name}: ${sc.size} members started in ${Math.round(performance.now() - t0)} ms; seed ${recorder.opts.seed}`);
  const ctx: ScenarioContext = {
    cluster,
    recorder,
    traffic: (ms) => sleep(ms),
    note: (msg) => t.diagnostic(msg),
    async leader(what, opts = {}) {
      const bound = opts.boundElectionTimeouts ?? LEADER_BOUND_ELECTION_TIMEOUTS;
      const r = await cluster.waitForLeader({ ...opts, boundElectionTimeouts: bound });
      t.diagnostic(`${what}: leader ${cluster.members[r.leader]!.name} after ${Math.round(r.ms)} ms = ${r.electionTimeouts.toFixed(2)} election timeouts (bound ${bound})`);
      return r.leader;
    },
  };
  let failure: unknown;
  try {
    recorder.start();
    await sc.run(ctx);
    // Heal: no cuts, every member up, a leader everyone follows.
    cluster.net.heal();
    for (const m of cluster.members) if (!m.running) cluster.restart(m.index);
    await ctx.leader("after healing", { boundElectionTimeouts: LEADER_BOUND_ELECTION_TIMEOUTS + 10 });
    const healed = recorder.now();
    await ctx.traffic(1500);
    await recorder.stop();
    t.diagnostic(`acknowledged after healing, by member: ${recorder.servedSince(healed)}`);
    const leader = await ctx.leader("before the final reads");
    await recorder.finalReads(leader);
    t.diagnostic(recorder.summary());
    if (sc.expectViolation !== undefined) {
      let caught: Error | undefined;
      try {
        checkHistory(recorder);
      } catch (e) {
        caught = e as Error;
      }
      if (caught === undefined) throw new Error(`the checks accepted a history they were expected to refuse (${sc.expectViolation})`);
      if (!sc.expectViolation.test(caught.message)) throw caught;
      t.diagnostic(`refused as expected: ${caught.message.split("\n")[0]}`);
    } else {
      t.diagnostic(checkHistory(recorder));
    }
    t.diagnostic(await checkConverged(cluster, await ctx.leader("before the catch-up check")));
  } catch (e) {
    failure = e;
  } finally {
    await recorder.stop().catch(() => undefined);
    if (failure !== undefined) {
      const msg = failure instanceof Error ? failure.message : String(failure);
      const described = cluster.describe(40); // before dispose() removes the logs
      const kept = keepHistory(cluster, recorder);
      await cluster.dispose();
      throw new Error(
        `${msg}\n\nrecorded: ${recorder.summary()}\n` +
          `rerun with FAULT_SEED=${recorder.opts.seed} for the same client choices (timing differs)${kept}\n${described}`,
      );
    }
    await cluster.dispose();
  }
  t.diagnostic(`${status.name}: scenario took ${Math.round(performance.now() - t0)} ms`);
}

/** With FAULT_KEEP=1, writes the history beside the members' data and logs (which dispose() then keeps). */
function keepHistory(cluster: Cluster, recorder: Recorder): string {
  if (process.env["FAULT_KEEP"] !== "1") return "; FAULT_KEEP=1 keeps data, logs and the history";
  const file = join(cluster.root, "history.json");
  writeFileSync(file, JSON.stringify(recorder.history, (_k, v: unknown) => (typeof v === "bigint" ? v.toString() : v), 1));
  return `; history in ${file}, data and logs beside it`;
}

/** Registers one test per requested target for each scenario. */
export function scenarioTests(testFn: (name: string, opts: { timeout: number }, fn: (t: TestContext) => Promise<void>) => unknown, scenarios: readonly Scenario[]): void {
  for (const sc of scenarios) {
    for (const status of faultTargets()) {
      testFn(`${sc.name} [${status.name}]`, { timeout: 240_000 }, (t) => runScenario(t, status, sc));
    }
  }
}
