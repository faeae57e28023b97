// One reconcile pass for one EtcdCluster: level-triggered (it looks only at what exists now,
// never at which event woke it), idempotent (running it twice in a row changes nothing the
// second time), and it makes at most one membership change. Phases:
//
//   fetch ── apply spec children ── gather (StatefulSet, pods, volumes, etcd membership, health)
//     ── bookkeeping (initial-cluster ConfigMap, volume stamps, volume policy)
//     ── decide (checks.ts: bootstrap | finish an interrupted step | one membership step)
//     ── act ── status, written once
//
// Crash boundaries: every action is ordered so that stopping the operator between two of its
// calls leaves facts from which checks.ts picks the rest of the step on the next pass (see the
// checks' comments): MemberAdd before the StatefulSet grows; MemberRemove before it shrinks;
// a stale volume is wiped before its ordinal is re-added.

import type { Logger } from "pino";
import { effectiveSize } from "./api.js";
import type { EtcdCluster, EtcdClusterStatus, MemberStatus as StatusMember } from "./api.js";
import { ANNOTATION_MEMBER_ID } from "./api.js";
import { decide, holdersToStamp, nextUnhealthySince, volumesToDelete, volumesToGrow } from "./checks.js";
import type { Action, Facts, HolderFact, MemberFact, PodFact } from "./checks.js";
import { conditions, phase } from "./conditions.js";
import {
  clientURL, clusterConfigMap, inputHashOf, names, ordinalOf, peerURL, selectorString, specChildren, statefulSet,
} from "./desired.js";
import type { BuildOptions, KObject } from "./desired.js";
import type { Kube } from "./kube.js";
import type { EtcdMember, Membership } from "./membership.js";

export interface ReconcilerDeps {
  readonly kube: Kube;
  /** A membership client for these client URLs (closed after the pass). */
  readonly membership: (endpoints: string[]) => Membership;
  readonly log: Logger;
  readonly now: () => number;
  readonly build: BuildOptions;
  /** Called for every membership change, e.g. to count it in /metrics. */
  readonly onMembershipChange?: (kind: string) => void;
}

export interface PassResult {
  readonly action: Action;
  readonly check: string;
  /** When to look again even if nothing changes in Kubernetes (etcd health is not watched). */
  readonly requeueAfterMs: number;
}

interface Gathered {
  readonly sts: KObject | undefined;
  readonly pods: KObject[];
  readonly pvcs: KObject[];
  readonly etcdMembers: EtcdMember[] | undefined;
  readonly facts: Facts;
  readonly clusterId: string | undefined;
  readonly leaderName: string | undefined;
}

const STS = ["apps/v1", "StatefulSet"] as const;
const POD = ["v1", "Pod"] as const;
const PVC = ["v1", "PersistentVolumeClaim"] as const;

export class Reconciler {
  constructor(private readonly d: ReconcilerDeps) {}

  async pass(namespace: string, name: string): Promise<PassResult | undefined> {
    const cluster = await this.d.kube.getCluster(namespace, name);
    if (cluster === undefined || cluster.metadata.deletionTimestamp !== undefined) return undefined; // children go by owner references
    const log = this.d.log.child({ cluster: `${namespace}/${name}`, generation: cluster.metadata.generation });

    for (const obj of specChildren(cluster)) await this.applyIfChanged(obj);

    const mem = this.d.membership(this.endpoints(cluster));
    try {
      const g = await this.gather(cluster, mem);
      await this.bookkeeping(cluster, g, log);
      const { check, action } = decide(g.facts);
      log.info({ check, action: summary(action) }, "decided");
      await this.act(cluster, g, action, mem, log);
      await this.writeStatus(cluster, g, action);
      const busy = action.kind !== "none" && action.kind !== "blocked";
      return { action, check, requeueAfterMs: busy ? 2_000 : 15_000 };
    } finally {
      mem.close();
    }
  }

  /** Client URLs of every ordinal that may run: 0 .. max(size, StatefulSet replicas, known members). */
  private endpoints(c: EtcdCluster): string[] {
    const n = Math.max(effectiveSize(c.spec), c.status?.members?.length ?? 0, 1) + 1;
    return Array.from({ length: n }, (_, k) => clientURL(c, k));
  }

  private async applyIfChanged(obj: KObject): Promise<void> {
    const [apiVersion, kind] = [obj.apiVersion, obj.kind];
    const live = await this.d.kube.get(apiVersion, kind, obj.metadata.namespace ?? "", obj.metadata.name);
    if (live !== undefined && inputHashOf(live) === inputHashOf(obj)) return;
    await this.d.kube.apply(obj);
  }

