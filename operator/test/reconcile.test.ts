// The reconcile pass's ordering and crash boundaries, with an in-memory API server and an
// in-memory etcd membership (the real ones are exercised in test/kube/apiserver.test.ts and
// operator/test/membership.test.ts). What is checked here is the pass itself: which writes
// happen in which order, that a pass interrupted between MemberAdd and the StatefulSet is
// finished by the next, that status is written exactly once per pass, and that a pass over
// a settled cluster writes nothing.

import { describe, test } from "node:test";
import assert from "node:assert/strict";
import pino from "pino";
import { API_VERSION } from "../src/api.js";
import type { EtcdCluster, EtcdClusterStatus } from "../src/api.js";
import { clientURL, ordinalOf } from "../src/desired.js";
import type { KObject } from "../src/desired.js";
import type { Kube } from "../src/kube.js";
import type { EtcdMember, Membership, MemberStatus } from "../src/membership.js";
import { Reconciler } from "../src/reconcile.js";

class FakeKube implements Kube {
  readonly objects = new Map<string, KObject>();
  readonly log: string[] = [];
  cluster: EtcdCluster;
  failNextApplyOf: string | undefined;
  private rv = 1;
  constructor(c: EtcdCluster) { this.cluster = c; }
  private key(kind: string, ns: string, name: string) { return `${kind}/${ns}/${name}`; }
  async getCluster() { return structuredClone(this.cluster); }
  async get(_a: string, kind: string, ns: string, name: string) { const o = this.objects.get(this.key(kind, ns, name)); return o && structuredClone(o); }
  async list(_a: string, kind: string, ns: string, selector: string) {
    const want = selector.split(",").map((kv) => kv.split("="));
    return [...this.objects.values()].filter((o) => o.kind === kind && o.metadata.namespace === ns && want.every(([k, v]) => o.metadata.labels?.[k ?? ""] === v)).map((o) => structuredClone(o));
  }
  async apply(obj: KObject) {
    const k = this.key(obj.kind, obj.metadata.namespace ?? "", obj.metadata.name);
    if (this.failNextApplyOf === obj.kind) { this.failNextApplyOf = undefined; throw new Error(`injected: apply ${obj.kind} failed`); }
    this.log.push(`apply ${obj.kind}/${obj.metadata.name}`);
    const old = this.objects.get(k);
    const merged = { ...old, ...structuredClone(obj), metadata: { ...old?.metadata, ...structuredClone(obj.metadata), resourceVersion: String(this.rv++) } } as KObject;
    this.objects.set(k, merged);
    return merged;
  }
  async applyStatus(_c: EtcdCluster, status: EtcdClusterStatus) { this.log.push("status"); this.cluster = { ...this.cluster, status: structuredClone(status) }; }
  async delete(_a: string, kind: string, ns: string, name: string) { this.log.push(`delete ${kind}/${name}`); this.objects.delete(this.key(kind, ns, name)); }
  async event(_c: EtcdCluster, _t: string, reason: string) { this.log.push(`event ${reason}`); }
}

/** etcd membership in memory; a member answers Status when `running` holds its ordinal. */
class FakeEtcd implements Membership {
  members: EtcdMember[] = [];
  readonly running = new Set<number>();
  /** Ordinals that answer Status but cannot serve a read (e.g. restarted over a wiped volume). */
  readonly broken = new Set<number>();
  leader = "";
  readonly log: string[] = [];
  private next = 0x100n;
  constructor(private readonly c: EtcdCluster) {}
  start(ordinal: number): void {
    this.running.add(ordinal);
    this.members = this.members.map((m) => (ordinalOf(this.c, m.peerURLs[0] ?? "") === ordinal ? { ...m, name: `${this.c.metadata.name}-${ordinal}` } : m));
  }
  seed(): void {
    this.members = [{ id: "0000000000000001", name: "demo-0", peerURLs: ["http://demo-0.demo-members.ns.svc:2380"], clientURLs: [], isLearner: false }];
    this.leader = "0000000000000001";
    this.running.add(0);
  }
  async list() { if (this.running.size === 0) throw new Error("unavailable"); return structuredClone(this.members); }
  async status(url: string): Promise<MemberStatus> {
    const m = this.members.find((x) => clientURL(this.c, ordinalOf(this.c, x.peerURLs[0] ?? "") ?? -1) === url);
    const o = m && ordinalOf(this.c, m.peerURLs[0] ?? "");
    if (m === undefined || o === undefined || !this.running.has(o)) throw new Error("unavailable");
    return { memberId: m.id, clusterId: "00000000000000cc", leaderId: this.leader, raftIndex: 100n, version: "3.6.0", isLearner: m.isLearner };
  }
  async health(url: string): Promise<void> {
    await this.status(url);
    const m = this.members.find((x) => clientURL(this.c, ordinalOf(this.c, x.peerURLs[0] ?? "") ?? -1) === url);
    if (this.broken.has(ordinalOf(this.c, m?.peerURLs[0] ?? "") ?? -1)) throw new Error("context deadline exceeded");
  }
  async add(peerURL: string, learner: boolean) {
    const m = { id: (this.next++).toString(16).padStart(16, "0"), name: "", peerURLs: [peerURL], clientURLs: [], isLearner: learner };
    this.members.push(m);
    this.log.push(`add ${peerURL}`);
    return m;
  }
  async promote(id: string) { this.log.push(`promote ${id}`); this.members = this.members.map((m) => (m.id === id ? { ...m, isLearner: false } : m)); }
  async remove(id: string) { this.log.push(`remove ${id}`); this.members = this.members.filter((m) => m.id !== id); }
  async moveLeader(_u: string, to: string) { this.log.push(`moveLeader ${to}`); this.leader = to; }
  close() {}
}

