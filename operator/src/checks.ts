// The reconciler's decisions as small named pure checks (in the manner of cert-manager's
// certificate policies): the reconciler first gathers every fact (Facts), then `decide` runs
// the checks in order and the first one that has something to say picks the pass's single
// action. Nothing here does IO or reads the clock; `now` comes in with the facts.
//
// Vocabulary:
//   ordinal      k in pod name <cluster>-k; a member's ordinal comes from its peer URL
//   voter        a member that is not a learner
//   holder       what holds a member's data: its PVC, or its pod when storage is emptyDir.
//                The operator stamps the holder with the member ID once that member has
//                started, so a holder stamped with an ID that is no longer a member is known
//                to hold a removed member's data ("stale") and is never reused.

import { quantityBytes, quorum } from "./desired.js";

export interface MemberFact {
  /** Member ID as 16 hex digits. */
  readonly id: string;
  /** Empty until the member has started and published its name (etcd's own rule). */
  readonly name: string;
  readonly peerURL: string;
  readonly ordinal: number | undefined;
  readonly isLearner: boolean;
  /** Answered a Status call this pass. */
  readonly healthy: boolean;
  /** Raft index from its Status answer (0 when unhealthy). */
  readonly raftIndex: bigint;
  /** ISO time since when it has been unhealthy (carried over from the last status). */
  readonly unhealthySince: string | undefined;
}

export interface HolderFact {
  readonly ordinal: number;
  /** A PVC's requested storage (undefined for pods, the emptyDir holders). */
  readonly requested?: string | undefined;
  /** The member ID stamped on it, if any. */
  readonly memberId: string | undefined;
  readonly deleting: boolean;
}

export interface PodFact {
  readonly ordinal: number;
  readonly ready: boolean;
  readonly deleting: boolean;
}

export interface Facts {
  readonly size: number;
  /** Set once the operator has seen the cluster answer (status.clusterID). */
  readonly bootstrapped: boolean;
  /** StatefulSet spec.replicas, undefined when there is no StatefulSet. */
  readonly stsReplicas: number | undefined;
  /** Members as MemberList reported them; undefined when no member answered. */
  readonly members: readonly MemberFact[] | undefined;
  /** ID of the leader, as a healthy voter reported it. */
  readonly leaderId: string | undefined;
  readonly holders: readonly HolderFact[];
  readonly pods: readonly PodFact[];
  /** Volumes persist (PVCs), or data lives and dies with the pod (emptyDir). */
  readonly persistent: boolean;
  readonly onScaleIn: "Delete" | "Retain";
  /** spec.storage.size, when storage is persistent. */
  readonly storageSize?: string | undefined;
  readonly replaceUnhealthyAfterMs: number;
  readonly now: number;
}

export type Action =
  | { readonly kind: "bootstrap" }
  | { readonly kind: "wait"; readonly reason: string; readonly message: string }
  | { readonly kind: "blocked"; readonly reason: string; readonly message: string }
  | { readonly kind: "setReplicas"; readonly replicas: number; readonly reason: string; readonly message: string }
  | { readonly kind: "wipe"; readonly ordinal: number; readonly message: string }
  | { readonly kind: "addLearner"; readonly ordinal: number; readonly replicasAfter: number; readonly reason: "ScalingOut" | "ReplacingMember" }
  | { readonly kind: "promote"; readonly member: MemberFact }
  | { readonly kind: "moveLeader"; readonly from: MemberFact; readonly to: MemberFact }
  | { readonly kind: "remove"; readonly member: MemberFact; readonly replicasAfter: number | undefined; readonly reason: "ScalingIn" | "ReplacingMember" }
  | { readonly kind: "none" };

/** A check looks at the facts and either decides the action or passes (null). */
export type Check = (f: Facts) => Action | null;

// --- small helpers -----------------------------------------------------------------------

export const voters = (f: Facts): MemberFact[] => (f.members ?? []).filter((m) => !m.isLearner);
export const healthyVoters = (f: Facts): MemberFact[] => voters(f).filter((m) => m.healthy);

