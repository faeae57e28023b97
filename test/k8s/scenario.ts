// The kubectl scenario of issue 4 item 4, run against any etcd endpoint list:
// namespaces, thousands of ConfigMaps listed in chunks, a CRD and custom
// objects, watches that must see every change, a conflicting update refused
// by resourceVersion, a Deployment turned into a ReplicaSet and Pods by
// kube-controller-manager, and garbage collection of the children. Each step
// throws with the evidence (kubectl output, kube-apiserver log lines) when the
// cluster does not behave.

import assert from "node:assert/strict";
import { readFileSync, statSync } from "node:fs";
import { setTimeout as sleep } from "node:timers/promises";
import type { ControlPlane } from "./controlplane.js";
import { Kubectl, type Background } from "./kubectl.js";

/** The etcd cluster under kube-apiserver, for the member-kill step. */
export interface Members {
  readonly size: number;
  /** kill -9 of the member that leads now; returns its name. */
  killLeader(): Promise<string>;
  /** Starts that member again on its data dir; waits until it follows the leader and has the leader's revision. */
  restart(name: string): Promise<void>;
}

export interface Step {
  readonly name: string;
  run(): Promise<void>;
}

interface WatchEvent {
  readonly type: string;
  readonly name: string;
  readonly rv: bigint;
}

/** Splits a stream of concatenated JSON values (as `kubectl get -w -o json` prints them); a trailing partial value is left out. */
export function splitJsonStream(text: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let inString = false;
  let escaped = false;
  let start = -1;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (inString) {
      if (escaped) escaped = false;
      else if (c === "\\") escaped = true;
      else if (c === '"') inString = false;
    } else if (c === '"') {
      inString = true;
    } else if (c === "{") {
      if (depth++ === 0) start = i;
    } else if (c === "}") {
      if (--depth === 0) out.push(text.slice(start, i + 1));
    }
  }
  return out;
}

/** Parses `kubectl get -w --output-watch-events -o json` output. */
export function parseWatchEvents(text: string): WatchEvent[] {
  return splitJsonStream(text).map((doc) => {
    const ev = JSON.parse(doc) as { type?: string; object?: { metadata?: { name?: string; resourceVersion?: string } } };
    return { type: ev.type ?? "?", name: ev.object?.metadata?.name ?? "?", rv: BigInt(ev.object?.metadata?.resourceVersion ?? "0") };
  });
}

function configMapDocs(prefix: string, namespace: string, from: number, to: number): string {
  const docs: string[] = [];
  for (let i = from; i < to; i++) {
    docs.push(JSON.stringify({ apiVersion: "v1", kind: "ConfigMap", metadata: { name: `${prefix}-${i}`, namespace, labels: { set: prefix } }, data: { index: String(i), payload: "x".repeat(64) } }));
  }
  return docs.join("\n---\n");
}

async function until<T>(what: string, timeoutMs: number, probe: () => Promise<T | undefined>, evidence: () => string): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`${what}: not reached within ${timeoutMs} ms\n${evidence()}`);
    await sleep(500);
  }
}

/** kube-apiserver log lines that point at the storage layer, for failure messages. */
function storageLog(cp: ControlPlane): string {
  const lines = cp.apiserverLines(/^E\d{4}|etcd|storage|watch ?cache|rpc error/i, 30);
  return lines.length === 0 ? "(no storage-related lines in kube-apiserver's log)" : `kube-apiserver log:\n${lines.join("\n")}`;
}

/** Sum of a Prometheus counter's samples in a /metrics text. */
function counterSum(metrics: string, name: string): number {
  return metrics.split("\n").filter((l) => l.startsWith(`${name}{`)).reduce((s, l) => s + Number(l.split(" ").pop()), 0);
}

