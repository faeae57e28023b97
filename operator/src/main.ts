#!/usr/bin/env node
// The etcd-ts operator: `node dist/operator/src/main.js [flags]` (npm run operator).
//
//   --kubeconfig PATH              default: $KUBECONFIG, ~/.kube/config, else in-cluster
//   --namespace NS                 watch one namespace (default: all)
//   --member-image-repository R    image repository for members (default ghcr.io/etcd-ts/etcd-ts)
//   --http-address HOST:PORT       /metrics and /healthz (default 0.0.0.0:8080)
//   --leader-elect=false           run without the Lease (one replica only!)
//   --lease-namespace NS           default $POD_NAMESPACE, else "default"
//   --lease-name NAME              default etcd-ts-operator
//   --once NS/NAME                 one reconcile pass of that cluster, print the decision, exit

import { hostname } from "node:os";
import { parseArgs } from "node:util";
import * as k8s from "@kubernetes/client-node";
import pino from "pino";
import { GROUP, LABEL_CLUSTER, LABEL_MANAGED_BY, PLURAL, VERSION } from "./api.js";
import { OperatorMetrics, startHttp } from "./http.js";
import { ClientNodeKube } from "./kube.js";
import { LeaderElector } from "./leader.js";
import { GrpcMembership } from "./membership.js";
import { WorkQueue } from "./queue.js";
import { Reconciler } from "./reconcile.js";
import { ListWatch } from "./watch.js";

const { values } = parseArgs({
  options: {
    "kubeconfig": { type: "string" },
    "namespace": { type: "string" },
    "member-image-repository": { type: "string", default: "ghcr.io/etcd-ts/etcd-ts" },
    "http-address": { type: "string", default: "0.0.0.0:8080" },
    "leader-elect": { type: "string", default: "true" },
    "lease-namespace": { type: "string" },
    "lease-name": { type: "string", default: "etcd-ts-operator" },
    "once": { type: "string" },
    "log-level": { type: "string", default: "info" },
  },
  strict: true,
});

const log = pino({ level: values["log-level"], base: { component: "operator" } });
const identity = process.env["POD_NAME"] ?? `${hostname()}-${process.pid}`;

const kc = new k8s.KubeConfig();
if (values.kubeconfig !== undefined) kc.loadFromFile(values.kubeconfig);
else kc.loadFromDefault();

const metrics = new OperatorMetrics();
const kube = new ClientNodeKube(kc, identity);
const reconciler = new Reconciler({
  kube,
  membership: (eps) => new GrpcMembership(eps, 3000),
  log,
  now: Date.now,
  build: { defaultRepository: values["member-image-repository"] },
  onMembershipChange: (kind) => metrics.membershipChanges.inc({ kind }),
});

async function reconcileKey(key: string): Promise<{ requeueAfterMs?: number } | undefined> {
  const [ns, name] = key.split("/");
  if (ns === undefined || name === undefined) return undefined;
  const end = metrics.passSeconds.startTimer();
  try {
    const r = await reconciler.pass(ns, name);
    metrics.passes.inc({ result: r === undefined ? "gone" : r.action.kind });
    return r === undefined ? undefined : { requeueAfterMs: r.requeueAfterMs };
  } catch (err) {
    metrics.passes.inc({ result: "error" });
    throw err;
  } finally {
    end();
  }
}

if (values.once !== undefined) {
  const [ns, name] = values.once.split("/");
  if (ns === undefined || name === undefined) throw new Error("--once takes NAMESPACE/NAME");
  const r = await reconciler.pass(ns, name);
  process.stdout.write(`${JSON.stringify({ check: r?.check, action: r?.action.kind ?? "gone" })}\n`);
  process.exit(0);
}

let lastProgress = Date.now();
const queue = new WorkQueue(async (key) => {
  const r = await reconcileKey(key);
  lastProgress = Date.now();
  return r;
}, (key, err) => {
  lastProgress = Date.now();
  log.error({ cluster: key, err: err instanceof Error ? err.message : String(err) }, "reconcile failed; backing off");
});

