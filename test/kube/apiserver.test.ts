// The CRD, the chart and one operator pass against a real kube-apiserver (backed by real
// etcd 3.4): what the API server accepts and refuses is the API server's own judgement, and
// the operator runs with the chart's ServiceAccount, so its RBAC is proven sufficient.

import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import * as k8s from "@kubernetes/client-node";
import pino from "pino";
import { repoRoot } from "../harness/index.js";
import { startControlPlane, toolPaths } from "./controlplane.js";
import type { ControlPlane } from "./controlplane.js";
import { ClientNodeKube } from "../../operator/src/kube.js";
import { LeaderElector } from "../../operator/src/leader.js";
import { GrpcMembership } from "../../operator/src/membership.js";
import { Reconciler } from "../../operator/src/reconcile.js";

const tools = toolPaths();
for (const [name, p] of Object.entries(tools)) {
  if (!existsSync(p)) throw new Error(`${name} not found at ${p}: run \`npm run tools\` (the reference toolchain) first`);
}

const crdFile = join(repoRoot, "crds", "etcdcluster.yaml");
const chartDir = join(repoRoot, "charts", "etcd-ts-operator");

function manifest(name: string, spec: Record<string, unknown>, extraMeta: Record<string, unknown> = {}): string {
  return JSON.stringify({ apiVersion: "etcd.etcd-ts.io/v1alpha1", kind: "EtcdCluster", metadata: { name, namespace: "apps", ...extraMeta }, spec });
}
const ok = { version: "0.1.0", storage: { size: "1Gi" } };

function helm(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(tools.helm, args, { encoding: "utf8", timeout: 120_000 });
  return { status: r.status, stdout: r.stdout ?? "", stderr: r.stderr ?? "" };
}

