// The bed's process kubelet: one Node, and every Pod on it run as local processes, each pod in
// its own network namespace. It is also the bed's scheduler (binds every unscheduled pod to its
// node) and its volume provisioner (a PersistentVolume with a host directory per claim).
// Design note: test/kube/README.md. Decisions that need no machine are in pure.ts.
//
// One level-triggered sync (informers mark it dirty; it also runs every 2 s) compares the pods
// on the node with the pod workers it has, and starts, updates or stops workers. A worker owns a
// pod's network namespace, volumes, processes, probes and status.

import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { appendFileSync, closeSync, existsSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import http from "node:http";
import https from "node:https";
import net from "node:net";
import { constants as osConstants } from "node:os";
import { dirname, join, resolve } from "node:path";
import * as k8s from "@kubernetes/client-node";
import pino from "pino";
import { must, run } from "../../faults/netns.js";
import {
  APP_DIR, bridgeAddress, bridgeName, expandVars, hostsFile, launchScript, mapContainer, netnsName, nextSlot, podAddress,
  restartDelayMs, shouldRestart, vethName,
} from "./pure.js";
import type { HostsInput, Mount, ServiceInfo } from "./pure.js";

export interface KubeletConfig {
  /** Admin kubeconfig (the bed's kubelet is not confined by the Node authorizer). */
  readonly kubeconfig: string;
  readonly nodeName: string;
  readonly bedIndex: number;
  /** The bed's state directory (volumes, pod directories and logs live under it). */
  readonly dir: string;
  /** The checkout that images map to (bind-mounted at /app in every pod). */
  readonly repoRoot: string;
  /** The API server's port on the bed bridge address (KUBERNETES_SERVICE_PORT). */
  readonly apiserverPort: number;
}

const PV_LABEL = "bed.etcd-ts.io/provisioned";
const logger = pino({ base: { component: "kubelet" } });
const log = (msg: string, extra: Record<string, unknown> = {}): void => { logger.info(extra, msg); };
const mergePatch = (): k8s.ConfigurationOptions => k8s.setHeaderOptions("Content-Type", k8s.PatchStrategy.MergePatch);
const isStatus = (err: unknown, code: number): boolean => typeof err === "object" && err !== null && (err as { code?: unknown }).code === code;
const now = (): Date => new Date();

/**
 * Host directories kubelets made as mount points (empty on the host). One file for every bed on
 * the machine: a directory one bed made may be a mount point in another bed's pods, and removing
 * it would unmount it there too, so bed:down removes them only when it is the last bed.
 */
export const MOUNTPOINTS_FILE = "/run/etcd-ts-bed/mountpoints";

export class Kubelet {
  private readonly kc = new k8s.KubeConfig();
  private readonly core: k8s.CoreV1Api;
  private readonly coord: k8s.CoordinationV1Api;
  private readonly pods: k8s.Informer<k8s.V1Pod> & k8s.ObjectCache<k8s.V1Pod>;
  private readonly pvcs: k8s.Informer<k8s.V1PersistentVolumeClaim> & k8s.ObjectCache<k8s.V1PersistentVolumeClaim>;
  private readonly pvs: k8s.Informer<k8s.V1PersistentVolume> & k8s.ObjectCache<k8s.V1PersistentVolume>;
  private readonly services: k8s.Informer<k8s.V1Service> & k8s.ObjectCache<k8s.V1Service>;
  private readonly slices: k8s.Informer<k8s.V1EndpointSlice> & k8s.ObjectCache<k8s.V1EndpointSlice>;
  readonly workers = new Map<string, PodWorker>();
  private lastSlot = 1;
  private dirty = true;
  private syncing = false;
  private stopped = false;
  private timers: NodeJS.Timeout[] = [];
  private readonly pending = new Set<string>(); // PVC uids with a PV being created

  constructor(readonly config: KubeletConfig) {
    this.kc.loadFromFile(config.kubeconfig);
    this.core = this.kc.makeApiClient(k8s.CoreV1Api);
    this.coord = this.kc.makeApiClient(k8s.CoordinationV1Api);
    const discovery = this.kc.makeApiClient(k8s.DiscoveryV1Api);
    this.pods = k8s.makeInformer(this.kc, "/api/v1/pods", () => this.core.listPodForAllNamespaces());
    this.pvcs = k8s.makeInformer(this.kc, "/api/v1/persistentvolumeclaims", () => this.core.listPersistentVolumeClaimForAllNamespaces());
    this.pvs = k8s.makeInformer(this.kc, "/api/v1/persistentvolumes", () => this.core.listPersistentVolume());
    this.services = k8s.makeInformer(this.kc, "/api/v1/services", () => this.core.listServiceForAllNamespaces());
    this.slices = k8s.makeInformer(this.kc, "/apis/discovery.k8s.io/v1/endpointslices", () => discovery.listEndpointSliceForAllNamespaces());
  }

  get apiserverAddress(): string { return bridgeAddress(this.config.bedIndex); }

  async start(): Promise<void> {
    await this.registerNode();
    const informers = [this.pods, this.pvcs, this.pvs, this.services, this.slices] as k8s.Informer<k8s.KubernetesObject>[];
    for (const inf of informers) {
      inf.on("change", () => this.markDirty());
      inf.on("error", (err: unknown) => {
        log("informer error; restarting in 2 s", { err: String(err) });
        if (!this.stopped) setTimeout(() => { void inf.start().catch(() => undefined); }, 2000);
      });
      await inf.start();
    }
    this.timers.push(setInterval(() => this.markDirty(), 2000));
    this.timers.push(setInterval(() => { void this.heartbeat().catch((err: unknown) => log("heartbeat failed", { err: String(err) })); }, 10_000));
    this.markDirty();
  }

  /** Stops every pod (SIGTERM, then SIGKILL after its grace period) and removes its namespace. */
  async stop(): Promise<void> {
    this.stopped = true;
    for (const t of this.timers) clearInterval(t);
    for (const inf of [this.pods, this.pvcs, this.pvs, this.services, this.slices] as k8s.Informer<k8s.KubernetesObject>[]) await inf.stop().catch(() => undefined);
    await Promise.all([...this.workers.values()].map((w) => w.terminate(Math.min(w.graceSeconds(), 10))));
  }

  markDirty(): void {
    this.dirty = true;
    if (this.syncing || this.stopped) return;
    this.syncing = true;
    void (async () => {
      while (this.dirty && !this.stopped) {
        this.dirty = false;
        try {
          await this.sync();
        } catch (err) {
          log("sync failed", { err: String(err), stack: (err as Error).stack });
        }
      }
      this.syncing = false;
    })();
  }

  // ------------------------------------------------------------------------------------------
  // Node

  private nodeStatus(): k8s.V1NodeStatus {
    const t = now();
    const cond = (type: string, status: string, reason: string, message: string): k8s.V1NodeCondition =>
      ({ type, status, reason, message, lastHeartbeatTime: t, lastTransitionTime: this.nodeSince });
    const resources = { cpu: "2", memory: "8Gi", pods: "110", "ephemeral-storage": "20Gi" };
    return {
      conditions: [
        cond("Ready", "True", "KubeletReady", "bed kubelet is posting ready status"),
        cond("MemoryPressure", "False", "KubeletHasSufficientMemory", "no pressure"),
        cond("DiskPressure", "False", "KubeletHasNoDiskPressure", "no pressure"),
        cond("PIDPressure", "False", "KubeletHasSufficientPID", "no pressure"),
      ],
      addresses: [{ type: "InternalIP", address: this.apiserverAddress }, { type: "Hostname", address: this.config.nodeName }],
      capacity: resources, allocatable: resources,
      nodeInfo: {
        architecture: process.arch === "x64" ? "amd64" : process.arch, bootID: "", containerRuntimeVersion: "bed://processes",
        kernelVersion: "", kubeProxyVersion: "", kubeletVersion: "v1.37.2-bed", machineID: "", operatingSystem: "linux",
        osImage: "etcd-ts bed", systemUUID: "",
      },
    };
  }
  private nodeSince = now();

  private async registerNode(): Promise<void> {
    const name = this.config.nodeName;
    try {
      await this.core.createNode({ body: { metadata: { name, labels: { "kubernetes.io/hostname": name, "kubernetes.io/os": "linux", "kubernetes.io/arch": "amd64" } } } });
    } catch (err) {
      if (!isStatus(err, 409)) throw err;
    }
    await this.core.patchNodeStatus({ name, body: { status: this.nodeStatus() } }, mergePatch());
    await this.heartbeat();
    log("node registered", { node: name });
  }

  private async heartbeat(): Promise<void> {
    const name = this.config.nodeName;
    const ns = "kube-node-lease";
    const spec = { holderIdentity: name, leaseDurationSeconds: 40, renewTime: new k8s.V1MicroTime(Date.now()) };
    try {
      const lease = await this.coord.readNamespacedLease({ name, namespace: ns });
      lease.spec = spec;
      await this.coord.replaceNamespacedLease({ name, namespace: ns, body: lease });
    } catch (err) {
      if (!isStatus(err, 404)) throw err;
      await this.coord.createNamespacedLease({ namespace: ns, body: { metadata: { name, namespace: ns }, spec } });
    }
    await this.core.patchNodeStatus({ name, body: { status: { conditions: this.nodeStatus().conditions } } }, mergePatch());
  }

  // ------------------------------------------------------------------------------------------
  // The sync

  private async sync(): Promise<void> {
    await this.provisionVolumes();
    const mine = new Map<string, k8s.V1Pod>();
    for (const pod of this.pods.list()) {
      const uid = pod.metadata?.uid;
      if (uid === undefined) continue;
      if (!pod.spec?.nodeName) {
        if ((pod.spec?.schedulerName ?? "default-scheduler") === "default-scheduler" && !pod.metadata?.deletionTimestamp) await this.bind(pod);
        continue;
      }
      if (pod.spec.nodeName === this.config.nodeName) mine.set(uid, pod);
    }
    // Pods gone from the API (deleted with grace 0 elsewhere): stop at once.
    for (const [uid, w] of this.workers) {
      if (!mine.has(uid)) {
        this.workers.delete(uid);
        void w.terminate(0).catch((err: unknown) => log("teardown failed", { pod: w.key, err: String(err) }));
      }
    }
    for (const [uid, pod] of mine) {
      let w = this.workers.get(uid);
      if (pod.metadata?.deletionTimestamp) {
        if (w === undefined) {
          await this.deletePod(pod);
          continue;
        }
        w.update(pod);
        if (!w.terminating) {
          const grace = pod.metadata.deletionGracePeriodSeconds ?? w.graceSeconds();
          void w.terminate(grace).then(() => this.deletePod(pod)).catch((err: unknown) => log("deletion failed", { pod: w?.key, err: String(err) }));
        } else if (w.stopped) {
          await this.deletePod(pod); // the first try failed; level-triggered, so try again
        }
        continue;
      }
      if (w === undefined && (pod.status?.phase === "Succeeded" || pod.status?.phase === "Failed")) continue;
      if (w === undefined) {
        const used = new Set([...this.workers.values()].map((x) => x.slot));
        const slot = nextSlot(used, this.lastSlot);
        this.lastSlot = slot;
        w = new PodWorker(this, pod, slot);
        this.workers.set(uid, w);
      }
      w.update(pod);
      await w.step();
    }
    for (const w of this.workers.values()) if (w.hasNetwork) w.writeHosts(this.hostsInput(w));
  }

  private async bind(pod: k8s.V1Pod): Promise<void> {
    const name = pod.metadata?.name ?? "";
    const namespace = pod.metadata?.namespace ?? "";
    try {
      await this.core.createNamespacedPodBinding({
        name, namespace,
        body: { apiVersion: "v1", kind: "Binding", metadata: { name, namespace, uid: pod.metadata?.uid }, target: { apiVersion: "v1", kind: "Node", name: this.config.nodeName } },
      });
      log("bound", { pod: `${namespace}/${name}`, node: this.config.nodeName });
    } catch (err) {
      if (!isStatus(err, 409) && !isStatus(err, 404)) log("binding failed", { pod: `${namespace}/${name}`, err: String(err) });
    }
  }

  async deletePod(pod: k8s.V1Pod): Promise<void> {
    const name = pod.metadata?.name ?? "";
    const namespace = pod.metadata?.namespace ?? "";
    try {
      await this.core.deleteNamespacedPod({ name, namespace, gracePeriodSeconds: 0, body: { gracePeriodSeconds: 0, preconditions: { uid: pod.metadata?.uid } } });
      log("pod deleted", { pod: `${namespace}/${name}` });
    } catch (err) {
      if (!isStatus(err, 404) && !isStatus(err, 409)) throw err;
    }
  }

  /** A PersistentVolume (a host directory) pre-bound to each pending claim; released ones are removed with their directory. */
  private async provisionVolumes(): Promise<void> {
    for (const pvc of this.pvcs.list()) {
      const uid = pvc.metadata?.uid;
      if (uid === undefined || pvc.spec?.volumeName || pvc.metadata?.deletionTimestamp || this.pending.has(uid)) continue;
      const name = `pvc-${uid}`;
      if (this.pvs.get(name) !== undefined) continue;
      const path = join(this.config.dir, "volumes", name);
      mkdirSync(path, { recursive: true });
      this.pending.add(uid);
      try {
        await this.core.createPersistentVolume({
          body: {
            metadata: { name, labels: { [PV_LABEL]: "true" } },
            spec: {
              capacity: { storage: pvc.spec?.resources?.requests?.["storage"] ?? "1Gi" },
              accessModes: pvc.spec?.accessModes ?? ["ReadWriteOnce"],
              persistentVolumeReclaimPolicy: "Retain",
              storageClassName: pvc.spec?.storageClassName ?? "",
              volumeMode: "Filesystem",
              hostPath: { path, type: "Directory" },
              claimRef: { apiVersion: "v1", kind: "PersistentVolumeClaim", namespace: pvc.metadata?.namespace, name: pvc.metadata?.name, uid },
            },
          },
        });
        log("volume provisioned", { claim: `${pvc.metadata?.namespace}/${pvc.metadata?.name}`, pv: name, path });
      } catch (err) {
        if (!isStatus(err, 409)) log("provisioning failed", { pv: name, err: String(err) });
      } finally {
        this.pending.delete(uid);
      }
    }
    for (const pv of this.pvs.list()) {
      if (pv.metadata?.labels?.[PV_LABEL] !== "true" || pv.status?.phase !== "Released") continue;
      const path = pv.spec?.hostPath?.path;
      if (path !== undefined && resolve(path).startsWith(resolve(this.config.dir, "volumes") + "/")) rmSync(path, { recursive: true, force: true });
      try {
        await this.core.deletePersistentVolume({ name: pv.metadata.name ?? "" });
        log("released volume removed", { pv: pv.metadata.name, path });
      } catch (err) {
        if (!isStatus(err, 404)) log("removing volume failed", { pv: pv.metadata.name, err: String(err) });
      }
    }
  }

  /** The directory of a bound claim, or undefined while it is not bound yet. */
  claimDir(namespace: string, claim: string): string | undefined {
    const pvc = this.pvcs.get(claim, namespace);
    if (pvc?.status?.phase !== "Bound" || !pvc.spec?.volumeName) return undefined;
    const pv = this.pvs.get(pvc.spec.volumeName);
    return pv?.spec?.hostPath?.path;
  }

  hostsInput(w: PodWorker): HostsInput {
    const headless = new Map<string, boolean>();
    for (const s of this.services.list()) headless.set(`${s.metadata?.namespace}/${s.metadata?.name}`, s.spec?.clusterIP === "None");
    const byService = new Map<string, ServiceInfo & { endpoints: ServiceInfo["endpoints"][number][] }>();
    for (const slice of this.slices.list()) {
      const svc = slice.metadata?.labels?.["kubernetes.io/service-name"];
      const namespace = slice.metadata?.namespace ?? "";
      if (svc === undefined || slice.addressType !== "IPv4") continue;
      const key = `${namespace}/${svc}`;
      const isHeadless = headless.get(key);
      if (isHeadless === undefined) continue;
      let info = byService.get(key);
      if (info === undefined) byService.set(key, info = { namespace, name: svc, headless: isHeadless, endpoints: [] });
      for (const e of slice.endpoints ?? []) {
        const ip = e.addresses[0];
        if (ip === undefined) continue;
        info.endpoints.push({ ip, hostname: e.hostname, ready: e.conditions?.ready !== false, podName: e.targetRef?.name });
      }
    }
    const spec = w.pod.spec;
    return {
      self: { ip: w.ip, hostname: spec?.hostname ?? w.pod.metadata?.name ?? "", subdomain: spec?.subdomain, namespace: w.namespace },
      apiserver: this.apiserverAddress,
      services: [...byService.values()],
    };
  }

  configMap(namespace: string, name: string): Promise<k8s.V1ConfigMap> { return this.core.readNamespacedConfigMap({ name, namespace }); }
  secret(namespace: string, name: string): Promise<k8s.V1Secret> { return this.core.readNamespacedSecret({ name, namespace }); }
  token(pod: k8s.V1Pod, audience: string | undefined, expirationSeconds: number): Promise<k8s.AuthenticationV1TokenRequest> {
    return this.core.createNamespacedServiceAccountToken({
      name: pod.spec?.serviceAccountName ?? "default", namespace: pod.metadata?.namespace ?? "",
      body: {
        spec: {
          audiences: audience ? [audience] : [], expirationSeconds,
          boundObjectRef: { apiVersion: "v1", kind: "Pod", name: pod.metadata?.name, uid: pod.metadata?.uid },
        },
      },
    });
  }
  async patchStatus(pod: k8s.V1Pod, status: k8s.V1PodStatus): Promise<void> {
    await this.core.patchNamespacedPodStatus({ name: pod.metadata?.name ?? "", namespace: pod.metadata?.namespace ?? "", body: { status } }, mergePatch());
  }
  /** Makes a host directory to mount over, recording each directory it creates (bed:down removes them if empty). */
  ensureMountpoint(path: string): void {
    if (existsSync(path)) return;
    const created: string[] = [];
    let p = path;
    while (!existsSync(p)) { created.push(p); p = dirname(p); }
    mkdirSync(path, { recursive: true });
    mkdirSync(dirname(MOUNTPOINTS_FILE), { recursive: true });
    appendFileSync(MOUNTPOINTS_FILE, created.reverse().map((c) => c + "\n").join(""));
  }
}

// ---------------------------------------------------------------------------------------------
// One pod

interface Run {
  readonly spec: k8s.V1Container;
  child?: ChildProcess;
  pid?: number;
  /** The user the process runs as (exec probes run as it too). */
  uid?: number;
  gid?: number;
  startedAt?: Date;
  restartCount: number;
  state: k8s.V1ContainerState;
  lastState: k8s.V1ContainerState;
  ready: boolean;
  restartTimer?: NodeJS.Timeout;
  probeTimers: NodeJS.Timeout[];
  /** Set when the kubelet itself is stopping this process (no restart). */
  stopping: boolean;
  exited?: Promise<void>;
}

interface Probe { failures: number; successes: number; ok: boolean }

export class PodWorker {
  pod: k8s.V1Pod;
  readonly ip: string;
  readonly ns: string;
  readonly key: string;
  readonly namespace: string;
  hasNetwork = false;
  terminating = false;
  /** Every process of the pod has exited and its namespace is gone. */
  stopped = false;
  private started = false;
  private readonly runs = new Map<string, Run>();
  private volumes = new Map<string, string>();
  private hosts = "";
  private lastStatus = "";
  private statusBusy = false;
  private statusAgain = false;
  private readonly since = new Map<string, Date>();
  private readonly startTime = now();
  private waitingReason: { reason: string; message: string } | undefined;
  private tokenRefreshAt = 0;
  readonly podDir: string;

  constructor(private readonly k: Kubelet, pod: k8s.V1Pod, readonly slot: number) {
    this.pod = pod;
    this.ns = netnsName(k.config.bedIndex, slot);
    this.ip = podAddress(k.config.bedIndex, slot);
    this.namespace = pod.metadata?.namespace ?? "";
    this.key = `${this.namespace}/${pod.metadata?.name ?? ""}`;
    this.podDir = join(k.config.dir, "pods", `${this.namespace}_${pod.metadata?.name ?? ""}_${pod.metadata?.uid ?? ""}`);
  }

  graceSeconds(): number { return this.pod.spec?.terminationGracePeriodSeconds ?? 30; }
  update(pod: k8s.V1Pod): void { this.pod = pod; }

  /** Level-triggered: brings the pod one step closer to running; cheap when it already is. */
  async step(): Promise<void> {
    if (this.terminating) return;
    if (!this.started) {
      const ok = await this.prepare();
      if (!ok) { this.pushStatus(); return; }
      this.started = true;
      for (const c of this.pod.spec?.containers ?? []) {
        const r: Run = { spec: c, restartCount: 0, state: { waiting: { reason: "ContainerCreating" } }, lastState: {}, ready: false, probeTimers: [], stopping: false };
        this.runs.set(c.name, r);
        await this.startContainer(r);
      }
    } else if (Date.now() > this.tokenRefreshAt) {
      await this.writeVolumes(true).catch((err: unknown) => log("token refresh failed", { pod: this.key, err: String(err) }));
    }
    this.pushStatus();
  }

  /** Network namespace and volumes; false while something (a claim) is not ready yet. */
  private async prepare(): Promise<boolean> {
    if ((this.pod.spec?.initContainers ?? []).length > 0) {
      this.waitingReason = { reason: "InitContainersNotSupported", message: "the bed kubelet does not run init containers" };
      return false;
    }
    for (const v of this.pod.spec?.volumes ?? []) {
      if (v.persistentVolumeClaim && this.k.claimDir(this.namespace, v.persistentVolumeClaim.claimName) === undefined) {
        this.waitingReason = { reason: "ContainerCreating", message: `waiting for claim ${v.persistentVolumeClaim.claimName} to be bound` };
        return false;
      }
    }
    try {
      await this.writeVolumes(false);
    } catch (err) {
      this.waitingReason = { reason: "CreateContainerConfigError", message: String(err) };
      return false;
    }
    if (!this.hasNetwork) this.setupNetwork();
    this.waitingReason = undefined;
    return true;
  }

  private setupNetwork(): void {
    const { bedIndex } = this.k.config;
    const veth = vethName(bedIndex, this.slot);
    // A namespace of the same name left by an earlier pod in this slot would be stale.
    run("ip", ["netns", "del", this.ns]);
    run("ip", ["link", "del", veth]);
    must("ip", ["netns", "add", this.ns]);
    must("ip", ["link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", this.ns]);
    must("ip", ["link", "set", veth, "master", bridgeName(bedIndex), "up"]);
    must("ip", ["-n", this.ns, "addr", "add", `${this.ip}/24`, "dev", "eth0"]);
    must("ip", ["-n", this.ns, "link", "set", "eth0", "up"]);
    must("ip", ["-n", this.ns, "link", "set", "lo", "up"]);
    mkdirSync(`/etc/netns/${this.ns}`, { recursive: true });
    this.hasNetwork = true;
    this.writeHosts(this.k.hostsInput(this));
    log("pod network", { pod: this.key, netns: this.ns, ip: this.ip });
  }

  writeHosts(h: HostsInput): void {
    const text = hostsFile(h);
    if (text === this.hosts) return;
    // In place (same inode): ip netns exec bind-mounts this file, and a rename would leave
    // running processes with the old one.
    writeFileSync(`/etc/netns/${this.ns}/hosts`, text, { flag: "w" });
    this.hosts = text;
  }

  private user(c: k8s.V1Container, image: { uid: number; gid: number }): { uid: number; gid: number } {
    const ps = this.pod.spec?.securityContext;
    const cs = c.securityContext;
    return { uid: cs?.runAsUser ?? ps?.runAsUser ?? image.uid, gid: cs?.runAsGroup ?? ps?.runAsGroup ?? image.gid };
  }

  /** Writes configMap/secret/downwardAPI/projected volumes (only tokens when `tokensOnly`), makes emptyDirs, finds claim dirs. */
  private async writeVolumes(tokensOnly: boolean): Promise<void> {
    const pod = this.pod;
    const firstUser = this.user(pod.spec?.containers[0] ?? { name: "" }, { uid: 1000, gid: 1000 });
    const owner = { uid: firstUser.uid, gid: pod.spec?.securityContext?.fsGroup ?? firstUser.gid };
    const files = (dir: string, entries: [string, string | Buffer][]): void => {
      mkdirSync(dir, { recursive: true });
      for (const [path, content] of entries) {
        const f = join(dir, path);
        mkdirSync(dirname(f), { recursive: true });
        writeFileSync(f, content, { mode: 0o644 });
      }
    };
    const fieldValue = (path: string): string => fieldRef(pod, path);
    const fromMap = (data: Record<string, string | Buffer>, items: k8s.V1KeyToPath[] | undefined): [string, string | Buffer][] =>
      items && items.length > 0 ? items.filter((i) => data[i.key] !== undefined).map((i) => [i.path, data[i.key]!]) : Object.entries(data);
    const secretData = (s: k8s.V1Secret): Record<string, Buffer> => Object.fromEntries(Object.entries(s.data ?? {}).map(([k, v]) => [k, Buffer.from(v, "base64")]));
    let minExpiry = Infinity;
    for (const v of pod.spec?.volumes ?? []) {
      const dir = join(this.podDir, "volumes", v.name);
      if (v.persistentVolumeClaim) {
        if (tokensOnly) continue;
        const d = this.k.claimDir(this.namespace, v.persistentVolumeClaim.claimName);
        if (d === undefined) throw new Error(`claim ${v.persistentVolumeClaim.claimName} not bound`);
        mkdirSync(d, { recursive: true });
        chown(d, owner);
        this.volumes.set(v.name, d);
      } else if (v.emptyDir) {
        if (tokensOnly) continue;
        mkdirSync(dir, { recursive: true });
        chown(dir, owner);
        this.volumes.set(v.name, dir);
      } else if (v.hostPath) {
        if (tokensOnly) continue;
        this.volumes.set(v.name, v.hostPath.path);
      } else if (v.configMap) {
        if (tokensOnly) continue;
        const cm = await this.k.configMap(this.namespace, v.configMap.name ?? "").catch((e: unknown) => { if (v.configMap?.optional) return undefined; throw e; });
        files(dir, fromMap({ ...(cm?.data ?? {}) }, v.configMap.items));
        chown(dir, owner);
        this.volumes.set(v.name, dir);
      } else if (v.secret) {
        if (tokensOnly) continue;
        const s = await this.k.secret(this.namespace, v.secret.secretName ?? "").catch((e: unknown) => { if (v.secret?.optional) return undefined; throw e; });
        files(dir, fromMap(s ? secretData(s) : {}, v.secret.items));
        chown(dir, owner);
        this.volumes.set(v.name, dir);
      } else if (v.downwardAPI) {
        if (tokensOnly) continue;
        files(dir, (v.downwardAPI.items ?? []).filter((i) => i.fieldRef).map((i) => [i.path, fieldValue(i.fieldRef!.fieldPath)]));
        chown(dir, owner);
        this.volumes.set(v.name, dir);
      } else if (v.projected) {
        const entries: [string, string | Buffer][] = [];
        let hasToken = false;
        for (const src of v.projected.sources ?? []) {
          if (src.serviceAccountToken) {
            hasToken = true;
            const exp = src.serviceAccountToken.expirationSeconds ?? 3607;
            const t = await this.k.token(pod, src.serviceAccountToken.audience, exp);
            entries.push([src.serviceAccountToken.path, t.status?.token ?? ""]);
            minExpiry = Math.min(minExpiry, exp);
          } else if (tokensOnly) {
            continue;
          } else if (src.configMap) {
            const cm = await this.k.configMap(this.namespace, src.configMap.name ?? "").catch((e: unknown) => { if (src.configMap?.optional) return undefined; throw e; });
            entries.push(...fromMap({ ...(cm?.data ?? {}) }, src.configMap.items));
          } else if (src.secret) {
            const s = await this.k.secret(this.namespace, src.secret.name ?? "").catch((e: unknown) => { if (src.secret?.optional) return undefined; throw e; });
            entries.push(...fromMap(s ? secretData(s) : {}, src.secret.items));
          } else if (src.downwardAPI) {
            for (const i of src.downwardAPI.items ?? []) if (i.fieldRef) entries.push([i.path, fieldValue(i.fieldRef.fieldPath)]);
          }
        }
        if (tokensOnly && !hasToken) continue;
        files(dir, entries);
        chown(dir, owner);
        this.volumes.set(v.name, dir);
      } else if (!tokensOnly) {
        throw new Error(`volume ${v.name}: only persistentVolumeClaim, emptyDir, hostPath, configMap, secret, downwardAPI and projected are supported`);
      }
    }
    // Refresh at half the lifetime, as the kubelet does at 80%.
    this.tokenRefreshAt = Number.isFinite(minExpiry) ? Date.now() + (minExpiry * 1000) / 2 : Infinity;
  }

  private async env(c: k8s.V1Container, image: Readonly<Record<string, string>>): Promise<Map<string, string>> {
    const env = new Map<string, string>(Object.entries(image));
    env.set("PATH", `${dirname(process.execPath)}:${image["PATH"] ?? "/usr/bin:/bin"}`);
    env.set("HOSTNAME", this.pod.spec?.hostname ?? this.pod.metadata?.name ?? "");
    const host = this.k.apiserverAddress;
    const port = String(this.k.config.apiserverPort);
    env.set("KUBERNETES_SERVICE_HOST", host);
    env.set("KUBERNETES_SERVICE_PORT", port);
    env.set("KUBERNETES_SERVICE_PORT_HTTPS", port);
    env.set("KUBERNETES_PORT", `tcp://${host}:${port}`);
    const defined = new Map<string, string>();
    const set = (k: string, v: string): void => { env.set(k, v); defined.set(k, v); };
    for (const from of c.envFrom ?? []) {
      const prefix = from.prefix ?? "";
      if (from.configMapRef) {
        const cm = await this.k.configMap(this.namespace, from.configMapRef.name ?? "").catch((e: unknown) => { if (from.configMapRef?.optional) return undefined; throw e; });
        for (const [k, v] of Object.entries(cm?.data ?? {})) set(prefix + k, v);
      } else if (from.secretRef) {
        const s = await this.k.secret(this.namespace, from.secretRef.name ?? "").catch((e: unknown) => { if (from.secretRef?.optional) return undefined; throw e; });
        for (const [k, v] of Object.entries(s?.data ?? {})) set(prefix + k, Buffer.from(v, "base64").toString("utf8"));
      }
    }
    for (const e of c.env ?? []) {
      if (e.value !== undefined) { set(e.name, expandVars(e.value, defined)); continue; }
      const f = e.valueFrom;
      if (f?.fieldRef) set(e.name, fieldRef(this.pod, f.fieldRef.fieldPath, this.ip));
      else if (f?.configMapKeyRef) {
        const cm = await this.k.configMap(this.namespace, f.configMapKeyRef.name ?? "").catch((err: unknown) => { if (f.configMapKeyRef?.optional) return undefined; throw err; });
        const v = cm?.data?.[f.configMapKeyRef.key];
        if (v !== undefined) set(e.name, v);
      } else if (f?.secretKeyRef) {
        const s = await this.k.secret(this.namespace, f.secretKeyRef.name ?? "").catch((err: unknown) => { if (f.secretKeyRef?.optional) return undefined; throw err; });
        const v = s?.data?.[f.secretKeyRef.key];
        if (v !== undefined) set(e.name, Buffer.from(v, "base64").toString("utf8"));
      } else {
        set(e.name, "");
      }
    }
    return env;
  }

  private async startContainer(r: Run): Promise<void> {
    const c = r.spec;
    const mapped = mapContainer(c.image ?? "", c.command, c.args);
    if (!mapped.ok) {
      r.state = { waiting: { reason: "ImageNotMappable", message: mapped.reason } };
      this.pushStatus();
      return;
    }
    let env: Map<string, string>;
    try {
      env = await this.env(c, mapped.image.env);
    } catch (err) {
      r.state = { waiting: { reason: "CreateContainerConfigError", message: String(err) } };
      this.pushStatus();
      return;
    }
    const argv = mapped.argv.map((a) => expandVars(a, env));
    const mounts: Mount[] = [{ source: this.k.config.repoRoot, target: APP_DIR, readOnly: true }];
    for (const m of c.volumeMounts ?? []) {
      const src = this.volumes.get(m.name);
      if (src === undefined) {
        r.state = { waiting: { reason: "CreateContainerConfigError", message: `volume ${m.name} not found` } };
        this.pushStatus();
        return;
      }
      const source = m.subPath ? join(src, m.subPath) : src;
      if (m.subPath) mkdirSync(source, { recursive: true });
      mounts.push({ source, target: m.mountPath, readOnly: m.readOnly === true });
    }
    for (const m of mounts) this.k.ensureMountpoint(m.target);
    const user = this.user(c, mapped.image);
    const script = launchScript({ mounts, workingDir: c.workingDir ?? mapped.image.workingDir, uid: user.uid, gid: user.gid, env, argv });
    mkdirSync(this.podDir, { recursive: true });
    const logFile = join(this.podDir, `${c.name}.log`);
    const fd = openSync(logFile, "a");
    let child: ChildProcess;
    try {
      child = spawn("ip", ["netns", "exec", this.ns, "/bin/sh", "-c", script], { stdio: ["ignore", fd, fd], detached: true });
    } finally {
      closeSync(fd);
    }
    r.child = child;
    r.pid = child.pid;
    r.uid = user.uid;
    r.gid = user.gid;
    r.startedAt = now();
    r.stopping = false;
    r.ready = false;
    r.state = { running: { startedAt: r.startedAt } };
    r.exited = new Promise<void>((res) => child.once("exit", (code, signal) => {
      const exitCode = code ?? 128 + (signal ? (osSignal(signal)) : 0);
      this.clearProbes(r);
      r.lastState = {};
      r.state = { terminated: { exitCode, reason: exitCode === 0 ? "Completed" : "Error", signal: signal ? osSignal(signal) : undefined, startedAt: r.startedAt, finishedAt: now(), containerID: `bed://${r.pid}` } };
      r.ready = false;
      log("container exited", { pod: this.key, container: c.name, pid: r.pid, exitCode, signal });
      res();
      if (!r.stopping && !this.terminating && shouldRestart(this.pod.spec?.restartPolicy, exitCode)) {
        const delay = restartDelayMs(r.restartCount + 1);
        r.lastState = r.state;
        r.state = { waiting: { reason: "CrashLoopBackOff", message: `back-off ${delay / 1000}s restarting failed container` } };
        r.restartTimer = setTimeout(() => {
          r.restartTimer = undefined;
          if (this.terminating) return;
          r.restartCount++;
          void this.startContainer(r);
        }, delay);
      }
      this.pushStatus();
    }));
    log("container started", { pod: this.key, container: c.name, pid: child.pid, argv, log: logFile });
    this.startProbes(r);
    this.pushStatus();
  }

  private startProbes(r: Run): void {
    const c = r.spec;
    const loop = (p: k8s.V1Probe, onResult: (state: Probe) => void): void => {
      const st: Probe = { failures: 0, successes: 0, ok: false };
      const tick = async (): Promise<void> => {
        if (r.stopping || this.terminating || !("running" in r.state && r.state.running)) return;
        const ok = await this.probe(p, r).catch(() => false);
        if (ok) { st.successes++; st.failures = 0; } else { st.failures++; st.successes = 0; }
        onResult(st);
        if (!r.stopping && !this.terminating) r.probeTimers.push(setTimeout(() => { void tick(); }, (p.periodSeconds ?? 10) * 1000));
      };
      r.probeTimers.push(setTimeout(() => { void tick(); }, (p.initialDelaySeconds ?? 0) * 1000));
    };
    if (c.readinessProbe) {
      const p = c.readinessProbe;
      loop(p, (st) => {
        const was = r.ready;
        if (st.successes >= (p.successThreshold ?? 1)) r.ready = true;
        if (st.failures >= (p.failureThreshold ?? 3)) r.ready = false;
        if (was !== r.ready) { log("readiness", { pod: this.key, container: c.name, ready: r.ready }); this.pushStatus(); }
      });
    } else {
      r.ready = true;
    }
    if (c.livenessProbe) {
      const p = c.livenessProbe;
      loop(p, (st) => {
        if (st.failures >= (p.failureThreshold ?? 3) && !r.stopping) {
          log("liveness failed; restarting container", { pod: this.key, container: c.name });
          void this.killContainer(r, this.graceSeconds(), false);
        }
      });
    }
  }

  private clearProbes(r: Run): void {
    for (const t of r.probeTimers) clearTimeout(t);
    r.probeTimers = [];
  }

  private async probe(p: k8s.V1Probe, r: Run): Promise<boolean> {
    const timeoutMs = (p.timeoutSeconds ?? 1) * 1000;
    const port = (v: number | string | undefined): number => {
      if (typeof v === "number") return v;
      if (v !== undefined && /^\d+$/.test(v)) return Number(v);
      const found = (r.spec.ports ?? []).find((x) => x.name === v);
      if (found === undefined) throw new Error(`no container port named ${String(v)}`);
      return found.containerPort;
    };
    if (p.httpGet) {
      const g = p.httpGet;
      const mod = g.scheme === "HTTPS" ? https : http;
      return new Promise<boolean>((res) => {
        const req = mod.get({
          host: g.host ?? this.ip, port: port(g.port), path: g.path ?? "/", timeout: timeoutMs, rejectUnauthorized: false,
          headers: Object.fromEntries((g.httpHeaders ?? []).map((h) => [h.name, h.value])),
        }, (resp) => { resp.resume(); res((resp.statusCode ?? 0) >= 200 && (resp.statusCode ?? 0) < 400); });
        req.on("timeout", () => req.destroy(new Error("timeout")));
        req.on("error", () => res(false));
      });
    }
    if (p.tcpSocket) {
      const t = p.tcpSocket;
      return new Promise<boolean>((res) => {
        const s = net.connect({ host: t.host ?? this.ip, port: port(t.port), timeout: timeoutMs });
        s.on("connect", () => { s.destroy(); res(true); });
        s.on("timeout", () => { s.destroy(); res(false); });
        s.on("error", () => res(false));
      });
    }
    if (p.exec?.command && r.pid !== undefined) {
      // In the container's namespaces (network and mounts), as the container's user.
      const out = spawnSync("nsenter", ["-t", String(r.pid), "-n", "-m", "-S", String(r.uid ?? 0), "-G", String(r.gid ?? 0), "--", ...p.exec.command], { timeout: timeoutMs, stdio: "ignore" });
      return out.status === 0;
    }
    return false;
  }

  /** SIGTERM to the container's process group, SIGKILL after `grace` seconds; resolves when it has exited. */
  private async killContainer(r: Run, grace: number, final: boolean): Promise<void> {
    if (r.restartTimer) { clearTimeout(r.restartTimer); r.restartTimer = undefined; }
    this.clearProbes(r);
    const child = r.child;
    if (child === undefined || child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
    r.stopping = final;
    const pid = child.pid;
    const signal = (s: NodeJS.Signals): void => { try { process.kill(-pid, s); } catch { /* gone */ } };
    signal("SIGTERM");
    const timer = setTimeout(() => signal("SIGKILL"), Math.max(0, grace) * 1000);
    await r.exited;
    clearTimeout(timer);
    // A process group member that outlived the leader goes too.
    signal("SIGKILL");
  }

  /** Stops every container (grace period, then SIGKILL), removes the network namespace and emptyDirs. */
  async terminate(grace: number): Promise<void> {
    if (this.terminating) return;
    this.terminating = true;
    log("stopping pod", { pod: this.key, grace });
    await Promise.all([...this.runs.values()].map((r) => this.killContainer(r, grace, true)));
    if (this.hasNetwork) {
      // Anything else still in the namespace (an exec probe, a stray child) goes with it.
      for (const p of run("ip", ["netns", "pids", this.ns]).out.split(/\s+/).filter(Boolean)) {
        try { process.kill(Number(p), "SIGKILL"); } catch { /* gone */ }
      }
      run("ip", ["netns", "del", this.ns]);
      run("ip", ["link", "del", vethName(this.k.config.bedIndex, this.slot)]);
      rmSync(`/etc/netns/${this.ns}`, { recursive: true, force: true });
      this.hasNetwork = false;
    }
    rmSync(join(this.podDir, "volumes"), { recursive: true, force: true });
    this.stopped = true;
    log("pod stopped", { pod: this.key });
  }

  // ------------------------------------------------------------------------------------------
  // Status

  private status(): k8s.V1PodStatus {
    const t = now();
    const runs = [...this.runs.values()];
    const containers = this.pod.spec?.containers ?? [];
    const statuses: k8s.V1ContainerStatus[] = containers.map((c) => {
      const r = this.runs.get(c.name);
      const waiting = this.waitingReason ?? { reason: "ContainerCreating", message: "" };
      return {
        name: c.name, image: c.image ?? "", imageID: `bed://${c.image ?? ""}`,
        containerID: r?.pid !== undefined ? `bed://${r.pid}` : undefined,
        ready: r?.ready === true && r.state.running !== undefined,
        started: r?.state.running !== undefined,
        restartCount: r?.restartCount ?? 0,
        state: r?.state ?? { waiting },
        lastState: r?.lastState ?? {},
      };
    });
    const allRunning = runs.length === containers.length && runs.every((r) => r.state.running !== undefined);
    const allReady = statuses.every((s) => s.ready);
    const policy = this.pod.spec?.restartPolicy ?? "Always";
    const allDone = runs.length === containers.length && runs.length > 0 && runs.every((r) => r.state.terminated !== undefined && r.restartTimer === undefined);
    let phase = "Pending";
    if (allDone && policy !== "Always") phase = runs.every((r) => r.state.terminated?.exitCode === 0) ? "Succeeded" : "Failed";
    else if (this.started && runs.some((r) => r.state.running !== undefined || r.restartTimer !== undefined || r.restartCount > 0)) phase = "Running";
    else if (allRunning) phase = "Running";
    const cond = (type: string, ok: boolean, reason?: string): k8s.V1PodCondition => {
      const status = ok ? "True" : "False";
      const key = `${type}=${status}`;
      if (!this.since.has(key)) { this.since.delete(`${type}=${ok ? "False" : "True"}`); this.since.set(key, t); }
      return { type, status, lastTransitionTime: this.since.get(key), ...(ok || reason === undefined ? {} : { reason }) };
    };
    return {
      phase,
      conditions: [
        cond("PodReadyToStartContainers", this.hasNetwork),
        cond("Initialized", true),
        cond("Ready", allReady && allRunning, "ContainersNotReady"),
        cond("ContainersReady", allReady && allRunning, "ContainersNotReady"),
        cond("PodScheduled", true),
      ],
      hostIP: this.k.apiserverAddress, hostIPs: [{ ip: this.k.apiserverAddress }],
      ...(this.hasNetwork ? { podIP: this.ip, podIPs: [{ ip: this.ip }] } : {}),
      startTime: this.startTime,
      containerStatuses: statuses,
    };
  }

  /** Writes the status if it changed; one write in flight per pod, the latest wins. */
  pushStatus(): void {
    if (this.terminating && !this.hasNetwork && this.runs.size === 0) return;
    if (this.statusBusy) { this.statusAgain = true; return; }
    const status = this.status();
    const text = JSON.stringify({ ...status, conditions: status.conditions?.map((c) => ({ ...c })) });
    if (text === this.lastStatus) return;
    this.statusBusy = true;
    void this.k.patchStatus(this.pod, status).then(() => { this.lastStatus = text; }, (err: unknown) => {
      if (!isStatus(err, 404)) log("status write failed", { pod: this.key, err: String(err) });
    }).finally(() => {
      this.statusBusy = false;
      if (this.statusAgain) { this.statusAgain = false; this.pushStatus(); }
    });
  }
}

function fieldRef(pod: k8s.V1Pod, path: string, podIP?: string): string {
  const m = /^metadata\.(labels|annotations)\['(.+)'\]$/.exec(path);
  if (m) return (m[1] === "labels" ? pod.metadata?.labels : pod.metadata?.annotations)?.[m[2]!] ?? "";
  switch (path) {
    case "metadata.name": return pod.metadata?.name ?? "";
    case "metadata.namespace": return pod.metadata?.namespace ?? "";
    case "metadata.uid": return pod.metadata?.uid ?? "";
    case "spec.nodeName": return pod.spec?.nodeName ?? "";
    case "spec.serviceAccountName": return pod.spec?.serviceAccountName ?? "";
    case "status.podIP": case "status.podIPs": return podIP ?? pod.status?.podIP ?? "";
    case "status.hostIP": case "status.hostIPs": return pod.status?.hostIP ?? "";
    default: throw new Error(`fieldRef ${path} is not supported by the bed kubelet`);
  }
}

function chown(path: string, o: { uid: number; gid: number }): void {
  spawnSync("chown", ["-R", `${o.uid}:${o.gid}`, path]);
}

function osSignal(signal: NodeJS.Signals): number {
  return (osConstants.signals as Readonly<Record<string, number | undefined>>)[signal] ?? 0;
}

/** Reads the kubelet configuration written by the bed. */
export function readConfig(file: string): KubeletConfig {
  return JSON.parse(readFileSync(file, "utf8")) as KubeletConfig;
}
