// Table tests for the reconciler's decisions (operator/src/checks.ts). Each row is a
// situation described by its facts and the one action the operator must take in it.

import { describe, test } from "node:test";
import assert from "node:assert/strict";
import {
  decide, hasQuorum, holdersToStamp, keepsQuorumWithout, learnerCaughtUp, nextUnhealthySince, volumesToDelete, volumesToGrow,
} from "../src/checks.js";
import type { Facts, HolderFact, MemberFact } from "../src/checks.js";

const NOW = Date.parse("2026-12-01T12:00:00Z");
const minutesAgo = (m: number): string => new Date(NOW - m * 60_000).toISOString();

function m(ordinal: number, o: Partial<MemberFact> = {}): MemberFact {
  return {
    id: (0x1000 + ordinal).toString(16).padStart(16, "0"),
    name: `demo-${ordinal}`,
    peerURL: `http://demo-${ordinal}.demo-members.ns.svc:2380`,
    ordinal, isLearner: false, healthy: true, raftIndex: 100n, unhealthySince: undefined,
    ...o,
  };
}
const id = (ordinal: number): string => m(ordinal).id;
const pvc = (ordinal: number, memberId?: string, deleting = false): HolderFact => ({ ordinal, memberId, deleting });

function facts(o: Partial<Facts>): Facts {
  const members = o.members === undefined && !("members" in o) ? [m(0), m(1), m(2)] : o.members;
  return {
    size: 3, bootstrapped: true, stsReplicas: 3, members, leaderId: id(0),
    holders: [], pods: [], persistent: true, onScaleIn: "Delete", replaceUnhealthyAfterMs: 5 * 60_000, now: NOW,
    ...o,
  };
}

interface Row {
  readonly name: string;
  readonly facts: Facts;
  readonly check: string;
  /** The expected action, compared on these fields. */
  readonly expect: Record<string, unknown>;
}

function pick(a: object, keys: string[]): Record<string, unknown> {
  return Object.fromEntries(keys.map((k) => {
    const v = (a as Record<string, unknown>)[k];
    return [k, v !== null && typeof v === "object" && "id" in v ? (v as { id: unknown }).id : v];
  }));
}