/** Would the cluster keep quorum if `m` left? (Counted on healthy voters, as a write needs.) */
export function keepsQuorumWithout(f: Facts, m: MemberFact): boolean {
  const v = voters(f).filter((x) => x.id !== m.id);
  if (v.length === 0) return false;
  return v.filter((x) => x.healthy).length >= quorum(v.length);
}

export function hasQuorum(f: Facts): boolean {
  const v = voters(f);
  return v.length > 0 && healthyVoters(f).length >= quorum(v.length);
}

/** etcd promotes a learner whose log is at least 90% of the leader's (etcdserver readyPercent). */
export function learnerCaughtUp(learner: MemberFact, leader: MemberFact | undefined): boolean {
  if (!learner.healthy || leader === undefined || !leader.healthy) return false;
  return learner.raftIndex * 10n >= leader.raftIndex * 9n;
}

function memberOrdinals(f: Facts): Set<number> {
  return new Set((f.members ?? []).map((m) => m.ordinal).filter((o): o is number => o !== undefined));
}

function isStale(f: Facts, h: HolderFact): boolean {
  return h.memberId !== undefined && !(f.members ?? []).some((m) => m.id === h.memberId);
}

// --- the checks, in the order they run ----------------------------------------------------

/** Nothing exists yet: start the single seed member. Never over data left by an earlier cluster. */
export const checkBootstrap: Check = (f) => {
  if (f.bootstrapped || f.members !== undefined) return null;
  if (f.stsReplicas !== undefined) {
    return { kind: "wait", reason: "Bootstrapping", message: "waiting for the first member to answer" };
  }
  const leftovers = f.holders.filter((h) => !h.deleting);
  if (f.persistent && leftovers.length > 0) {
    const list = leftovers.map((h) => h.ordinal).sort((a, b) => a - b).join(", ");
    return {
      kind: "blocked", reason: "ExistingData",
      message: `volumes of ordinals ${list} exist but no cluster was ever bootstrapped here; refusing to start a new cluster over existing data (delete the PersistentVolumeClaims to start fresh)`,
    };
  }
  return { kind: "bootstrap" };
};

/** Bootstrapped before, but no member answers: never bootstrap again; wait for members to return. */
export const checkReachable: Check = (f) => {
  if (f.members !== undefined) return null;
  if (f.stsReplicas === undefined) {
    return { kind: "blocked", reason: "StatefulSetMissing", message: "the cluster was bootstrapped but its StatefulSet is gone and no member answers; recreating it over the existing volumes" };
  }
  return { kind: "wait", reason: "NoMemberAnswers", message: "no member answers; waiting for the pods to come back (the operator never bootstraps over an existing cluster)" };
};

/** MemberAdd happened but the StatefulSet was not raised (operator stopped in between). */
export const checkInterruptedAdd: Check = (f) => {
  if (f.stsReplicas === undefined) return null;
  const ords = [...memberOrdinals(f)];
  const top = ords.length > 0 ? Math.max(...ords) : -1;
  if (top >= f.stsReplicas) {
    return { kind: "setReplicas", replicas: top + 1, reason: "FinishingMemberAdd", message: `member of ordinal ${top} was added; starting its pod` };
  }
  return null;
};

/** MemberRemove happened for scale-in but the StatefulSet was not lowered. */
export const checkInterruptedRemove: Check = (f) => {
  if (f.stsReplicas === undefined) return null;
  const ords = memberOrdinals(f);
  let r = f.stsReplicas;
  while (r > f.size && !ords.has(r - 1)) r--;
  if (r < f.stsReplicas) {
    return { kind: "setReplicas", replicas: r, reason: "FinishingMemberRemove", message: `ordinals ${r}..${f.stsReplicas - 1} are no longer members; stopping their pods` };
  }
  return null;
};

