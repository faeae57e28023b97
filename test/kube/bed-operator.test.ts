// The chart on the bed: `helm install charts/etcd-ts-operator` runs the operator as pods (the
// chart's image and command, mapped to this checkout by the bed's kubelet) with the chart's
// ServiceAccount and RBAC, authenticating with the in-cluster credentials the kubelet mounts
// (no kubeconfig in the process). One replica takes the leader Lease, both become Ready, and the
// README's sample EtcdCluster becomes Available with its 3 members Ready.
// The full operator scenario (scale, replace, kill the operator mid-step) is issue 5's e2e test.
// Needs root and `npm run tools`; fails, never skips, without them.

import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as k8s from "@kubernetes/client-node";
import { repoRoot } from "../harness/index.js";
import { bedDown, bedUp } from "./bed.js";
import type { Bed } from "./bed.js";
import { toolPaths } from "./controlplane.js";
import { eventually as pollUntil } from "../harness/launch.js";

const eventually = <T>(what: string, fn: () => Promise<T | undefined>, timeoutMs = 300_000): Promise<T> => pollUntil(what, fn, timeoutMs, 1000);

const isReady = (p: k8s.V1Pod): boolean => p.status?.conditions?.some((c) => c.type === "Ready" && c.status === "True") === true;

describe("the operator chart on the bed", () => {
  const dir = mkdtempSync(join(tmpdir(), "etcdts-bedop-"));
  process.on("exit", () => { bedDown(dir); });
  let bed: Bed;
  let kc: k8s.KubeConfig;

  before(async () => {
    bed = await bedUp({ dir, say: (l) => console.log(`# ${l}`) });
    kc = new k8s.KubeConfig();
    kc.loadFromFile(bed.kubeconfig);
  });
  after(() => {
    bedDown(dir);
    rmSync(dir, { recursive: true, force: true });
  });

  test("helm install: the operator pods run with in-cluster credentials, one leads, both Ready", async () => {
    const r = spawnSync(toolPaths().helm, ["install", "etcd-ts-operator", join(repoRoot, "charts", "etcd-ts-operator"),
      "-n", "etcd-ts-system", "--create-namespace", "--kubeconfig", bed.kubeconfig], { encoding: "utf8", timeout: 180_000 });
    assert.equal(r.status, 0, `helm install: ${r.stderr}${r.error ? String(r.error) : ""}`);
    const core = kc.makeApiClient(k8s.CoreV1Api);
    const pods = await eventually("2 operator pods Ready", async () => {
      const l = await core.listNamespacedPod({ namespace: "etcd-ts-system", labelSelector: "app.kubernetes.io/name=etcd-ts-operator" });
      const ready = l.items.filter((p) => isReady(p) && !p.metadata?.deletionTimestamp);
      return ready.length === 2 ? ready : undefined;
    });
    const names = pods.map((p) => p.metadata?.name ?? "");
    const holder = await eventually("the leader Lease", async () => {
      const lease = await kc.makeApiClient(k8s.CoordinationV1Api).readNamespacedLease({ name: "etcd-ts-operator", namespace: "etcd-ts-system" });
      return lease.spec?.holderIdentity;
    });
    assert.ok(names.includes(holder), `lease holder ${holder} is one of ${names.join(", ")}`);
    for (const p of pods) {
      assert.equal(p.spec?.serviceAccountName, "etcd-ts-operator");
      const pid = Number(/^bed:\/\/(\d+)$/.exec(p.status?.containerStatuses?.[0]?.containerID ?? "")?.[1]);
      const env = readFileSync(`/proc/${pid}/environ`, "utf8").split("\0");
      assert.ok(!env.some((e) => e.startsWith("KUBECONFIG=")), "no kubeconfig: the operator found its credentials in the pod");
      assert.ok(env.includes(`KUBERNETES_SERVICE_PORT=${new URL(bed.state.apiserverUrl).port}`));
      assert.match(readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0").slice(0, 2).join(" "), /^node \/app\/dist\/operator\/src\/main\.js$/);
    }
  });

  test("the README's sample EtcdCluster becomes Available with 3 Ready members", async () => {
    const core = kc.makeApiClient(k8s.CoreV1Api);
    await core.createNamespace({ body: { metadata: { name: "apps" } } });
    const r = spawnSync(toolPaths().kubectl, ["--kubeconfig", bed.kubeconfig, "apply", "-n", "apps", "-f", join(repoRoot, "examples", "demo.yaml")], { encoding: "utf8", timeout: 120_000 });
    assert.equal(r.status, 0, r.stderr);
    const custom = kc.makeApiClient(k8s.CustomObjectsApi);
    await eventually("demo Available with 3 ready members", async () => {
      const c = await custom.getNamespacedCustomObject({ group: "etcd.etcd-ts.io", version: "v1alpha1", namespace: "apps", plural: "etcdclusters", name: "demo" }) as
        { status?: { readyMembers?: number; conditions?: { type: string; status: string }[] } };
      return c.status?.readyMembers === 3 && c.status.conditions?.some((x) => x.type === "Available" && x.status === "True") ? true : undefined;
    });
    // The operator counts healthy members itself; the pods' readiness probes follow.
    await eventually("pods demo-0..2 Ready", async () => {
      const l = await core.listNamespacedPod({ namespace: "apps" });
      const ready = l.items.filter(isReady).map((p) => p.metadata?.name).sort();
      return JSON.stringify(ready) === JSON.stringify(["demo-0", "demo-1", "demo-2"]) ? true : undefined;
    });
  });
});