export function scenario(cp: ControlPlane, opts: { configMaps: number; members?: Members | undefined }): Step[] {
  // Late: the control plane starts after the steps are defined.
  let kubectl: Kubectl | undefined;
  const k = (): Kubectl => (kubectl ??= new Kubectl(cp.kubeconfig));
  const n = opts.configMaps;
  let cmWatch: Background | undefined;
  let crWatch: Background | undefined;
  const crd = "widgets.example.etcd-ts.io";
  // While a member is down kube-apiserver logs (and counts) errors for the
  // requests that were on it: that window of its log, and those error counts,
  // are left out of the last step's "no storage errors".
  let killWindow: { from: number; to: number; errorsDuring: number } | undefined;
  const members = opts.members;
  // The checks for storage errors start once kube-apiserver is ready: while it
  // starts it closes some stores it opened, cancelling their own lists
  // ("context canceled", counted as request errors); /readyz passing already
  // says start-up storage worked.
  let baseline: { logAt: number; errors: number; startup: string[] } | undefined;

  const expectEvents = async (w: Background, prefix: string, expected: string[], what: string): Promise<void> => {
    const mine = (): WatchEvent[] => parseWatchEvents(w.stdout).filter((e) => e.name.startsWith(`${prefix}-`));
    await until(`${what}: ${expected.length} events`, 60_000, async () => (mine().length >= expected.length ? true : undefined),
      () => `saw ${mine().length}: ${mine().map((e) => `${e.type} ${e.name}`).join(", ")}\nkubectl stderr: ${w.stderr}\n${storageLog(cp)}`);
    const got = mine();
    assert.deepEqual(got.map((e) => `${e.type} ${e.name}`), expected, `${what}: events differ\n${storageLog(cp)}`);
    for (let i = 1; i < got.length; i++) {
      const a = got[i - 1];
      const b = got[i];
      assert.ok(a && b && b.rv > a.rv, `${what}: resourceVersion not increasing at event ${i}: ${a?.rv} then ${b?.rv}`);
    }
  };

  return [
    {
      name: "create namespaces",
      async run() {
        const m = await cp.api("GET", "/metrics");
        baseline = {
          logAt: statSync(cp.apiserverLog).size,
          errors: counterSum(m.body, "etcd_request_errors_total"),
          startup: m.body.split("\n").filter((l) => l.startsWith("etcd_request_errors_total{")),
        };
        await k().ok(["create", "namespace", "apps"]);
        await k().ok(["create", "namespace", "watched"]);
        await k().ok(["create", "namespace", "bulk"]);
        const names = (await k().ok(["get", "namespaces", "-o", "name"])).split("\n");
        for (const ns of ["apps", "watched", "bulk", "default", "kube-system"]) assert.ok(names.includes(`namespace/${ns}`), `namespace ${ns} missing: ${names.join(" ")}`);
      },
    },
    {
      name: "start kubectl get -w on ConfigMaps and on custom objects",
      async run() {
        const crdManifest = {
          apiVersion: "apiextensions.k8s.io/v1", kind: "CustomResourceDefinition",
          metadata: { name: crd },
          spec: {
            group: "example.etcd-ts.io", scope: "Namespaced",
            names: { plural: "widgets", singular: "widget", kind: "Widget" },
            versions: [{ name: "v1", served: true, storage: true, schema: { openAPIV3Schema: { type: "object", properties: { spec: { type: "object", properties: { size: { type: "integer" } } } } } } }],
          },
        };
        await k().ok(["apply", "-f", "-"], JSON.stringify(crdManifest));
        await k().ok(["wait", "--for=condition=Established", `crd/${crd}`, "--timeout=60s"]);
        // The resource must be discoverable before `get -w` can resolve it.
        await until("widgets served", 30_000, async () => ((await k().run(["get", "widgets", "-n", "apps"])).code === 0 ? true : undefined), () => storageLog(cp));
        cmWatch = k().background(["get", "configmaps", "-n", "watched", "--watch", "--output-watch-events", "-o", "json"]);
        crWatch = k().background(["get", "widgets", "-n", "apps", "--watch", "--output-watch-events", "-o", "json"]);
        // A watch is established once its initial list has been served; kube-root-ca.crt appears there (or later).
        await sleep(2000);
        assert.ok(cmWatch.running, `kubectl get -w exited: ${cmWatch.stderr}`);
        assert.ok(crWatch.running, `kubectl get -w exited: ${crWatch.stderr}`);
      },
    },
    {
      name: "ConfigMap changes: 30 created, 10 labelled, 10 deleted; the watch sees each, in order",
      async run() {
        await k().ok(["create", "-f", "-"], configMapDocs("w", "watched", 0, 30));
        await k().ok(["label", "configmap", "-n", "watched", ...Array.from({ length: 10 }, (_, i) => `w-${i}`), "changed=yes"]);
        await k().ok(["delete", "configmap", "-n", "watched", ...Array.from({ length: 10 }, (_, i) => `w-${20 + i}`)]);
        const expected = [
          ...Array.from({ length: 30 }, (_, i) => `ADDED w-${i}`),
          ...Array.from({ length: 10 }, (_, i) => `MODIFIED w-${i}`),
          ...Array.from({ length: 10 }, (_, i) => `DELETED w-${20 + i}`),
        ];
        assert.ok(cmWatch, "watch not started");
        await expectEvents(cmWatch, "w", expected, "configmap watch");
      },
    },
    {
      name: `${n} ConfigMaps created, listed with --chunk-size, counted`,
      async run() {
        const parts = 4;
        const per = Math.ceil(n / parts);
        await Promise.all(Array.from({ length: parts }, (_, p) => k().ok(["create", "-f", "-", "-o", "name"], configMapDocs("bulk", "bulk", p * per, Math.min(n, (p + 1) * per)))));
        const chunk = 250;
        const r = await k().run(["get", "configmaps", "-n", "bulk", `--chunk-size=${chunk}`, "-o", "name", "-v=6"]);
        assert.equal(r.code, 0, r.stderr.slice(-2000));
        const names = r.stdout.split("\n").filter((l) => l.startsWith("configmap/bulk-"));
        assert.equal(names.length, n, `listed ${names.length} bulk ConfigMaps, want ${n}\n${storageLog(cp)}`);
        assert.equal(new Set(names).size, n, "a ConfigMap was listed twice");
        // kubectl -v=6 logs each response: "Response" verb="GET" url=".../configmaps?continue=...&limit=250".
        const pages = r.stderr.split("\n").filter((l) => /"Response" verb="GET" url="[^"]*\/configmaps\?[^"]*limit=250/.test(l)).length;
        assert.ok(pages >= Math.ceil(n / chunk), `kubectl made ${pages} list requests with limit=${chunk}, want at least ${Math.ceil(n / chunk)}:\n${r.stderr.slice(-1500)}`);
      },
    },
    {
      name: "pages of one list share one snapshot (continue tokens, while writes go on)",
      async run() {
        let path = "/api/v1/namespaces/bulk/configmaps?limit=400";
        const rvs = new Set<string>();
        let total = 0;
        let page = 0;
        for (;;) {
          const r = await cp.api("GET", path);
          assert.equal(r.status, 200, r.body.slice(0, 500));
          const list = JSON.parse(r.body) as { metadata: { resourceVersion: string; continue?: string }; items: unknown[] };
          rvs.add(list.metadata.resourceVersion);
          total += list.items.length;
          // A write between pages must not show up in later pages of this list.
          await k().ok(["create", "configmap", `bulk-extra-${page++}`, "-n", "bulk", "--from-literal=a=b"]);
          if (!list.metadata.continue) break;
          path = `/api/v1/namespaces/bulk/configmaps?limit=400&continue=${encodeURIComponent(list.metadata.continue)}`;
        }
        assert.equal(rvs.size, 1, `pages came from different resourceVersions: ${[...rvs].join(", ")}`);
        // n bulk ConfigMaps plus kube-root-ca.crt (published by kube-controller-manager).
        assert.equal(total, n + 1, `paged list saw ${total} ConfigMaps, want ${n + 1}`);
      },
    },
    {
      name: "custom objects: 100 created, listed in chunks, patched, deleted; the watch sees each",
      async run() {
        const docs = Array.from({ length: 100 }, (_, i) => JSON.stringify({ apiVersion: "example.etcd-ts.io/v1", kind: "Widget", metadata: { name: `wd-${i}`, namespace: "apps" }, spec: { size: i } }));
        await k().ok(["create", "-f", "-"], docs.join("\n---\n"));
        const names = (await k().ok(["get", "widgets", "-n", "apps", "--chunk-size=30", "-o", "name"])).split("\n").filter(Boolean);
        assert.equal(names.length, 100, `listed ${names.length} widgets, want 100`);
        await k().ok(["patch", "widget", "wd-7", "-n", "apps", "--type=merge", "-p", '{"spec":{"size":700}}']);
        const size = await k().ok(["get", "widget", "wd-7", "-n", "apps", "-o", "jsonpath={.spec.size}"]);
        assert.equal(size, "700");
        await k().ok(["delete", "widget", "wd-9", "-n", "apps"]);
        assert.ok(crWatch, "watch not started");
        await expectEvents(crWatch, "wd", [...Array.from({ length: 100 }, (_, i) => `ADDED wd-${i}`), "MODIFIED wd-7", "DELETED wd-9"], "widget watch");
      },
    },
    {
      name: "a conflicting update is refused by resourceVersion (409)",
      async run() {
        const stale = await k().ok(["get", "configmap", "w-1", "-n", "watched", "-o", "json"]);
        await k().ok(["label", "configmap", "w-1", "-n", "watched", "again=yes"]);
        const obj = JSON.parse(stale) as { metadata: { resourceVersion: string; labels?: Record<string, string> }; data?: Record<string, string> };
        const r = await k().run(["replace", "-f", "-"], stale);
        assert.notEqual(r.code, 0, "kubectl replace with a stale resourceVersion succeeded");
        assert.match(r.stderr, /Conflict|the object has been modified/, r.stderr);
        obj.data = { ...(obj.data ?? {}), via: "api" };
        const put = await cp.api("PUT", "/api/v1/namespaces/watched/configmaps/w-1", obj);
        assert.equal(put.status, 409, `PUT with stale resourceVersion ${obj.metadata.resourceVersion}: HTTP ${put.status} ${put.body.slice(0, 300)}`);
        const now = JSON.parse(await k().ok(["get", "configmap", "w-1", "-n", "watched", "-o", "json"])) as { metadata: { labels?: Record<string, string> }; data?: Record<string, string> };
        assert.equal(now.metadata.labels?.["again"], "yes", "the winning update was lost");
        assert.equal(now.data?.["via"], undefined, "the refused update was applied");
      },
    },
    ...(members === undefined ? [] : [{
      name: "kill -9 of the leader member: kube-apiserver keeps serving (create, get, list); the member restarts and catches up",
      async run() {
        if (members.size < 3) {
          process.stderr.write(`[k8s] member kill left out: the cluster has ${members.size} member(s), a kill needs 3 to keep a quorum\n`);
          return;
        }
        const before = await cp.api("GET", "/metrics");
        const from = statSync(cp.apiserverLog).size;
        const t0 = Date.now();
        const killed = await members.killLeader();
        // Requests that were in flight on the dead member may fail once; within
        // an election timeout or two, kube-apiserver's client must be on another member.
        let first: string | undefined;
        await until(`kubectl create after killing ${killed}`, 60_000, async () => {
          const r = await k().run(["create", "configmap", "after-kill", "-n", "apps", "--from-literal=k=v", "--request-timeout=15s"]);
          if (r.code === 0 || /AlreadyExists/.test(r.stderr)) return true;
          first ??= r.stderr.trim();
          return undefined;
        }, () => `first failure: ${first ?? "none"}\n${storageLog(cp)}`);
        const recoveredMs = Date.now() - t0;
        for (let i = 0; i < 5; i++) await k().ok(["create", "configmap", `while-down-${i}`, "-n", "apps", "--from-literal=k=v"]);
        assert.equal(await k().ok(["get", "configmap", "while-down-4", "-n", "apps", "-o", "jsonpath={.data.k}"]), "v");
        const listed = (await k().ok(["get", "configmaps", "-n", "apps", "-o", "name"])).split("\n").filter((l) => /while-down-|after-kill/.test(l));
        assert.equal(listed.length, 6, `list while ${killed} is down: ${listed.join(" ")}`);
        await members.restart(killed);
        await k().ok(["create", "configmap", "after-restart", "-n", "apps", "--from-literal=k=v"]);
        assert.equal(await k().ok(["get", "configmap", "after-restart", "-n", "apps", "-o", "jsonpath={.data.k}"]), "v");
        const after = await cp.api("GET", "/metrics");
        killWindow = {
          from,
          to: statSync(cp.apiserverLog).size,
          errorsDuring: counterSum(after.body, "etcd_request_errors_total") - counterSum(before.body, "etcd_request_errors_total"),
        };
        process.stderr.write(`[k8s] killed ${killed}; kubectl create worked again after ${(recoveredMs / 1000).toFixed(1)} s` +
          `${first === undefined ? " (first try)" : `; first failure: ${first.split("\n")[0]}`}; ${killWindow.errorsDuring} etcd request errors while it was down\n`);
      },
    }]),
    {
      name: "a Deployment becomes a ReplicaSet and 3 Pods (kube-controller-manager)",
      async run() {
        await k().ok(["create", "deployment", "web", "-n", "apps", "--image=registry.k8s.io/pause:3.10", "--replicas=3"]);
        const owned = async (kind: string, want: number, ownerKind: string): Promise<true | undefined> => {
          const r = await k().run(["get", kind, "-n", "apps", "-l", "app=web", "-o", "json"]);
          if (r.code !== 0) return undefined;
          const items = (JSON.parse(r.stdout) as { items: { metadata: { ownerReferences?: { kind: string }[] } }[] }).items;
          return items.length === want && items.every((i) => i.metadata.ownerReferences?.some((o) => o.kind === ownerKind)) ? true : undefined;
        };
        const evidence = (): string => `kube-controller-manager log tail: see ${cp.controllerManagerLog}\n${storageLog(cp)}`;
        await until("ReplicaSet owned by the Deployment", 120_000, () => owned("replicasets", 1, "Deployment"), evidence);
        await until("3 Pods owned by the ReplicaSet", 120_000, () => owned("pods", 3, "ReplicaSet"), evidence);
      },
    },
    {
      name: "deleting the Deployment garbage-collects its ReplicaSet and Pods; deleting a namespace empties it",
      async run() {
        await k().ok(["delete", "deployment", "web", "-n", "apps", "--wait=false"]);
        const gone = async (kind: string): Promise<true | undefined> => {
          const r = await k().run(["get", kind, "-n", "apps", "-l", "app=web", "-o", "name"]);
          return r.code === 0 && r.stdout.trim() === "" ? true : undefined;
        };
        const evidence = (): string => storageLog(cp);
        await until("ReplicaSet collected", 120_000, () => gone("replicasets"), evidence);
        await until("Pods collected", 120_000, () => gone("pods"), evidence);
        await k().ok(["delete", "namespace", "bulk", "--wait=false"]);
        await until(`namespace bulk and its ${n} ConfigMaps deleted`, 300_000,
          async () => ((await k().run(["get", "namespace", "bulk"])).code !== 0 ? true : undefined), evidence);
      },
    },
    {
      name: "kube-apiserver uses watch progress requests (consistent reads from the watch cache)",
      async run() {
        const unsupported = cp.apiserverLines(/RequestWatchProgress feature is not supported|Failed to check if RequestWatchProgress/);
        assert.deepEqual(unsupported, [], "kube-apiserver decided the server cannot do RequestWatchProgress");
        // kubectl get (resourceVersion unset) is a consistent list; with progress requests it is served from the watch cache.
        await k().ok(["get", "configmaps", "-n", "watched", "-o", "name"]);
        const metrics = await cp.api("GET", "/metrics");
        assert.equal(metrics.status, 200);
        const served = metrics.body.split("\n").filter((l) => l.startsWith("apiserver_watch_cache_consistent_read_total{"));
        const ok = served.filter((l) => /fallback="false"/.test(l) && /success="true"/.test(l)).reduce((s, l) => s + Number(l.split(" ").pop()), 0);
        assert.ok(ok > 0, `no consistent read was served from the watch cache:\n${served.join("\n")}\n${storageLog(cp)}`);
        const failed = served.filter((l) => /success="false"/.test(l) && Number(l.split(" ").pop()) > 0);
        assert.deepEqual(failed, [], "consistent reads from the watch cache failed (progress request not answered in time?)");
      },
    },
    {
      name: "no storage errors in kube-apiserver's log or metrics",
      async run() {
        await cmWatch?.stop();
        await crWatch?.stop();
        assert.ok(baseline, "no baseline: the first step did not run");
        const metrics = await cp.api("GET", "/metrics");
        const errs = metrics.body.split("\n").filter((l) => l.startsWith("etcd_request_errors_total{") && Number(l.split(" ").pop()) > 0);
        const storageErr = /^E\d{4}.*(etcd|storage|rpc error|watch)/i;
        // From the baseline on, outside the member kill: no error counted, no error logged.
        const w = killWindow ?? { from: baseline.logAt, to: baseline.logAt, errorsDuring: 0 };
        const log = readFileSync(cp.apiserverLog);
        const outside = `${log.subarray(baseline.logAt, w.from).toString("utf8")}\n${log.subarray(w.to).toString("utf8")}`;
        const lines = outside.split("\n").filter((l) => storageErr.test(l));
        const errorsOutside = counterSum(metrics.body, "etcd_request_errors_total") - baseline.errors - w.errorsDuring;
        if (baseline.errors > 0) process.stderr.write(`[k8s] request errors while kube-apiserver started (not counted): ${baseline.startup.join("; ")}\n`);
        assert.deepEqual({ errorsOutside, lines }, { errorsOutside: 0, lines: [] }, `etcd_request_errors_total: ${errs.join("; ")}`);
      },
    },
  ];
}