/** A stale holder (data of a removed member) at an ordinal that will run again: wipe it first. */
export const checkStaleData: Check = (f) => {
  const ords = memberOrdinals(f);
  const upTo = Math.max(f.size, f.stsReplicas ?? 0);
  for (const h of [...f.holders].sort((a, b) => a.ordinal - b.ordinal)) {
    if (h.deleting || ords.has(h.ordinal) || !isStale(f, h)) continue;
    if (h.ordinal >= upTo) continue; // not going to run; the PVC policy deals with it
    if (f.persistent && f.onScaleIn === "Retain" && h.ordinal >= (f.stsReplicas ?? 0)) {
      return {
        kind: "blocked", reason: "RetainedVolume",
        message: `volume of ordinal ${h.ordinal} holds data of removed member ${h.memberId ?? "?"} (onScaleIn: Retain); delete PersistentVolumeClaim for ordinal ${h.ordinal} to let the cluster grow`,
      };
    }
    return { kind: "wipe", ordinal: h.ordinal, message: `ordinal ${h.ordinal} holds data of removed member ${h.memberId ?? "?"}` };
  }
  return null;
};

/** A pending learner: promote once caught up, and change nothing else meanwhile. */
export const checkLearner: Check = (f) => {
  const learner = (f.members ?? []).find((m) => m.isLearner);
  if (learner === undefined) return null;
  const leader = (f.members ?? []).find((m) => m.id === f.leaderId);
  if (learnerCaughtUp(learner, leader)) return { kind: "promote", member: learner };
  return { kind: "wait", reason: "LearnerCatchingUp", message: `learner ${learner.name || learner.peerURL} is catching up with the leader` };
};

/** An ordinal inside the StatefulSet that is not a member (its old member was removed): re-add it. */
export const checkMissingMember: Check = (f) => {
  if (f.stsReplicas === undefined) return null;
  const ords = memberOrdinals(f);
  for (let k = 0; k < Math.min(f.stsReplicas, f.size); k++) {
    if (ords.has(k)) continue;
    if (!hasQuorum(f)) return { kind: "blocked", reason: "QuorumLost", message: `cannot re-add ordinal ${k}: the cluster has no quorum` };
    return { kind: "addLearner", ordinal: k, replicasAfter: f.stsReplicas, reason: "ReplacingMember" };
  }
  return null;
};

/** A member unhealthy for too long is removed (to be re-added fresh), only while the rest keep quorum. */
export const checkReplaceUnhealthy: Check = (f) => {
  for (const m of voters(f)) {
    if (m.healthy || m.unhealthySince === undefined) continue;
    if (f.now - Date.parse(m.unhealthySince) < f.replaceUnhealthyAfterMs) continue;
    if (m.ordinal === undefined || m.ordinal >= f.size) continue; // scale-in removes it anyway
    if (!keepsQuorumWithout(f, m)) {
      return { kind: "blocked", reason: "ReplaceWouldLoseQuorum", message: `member ${m.name || m.id} is unhealthy, but removing it would leave the cluster without quorum` };
    }
    return { kind: "remove", member: m, replicasAfter: undefined, reason: "ReplacingMember" };
  }
  return null;
};

/** Fewer members than spec.size: add the next ordinal as a learner, if every member is healthy. */
export const checkScaleOut: Check = (f) => {
  const members = f.members ?? [];
  if (members.length >= f.size || f.stsReplicas === undefined) return null;
  const unhealthy = members.filter((m) => !m.healthy);
  if (unhealthy.length > 0) {
    return { kind: "wait", reason: "WaitingForHealthyMembers", message: `not adding a member while ${unhealthy.map((m) => m.name || m.id).join(", ")} is unhealthy` };
  }
  const next = f.stsReplicas;
  return { kind: "addLearner", ordinal: next, replicasAfter: next + 1, reason: "ScalingOut" };
};

