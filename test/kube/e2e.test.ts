// Issue 5's operator scenario, end to end on the bed (process kubelet, real kube-apiserver and
// kube-controller-manager, etcd-ts under them):
//
//   helm install the chart → operator pods Ready (chart RBAC, in-cluster credentials)
//   → kubectl apply examples/demo.yaml → Available, 3 healthy voters
//   → kubectl scale --replicas=5 → 5 healthy voters → --replicas=3 → 3 members
//   → delete a member pod: it returns as the same member ID with its data
//   → wipe a member's volume (its PV's hostPath on this machine) and kill its pod: the operator
//     replaces it (old ID removed, a new ID for the same ordinal, 3 healthy voters)
//   → kubectl scale --replicas=4 and SIGKILL the leading operator's process once MemberAdd has
//     happened and before the new pod is Ready: the other replica finishes (4 healthy voters).
//
// A writer on the host puts sequential keys throughout to the members' pod IPs and records
// each acknowledged put; at the end every acknowledged key is read back from every member.
// Membership and health are checked through etcd's own API (MemberList, /health on each pod
// IP), not only through the EtcdCluster status. Each phase's duration is reported with
// t.diagnostic; there are no timing assertions, only bounded waits.
// Needs root and `npm run tools`; fails, never skips, without them.

import { after, before, describe, test } from "node:test";
import type { TestContext } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import * as k8s from "@kubernetes/client-node";
import { repoRoot } from "../harness/index.js";
import { bedDown, bedUp } from "./bed.js";
import type { Bed } from "./bed.js";
import { toolPaths } from "./controlplane.js";
import { eventually as pollUntil } from "../harness/launch.js";

const NS = "apps";
const CLUSTER = "demo";
const OPERATOR_NS = "etcd-ts-system";

const eventually = <T>(what: string, fn: () => Promise<T | undefined>, timeoutMs: number, everyMs = 1000): Promise<T> => pollUntil(what, fn, timeoutMs, everyMs);

const isReady = (p: k8s.V1Pod): boolean => p.status?.conditions?.some((c) => c.type === "Ready" && c.status === "True") === true;
const pidOf = (p: k8s.V1Pod): number => Number(/^bed:\/\/(\d+)$/.exec(p.status?.containerStatuses?.[0]?.containerID ?? "")?.[1]);

const b64 = (s: string): string => Buffer.from(s).toString("base64");
const unb64 = (s: string): string => Buffer.from(s, "base64").toString();

async function post(url: string, body: unknown, timeoutMs = 3000): Promise<Record<string, unknown>> {
  const res = await fetch(url, { method: "POST", body: JSON.stringify(body), signal: AbortSignal.timeout(timeoutMs) });
  const text = await res.text();
  if (res.status !== 200) throw new Error(`POST ${url}: HTTP ${res.status} ${text}`);
  return JSON.parse(text) as Record<string, unknown>;
}

interface ApiMember { ID: string; name?: string; peerURLs?: string[]; isLearner?: boolean }