const rows: Row[] = [
  // --- bootstrap ---
  { name: "nothing exists: bootstrap the seed", facts: facts({ bootstrapped: false, stsReplicas: undefined, members: undefined }), check: "bootstrap", expect: { kind: "bootstrap" } },
  { name: "volumes left by an earlier cluster: refuse to bootstrap over them", facts: facts({ bootstrapped: false, stsReplicas: undefined, members: undefined, holders: [pvc(1), pvc(0)] }), check: "bootstrap", expect: { kind: "blocked", reason: "ExistingData" } },
  { name: "leftover volume already being deleted does not block", facts: facts({ bootstrapped: false, stsReplicas: undefined, members: undefined, holders: [pvc(0, undefined, true)] }), check: "bootstrap", expect: { kind: "bootstrap" } },
  { name: "emptyDir: no volumes to protect, bootstrap", facts: facts({ bootstrapped: false, stsReplicas: undefined, members: undefined, persistent: false, holders: [pvc(0, "aa")] }), check: "bootstrap", expect: { kind: "bootstrap" } },
  { name: "seed started but not answering yet: wait", facts: facts({ bootstrapped: false, stsReplicas: 1, members: undefined }), check: "bootstrap", expect: { kind: "wait", reason: "Bootstrapping" } },
  // --- never bootstrap twice ---
  { name: "bootstrapped, nobody answers: wait, do not bootstrap", facts: facts({ members: undefined }), check: "reachable", expect: { kind: "wait", reason: "NoMemberAnswers" } },
  { name: "bootstrapped, StatefulSet deleted: recreate, do not bootstrap", facts: facts({ members: undefined, stsReplicas: undefined }), check: "reachable", expect: { kind: "blocked", reason: "StatefulSetMissing" } },
  // --- steady state ---
  { name: "three healthy members, size 3: nothing to do", facts: facts({}), check: "none", expect: { kind: "none" } },
  // --- scale out ---
  { name: "size 5 with 3 healthy: add ordinal 3 as learner", facts: facts({ size: 5 }), check: "scaleOut", expect: { kind: "addLearner", ordinal: 3, replicasAfter: 4, reason: "ScalingOut" } },
  { name: "size 5 with one unhealthy: wait", facts: facts({ size: 5, members: [m(0), m(1, { healthy: false, unhealthySince: minutesAgo(1) }), m(2)] }), check: "scaleOut", expect: { kind: "wait", reason: "WaitingForHealthyMembers" } },
  { name: "learner pending and behind: wait, no second add", facts: facts({ size: 5, stsReplicas: 4, members: [m(0, { raftIndex: 1000n }), m(1), m(2), m(3, { isLearner: true, raftIndex: 10n })] }), check: "learner", expect: { kind: "wait", reason: "LearnerCatchingUp" } },
  { name: "learner caught up: promote it", facts: facts({ size: 5, stsReplicas: 4, members: [m(0, { raftIndex: 1000n }), m(1), m(2), m(3, { isLearner: true, raftIndex: 950n })] }), check: "learner", expect: { kind: "promote", member: id(3) } },
  { name: "learner added but not started (no name): wait", facts: facts({ size: 5, stsReplicas: 4, members: [m(0), m(1), m(2), m(3, { isLearner: true, name: "", healthy: false, raftIndex: 0n })] }), check: "learner", expect: { kind: "wait" } },
  // --- interrupted steps ---
  { name: "operator stopped after MemberAdd, before the StatefulSet grew: grow it", facts: facts({ size: 5, stsReplicas: 3, members: [m(0), m(1), m(2), m(3, { isLearner: true, name: "", healthy: false })] }), check: "interruptedAdd", expect: { kind: "setReplicas", replicas: 4, reason: "FinishingMemberAdd" } },
  { name: "operator stopped after MemberRemove, before the StatefulSet shrank: shrink it", facts: facts({ size: 3, stsReplicas: 4 }), check: "interruptedRemove", expect: { kind: "setReplicas", replicas: 3, reason: "FinishingMemberRemove" } },
  { name: "StatefulSet above size but top ordinal still a member: not interrupted, scale in", facts: facts({ size: 3, stsReplicas: 4, members: [m(0), m(1), m(2), m(3)] }), check: "scaleIn", expect: { kind: "remove", member: id(3), replicasAfter: 3, reason: "ScalingIn" } },
  // --- scale in ---
  { name: "scale in: the top ordinal is the leader: move leadership first", facts: facts({ size: 3, stsReplicas: 4, members: [m(0), m(1), m(2), m(3)], leaderId: id(3) }), check: "scaleIn", expect: { kind: "moveLeader", from: id(3), to: id(0) } },
  { name: "scale in: leader moves to the lowest healthy voter", facts: facts({ size: 3, stsReplicas: 4, members: [m(0, { healthy: false, unhealthySince: minutesAgo(1) }), m(1), m(2), m(3)], leaderId: id(3) }), check: "scaleIn", expect: { kind: "moveLeader", to: id(1) } },
  { name: "scale in 2→1 with the other member down: refuse (would lose quorum)", facts: facts({ size: 1, stsReplicas: 2, members: [m(0, { healthy: false, unhealthySince: minutesAgo(1) }), m(1)], leaderId: id(0) }), check: "scaleIn", expect: { kind: "blocked", reason: "ScaleInWouldLoseQuorum" } },
  // --- replacing a member ---
  { name: "member unhealthy 10 minutes, others healthy: remove it for replacement", facts: facts({ members: [m(0), m(1, { healthy: false, unhealthySince: minutesAgo(10) }), m(2)] }), check: "replaceUnhealthy", expect: { kind: "remove", member: id(1), reason: "ReplacingMember", replicasAfter: undefined } },
  { name: "member unhealthy 1 minute: not yet", facts: facts({ members: [m(0), m(1, { healthy: false, unhealthySince: minutesAgo(1) }), m(2)] }), check: "none", expect: { kind: "none" } },
  { name: "two of three unhealthy: never replace without quorum", facts: facts({ members: [m(0), m(1, { healthy: false, unhealthySince: minutesAgo(10) }), m(2, { healthy: false, unhealthySince: minutesAgo(10) })] }), check: "replaceUnhealthy", expect: { kind: "blocked", reason: "ReplaceWouldLoseQuorum" } },
  { name: "removed member's volume still there: wipe it before re-adding", facts: facts({ members: [m(0), m(2)], holders: [pvc(0, id(0)), pvc(1, id(1)), pvc(2, id(2))] }), check: "staleData", expect: { kind: "wipe", ordinal: 1 } },
  { name: "fresh volume at the missing ordinal: re-add the member as learner", facts: facts({ members: [m(0), m(2)], holders: [pvc(0, id(0)), pvc(1), pvc(2, id(2))] }), check: "missingMember", expect: { kind: "addLearner", ordinal: 1, replicasAfter: 3, reason: "ReplacingMember" } },
  { name: "missing ordinal without quorum: blocked", facts: facts({ size: 3, members: [m(0), m(2, { healthy: false, unhealthySince: minutesAgo(1) })] }), check: "missingMember", expect: { kind: "blocked", reason: "QuorumLost" } },
  { name: "stale volume beyond the StatefulSet with Retain blocks growth there", facts: facts({ size: 4, stsReplicas: 3, onScaleIn: "Retain", holders: [pvc(3, "00000000deadbeef")] }), check: "staleData", expect: { kind: "blocked", reason: "RetainedVolume" } },
  { name: "stale volume beyond the StatefulSet with Delete: wiped", facts: facts({ size: 4, stsReplicas: 3, holders: [pvc(3, "00000000deadbeef")] }), check: "staleData", expect: { kind: "wipe", ordinal: 3 } },
];

