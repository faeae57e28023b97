// The bed end to end (the same code as `npm run bed:up` / `bed:down`, in a state directory of its
// own): etcd-ts under kube-apiserver and kube-controller-manager, and the process kubelet. A
// StatefulSet of one member pod (the member image, its own claim, a readiness probe on /readyz
// as the operator's pods have) becomes Ready, is reachable at its pod IP from the host and by its
// DNS names from inside its namespace, keeps its data when the pod is deleted and recreated by
// the StatefulSet controller, and bed:down leaves no process, namespace, link or mount point.
// Needs root (network namespaces) and `npm run tools`; without them it fails, never skips.

import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as k8s from "@kubernetes/client-node";
import { run } from "../faults/netns.js";
import { bedDown, bedUp, readState } from "./bed.js";
import type { Bed } from "./bed.js";
import { bedIndexOf, netnsName, ownedBy } from "./kubelet/pure.js";
import { eventually as pollUntil } from "../harness/launch.js";

const NS = "bed-test";

const eventually = <T>(what: string, fn: () => Promise<T | undefined>, timeoutMs = 180_000): Promise<T> => pollUntil(what, fn, timeoutMs, 500);

function startTime(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    // A zombie (exited, not yet reaped by its parent: the test process, for a bed it started) is gone.
    if (fields[0] === "Z" || fields[0] === "X") return undefined;
    return fields[19];
  } catch {
    return undefined;
  }
}

const b64 = (s: string): string => Buffer.from(s).toString("base64");