describe("on a real kube-apiserver", () => {
  let cp: ControlPlane;
  const must = (args: string[], input?: string): string => {
    const r = cp.kubectl(args, input);
    assert.equal(r.status, 0, `kubectl ${args.join(" ")} failed: ${r.stderr}`);
    return r.stdout;
  };

  before(async () => {
    cp = await startControlPlane();
    must(["apply", "-f", crdFile]);
    must(["wait", "--for=condition=Established", "--timeout=60s", "crd/etcdclusters.etcd.etcd-ts.io"]);
    must(["create", "namespace", "apps"]);
  });
  after(async () => { await cp?.stop(); });

  test("the chart's CRD is the same file as crds/", () => {
    assert.equal(readFileSync(join(chartDir, "crds", "etcdcluster.yaml"), "utf8"), readFileSync(crdFile, "utf8"));
  });

  test("the README sample is accepted and defaulted", () => {
    must(["apply", "-n", "apps", "-f", join(repoRoot, "examples", "demo.yaml"), "--dry-run=server"]);
    const out = must(["create", "--dry-run=server", "-o", "json", "-f", "-"], manifest("defaults", ok));
    const obj = JSON.parse(out) as { spec: { size: number; storage: { onScaleIn: string }; replaceUnhealthyAfterSeconds: number } };
    assert.equal(obj.spec.size, 3);
    assert.equal(obj.spec.storage.onScaleIn, "Delete");
    assert.equal(obj.spec.replaceUnhealthyAfterSeconds, 300);
  });

  const invalid: [string, string, Record<string, unknown>, Record<string, unknown>?][] = [
    ["size 0", "spec.size: Invalid value: 0: spec.size in body should be greater than or equal to 1", { ...ok, size: 0 }],
    ["size 10", "should be less than or equal to 9", { ...ok, size: 10 }],
    ["no version", "spec.version: Required value", { storage: { size: "1Gi" } }],
    ["version latest", "spec.version must be a semantic version such as 0.1.0 or v0.1.0", { ...ok, version: "latest" }],
    ["storage with size and emptyDir", "spec.storage needs exactly one of size (a volume per member) or emptyDir", { version: "0.1.0", storage: { size: "1Gi", emptyDir: {} } }],
    ["storage with neither", "spec.storage needs exactly one of size", { version: "0.1.0", storage: {} }],
    ["storage size not a quantity", "spec.storage.size must be a positive quantity such as 8Gi", { version: "0.1.0", storage: { size: "lots" } }],
    ["storage size zero", "spec.storage.size must be a positive quantity such as 8Gi", { version: "0.1.0", storage: { size: "0" } }],
    ["etcd option managed by the operator", "spec.etcdOptions cannot set a flag the operator manages", { ...ok, etcdOptions: ["--initial-cluster-state=new"] }],
    ["etcd option without dashes", "each spec.etcdOptions entry must look like --flag or --flag=value", { ...ok, etcdOptions: ["quota-backend-bytes=1"] }],
    ["tls before it exists", "spec.tls is not supported yet", { ...ok, tls: { enabled: true } }],
    ["backup before it exists", "spec.backup is not supported yet", { ...ok, backup: {} }],
    ["selector label override", "cannot set etcd.etcd-ts.io/* or app.kubernetes.io/{name,instance}", { ...ok, podTemplate: { metadata: { labels: { "app.kubernetes.io/instance": "x" } } } }],
    ["onScaleIn unknown", "Unsupported value: \"Keep\"", { version: "0.1.0", storage: { size: "1Gi", onScaleIn: "Keep" } }],
    ["replace too eager", "should be greater than or equal to 30", { ...ok, replaceUnhealthyAfterSeconds: 5 }],
  ];
  for (const [name, message, spec] of invalid) {
    test(`refused: ${name}`, () => {
      const r = cp.kubectl(["create", "--dry-run=server", "-f", "-"], manifest("bad", spec));
      assert.notEqual(r.status, 0, `accepted: ${JSON.stringify(spec)}`);
      assert.ok(r.stderr.includes(message), `expected "${message}" in:\n${r.stderr}`);
    });
  }
  test("refused: a name too long for member pod names", () => {
    const r = cp.kubectl(["create", "--dry-run=server", "-f", "-"], manifest("a".repeat(41), ok));
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /metadata.name: Too long/);
  });

  test("updates: storage grows but never shrinks, never switches kind, class is fixed", () => {
    must(["create", "-f", "-"], manifest("grow", { version: "0.1.0", storage: { size: "2Gi", storageClassName: "fast" } }));
    must(["patch", "-n", "apps", "etcdcluster/grow", "--type=merge", "-p", JSON.stringify({ spec: { storage: { size: "3Gi" } } })]);
    const shrink = cp.kubectl(["patch", "-n", "apps", "etcdcluster/grow", "--type=merge", "-p", JSON.stringify({ spec: { storage: { size: "1024Mi" } } })]);
    assert.notEqual(shrink.status, 0);
    assert.match(shrink.stderr, /spec.storage.size cannot shrink/);
    const sw = cp.kubectl(["patch", "-n", "apps", "etcdcluster/grow", "--type=merge", "-p", JSON.stringify({ spec: { storage: { size: null, emptyDir: {} } } })]);
    assert.notEqual(sw.status, 0);
    assert.match(sw.stderr, /cannot switch between a volume \(size\) and emptyDir/);
    const cls = cp.kubectl(["patch", "-n", "apps", "etcdcluster/grow", "--type=merge", "-p", JSON.stringify({ spec: { storage: { storageClassName: "slow" } } })]);
    assert.notEqual(cls.status, 0);
    assert.match(cls.stderr, /storageClassName cannot change/);
  });

  test("kubectl scale uses the scale subresource, within the same bounds", () => {
    must(["create", "-f", "-"], manifest("scaled", ok));
    must(["scale", "-n", "apps", "etcdcluster/scaled", "--replicas=5"]);
    assert.equal(must(["get", "-n", "apps", "etcdcluster/scaled", "-o", "jsonpath={.spec.size}"]), "5");
    const r = cp.kubectl(["scale", "-n", "apps", "etcdcluster/scaled", "--replicas=12"]);
    assert.notEqual(r.status, 0);
    assert.match(r.stderr, /less than or equal to 9/);
  });

  test("printer columns", () => {
    const out = must(["get", "-n", "apps", "etcdclusters"]);
    assert.match(out.split("\n")[0] ?? "", /^NAME\s+SIZE\s+READY\s+VERSION\s+LEADER\s+PHASE\s+AVAILABLE\s+AGE$/);
  });

  test("helm lint passes, and values.schema.json refuses bad values", () => {
    const lint = helm(["lint", chartDir]);
    assert.equal(lint.status, 0, lint.stdout + lint.stderr);
    for (const [set, msg] of [["replicaCount=0", "replicaCount"], ["logLevel=loud", "logLevel"], ["leaderElection.enabled=false", "leaderElection"]] as const) {
      const r = helm(["template", "x", chartDir, "--set", set]);
      assert.notEqual(r.status, 0, `accepted --set ${set}`);
      assert.match(r.stderr, new RegExp(msg));
    }
  });

  for (const [label, values] of [["cluster-wide", []], ["one namespace", ["--set", "watchNamespace=apps"]]] as const) {
    test(`helm template | kubectl apply --dry-run=server (${label})`, () => {
      must(["create", "namespace", `ops-${label === "cluster-wide" ? "a" : "b"}`]);
      const t = helm(["template", "etcd-ts-operator", chartDir, "--namespace", `ops-${label === "cluster-wide" ? "a" : "b"}`, ...values]);
      assert.equal(t.status, 0, t.stderr);
      must(["apply", "--dry-run=server", "-f", "-"], t.stdout);
    });
  }

  describe("the operator, with the chart's ServiceAccount and RBAC", () => {
    let kc: k8s.KubeConfig;
    before(() => {
      must(["create", "namespace", "etcd-ts-system"]);
      const t = helm(["template", "etcd-ts-operator", chartDir, "--namespace", "etcd-ts-system"]);
      assert.equal(t.status, 0, t.stderr);
      must(["apply", "-f", "-"], t.stdout);
      kc = new k8s.KubeConfig();
      kc.loadFromFile(cp.serviceAccountKubeconfig("etcd-ts-system", "etcd-ts-operator"));
    });

    test("one reconcile pass bootstraps: Services, ConfigMap, PDB, StatefulSet, all owned; a second pass writes nothing", async () => {
      must(["apply", "-n", "apps", "-f", join(repoRoot, "examples", "demo.yaml")]);
      const log = pino({ level: "silent" });
      const reconciler = new Reconciler({
        kube: new ClientNodeKube(kc, "test"),
        membership: (eps) => new GrpcMembership(eps, 1000),
        log, now: Date.now, build: { defaultRepository: "ghcr.io/etcd-ts/etcd-ts" },
      });
      const first = await reconciler.pass("apps", "demo");
      assert.equal(first?.action.kind, "bootstrap");

      const uid = must(["get", "-n", "apps", "etcdcluster/demo", "-o", "jsonpath={.metadata.uid}"]);
      const children = [["service", "demo"], ["service", "demo-members"], ["configmap", "demo-cluster"], ["poddisruptionbudget", "demo"], ["statefulset", "demo"]];
      const versions: string[] = [];
      for (const [kind, name] of children) {
        const o = JSON.parse(must(["get", "-n", "apps", `${kind}/${name}`, "-o", "json", "--show-managed-fields"])) as { metadata: { resourceVersion: string; ownerReferences: { uid: string; controller: boolean }[]; managedFields: { manager: string; operation: string }[] } };
        assert.deepEqual(o.metadata.ownerReferences.map((r) => [r.uid, r.controller]), [[uid, true]], `${kind}/${name} owner`);
        assert.ok(o.metadata.managedFields.some((f) => f.manager === "etcd-ts-operator" && f.operation === "Apply"), `${kind}/${name} applied server-side`);
        versions.push(o.metadata.resourceVersion);
      }
      assert.equal(must(["get", "-n", "apps", "statefulset/demo", "-o", "jsonpath={.spec.replicas}"]), "1", "bootstrap starts one seed");
      assert.equal(must(["get", "-n", "apps", "poddisruptionbudget/demo", "-o", "jsonpath={.spec.minAvailable}"]), "2");
      assert.equal(must(["get", "-n", "apps", "configmap/demo-cluster", "-o", "jsonpath={.data.ETCD_INITIAL_CLUSTER_STATE}"]), "new");
      const status = JSON.parse(must(["get", "-n", "apps", "etcdcluster/demo", "-o", "jsonpath={.status}"])) as { phase: string; observedGeneration: number; selector: string; conditions: { type: string; status: string; observedGeneration: number }[] };
      assert.equal(status.phase, "Creating");
      assert.equal(status.observedGeneration, 1);
      assert.deepEqual(status.conditions.map((c) => [c.type, c.status, c.observedGeneration]), [["Available", "False", 1], ["Progressing", "True", 1], ["Degraded", "False", 1]]);
      assert.match(must(["get", "-n", "apps", "events", "-o", "jsonpath={.items[*].reason}"]), /Bootstrapping/);

      // No pod answers (there is no kubelet here): the next pass waits and changes no child.
      const second = await reconciler.pass("apps", "demo");
      assert.equal(second?.action.kind, "wait");
      for (const [i, [kind, name]] of children.entries()) {
        assert.equal(must(["get", "-n", "apps", `${kind}/${name}`, "-o", "jsonpath={.metadata.resourceVersion}"]), versions[i], `${kind}/${name} rewritten by an idempotent pass`);
      }
    });

    test("leader election: one holder at a time through the chart's Lease permissions", async () => {
      const opts = { namespace: "etcd-ts-system", name: "etcd-ts-operator", leaseDurationSeconds: 15, renewDeadlineMs: 10_000, retryPeriodMs: 2000 };
      const a = new LeaderElector(kc, { ...opts, identity: "a" });
      const b = new LeaderElector(kc, { ...opts, identity: "b" });
      assert.equal(await a.tryOnce(), true);
      assert.equal(await b.tryOnce(), false);
      assert.equal(await a.tryOnce(), true, "the holder renews");
      await a.release();
      assert.equal(await b.tryOnce(), true, "a released lease is taken at once");
      assert.equal(must(["get", "-n", "etcd-ts-system", "lease/etcd-ts-operator", "-o", "jsonpath={.spec.holderIdentity}"]), "b");
    });
  });
});