  private async gather(c: EtcdCluster, mem: Membership): Promise<Gathered> {
    const ns = c.metadata.namespace;
    const sel = selectorString(c);
    const persistent = c.spec.storage.emptyDir === undefined;
    const [sts, pods, pvcs] = await Promise.all([
      this.d.kube.get(...STS, ns, names.statefulSet(c)),
      this.d.kube.list(...POD, ns, sel),
      persistent ? this.d.kube.list(...PVC, ns, sel) : Promise.resolve([]),
    ]);
    const stsReplicas = sts === undefined ? undefined : Number((sts["spec"] as { replicas?: number } | undefined)?.replicas ?? 0);

    let etcdMembers: EtcdMember[] | undefined;
    try {
      etcdMembers = sts === undefined && c.status?.clusterID === undefined ? undefined : await mem.list();
    } catch {
      etcdMembers = undefined;
    }

    const nowIso = new Date(this.d.now()).toISOString();
    let leaderId: string | undefined;
    let clusterId: string | undefined;
    const members: MemberFact[] = [];
    for (const m of etcdMembers ?? []) {
      const ordinal = ordinalOf(c, m.peerURLs[0] ?? "");
      const url = ordinal !== undefined ? clientURL(c, ordinal) : m.clientURLs[0];
      let healthy = false;
      let raftIndex = 0n;
      if (url !== undefined && m.name !== "") {
        try {
          const s = await mem.status(url);
          // Answering Status is not serving: a voter must also serve a linearizable read.
          if (!m.isLearner) await mem.health(url);
          healthy = true;
          raftIndex = s.raftIndex;
          clusterId = s.clusterId;
          if (!m.isLearner && s.leaderId !== "0000000000000000") leaderId = s.leaderId;
        } catch {
          healthy = false;
        }
      }
      const prev = c.status?.members?.find((p) => p.id === m.id)?.unhealthySince;
      members.push({
        id: m.id, name: m.name, peerURL: m.peerURLs[0] ?? "", ordinal, isLearner: m.isLearner, healthy, raftIndex,
        unhealthySince: nextUnhealthySince(prev, healthy, nowIso),
      });
    }

    const podFacts: PodFact[] = [];
    for (const p of pods) {
      const ordinal = ordinalOf(c, p.metadata.name);
      if (ordinal === undefined) continue;
      podFacts.push({ ordinal, ready: podReady(p), deleting: p.metadata["deletionTimestamp"] !== undefined });
    }
    const holderObjs = persistent ? pvcs : pods;
    const holders: HolderFact[] = [];
    for (const h of holderObjs) {
      const base = persistent ? h.metadata.name.replace(/^data-/, "") : h.metadata.name;
      const ordinal = ordinalOf(c, base);
      if (ordinal === undefined) continue;
      const requested = persistent ? (h["spec"] as { resources?: { requests?: Record<string, unknown> } } | undefined)?.resources?.requests?.["storage"] : undefined;
      holders.push({
        ordinal, memberId: h.metadata.annotations?.[ANNOTATION_MEMBER_ID], deleting: h.metadata["deletionTimestamp"] !== undefined,
        requested: requested === undefined ? undefined : String(requested),
      });
    }

    const facts: Facts = {
      size: effectiveSize(c.spec),
      bootstrapped: c.status?.clusterID !== undefined,
      stsReplicas,
      members: etcdMembers === undefined ? undefined : members,
      leaderId,
      holders,
      pods: podFacts,
      persistent,
      onScaleIn: c.spec.storage.onScaleIn ?? "Delete",
      storageSize: c.spec.storage.size === undefined ? undefined : String(c.spec.storage.size),
      replaceUnhealthyAfterMs: (c.spec.replaceUnhealthyAfterSeconds ?? 300) * 1000,
      now: this.d.now(),
    };
    const leaderName = members.find((m) => m.id === leaderId)?.name;
    return { sts, pods, pvcs, etcdMembers, facts, clusterId: clusterId ?? c.status?.clusterID, leaderName };
  }