describe("issue 5: the operator scenario on the bed", () => {
  const dir = mkdtempSync(join(tmpdir(), "etcdts-e2e-"));
  process.on("exit", () => { bedDown(dir); });
  let bed: Bed;
  let kc: k8s.KubeConfig;
  let core: k8s.CoreV1Api;
  let custom: k8s.CustomObjectsApi;

  const kubectl = (...args: string[]): string => {
    const r = spawnSync(toolPaths().kubectl, ["--kubeconfig", bed.kubeconfig, ...args], { encoding: "utf8", timeout: 120_000 });
    assert.equal(r.status, 0, `kubectl ${args.join(" ")}: ${r.stderr}${r.error ? String(r.error) : ""}`);
    return r.stdout;
  };

  /** Member pods of the cluster by name (not being deleted). */
  async function memberPods(): Promise<Map<string, k8s.V1Pod>> {
    const l = await core.listNamespacedPod({ namespace: NS, labelSelector: `app.kubernetes.io/instance=${CLUSTER}` });
    return new Map(l.items.filter((p) => !p.metadata?.deletionTimestamp).map((p) => [p.metadata?.name ?? "", p]));
  }

  /** Pod IPs of ready member pods (the writer's and reader's endpoints). */
  async function readyIPs(): Promise<string[]> {
    return [...(await memberPods()).values()].filter(isReady).map((p) => p.status?.podIP ?? "").filter((ip) => ip !== "");
  }

  /** MemberList through etcd's API, asked of any ready member. */
  async function memberList(): Promise<ApiMember[]> {
    let last: unknown = new Error("no ready member pod");
    for (const ip of await readyIPs()) {
      try {
        const r = await post(`http://${ip}:2379/v3/cluster/member/list`, { linearizable: true });
        return (r["members"] as ApiMember[] | undefined) ?? [];
      } catch (err) { last = err; }
    }
    throw last;
  }

  /**
   * The membership when it is `n` healthy voters: every member started (has a name), none a
   * learner, and each answers /health at its pod's IP. Undefined otherwise (for eventually).
   */
  async function healthyVoters(n: number): Promise<Map<string, string> | undefined> {
    const members = await memberList();
    if (members.length !== n || members.some((m) => m.isLearner === true || !m.name)) return undefined;
    const pods = await memberPods();
    for (const m of members) {
      const ip = pods.get(m.name ?? "")?.status?.podIP;
      if (ip === undefined) return undefined;
      const res = await fetch(`http://${ip}:2379/health`, { signal: AbortSignal.timeout(3000) });
      const body = (await res.json()) as { health?: string };
      if (res.status !== 200 || body.health !== "true") return undefined;
    }
    return new Map(members.map((m) => [m.name ?? "", m.ID]));
  }

  /** The host directory behind a claim: its PV's hostPath (the bed's kubelet) or local path. */
  async function volumePath(claim: string): Promise<string> {
    const pvc = await core.readNamespacedPersistentVolumeClaim({ name: claim, namespace: NS });
    const pv = await core.readPersistentVolume({ name: pvc.spec?.volumeName ?? "" });
    const path = pv.spec?.hostPath?.path ?? pv.spec?.local?.path;
    assert.ok(path !== undefined, `PV ${pv.metadata?.name} of ${claim} has a hostPath or local path`);
    return path;
  }

  async function clusterStatus(): Promise<{ readyMembers?: number; conditions?: { type: string; status: string }[] }> {
    const c = await custom.getNamespacedCustomObject({ group: "etcd.etcd-ts.io", version: "v1alpha1", namespace: NS, plural: "etcdclusters", name: CLUSTER }) as
      { status?: { readyMembers?: number; conditions?: { type: string; status: string }[] } };
    return c.status ?? {};
  }

  // --- the writer ------------------------------------------------------------------------
  const acked: string[] = [];
  let failedPuts = 0;
  let writing = false;
  let writer: Promise<void> | undefined;
  async function writeLoop(): Promise<void> {
    let ips: string[] = [];
    let refreshed = 0;
    let turn = 0;
    for (let seq = 0; writing; seq++) {
      if (Date.now() - refreshed > 2000 || ips.length === 0) {
        try { ips = await readyIPs(); } catch { /* keep the old list */ }
        refreshed = Date.now();
      }
      const key = `e2e/${String(seq).padStart(8, "0")}`;
      let ok = false;
      for (let i = 0; i < ips.length && !ok; i++) {
        const ip = ips[(turn + i) % ips.length];
        try {
          await post(`http://${ip}:2379/v3/kv/put`, { key: b64(key), value: b64(`v${seq}`) }, 5000);
          ok = true;
        } catch { /* the next member */ }
      }
      turn++;
      if (ok) acked.push(key);
      else { failedPuts++; await sleep(200); }
      await sleep(25);
    }
  }

  const phase = async (t: TestContext, name: string, fn: () => Promise<void>): Promise<void> => {
    const t0 = Date.now();
    await fn();
    t.diagnostic(`${name}: ${((Date.now() - t0) / 1000).toFixed(1)} s (acknowledged writes so far: ${acked.length}, failed: ${failedPuts})`);
  };

  before(async () => {
    bed = await bedUp({ dir, say: (l) => console.log(`# ${l}`) });
    kc = new k8s.KubeConfig();
    kc.loadFromFile(bed.kubeconfig);
    core = kc.makeApiClient(k8s.CoreV1Api);
    custom = kc.makeApiClient(k8s.CustomObjectsApi);
  });
  after(async () => {
    writing = false;
    await writer;
    bedDown(dir);
    rmSync(dir, { recursive: true, force: true });
  });

  test("helm install: the operator runs as pods, Ready", async (t) => {
    await phase(t, "helm install → 2 operator pods Ready", async () => {
      const r = spawnSync(toolPaths().helm, ["install", "etcd-ts-operator", join(repoRoot, "charts", "etcd-ts-operator"),
        "-n", OPERATOR_NS, "--create-namespace", "--kubeconfig", bed.kubeconfig], { encoding: "utf8", timeout: 180_000 });
      assert.equal(r.status, 0, `helm install: ${r.stderr}${r.error ? String(r.error) : ""}`);
      await eventually("2 operator pods Ready", async () => {
        const l = await core.listNamespacedPod({ namespace: OPERATOR_NS, labelSelector: "app.kubernetes.io/name=etcd-ts-operator" });
        return l.items.filter((p) => isReady(p) && !p.metadata?.deletionTimestamp).length === 2 ? true : undefined;
      }, 180_000);
    });
  });

  test("kubectl apply examples/demo.yaml: Available with 3 healthy voters", async (t) => {
    await phase(t, "apply → Available, 3 healthy voters", async () => {
      await core.createNamespace({ body: { metadata: { name: NS } } });
      kubectl("apply", "-n", NS, "-f", join(repoRoot, "examples", "demo.yaml"));
      await eventually("EtcdCluster demo Available with readyMembers 3", async () => {
        const s = await clusterStatus();
        return s.readyMembers === 3 && s.conditions?.some((x) => x.type === "Available" && x.status === "True") ? true : undefined;
      }, 300_000);
      await eventually("3 healthy voting members in MemberList", () => healthyVoters(3), 120_000);
    });
    writing = true;
    writer = writeLoop();
    await eventually("the writer's first acknowledged put", async () => (acked.length > 0 ? true : undefined), 60_000);
  });

  test("kubectl scale --replicas=5: 5 healthy voting members", async (t) => {
    await phase(t, "scale 3 → 5", async () => {
      kubectl("scale", "-n", NS, `etcdcluster/${CLUSTER}`, "--replicas=5");
      const m = await eventually("5 healthy voting members (MemberList: 5, no learner; /health on each)", () => healthyVoters(5), 600_000);
      assert.deepEqual([...m.keys()].sort(), ["demo-0", "demo-1", "demo-2", "demo-3", "demo-4"]);
    });
  });

  test("kubectl scale --replicas=3: back to 3 members", async (t) => {
    await phase(t, "scale 5 → 3", async () => {
      kubectl("scale", "-n", NS, `etcdcluster/${CLUSTER}`, "--replicas=3");
      const m = await eventually("3 healthy voting members", () => healthyVoters(3), 600_000);
      assert.deepEqual([...m.keys()].sort(), ["demo-0", "demo-1", "demo-2"]);
      await eventually("pods demo-3, demo-4 gone", async () => {
        const pods = await memberPods();
        return !pods.has("demo-3") && !pods.has("demo-4") ? true : undefined;
      }, 120_000);
    });
  });

  test("a deleted member pod returns as the same member with its data", async (t) => {
    await phase(t, "delete pod demo-1 → same member back", async () => {
      const before = await eventually("3 healthy voters", () => healthyVoters(3), 60_000);
      const id = before.get("demo-1");
      assert.ok(id !== undefined);
      const oldPod = (await memberPods()).get("demo-1");
      const oldUid = oldPod?.metadata?.uid;
      // A key it holds now, read back from it alone after the restart.
      const mark = `e2e-mark/${Date.now()}`;
      await post(`http://${oldPod?.status?.podIP}:2379/v3/kv/put`, { key: b64(mark), value: b64("before-restart") });
      const walDir = join(await volumePath("data-demo-1"), "data", "member", "wal");
      const walBefore = readdirSync(walDir).sort();
      assert.ok(walBefore.length > 0, `${walDir} holds demo-1's WAL`);
      await core.deleteNamespacedPod({ name: "demo-1", namespace: NS });
      const back = await eventually("demo-1 recreated and Ready", async () => {
        const p = (await memberPods()).get("demo-1");
        return p !== undefined && p.metadata?.uid !== oldUid && isReady(p) ? p : undefined;
      }, 180_000);
      const after = await eventually("3 healthy voters after the restart", () => healthyVoters(3), 120_000);
      assert.equal(after.get("demo-1"), id, "demo-1 came back as the same member ID");
      assert.ok(existsSync(join(walDir, walBefore[walBefore.length - 1]!)), `demo-1 restarted on its own volume: its WAL file ${walBefore[walBefore.length - 1]} from before the restart is still there`);
      const r = await post(`http://${back.status?.podIP}:2379/v3/kv/range`, { key: b64(mark), serializable: true });
      const kvs = (r["kvs"] as { value: string }[] | undefined) ?? [];
      assert.equal(kvs.length === 1 ? unb64(kvs[0]!.value) : undefined, "before-restart", "demo-1 serves the key written before its restart from its own data");
    });
  });

  test("a member whose volume is wiped is replaced by a new member", async (t) => {
    await phase(t, "wipe demo-2's volume → replaced", async () => {
      // A member with an empty data dir cannot rejoin under its old ID; the operator replaces
      // it once it has been unhealthy for replaceUnhealthyAfterSeconds (shortened to the CRD's minimum).
      kubectl("patch", "-n", NS, `etcdcluster/${CLUSTER}`, "--type=merge", "-p", JSON.stringify({ spec: { replaceUnhealthyAfterSeconds: 30 } }));
      const before = await eventually("3 healthy voters", () => healthyVoters(3), 60_000);
      const oldId = before.get("demo-2");
      assert.ok(oldId !== undefined);
      const path = await volumePath("data-demo-2");
      const entries = readdirSync(path);
      assert.ok(entries.length > 0, `${path} holds the member's data`);
      for (const e of entries) rmSync(join(path, e), { recursive: true, force: true });
      await core.deleteNamespacedPod({ name: "demo-2", namespace: NS, gracePeriodSeconds: 0 });
      const after = await eventually("demo-2 replaced: old ID gone, a new ID, 3 healthy voters", async () => {
        const m = await healthyVoters(3);
        return m !== undefined && m.has("demo-2") && m.get("demo-2") !== oldId && ![...m.values()].includes(oldId) ? m : undefined;
      }, 600_000);
      t.diagnostic(`demo-2: member ${oldId} replaced by ${after.get("demo-2")}`);
    });
  });

  test("the operator killed in the middle of a scale-out: the next one finishes the step", async (t) => {
    await phase(t, "scale 3 → 4 with the leading operator SIGKILLed after MemberAdd", async () => {
      await eventually("3 healthy voters", () => healthyVoters(3), 60_000);
      kubectl("scale", "-n", NS, `etcdcluster/${CLUSTER}`, "--replicas=4");
      // MemberAdd happened: the membership has a 4th member (a learner, not started yet or not Ready).
      await eventually("MemberAdd of the 4th member", async () => ((await memberList()).length === 4 ? true : undefined), 180_000, 200);
      const [pods, sts] = await Promise.all([memberPods(), kc.makeApiClient(k8s.AppsV1Api).readNamespacedStatefulSet({ name: CLUSTER, namespace: NS })]);
      const pod3 = pods.get("demo-3");
      const pod3Ready = pod3 !== undefined && isReady(pod3);
      const lease = await kc.makeApiClient(k8s.CoordinationV1Api).readNamespacedLease({ name: "etcd-ts-operator", namespace: OPERATOR_NS });
      const holder = lease.spec?.holderIdentity ?? "";
      const op = await core.readNamespacedPod({ name: holder, namespace: OPERATOR_NS });
      const pid = pidOf(op);
      assert.ok(Number.isInteger(pid) && pid > 0, `operator pod ${holder} has a process`);
      process.kill(pid, "SIGKILL");
      t.diagnostic(`SIGKILLed the leading operator ${holder} (pid ${pid}) after MemberAdd; StatefulSet replicas ${sts.spec?.replicas}; pod demo-3 ${pod3 === undefined ? "not created yet" : pod3Ready ? "already Ready" : "not Ready yet"}`);
      assert.ok(!pod3Ready, "the kill came before the new member's pod was Ready");
      const m = await eventually("4 healthy voting members after the operator's death", () => healthyVoters(4), 600_000);
      assert.deepEqual([...m.keys()].sort(), ["demo-0", "demo-1", "demo-2", "demo-3"]);
      // The next operator is either the other replica (after the 15 s lease runs out) or the
      // killed pod's restarted container, which has the same identity (its pod name) and so
      // renews the lease at once, as client-go's leader election does.
      const newHolder = (await kc.makeApiClient(k8s.CoordinationV1Api).readNamespacedLease({ name: "etcd-ts-operator", namespace: OPERATOR_NS })).spec?.holderIdentity;
      const restarts = (await core.readNamespacedPod({ name: holder, namespace: OPERATOR_NS })).status?.containerStatuses?.[0]?.restartCount;
      t.diagnostic(`leader Lease now held by ${newHolder}${newHolder === holder ? ` (the killed pod's restarted container; restartCount ${restarts})` : " (the other replica)"}`);
    });
  });

  test("every acknowledged write is readable from every member", async (t) => {
    writing = false;
    await writer;
    t.diagnostic(`writer: ${acked.length} acknowledged puts, ${failedPuts} puts failed on every member`);
    assert.ok(acked.length > 0);
    await phase(t, "read back every acknowledged key from each member", async () => {
      // /health answers before the kubelet's readiness probe (every 5 s) marks the newest pod Ready.
      const ips = await eventually("4 member pods Ready", async () => { const l = await readyIPs(); return l.length === 4 ? l : undefined; }, 60_000);
      for (const ip of ips) {
        await eventually(`every acknowledged key on ${ip}`, async () => {
          const r = await post(`http://${ip}:2379/v3/kv/range`, { key: b64("e2e/"), range_end: b64("e2e0"), keys_only: true, serializable: true }, 10_000);
          const have = new Set(((r["kvs"] as { key: string }[] | undefined) ?? []).map((kv) => unb64(kv.key)));
          const missing = acked.filter((k) => !have.has(k));
          if (missing.length > 0) throw new Error(`${missing.length} acknowledged keys missing on ${ip}, e.g. ${missing.slice(0, 5).join(", ")}`);
          return true;
        }, 60_000);
      }
    });
  });
});
