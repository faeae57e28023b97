// The operator as a process (what the image's "operator" target runs), against a real
// kube-apiserver: watches wake it, it bootstraps a new EtcdCluster without being told, serves
// /metrics and /healthz, logs JSON, and of two replicas exactly one leads; when the leader is
// stopped (SIGTERM, by PID) it hands the Lease over and the other takes over.

import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, openSync, closeSync, readFileSync } from "node:fs";
import { join } from "node:path";
import * as k8s from "@kubernetes/client-node";
import * as yaml from "js-yaml";
import { freePort, repoRoot } from "../harness/index.js";
import { startControlPlane, toolPaths } from "./controlplane.js";
import type { ControlPlane } from "./controlplane.js";
import { eventually as pollUntil } from "../harness/launch.js";

if (!existsSync(toolPaths().kubeApiserver)) throw new Error(`kube-apiserver not found at ${toolPaths().kubeApiserver}: run \`npm run tools\``);

const eventually = <T>(what: string, fn: () => Promise<T | undefined>, timeoutMs = 60_000): Promise<T> => pollUntil(what, fn, timeoutMs, 250);

interface Op { child: ChildProcess; port: number; logFile: string }

describe("the operator process on a real kube-apiserver", () => {
  let cp: ControlPlane;
  let kc: k8s.KubeConfig;
  const ops: Op[] = [];

  async function startOperator(identity: string): Promise<Op> {
    const port = await freePort();
    const logFile = join(cp.dir, `operator-${identity}.log`);
    const out = openSync(logFile, "a");
    const child = spawn(process.execPath, [join(repoRoot, "dist", "operator", "src", "main.js"),
      "--kubeconfig", cp.kubeconfig, "--http-address", `127.0.0.1:${port}`, "--lease-namespace", "etcd-ts-system",
      "--member-image-repository", "registry.test/etcd-ts"], { stdio: ["ignore", out, out], env: { ...process.env, POD_NAME: identity } });
    closeSync(out);
    const op = { child, port, logFile };
    ops.push(op);
    await eventually(`${identity} /healthz`, async () => ((await fetch(`http://127.0.0.1:${port}/healthz`)).status === 200 ? true : undefined));
    return op;
  }
  const metric = async (op: Op, name: string): Promise<string> => {
    const text = await (await fetch(`http://127.0.0.1:${op.port}/metrics`)).text();
    return text.split("\n").filter((l) => l.startsWith(name)).join("\n");
  };
  const holder = async (): Promise<string | undefined> => {
    try {
      return (await kc.makeApiClient(k8s.CoordinationV1Api).readNamespacedLease({ name: "etcd-ts-operator", namespace: "etcd-ts-system" })).spec?.holderIdentity;
    } catch { return undefined; }
  };

  before(async () => {
    cp = await startControlPlane();
    kc = new k8s.KubeConfig();
    kc.loadFromFile(cp.kubeconfig);
    // loadYaml maps x-kubernetes-* and friends onto the typed model (a plain object would lose them).
    const crd = k8s.loadYaml<k8s.V1CustomResourceDefinition>(readFileSync(join(repoRoot, "crds", "etcdcluster.yaml"), "utf8"));
    const ext = kc.makeApiClient(k8s.ApiextensionsV1Api);
    await ext.createCustomResourceDefinition({ body: crd });
    await eventually("CRD established", async () => {
      const c = await ext.readCustomResourceDefinition({ name: "etcdclusters.etcd.etcd-ts.io" });
      return c.status?.conditions?.some((x) => x.type === "Established" && x.status === "True") ? true : undefined;
    });
    const core = kc.makeApiClient(k8s.CoreV1Api);
    for (const name of ["apps", "etcd-ts-system"]) await core.createNamespace({ body: { metadata: { name } } });
  });
  after(async () => {
    for (const op of ops) {
      if (op.child.pid !== undefined && op.child.exitCode === null && op.child.signalCode === null) {
        const gone = new Promise((r) => op.child.once("exit", r));
        process.kill(op.child.pid, "SIGKILL");
        await gone;
      }
    }
    await cp?.stop();
  });

  test("a new EtcdCluster is bootstrapped through the watch; metrics and JSON logs say so", async () => {
    const a = await startOperator("op-a");
    await eventually("op-a leading", async () => ((await holder()) === "op-a" ? true : undefined));
    const demo = yaml.load(readFileSync(join(repoRoot, "examples", "demo.yaml"), "utf8")) as object;
    await kc.makeApiClient(k8s.CustomObjectsApi).createNamespacedCustomObject({ group: "etcd.etcd-ts.io", version: "v1alpha1", namespace: "apps", plural: "etcdclusters", body: demo });
    const sts = await eventually("StatefulSet demo", async () => {
      try { return await kc.makeApiClient(k8s.AppsV1Api).readNamespacedStatefulSet({ name: "demo", namespace: "apps" }); } catch { return undefined; }
    });
    assert.equal(sts.spec?.replicas, 1);
    assert.equal(sts.spec?.template.spec?.containers[0]?.image, "registry.test/etcd-ts:0.1.0");
    // The StatefulSet is written during the pass; the counters move when the pass ends.
    await eventually("bootstrap pass counted", async () =>
      /etcdts_operator_reconcile_total\{result="bootstrap"\} 1/.test(await metric(a, "etcdts_operator_reconcile_total")) ? true : undefined);
    assert.match(await metric(a, "etcdts_operator_reconcile_total"), /etcdts_operator_reconcile_total\{result="bootstrap"\} 1/);
    assert.match(await metric(a, "etcdts_operator_membership_changes_total"), /\{kind="bootstrap"\} 1/);
    assert.equal(await metric(a, "etcdts_operator_leader "), "etcdts_operator_leader 1");
    const lines = readFileSync(a.logFile, "utf8").split("\n").filter((l) => l !== "");
    assert.ok(lines.length > 0);
    for (const l of lines) JSON.parse(l); // every line is JSON (pino)
    assert.ok(lines.some((l) => (JSON.parse(l) as { msg?: string }).msg === "starting seed member demo-0"));
  });

  test("a second replica waits; SIGTERM to the leader hands the Lease over", async () => {
    const a = ops[0];
    assert.ok(a);
    const b = await startOperator("op-b");
    assert.equal(await metric(b, "etcdts_operator_leader "), "etcdts_operator_leader 0");
    assert.equal(await holder(), "op-a");
    const exited = new Promise<number | null>((r) => a.child.once("exit", (code) => r(code)));
    assert.ok(a.child.pid !== undefined);
    process.kill(a.child.pid, "SIGTERM");
    assert.equal(await exited, 0);
    await eventually("op-b leading", async () => ((await holder()) === "op-b" ? true : undefined));
    await eventually("op-b leader metric", async () => ((await metric(b, "etcdts_operator_leader ")) === "etcdts_operator_leader 1" ? true : undefined));
  });
});