  /** Upkeep that is not a membership change and is safe on every pass. */
  private async bookkeeping(c: EtcdCluster, g: Gathered, log: Logger): Promise<void> {
    if (g.etcdMembers !== undefined) await this.applyIfChanged(this.configMapFor(c, g.etcdMembers));
    const persistent = g.facts.persistent;
    for (const s of holdersToStamp(g.facts)) {
      const name = persistent ? names.pvc(c, s.ordinal) : names.pod(c, s.ordinal);
      await this.d.kube.apply({
        apiVersion: "v1", kind: persistent ? "PersistentVolumeClaim" : "Pod",
        metadata: { name, namespace: c.metadata.namespace, annotations: { [ANNOTATION_MEMBER_ID]: s.memberId } },
      });
      log.info({ holder: name, member: s.memberId }, "stamped volume with its member");
    }
    for (const k of volumesToGrow(g.facts)) {
      // The StatefulSet's claim template is immutable, so growth goes to each PVC. A storage
      // class without expansion refuses; that is reported, and the pass goes on.
      const name = names.pvc(c, k);
      const size = String(c.spec.storage.size);
      try {
        await this.d.kube.apply({ apiVersion: "v1", kind: "PersistentVolumeClaim", metadata: { name, namespace: c.metadata.namespace }, spec: { resources: { requests: { storage: size } } } });
        await this.event(c, "Normal", "VolumeResized", `asked for ${size} on ${name}`, log);
      } catch (err) {
        await this.event(c, "Warning", "VolumeResizeRefused", `${name} cannot grow to ${size}: ${errorText(err)}`, log);
      }
    }
    for (const k of volumesToDelete(g.facts)) {
      const pvc = g.pvcs.find((p) => p.metadata.name === names.pvc(c, k));
      await this.d.kube.delete(...PVC, c.metadata.namespace, names.pvc(c, k), pvc?.metadata["uid"] as string | undefined);
      await this.event(c, "Normal", "VolumeDeleted", `deleted volume ${names.pvc(c, k)} of removed ordinal ${k} (onScaleIn: Delete)`, log);
    }
  }

  /** Events are for people; failing to record one never fails the pass. */
  private async event(c: EtcdCluster, type: "Normal" | "Warning", reason: string, message: string, log: Logger): Promise<void> {
    try {
      await this.d.kube.event(c, type, reason, message);
    } catch (err) {
      log.warn({ reason, err: err instanceof Error ? err.message : String(err) }, "could not record event");
    }
  }

  private configMapFor(c: EtcdCluster, members: readonly EtcdMember[]): KObject {
    const list = members.flatMap((m) => {
      const o = ordinalOf(c, m.peerURLs[0] ?? "");
      return o === undefined ? [] : [{ name: names.pod(c, o), peerURL: m.peerURLs[0] ?? peerURL(c, o) }];
    });
    return clusterConfigMap(c, list, "existing");
  }

  private async applyStatefulSet(c: EtcdCluster, replicas: number): Promise<void> {
    const live = await this.d.kube.get(...STS, c.metadata.namespace, names.statefulSet(c));
    const claims = (live?.["spec"] as { volumeClaimTemplates?: unknown[] } | undefined)?.volumeClaimTemplates;
    const desired = statefulSet(c, replicas, this.d.build);
    if (live !== undefined && inputHashOf(live) === inputHashOf(desired)) return;
    if (live !== undefined) {
      // Claim templates cannot change after creation: keep the live ones (the hash still
      // covers the spec, so a grown storage.size is one write, not one per pass).
      desired["spec"] = { ...(desired["spec"] as Record<string, unknown>), volumeClaimTemplates: stripClaimStatus(claims ?? []) };
    }
    await this.d.kube.apply(desired);
  }

  private async act(c: EtcdCluster, g: Gathered, a: Action, mem: Membership, log: Logger): Promise<void> {
    const ns = c.metadata.namespace;
    const current = g.facts.stsReplicas;
    const changed = async (kind: string, reason: string, message: string): Promise<void> => {
      log.info({ kind, reason }, message);
      this.d.onMembershipChange?.(kind);
      await this.event(c, "Normal", reason, message, log);
    };
    switch (a.kind) {
      case "bootstrap":
        await this.applyIfChanged(clusterConfigMap(c, [{ name: names.pod(c, 0), peerURL: peerURL(c, 0) }], "new"));
        await this.applyStatefulSet(c, 1);
        await changed("bootstrap", "Bootstrapping", `starting seed member ${names.pod(c, 0)}`);
        return;
      case "addLearner": {
        const added = await mem.add(peerURL(c, a.ordinal), true);
        await changed("add", "MemberAdded", `added ${names.pod(c, a.ordinal)} as learner ${added.id} (${a.reason})`);
        const after = await mem.list();
        await this.applyIfChanged(this.configMapFor(c, after));
        await this.applyStatefulSet(c, Math.max(a.replicasAfter, current ?? 0));
        if (a.reason === "ReplacingMember") {
          // Restart the pod now instead of after its crash-loop back-off.
          await this.d.kube.delete(...POD, ns, names.pod(c, a.ordinal));
        }
        return;
      }
      case "promote":
        await mem.promote(a.member.id);
        await changed("promote", "MemberPromoted", `promoted learner ${a.member.name || a.member.id} to voting member`);
        return;
      case "moveLeader": {
        const url = a.from.ordinal !== undefined ? clientURL(c, a.from.ordinal) : undefined;
        if (url === undefined) throw new Error(`leader ${a.from.id} has no known client URL`);
        await mem.moveLeader(url, a.to.id);
        await changed("moveLeader", "LeaderMoved", `moved leadership from ${a.from.name} to ${a.to.name} before removing ${a.from.name}`);
        return;
      }
      case "remove":
        await mem.remove(a.member.id);
        await changed("remove", "MemberRemoved", `removed member ${a.member.name || a.member.id} (${a.reason})`);
        if (a.replicasAfter !== undefined) await this.applyStatefulSet(c, a.replicasAfter);
        return;
      case "setReplicas":
        await this.applyStatefulSet(c, a.replicas);
        return;
      case "wipe": {
        const pvcName = names.pvc(c, a.ordinal);
        if (g.facts.persistent) await this.d.kube.delete(...PVC, ns, pvcName);
        await this.d.kube.delete(...POD, ns, names.pod(c, a.ordinal));
        await changed("wipe", "MemberDataWiped", `${a.message}; deleted ${g.facts.persistent ? `${pvcName} and ` : ""}pod ${names.pod(c, a.ordinal)}`);
        return;
      }
      case "blocked":
        if (a.reason === "StatefulSetMissing") {
          const known = (c.status?.members ?? []).map((m) => ordinalOf(c, m.peerURL ?? m.name)).filter((o): o is number => o !== undefined);
          await this.applyStatefulSet(c, known.length > 0 ? Math.max(...known) + 1 : 1);
        }
        await this.event(c, "Warning", a.reason, a.message, log);
        return;
      case "wait":
      case "none":
        // Keep the pod template current (e.g. resources changed) at the same replica count.
        if (current !== undefined) await this.applyStatefulSet(c, current);
        return;
    }
  }