/** More members than spec.size: take the highest ordinal out; move leadership away from it first. */
export const checkScaleIn: Check = (f) => {
  const members = f.members ?? [];
  if (members.length <= f.size) return null;
  const target = [...members].sort((a, b) => (b.ordinal ?? -1) - (a.ordinal ?? -1))[0];
  if (target === undefined) return null;
  if (target.id === f.leaderId) {
    const to = healthyVoters(f).filter((m) => m.id !== target.id).sort((a, b) => (a.ordinal ?? 0) - (b.ordinal ?? 0))[0];
    if (to === undefined) return { kind: "blocked", reason: "NoLeaderCandidate", message: "no healthy voter to hand leadership to" };
    return { kind: "moveLeader", from: target, to };
  }
  if (!target.isLearner && !keepsQuorumWithout(f, target)) {
    return { kind: "blocked", reason: "ScaleInWouldLoseQuorum", message: `removing ${target.name || target.id} now would leave the cluster without quorum` };
  }
  const replicasAfter = target.ordinal !== undefined && f.stsReplicas !== undefined && target.ordinal === f.stsReplicas - 1 ? target.ordinal : undefined;
  return { kind: "remove", member: target, replicasAfter, reason: "ScalingIn" };
};

/** The chain, in order. The first check to decide wins. */
export const checks: ReadonlyArray<readonly [string, Check]> = [
  ["bootstrap", checkBootstrap],
  ["reachable", checkReachable],
  ["interruptedAdd", checkInterruptedAdd],
  ["interruptedRemove", checkInterruptedRemove],
  ["staleData", checkStaleData],
  ["learner", checkLearner],
  ["missingMember", checkMissingMember],
  ["replaceUnhealthy", checkReplaceUnhealthy],
  ["scaleOut", checkScaleOut],
  ["scaleIn", checkScaleIn],
];

export function decide(f: Facts): { check: string; action: Action } {
  for (const [name, check] of checks) {
    const a = check(f);
    if (a !== null) return { check: name, action: a };
  }
  return { check: "none", action: { kind: "none" } };
}

/** Carries unhealthySince across passes: set when a member first fails, cleared when it answers. */
export function nextUnhealthySince(prev: string | undefined, healthy: boolean, nowIso: string): string | undefined {
  if (healthy) return undefined;
  return prev ?? nowIso;
}

/**
 * Holders to stamp with their member's ID: a member that has started (has a name) and whose
 * holder has no stamp yet. Stamping only started members keeps a fresh volume of a member that
 * has not started yet unclaimed until it has joined with it.
 */
export function holdersToStamp(f: Facts): { ordinal: number; memberId: string }[] {
  const out: { ordinal: number; memberId: string }[] = [];
  for (const m of f.members ?? []) {
    if (m.ordinal === undefined || m.name === "" || !m.healthy) continue;
    const h = f.holders.find((x) => x.ordinal === m.ordinal && !x.deleting);
    if (h !== undefined && h.memberId === undefined) out.push({ ordinal: m.ordinal, memberId: m.id });
  }
  return out;
}

/** PVCs the declared scale-in policy deletes: beyond the StatefulSet, not a member, pod gone. */
export function volumesToDelete(f: Facts): number[] {
  if (!f.persistent || f.onScaleIn !== "Delete" || f.stsReplicas === undefined || f.members === undefined) return [];
  const ords = memberOrdinals(f);
  return f.holders
    .filter((h) => !h.deleting && h.ordinal >= f.stsReplicas! && !ords.has(h.ordinal) && !f.pods.some((p) => p.ordinal === h.ordinal))
    .map((h) => h.ordinal)
    .sort((a, b) => a - b);
}

/** PVCs asking for less than spec.storage.size: grow them (the CRD refuses shrinking). */
export function volumesToGrow(f: Facts): number[] {
  if (!f.persistent || f.storageSize === undefined) return [];
  const want = quantityBytes(f.storageSize);
  if (want === undefined) return [];
  return f.holders
    .filter((h) => {
      if (h.deleting || h.requested === undefined) return false;
      const have = quantityBytes(h.requested);
      return have !== undefined && have < want;
    })
    .map((h) => h.ordinal)
    .sort((a, b) => a - b);
}