describe("the bed (etcd-ts + kube-apiserver + kube-controller-manager + process kubelet)", () => {
  const dir = mkdtempSync(join(tmpdir(), "etcdts-bed-"));
  // However this process ends, the bed's detached processes and namespaces go with it.
  process.on("exit", () => { bedDown(dir); });
  let bed: Bed;
  let core: k8s.CoreV1Api;
  let apps: k8s.AppsV1Api;
  /** Processes to be gone after bed:down: pid → start time. */
  const seen = new Map<number, string>();

  before(async () => {
    bed = await bedUp({ dir, say: (l) => console.log(`# ${l}`) });
    const kc = new k8s.KubeConfig();
    kc.loadFromFile(bed.kubeconfig);
    core = kc.makeApiClient(k8s.CoreV1Api);
    apps = kc.makeApiClient(k8s.AppsV1Api);
  });
  after(() => {
    const left = bedDown(dir);
    if (left.length > 0) console.log(`# cleanup: ${left.join("; ")}`);
    rmSync(dir, { recursive: true, force: true });
  });

  test("bed:up on a running bed says so and changes nothing", async () => {
    assert.equal(bed.alreadyUp, false);
    const again = await bedUp({ dir });
    assert.equal(again.alreadyUp, true);
    assert.deepEqual(again.state, bed.state);
    assert.equal(bed.state.etcd, "ours");
  });

  test("a StatefulSet pod of the member image: Ready, reachable at its pod IP, same data after deletion", async () => {
    await core.createNamespace({ body: { metadata: { name: NS } } });
    await eventually("ServiceAccount default", async () => core.readNamespacedServiceAccount({ name: "default", namespace: NS }));
    await core.createNamespacedService({
      namespace: NS,
      body: { metadata: { name: "m" }, spec: { clusterIP: "None", publishNotReadyAddresses: true, selector: { app: "m" }, ports: [{ name: "client", port: 2379 }] } },
    });
    await apps.createNamespacedStatefulSet({
      namespace: NS,
      body: {
        metadata: { name: "m" },
        spec: {
          serviceName: "m", replicas: 1, selector: { matchLabels: { app: "m" } },
          template: {
            metadata: { labels: { app: "m" } },
            spec: {
              terminationGracePeriodSeconds: 10,
              containers: [{
                name: "etcd", image: "ghcr.io/etcd-ts/etcd-ts:0.1.0",
                env: [
                  { name: "POD_NAME", valueFrom: { fieldRef: { fieldPath: "metadata.name" } } },
                  { name: "ETCD_NAME", value: "$(POD_NAME)" },
                  { name: "ETCD_LISTEN_CLIENT_URLS", value: "http://0.0.0.0:2379" },
                  { name: "ETCD_ADVERTISE_CLIENT_URLS", value: `http://$(POD_NAME).m.${NS}.svc:2379` },
                ],
                ports: [{ name: "client", containerPort: 2379 }],
                readinessProbe: { httpGet: { path: "/readyz", port: "client" }, periodSeconds: 2 },
                livenessProbe: { httpGet: { path: "/livez", port: "client" }, initialDelaySeconds: 15, periodSeconds: 10, failureThreshold: 6 },
                volumeMounts: [{ name: "data", mountPath: "/var/lib/etcd-ts" }],
              }],
            },
          },
          volumeClaimTemplates: [{ metadata: { name: "data" }, spec: { accessModes: ["ReadWriteOnce"], resources: { requests: { storage: "1Gi" } } } }],
        },
      },
    });

    const readyPod = (notUid?: string) => eventually(`pod m-0 Ready${notUid ? " (recreated)" : ""}`, async () => {
      const p = await core.readNamespacedPod({ name: "m-0", namespace: NS });
      if (p.metadata?.uid === notUid || p.metadata?.deletionTimestamp) return undefined;
      return p.status?.conditions?.some((c) => c.type === "Ready" && c.status === "True") ? p : undefined;
    });
    const pod = await readyPod();
    const ip = pod.status?.podIP ?? "";
    assert.equal(bedIndexOf(ip), bed.state.index, `pod IP ${ip} is in the bed's /24`);
    assert.deepEqual(pod.status?.podIPs?.map((p) => p.ip), [ip]);
    assert.equal(pod.status?.phase, "Running");
    assert.equal(pod.spec?.nodeName, "bed-0");
    const cs = pod.status?.containerStatuses?.[0];
    assert.equal(cs?.name, "etcd");
    assert.equal(cs?.ready, true);
    assert.equal(cs?.restartCount, 0);
    assert.ok(cs?.state?.running?.startedAt);
    for (const t of ["PodScheduled", "Initialized", "ContainersReady", "Ready"]) {
      assert.equal(pod.status?.conditions?.find((c) => c.type === t)?.status, "True", t);
    }

    // The claim is bound to a directory of the bed, and the member keeps its data there.
    const pvc = await core.readNamespacedPersistentVolumeClaim({ name: "data-m-0", namespace: NS });
    assert.equal(pvc.status?.phase, "Bound");
    const pv = await core.readPersistentVolume({ name: pvc.spec?.volumeName ?? "" });
    const claimDir = pv.spec?.hostPath?.path ?? "";
    assert.ok(claimDir.startsWith(join(dir, "volumes")), claimDir);
    assert.ok(existsSync(join(claimDir, "data", "member", "wal")), "the member's WAL is in the claim directory");

    // The process: in the pod's network namespace, as the image's user (1000).
    const pid = Number(/^bed:\/\/(\d+)$/.exec(cs?.containerID ?? "")?.[1]);
    const ns = netnsName(bed.state.index, Number(ip.split(".")[3]));
    assert.ok(run("ip", ["netns", "pids", ns]).out.split(/\s+/).includes(String(pid)), `pid ${pid} runs in ${ns}`);
    assert.match(readFileSync(`/proc/${pid}/status`, "utf8"), /\nUid:\t1000\t/);
    seen.set(pid, startTime(pid) ?? "");

    // Names: the kubelet's /etc/hosts for the pod, resolved inside the namespace.
    const resolved = spawnSync("ip", ["netns", "exec", ns, "getent", "hosts", `m-0.m.${NS}.svc`], { encoding: "utf8" });
    assert.equal(resolved.stdout.split(/\s+/)[0], ip, resolved.stderr);
    // kube-controller-manager published the ready pod in the Service's EndpointSlice.
    const discovery = (() => { const kc = new k8s.KubeConfig(); kc.loadFromFile(bed.kubeconfig); return kc.makeApiClient(k8s.DiscoveryV1Api); })();
    await eventually("EndpointSlice of m with the pod", async () => {
      const l = await discovery.listNamespacedEndpointSlice({ namespace: NS, labelSelector: "kubernetes.io/service-name=m" });
      return l.items.some((s) => s.endpoints.some((e) => e.addresses.includes(ip) && e.hostname === "m-0" && e.conditions?.ready === true)) ? true : undefined;
    });

    // From the host, at the pod IP.
    const health = await (await fetch(`http://${ip}:2379/health`)).json() as { health: string };
    assert.equal(health.health, "true");
    const put = await fetch(`http://${ip}:2379/v3/kv/put`, { method: "POST", body: JSON.stringify({ key: b64("bed/key"), value: b64("kept") }) });
    assert.equal(put.status, 200, await put.text());

    // Delete the pod: SIGTERM, then the StatefulSet controller makes m-0 again, on the same claim.
    await core.deleteNamespacedPod({ name: "m-0", namespace: NS });
    const again = await readyPod(pod.metadata?.uid);
    assert.notEqual(startTime(pid), seen.get(pid), "the old process is gone");
    const ip2 = again.status?.podIP ?? "";
    assert.equal(bedIndexOf(ip2), bed.state.index);
    assert.equal(again.status?.containerStatuses?.[0]?.restartCount, 0);
    const pid2 = Number(/^bed:\/\/(\d+)$/.exec(again.status?.containerStatuses?.[0]?.containerID ?? "")?.[1]);
    seen.set(pid2, startTime(pid2) ?? "");
    if (ip2 !== ip) assert.ok(!run("ip", ["netns", "list"]).out.split("\n").some((l) => l.split(" ")[0] === ns), `${ns} was removed`);
    const range = await eventually("the key from the recreated member", async () => {
      const r = await fetch(`http://${ip2}:2379/v3/kv/range`, { method: "POST", body: JSON.stringify({ key: b64("bed/key") }) });
      return r.ok ? await r.json() as { kvs?: { value: string }[] } : undefined;
    });
    assert.equal(Buffer.from(range.kvs?.[0]?.value ?? "", "base64").toString(), "kept");
  });

  test("a failing liveness probe (exec) restarts the container and counts it; deletion removes the pod", async () => {
    await core.createNamespacedPod({
      namespace: NS,
      body: {
        metadata: { name: "live" },
        spec: {
          terminationGracePeriodSeconds: 2,
          containers: [{
            name: "etcd", image: "ghcr.io/etcd-ts/etcd-ts:0.1.0",
            livenessProbe: { exec: { command: ["false"] }, initialDelaySeconds: 1, periodSeconds: 1, failureThreshold: 2 },
            volumeMounts: [{ name: "data", mountPath: "/var/lib/etcd-ts" }],
          }],
          volumes: [{ name: "data", emptyDir: {} }],
        },
      },
    });
    const restarted = await eventually("pod live restarted by its liveness probe", async () => {
      const p = await core.readNamespacedPod({ name: "live", namespace: NS });
      const c = p.status?.containerStatuses?.[0];
      return (c?.restartCount ?? 0) >= 1 && c?.state?.running !== undefined ? p : undefined;
    });
    const c = restarted.status?.containerStatuses?.[0];
    assert.ok(c?.lastState?.terminated, "the killed run is in lastState");
    assert.equal(restarted.status?.phase, "Running");
    const pid = Number(/^bed:\/\/(\d+)$/.exec(c?.containerID ?? "")?.[1]);
    seen.set(pid, startTime(pid) ?? "");
    await core.deleteNamespacedPod({ name: "live", namespace: NS });
    await eventually("pod live gone", async () => {
      try {
        await core.readNamespacedPod({ name: "live", namespace: NS });
        return undefined;
      } catch (err) {
        return (err as { code?: number }).code === 404 ? true : undefined;
      }
    });
    assert.notEqual(startTime(pid), seen.get(pid), "its process is gone");
  });

  test("bed:down stops every process it started and removes its namespaces, links and mount points", () => {
    const state = readState(dir);
    assert.ok(state);
    for (const p of state.processes) seen.set(p.pid, p.start);
    const done = bedDown(dir);
    assert.ok(done.some((l) => l.startsWith("stopped kubelet") || l.startsWith("killed kubelet")), done.join("\n"));
    for (const [pid, start] of seen) assert.notEqual(startTime(pid), start, `pid ${pid} still runs`);
    assert.deepEqual(run("ip", ["netns", "list"]).out.split("\n").map((l) => l.split(" ")[0] ?? "").filter((n) => ownedBy(state.index, n)), []);
    const links = run("ip", ["-o", "link", "show"]).out.split("\n").map((l) => /^\d+:\s+([^:@\s]+)/.exec(l)?.[1] ?? "");
    assert.deepEqual(links.filter((n) => n && ownedBy(state.index, n)), []);
    assert.deepEqual((existsSync("/etc/netns") ? readdirSync("/etc/netns") : []).filter((n) => ownedBy(state.index, n)), []);
    assert.equal(readState(dir), undefined);
    assert.deepEqual(bedDown(dir), [], "a second bed:down has nothing to do");
  });
});