describe("decide: one action per situation", () => {
  for (const r of rows) {
    test(r.name, () => {
      const got = decide(r.facts);
      assert.equal(got.check, r.check, `decided by ${got.check}: ${JSON.stringify(got.action, (_k, v: unknown) => (typeof v === "bigint" ? String(v) : v))}`);
      assert.deepEqual(pick(got.action, Object.keys(r.expect)), r.expect);
    });
  }
});

describe("quorum arithmetic", () => {
  const table: [healthy: boolean[], hasQ: boolean][] = [
    [[true], true], [[false], false], [[true, false], false], [[true, true], true],
    [[true, true, false], true], [[true, false, false], false], [[true, true, true, false, false], true], [[true, true, false, false, false], false],
  ];
  for (const [h, want] of table) {
    test(`${h.map((x) => (x ? "up" : "down")).join(",")} → quorum ${want}`, () => {
      assert.equal(hasQuorum(facts({ members: h.map((x, i) => m(i, { healthy: x })) })), want);
    });
  }
  test("learners do not count towards quorum", () => {
    assert.equal(hasQuorum(facts({ members: [m(0), m(1, { healthy: false }), m(2, { isLearner: true }), m(3, { healthy: false })] })), false);
  });
  test("removing a dead member of 3 keeps quorum; removing a live one of 3 with one dead does not", () => {
    const f = facts({ members: [m(0), m(1), m(2, { healthy: false })] });
    assert.equal(keepsQuorumWithout(f, m(2)), true);
    assert.equal(keepsQuorumWithout(f, m(1)), false);
  });
});

describe("learner readiness (90% of the leader's log)", () => {
  const leader = m(0, { raftIndex: 1000n });
  for (const [idx, want] of [[899n, false], [900n, true], [1000n, true], [0n, false]] as const) {
    test(`learner at ${idx} of 1000 → ${want}`, () => {
      assert.equal(learnerCaughtUp(m(3, { isLearner: true, raftIndex: idx }), leader), want);
    });
  }
  test("an unhealthy learner is never caught up", () => {
    assert.equal(learnerCaughtUp(m(3, { isLearner: true, raftIndex: 1000n, healthy: false }), leader), false);
  });
});

describe("bookkeeping", () => {
  test("unhealthySince starts on the first failure, is kept, and clears on recovery", () => {
    assert.equal(nextUnhealthySince(undefined, false, "T1"), "T1");
    assert.equal(nextUnhealthySince("T1", false, "T2"), "T1");
    assert.equal(nextUnhealthySince("T1", true, "T2"), undefined);
  });
  test("volumes are stamped only for started, healthy members without a stamp", () => {
    const f = facts({
      members: [m(0), m(1, { name: "" }), m(2, { healthy: false }), m(3)],
      holders: [pvc(0), pvc(1), pvc(2), pvc(3, id(3))],
    });
    assert.deepEqual(holdersToStamp(f), [{ ordinal: 0, memberId: id(0) }]);
  });
  test("onScaleIn Delete removes volumes beyond the StatefulSet once their pod is gone", () => {
    const f = facts({ stsReplicas: 3, holders: [pvc(2, id(2)), pvc(3, "x"), pvc(4, "y")], pods: [{ ordinal: 4, ready: false, deleting: true }] });
    assert.deepEqual(volumesToDelete(f), [3]);
    assert.deepEqual(volumesToDelete({ ...f, onScaleIn: "Retain" }), []);
    assert.deepEqual(volumesToDelete({ ...f, members: undefined }), [], "nothing is deleted while the membership is unknown");
  });
  test("volumes asking for less than spec.storage.size grow; equal or larger ones, and emptyDir, do not", () => {
    const h = (ordinal: number, requested: string) => ({ ordinal, memberId: undefined, deleting: false, requested });
    const f = facts({ storageSize: "2Gi", holders: [h(0, "1Gi"), h(1, "2048Mi"), h(2, "1.5Gi"), h(3, "3Gi")] });
    assert.deepEqual(volumesToGrow(f), [0, 2]);
    assert.deepEqual(volumesToGrow({ ...f, persistent: false }), []);
    assert.deepEqual(volumesToGrow({ ...f, storageSize: undefined }), []);
  });
});
