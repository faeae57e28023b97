// Status conditions and phase as pure functions of the pass's facts and its action.
// lastTransitionTime changes only when a condition's status changes (the Kubernetes API
// conventions), so writing the same conditions again is a no-op for watchers.

import type { Condition, ConditionType, Phase } from "./api.js";
import { hasQuorum, healthyVoters, voters } from "./checks.js";
import type { Action, Facts } from "./checks.js";

interface Want {
  readonly type: ConditionType;
  readonly status: Condition["status"];
  readonly reason: string;
  readonly message: string;
}

function progressing(f: Facts, a: Action): Want {
  const t = "Progressing" as const;
  switch (a.kind) {
    case "bootstrap": return { type: t, status: "True", reason: "Bootstrapping", message: "starting the first member" };
    case "addLearner": return { type: t, status: "True", reason: a.reason, message: `adding ordinal ${a.ordinal} as a learner` };
    case "promote": return { type: t, status: "True", reason: "PromotingLearner", message: `promoting ${a.member.name || a.member.id}` };
    case "moveLeader": return { type: t, status: "True", reason: "ScalingIn", message: `moving leadership from ${a.from.name} to ${a.to.name}` };
    case "remove": return { type: t, status: "True", reason: a.reason, message: `removing member ${a.member.name || a.member.id}` };
    case "setReplicas": return { type: t, status: "True", reason: a.reason, message: a.message };
    case "wipe": return { type: t, status: "True", reason: "ReplacingMember", message: a.message };
    case "wait": return { type: t, status: "True", reason: a.reason, message: a.message };
    case "blocked": return { type: t, status: "False", reason: a.reason, message: a.message };
    case "none": {
      const n = (f.members ?? []).length;
      return n === f.size
        ? { type: t, status: "False", reason: "Stable", message: `${n} members, as specified` }
        : { type: t, status: "True", reason: "Reconciling", message: `${n} members, ${f.size} specified` };
    }
  }
}

function available(f: Facts): Want {
  const t = "Available" as const;
  if (f.members === undefined) {
    return { type: t, status: "False", reason: f.bootstrapped ? "NoMemberAnswers" : "Bootstrapping", message: "no member answers" };
  }
  const v = voters(f).length;
  const h = healthyVoters(f).length;
  return hasQuorum(f)
    ? { type: t, status: "True", reason: "QuorumHealthy", message: `${h} of ${v} voting members healthy` }
    : { type: t, status: "False", reason: "QuorumLost", message: `${h} of ${v} voting members healthy; a majority is needed` };
}

function degraded(f: Facts, a: Action): Want {
  const t = "Degraded" as const;
  if (a.kind === "blocked") return { type: t, status: "True", reason: a.reason, message: a.message };
  const sick = (f.members ?? []).filter((m) => !m.healthy);
  if (sick.length > 0) {
    return { type: t, status: "True", reason: "UnhealthyMembers", message: `unhealthy: ${sick.map((m) => m.name || m.id).join(", ")}` };
  }
  if (f.members === undefined && f.bootstrapped) return { type: t, status: "True", reason: "NoMemberAnswers", message: "no member answers" };
  if (f.members === undefined) return { type: t, status: "False", reason: "Bootstrapping", message: "no member has started yet" };
  return { type: t, status: "False", reason: "Healthy", message: "all members healthy" };
}

export function conditions(f: Facts, a: Action, prev: readonly Condition[] | undefined, generation: number, nowIso: string): Condition[] {
  return [available(f), progressing(f, a), degraded(f, a)].map((w) => {
    const old = prev?.find((c) => c.type === w.type);
    const lastTransitionTime = old !== undefined && old.status === w.status ? old.lastTransitionTime : nowIso;
    return { type: w.type, status: w.status, observedGeneration: generation, lastTransitionTime, reason: w.reason, message: w.message };
  });
}

export function phase(f: Facts, a: Action): Phase {
  if (!f.bootstrapped && f.members === undefined) return "Creating";
  if (a.kind === "blocked" || !hasQuorum(f)) return "Degraded";
  const reason = a.kind === "addLearner" || a.kind === "remove" ? a.reason
    : a.kind === "setReplicas" || a.kind === "wait" ? a.reason
      : a.kind === "wipe" ? "ReplacingMember"
        : a.kind === "moveLeader" ? "ScalingIn"
          : a.kind === "promote" ? "PromotingLearner" : "";
  if (reason === "ReplacingMember") return "Healing";
  if (reason !== "" || (f.members ?? []).length !== f.size) return "Scaling";
  return "Running";
}