function setup(size: number) {
  const c: EtcdCluster = {
    apiVersion: API_VERSION, kind: "EtcdCluster",
    metadata: { name: "demo", namespace: "ns", uid: "u-1", generation: 1 },
    spec: { size, version: "0.1.0", storage: { size: "1Gi" } },
  };
  const kube = new FakeKube(c);
  const etcd = new FakeEtcd(c);
  const clock = { ms: Date.parse("2026-12-01T00:00:00Z") };
  const r = new Reconciler({ kube, membership: () => etcd, log: pino({ level: "silent" }), now: () => clock.ms, build: { defaultRepository: "r" } });
  const replicas = () => (kube.objects.get("StatefulSet/ns/demo")?.["spec"] as { replicas: number } | undefined)?.replicas;
  const configMap = () => (kube.objects.get("ConfigMap/ns/demo-cluster")?.["data"] as Record<string, string> | undefined);
  return { kube, etcd, r, replicas, configMap, clock };
}

describe("reconcile pass", () => {
  test("bootstrap: ConfigMap (new, seed only) before the StatefulSet of one; one status write", async () => {
    const { kube, r, replicas, configMap } = setup(3);
    const res = await r.pass("ns", "demo");
    assert.equal(res?.action.kind, "bootstrap");
    assert.equal(replicas(), 1);
    assert.equal(configMap()?.["ETCD_INITIAL_CLUSTER_STATE"], "new");
    assert.equal(configMap()?.["ETCD_INITIAL_CLUSTER"], "demo-0=http://demo-0.demo-members.ns.svc:2380");
    const order = kube.log.filter((l) => /ConfigMap|StatefulSet/.test(l));
    assert.deepEqual(order, ["apply ConfigMap/demo-cluster", "apply StatefulSet/demo"]);
    assert.equal(kube.log.filter((l) => l === "status").length, 1);
    assert.equal(kube.log[kube.log.length - 1], "status", "status is the last write");
  });

  test("scale out: MemberAdd (learner), then the ConfigMap with it, then the StatefulSet grows", async () => {
    const { kube, etcd, r, replicas, configMap } = setup(3);
    await r.pass("ns", "demo");
    etcd.seed();
    kube.log.length = 0;
    const res = await r.pass("ns", "demo");
    assert.equal(res?.action.kind, "addLearner");
    assert.deepEqual(etcd.log, ["add http://demo-1.demo-members.ns.svc:2380"]);
    assert.equal(etcd.members[1]?.isLearner, true);
    assert.equal(replicas(), 2);
    assert.equal(configMap()?.["ETCD_INITIAL_CLUSTER_STATE"], "existing");
    assert.equal(configMap()?.["ETCD_INITIAL_CLUSTER"], "demo-0=http://demo-0.demo-members.ns.svc:2380,demo-1=http://demo-1.demo-members.ns.svc:2380");
    assert.equal(kube.cluster.status?.clusterID, "00000000000000cc");
    assert.equal(kube.log.filter((l) => l === "status").length, 1);
  });

  test("killed between MemberAdd and the StatefulSet: the next pass grows it and adds nobody else", async () => {
    const { kube, etcd, r, replicas } = setup(3);
    await r.pass("ns", "demo");
    etcd.seed();
    kube.failNextApplyOf = "StatefulSet";
    await assert.rejects(r.pass("ns", "demo"), /injected/);
    assert.equal(etcd.members.length, 2, "the member was added");
    assert.equal(replicas(), 1, "the pod was not");
    const res = await r.pass("ns", "demo");
    assert.equal(res?.action.kind, "setReplicas");
    assert.equal(replicas(), 2);
    assert.deepEqual(etcd.log, ["add http://demo-1.demo-members.ns.svc:2380"], "no second MemberAdd");
  });

  test("learner started and caught up → promoted; then the next ordinal; a settled cluster writes nothing", async () => {
    const { kube, etcd, r, replicas } = setup(3);
    await r.pass("ns", "demo");
    etcd.seed();
    await r.pass("ns", "demo"); // add demo-1
    etcd.start(1);
    assert.equal((await r.pass("ns", "demo"))?.action.kind, "promote");
    assert.equal((await r.pass("ns", "demo"))?.action.kind, "addLearner"); // demo-2
    etcd.start(2);
    assert.equal((await r.pass("ns", "demo"))?.action.kind, "promote");
    assert.equal(replicas(), 3);
    const settle = await r.pass("ns", "demo");
    assert.equal(settle?.action.kind, "none");
    assert.equal(kube.cluster.status?.phase, "Running");
    assert.equal(kube.cluster.status?.readyMembers, 3);
    kube.log.length = 0;
    await r.pass("ns", "demo");
    assert.deepEqual(kube.log, ["status"], "only the status is written (and it is unchanged)");
  });

  test("a voter that answers Status but cannot serve a read is unhealthy, and replaced after the timeout", async () => {
    const { kube, etcd, r, clock } = setup(3);
    await r.pass("ns", "demo");
    etcd.seed();
    for (const k of [1, 2]) {
      await r.pass("ns", "demo"); // add
      etcd.start(k);
      await r.pass("ns", "demo"); // promote
    }
    assert.equal((await r.pass("ns", "demo"))?.action.kind, "none");
    etcd.broken.add(2);
    assert.equal((await r.pass("ns", "demo"))?.action.kind, "none", "not before replaceUnhealthyAfterSeconds");
    const st = kube.cluster.status?.members?.find((m) => m.name === "demo-2");
    assert.equal(st?.healthy, false);
    assert.equal(kube.cluster.status?.readyMembers, 2);
    clock.ms += 301_000;
    const res = await r.pass("ns", "demo");
    assert.equal(res?.action.kind, "remove");
    assert.equal(res?.action.kind === "remove" ? res.action.member.id : undefined, st?.id);
  });

  test("scale in from the leader: leadership moves first; MemberRemove happens before the StatefulSet shrinks", async () => {
    const { kube, etcd, r, replicas } = setup(2);
    await r.pass("ns", "demo");
    etcd.seed();
    await r.pass("ns", "demo");
    etcd.start(1);
    await r.pass("ns", "demo"); // promote
    etcd.leader = etcd.members[1]?.id ?? "";
    kube.cluster = { ...kube.cluster, spec: { ...kube.cluster.spec, size: 1 }, metadata: { ...kube.cluster.metadata, generation: 2 } };
    assert.equal((await r.pass("ns", "demo"))?.action.kind, "moveLeader");
    assert.equal(etcd.leader, "0000000000000001");
    kube.log.length = 0;
    etcd.log.length = 0;
    assert.equal((await r.pass("ns", "demo"))?.action.kind, "remove");
    assert.deepEqual(etcd.log, [`remove ${"100".padStart(16, "0")}`]);
    assert.equal(replicas(), 1);
    assert.equal(kube.cluster.status?.conditions?.[0]?.observedGeneration, 2);
  });

  test("a grown storage.size is asked of each PVC; a refusal is a Warning event, not a failed pass", async () => {
    const { kube, etcd, r } = setup(1);
    await r.pass("ns", "demo");
    etcd.seed();
    kube.objects.set("PersistentVolumeClaim/ns/data-demo-0", {
      apiVersion: "v1", kind: "PersistentVolumeClaim",
      metadata: { name: "data-demo-0", namespace: "ns", annotations: { "etcd.etcd-ts.io/member-id": "0000000000000001" }, labels: { "app.kubernetes.io/name": "etcd-ts", "app.kubernetes.io/instance": "demo", "etcd.etcd-ts.io/cluster": "demo" } },
      spec: { resources: { requests: { storage: "1Gi" } } },
    });
    kube.cluster = { ...kube.cluster, spec: { ...kube.cluster.spec, storage: { size: "2Gi" } } };
    kube.failNextApplyOf = "PersistentVolumeClaim";
    kube.log.length = 0;
    await r.pass("ns", "demo");
    assert.ok(kube.log.includes("event VolumeResizeRefused"), kube.log.join("\n"));
    kube.log.length = 0;
    await r.pass("ns", "demo");
    assert.ok(kube.log.includes("apply PersistentVolumeClaim/data-demo-0") && kube.log.includes("event VolumeResized"), kube.log.join("\n"));
    const spec = kube.objects.get("PersistentVolumeClaim/ns/data-demo-0")?.["spec"] as { resources: { requests: { storage: string } } };
    assert.equal(spec.resources.requests.storage, "2Gi");
    kube.log.length = 0;
    await r.pass("ns", "demo");
    assert.ok(!kube.log.some((l) => l.startsWith("apply PersistentVolumeClaim")), "no second resize once it asks for enough");
  });
});