  private async writeStatus(c: EtcdCluster, g: Gathered, a: Action): Promise<void> {
    const f = g.facts;
    const nowIso = new Date(this.d.now()).toISOString();
    const members: StatusMember[] = (f.members ?? []).map((m) => {
      const em = g.etcdMembers?.find((x) => x.id === m.id);
      const s: StatusMember = { id: m.id, name: m.name || (m.ordinal !== undefined ? names.pod(c, m.ordinal) : ""), peerURL: m.peerURL, isLearner: m.isLearner, healthy: m.healthy };
      if (em !== undefined && em.clientURLs.length > 0) s.clientURLs = [...em.clientURLs];
      if (m.unhealthySince !== undefined) s.unhealthySince = m.unhealthySince;
      return s;
    });
    const status: EtcdClusterStatus = {
      observedGeneration: c.metadata.generation ?? 0,
      phase: phase(f, a),
      selector: selectorString(c),
      readyMembers: (f.members ?? []).filter((m) => m.healthy && !m.isLearner).length,
      members,
      conditions: conditions(f, a, c.status?.conditions, c.metadata.generation ?? 0, nowIso),
    };
    if (g.clusterId !== undefined) status.clusterID = g.clusterId;
    if (g.leaderName !== undefined) status.leader = g.leaderName;
    const version = runningVersion(g.pods);
    if (version !== undefined) status.currentVersion = version;
    await this.d.kube.applyStatus(c, status);
  }
}

/** Claim templates as the server returns them, minus what the server adds (status). */
function stripClaimStatus(claims: unknown[]): unknown[] {
  return claims.map((t) => {
    const { status: _status, ...rest } = t as Record<string, unknown>;
    return rest;
  });
}

function errorText(err: unknown): string {
  const body = (err as { body?: unknown } | null)?.body;
  if (typeof body === "string") {
    try { return (JSON.parse(body) as { message?: string }).message ?? body; } catch { return body; }
  }
  return err instanceof Error ? err.message : String(err);
}

function podReady(p: KObject): boolean {
  const conds = (p["status"] as { conditions?: { type: string; status: string }[] } | undefined)?.conditions ?? [];
  return conds.some((x) => x.type === "Ready" && x.status === "True");
}

/** The image tag most member pods run. */
function runningVersion(pods: KObject[]): string | undefined {
  const counts = new Map<string, number>();
  for (const p of pods) {
    const image = (p["spec"] as { containers?: { name: string; image?: string }[] } | undefined)?.containers?.find((x) => x.name === "etcd")?.image;
    const tag = image?.split(":").pop();
    if (tag !== undefined) counts.set(tag, (counts.get(tag) ?? 0) + 1);
  }
  return [...counts.entries()].sort((a, b) => b[1] - a[1])[0]?.[0];
}

function summary(a: Action): Record<string, unknown> {
  switch (a.kind) {
    case "promote": return { kind: a.kind, member: a.member.id };
    case "remove": return { kind: a.kind, member: a.member.id, reason: a.reason };
    case "moveLeader": return { kind: a.kind, from: a.from.id, to: a.to.id };
    default: return { ...a };
  }
}
