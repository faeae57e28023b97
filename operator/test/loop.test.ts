// Conditions, the leader-lease decision, watch restarts and the work queue: the pure parts
// of the loop around the decisions.

import { describe, test } from "node:test";
import assert from "node:assert/strict";
import { conditions, phase } from "../src/conditions.js";
import type { Action, Facts, MemberFact } from "../src/checks.js";
import { leaseDecision } from "../src/leader.js";
import { stepAfterDone, stepAfterEvent } from "../src/watch.js";
import { WorkQueue } from "../src/queue.js";

const m = (k: number, healthy = true, isLearner = false): MemberFact => ({
  id: `000000000000000${k}`, name: `demo-${k}`, peerURL: "", ordinal: k, isLearner, healthy, raftIndex: 1n, unhealthySince: undefined,
});
const f = (members: MemberFact[] | undefined, o: Partial<Facts> = {}): Facts => ({
  size: 3, bootstrapped: true, stsReplicas: 3, members, leaderId: undefined, holders: [], pods: [], persistent: true,
  onScaleIn: "Delete", replaceUnhealthyAfterMs: 300_000, now: 0, ...o,
});
const none: Action = { kind: "none" };

function cond(fs: Facts, a: Action, type: string) {
  const c = conditions(fs, a, undefined, 7, "2026-12-01T00:00:00.000Z").find((x) => x.type === type);
  assert.ok(c);
  return c;
}

describe("conditions", () => {
  const rows: [string, Facts, Action, string, string, string][] = [
    ["healthy cluster is Available", f([m(0), m(1), m(2)]), none, "Available", "True", "QuorumHealthy"],
    ["healthy cluster is not Progressing", f([m(0), m(1), m(2)]), none, "Progressing", "False", "Stable"],
    ["healthy cluster is not Degraded", f([m(0), m(1), m(2)]), none, "Degraded", "False", "Healthy"],
    ["one of three down: still Available", f([m(0), m(1, false), m(2)]), none, "Available", "True", "QuorumHealthy"],
    ["one of three down: Degraded", f([m(0), m(1, false), m(2)]), none, "Degraded", "True", "UnhealthyMembers"],
    ["two of three down: not Available", f([m(0), m(1, false), m(2, false)]), none, "Available", "False", "QuorumLost"],
    ["scaling out: Progressing", f([m(0), m(1), m(2)], { size: 5 }), { kind: "addLearner", ordinal: 3, replicasAfter: 4, reason: "ScalingOut" }, "Progressing", "True", "ScalingOut"],
    ["blocked: Degraded with the reason", f([m(0)]), { kind: "blocked", reason: "RetainedVolume", message: "x" }, "Degraded", "True", "RetainedVolume"],
    ["not yet bootstrapped: not Available", f(undefined, { bootstrapped: false }), { kind: "bootstrap" }, "Available", "False", "Bootstrapping"],
  ];
  for (const [name, fs, a, type, status, reason] of rows) {
    test(name, () => {
      const c = cond(fs, a, type);
      assert.equal(c.status, status);
      assert.equal(c.reason, reason);
      assert.equal(c.observedGeneration, 7);
    });
  }
  test("lastTransitionTime moves only when the status changes", () => {
    const fs = f([m(0), m(1), m(2)]);
    const first = conditions(fs, none, undefined, 1, "T1");
    const same = conditions(fs, none, first, 2, "T2");
    assert.deepEqual(same.map((c) => c.lastTransitionTime), ["T1", "T1", "T1"]);
    const worse = conditions(f([m(0), m(1, false), m(2, false)]), none, first, 3, "T3");
    assert.deepEqual(worse.map((c) => [c.type, c.lastTransitionTime]), [["Available", "T3"], ["Progressing", "T1"], ["Degraded", "T3"]]);
  });
  test("phases", () => {
    assert.equal(phase(f(undefined, { bootstrapped: false }), { kind: "bootstrap" }), "Creating");
    assert.equal(phase(f([m(0), m(1), m(2)]), none), "Running");
    assert.equal(phase(f([m(0), m(1), m(2)], { size: 5 }), { kind: "addLearner", ordinal: 3, replicasAfter: 4, reason: "ScalingOut" }), "Scaling");
    assert.equal(phase(f([m(0), m(2)]), { kind: "addLearner", ordinal: 1, replicasAfter: 3, reason: "ReplacingMember" }), "Healing");
    assert.equal(phase(f([m(0), m(1, false), m(2, false)]), none), "Degraded");
  });
});

describe("leader lease decision", () => {
  const lease = (holder: string | undefined, renewedAt: number) => ({ holder, renewTimeMs: renewedAt, durationSeconds: 15 });
  const rows: [string, ReturnType<typeof lease> | undefined, number, string][] = [
    ["no lease: create it", undefined, 0, "create"],
    ["ours: renew", lease("me", 0), 60_000, "renew"],
    ["theirs, fresh: wait", lease("other", 10_000), 20_000, "wait"],
    ["theirs, renewed exactly 15 s ago: still wait", lease("other", 10_000), 25_000, "wait"],
    ["theirs, expired: take over", lease("other", 10_000), 25_001, "takeover"],
    ["released (empty holder): take over", lease("", 10_000), 10_001, "takeover"],
  ];
  for (const [name, l, now, want] of rows) test(name, () => assert.equal(leaseDecision(l, "me", now), want));
});

describe("watch restarts", () => {
  test("410 Gone as a watch event relists; other errors rewatch; objects continue", () => {
    assert.equal(stepAfterEvent("ERROR", { kind: "Status", code: 410, reason: "Expired" }), "relist");
    assert.equal(stepAfterEvent("ERROR", { kind: "Status", code: 500 }), "rewatch");
    assert.equal(stepAfterEvent("ADDED", { metadata: {} }), "continue");
  });
  test("410 as the HTTP answer relists; a dropped connection rewatches", () => {
    assert.equal(stepAfterDone({ statusCode: 410 }), "relist");
    assert.equal(stepAfterDone(new Error("socket hang up")), "rewatch");
    assert.equal(stepAfterDone(null), "rewatch");
  });
});

describe("work queue", () => {
  test("one pass at a time; a key added during its pass runs again; duplicates collapse", async () => {
    const seen: string[] = [];
    let running = 0;
    let maxRunning = 0;
    let release!: () => void;
    const gate = new Promise<void>((r) => { release = r; });
    const q = new WorkQueue(async (key) => {
      running++;
      maxRunning = Math.max(maxRunning, running);
      seen.push(key);
      if (seen.length === 1) await gate;
      running--;
      return undefined;
    }, () => {});
    const done = q.run();
    q.add("ns/a");
    await new Promise((r) => setImmediate(r));
    q.add("ns/a"); q.add("ns/a"); q.add("ns/b");
    release();
    while (seen.length < 3) await new Promise((r) => setImmediate(r));
    await new Promise((r) => setImmediate(r));
    q.stop();
    await done;
    assert.deepEqual(seen, ["ns/a", "ns/a", "ns/b"]);
    assert.equal(maxRunning, 1);
  });
  test("error back-off doubles from 1 s and stops at 2 min", () => {
    assert.deepEqual([1, 2, 3, 8, 20].map(WorkQueue.backoffMs), [1000, 2000, 4000, 120_000, 120_000]);
  });
});