const [host, portText] = (() => {
  const i = values["http-address"].lastIndexOf(":");
  return [values["http-address"].slice(0, i), values["http-address"].slice(i + 1)];
})();
const server = await startHttp(Number(portText), host || "0.0.0.0", metrics, () => (Date.now() - lastProgress > 10 * 60_000 ? "no reconcile finished for 10 minutes" : ""));

const ns = values.namespace;
const custom = kc.makeApiClient(k8s.CustomObjectsApi);
const core = kc.makeApiClient(k8s.CoreV1Api);
const keyOf = (o: { metadata?: { name?: string; namespace?: string } }) =>
  o.metadata?.name !== undefined && o.metadata.namespace !== undefined ? `${o.metadata.namespace}/${o.metadata.name}` : undefined;
const ownerKeyOf = (o: { metadata?: { namespace?: string; labels?: Record<string, string> } }) => {
  const c = o.metadata?.labels?.[LABEL_CLUSTER];
  return c !== undefined && o.metadata?.namespace !== undefined ? `${o.metadata.namespace}/${c}` : undefined;
};
const podSelector = `${LABEL_MANAGED_BY}=etcd-ts-operator`;

const watches = [
  new ListWatch(kc, {
    name: "etcdclusters",
    path: ns === undefined ? `/apis/${GROUP}/${VERSION}/${PLURAL}` : `/apis/${GROUP}/${VERSION}/namespaces/${ns}/${PLURAL}`,
    list: async () => {
      const r = (ns === undefined
        ? await custom.listClusterCustomObject({ group: GROUP, version: VERSION, plural: PLURAL })
        : await custom.listNamespacedCustomObject({ group: GROUP, version: VERSION, namespace: ns, plural: PLURAL })) as { items: { metadata?: { name?: string; namespace?: string } }[]; metadata?: { resourceVersion?: string } };
      return { keys: r.items.map(keyOf).filter((k): k is string => k !== undefined), resourceVersion: r.metadata?.resourceVersion ?? "" };
    },
    keyOf,
  }, (k) => queue.add(k), log),
  new ListWatch(kc, {
    name: "pods",
    path: ns === undefined ? "/api/v1/pods" : `/api/v1/namespaces/${ns}/pods`,
    labelSelector: podSelector,
    list: async () => {
      const r = ns === undefined
        ? await core.listPodForAllNamespaces({ labelSelector: podSelector })
        : await core.listNamespacedPod({ namespace: ns, labelSelector: podSelector });
      return { keys: r.items.map(ownerKeyOf).filter((k): k is string => k !== undefined), resourceVersion: r.metadata?.resourceVersion ?? "" };
    },
    keyOf: ownerKeyOf,
  }, (k) => queue.add(k), log),
];

async function shutdown(code: number): Promise<never> {
  for (const w of watches) w.stop();
  queue.stop();
  await elector?.release();
  server.close();
  process.exit(code);
}
process.once("SIGTERM", () => void shutdown(0));
process.once("SIGINT", () => void shutdown(0));

let elector: LeaderElector | undefined;
function startWork(): void {
  metrics.leader.set(1);
  log.info({ identity }, "leading; starting watches and the work loop");
  for (const w of watches) void w.run();
  void queue.run();
}

if (values["leader-elect"] === "false") {
  startWork();
} else {
  elector = new LeaderElector(kc, {
    namespace: values["lease-namespace"] ?? process.env["POD_NAMESPACE"] ?? "default",
    name: values["lease-name"],
    identity,
    leaseDurationSeconds: 15,
    renewDeadlineMs: 10_000,
    retryPeriodMs: 2_000,
  });
  log.info({ identity }, "waiting for the leader lease");
  void elector.run(startWork, () => {
    metrics.leader.set(0);
    log.error({ identity }, "lost the leader lease; exiting so a fresh process can compete again");
    void shutdown(1);
  });
}
