// The Kubernetes test bed: etcd (ours by default) + kube-apiserver + kube-controller-manager +
// the process kubelet (kubelet/), all detached processes whose PIDs are recorded in the bed's
// state directory, so `npm run bed:up` can return and `npm run bed:down` (or a test's cleanup)
// can stop exactly them later. Design note: test/kube/README.md.
//
//   <dir>/state.json   what is running: bed index, PIDs (with their start times, so a reused
//                      PID is never signalled), API server URL
//   <dir>/kubeconfig   the admin kubeconfig (printed last by bed:up)
//   <dir>/pki/         CA, serving and client certificates, service-account keys
//   <dir>/etcd/        the store's data    <dir>/logs/  every component's log
//   <dir>/volumes/     one directory per claim    <dir>/pods/  per-pod volumes and container logs

import { spawn } from "node:child_process";
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, readdirSync, rmSync, rmdirSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import * as k8s from "@kubernetes/client-node";
import { ensureNetworkTools, must, run } from "../faults/netns.js";
import { freePort, repoRoot } from "../harness/index.js";
import { adminGet, apiserverArgs, certKubeconfig, controllerManagerArgs, makeCerts, toolPaths } from "./controlplane.js";
import { MOUNTPOINTS_FILE } from "./kubelet/kubelet.js";
import type { KubeletConfig } from "./kubelet/kubelet.js";
import { bedIndexOf, bridgeAddress, bridgeName, freeBedIndex, ownedBy } from "./kubelet/pure.js";

export type BedEtcd = "ours" | "etcd";

export interface BedOptions {
  /** State directory (default: <repo>/.bed, or $BED_DIR). */
  readonly dir?: string;
  /** The store under kube-apiserver: "ours" (default, $BED_ETCD) or "etcd" (real etcd 3.6 from the toolchain). */
  readonly etcd?: BedEtcd;
  readonly readyTimeoutMs?: number;
  /** Progress lines (default: none). */
  readonly say?: (line: string) => void;
}

export interface RecordedProcess {
  readonly name: string;
  readonly pid: number;
  /** /proc/<pid>/stat start time: identifies the process even if its PID is reused later. */
  readonly start: string;
}

export interface BedState {
  readonly index: number;
  readonly etcd: BedEtcd;
  readonly apiserverUrl: string;
  readonly kubeconfig: string;
  readonly processes: RecordedProcess[];
}

export interface Bed {
  readonly dir: string;
  readonly kubeconfig: string;
  readonly state: BedState;
  /** True when bed:up found it already running. */
  readonly alreadyUp: boolean;
}

export const defaultBedDir = (): string => process.env["BED_DIR"] || join(repoRoot, ".bed");
export const NODE_NAME = "bed-0";
const stateFile = (dir: string): string => join(dir, "state.json");
/** Everything a bed writes into its directory. */
const BED_ENTRIES = ["state.json", "kubeconfig", "kubelet.json", "pki", "logs", "etcd", "volumes", "pods"] as const;

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
const alive = (p: RecordedProcess): boolean => startTime(p.pid) === p.start;

export function readState(dir: string): BedState | undefined {
  try {
    return JSON.parse(readFileSync(stateFile(dir), "utf8")) as BedState;
  } catch {
    return undefined;
  }
}
function writeState(dir: string, s: BedState): void {
  writeFileSync(stateFile(dir), JSON.stringify(s, null, 2) + "\n");
}

/** Is every recorded process of the bed still running? */
export function isUp(dir: string): boolean {
  const s = readState(dir);
  return s !== undefined && s.processes.length === 4 && s.processes.every(alive);
}

function launch(dir: string, name: string, bin: string, args: readonly string[]): RecordedProcess {
  const fd = openSync(join(dir, "logs", `${name}.log`), "a");
  try {
    const child = spawn(bin, args, { stdio: ["ignore", fd, fd], detached: true });
    child.unref();
    if (child.pid === undefined) throw new Error(`could not start ${bin}`);
    return { name, pid: child.pid, start: startTime(child.pid) ?? "" };
  } finally {
    closeSync(fd);
  }
}

function logTail(dir: string, name: string, n = 30): string {
  try {
    return readFileSync(join(dir, "logs", `${name}.log`), "utf8").split("\n").slice(-n).join("\n");
  } catch {
    return "";
  }
}

async function until(what: string, timeoutMs: number, check: () => Promise<boolean>, exited: () => string | undefined): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const dead = exited();
    if (dead !== undefined) throw new Error(`${what}: ${dead}`);
    if (await check().catch(() => false)) return;
    if (Date.now() > deadline) throw new Error(`${what}: not after ${timeoutMs} ms`);
    await sleep(500);
  }
}

/** Indexes of beds whose bridge (or anything else) holds a 198.18.0.0/15 address on this machine. */
function bedIndexesInUse(): Set<number> {
  const used = new Set<number>();
  for (const m of run("ip", ["-4", "-o", "addr", "show"]).out.matchAll(/inet (198\.1[89]\.\d+\.\d+)/g)) {
    const i = bedIndexOf(m[1]!);
    if (i !== undefined) used.add(i);
  }
  return used;
}

/** A bridge with the first address of a free /24; another bed taking the same /24 at once makes us retry. */
function makeBridge(): number {
  const tried = new Set<number>();
  for (let attempt = 0; attempt < 10; attempt++) {
    const index = freeBedIndex(new Set([...bedIndexesInUse(), ...tried]));
    tried.add(index);
    const br = bridgeName(index);
    if (!run("ip", ["link", "add", br, "type", "bridge"]).ok) continue;
    must("ip", ["addr", "add", `${bridgeAddress(index)}/24`, "dev", br]);
    must("ip", ["link", "set", br, "up"]);
    const clash = run("ip", ["-4", "-o", "addr", "show"]).out.split("\n")
      .some((l) => !l.includes(` ${br} `) && l.includes(`inet ${bridgeAddress(index).replace(/\.1$/, ".")}`));
    if (!clash) return index;
    run("ip", ["link", "del", br]);
  }
  throw new Error("could not get a 198.18.0.0/15 /24 for the bed after 10 tries");
}

/**
 * Starts the bed and waits until its Node is Ready. When the bed in `dir` is already running,
 * returns it (alreadyUp) without touching it; a half-dead one is taken down first.
 */
export async function bedUp(opts: BedOptions = {}): Promise<Bed> {
  const dir = opts.dir ?? defaultBedDir();
  const say = opts.say ?? (() => undefined);
  const timeout = opts.readyTimeoutMs ?? 240_000;
  const existing = readState(dir);
  if (existing !== undefined && isUp(dir)) return { dir, kubeconfig: existing.kubeconfig, state: existing, alreadyUp: true };
  if (existing !== undefined) {
    say("a previous bed is partly running; taking it down first");
    bedDown(dir);
  }
  const why = ensureNetworkTools();
  if (why !== undefined) throw new Error(`the bed needs network namespaces: ${why}`);
  const tools = toolPaths();
  for (const p of [tools.kubeApiserver, tools.kubeControllerManager]) if (!existsSync(p)) throw new Error(`MISSING ${p}: run \`npm run tools\``);
  const etcdKind: BedEtcd = opts.etcd ?? ((process.env["BED_ETCD"] as BedEtcd | undefined) || "ours");
  if (etcdKind !== "ours" && etcdKind !== "etcd") throw new Error(`BED_ETCD must be "ours" or "etcd", not ${String(etcdKind)}`);
  const etcdBin = process.env["ETCD36_BIN"] || join(process.env["ETCDTS_TOOLS_BIN"] || join(repoRoot, ".tools", "bin"), "etcd");
  if (etcdKind === "etcd" && !existsSync(etcdBin)) throw new Error(`MISSING ${etcdBin}: run \`npm run tools\``);
  const ours = join(repoRoot, "dist", "node", "src", "main.js");
  const kubeletMain = join(repoRoot, "dist", "test", "kube", "kubelet", "main.js");
  for (const p of [ours, kubeletMain]) if (!existsSync(p)) throw new Error(`MISSING ${p}: run \`npm run build\``);

  // A fresh start: the previous bed's logs and volumes go (only what a bed writes: BED_DIR may
  // name a directory that holds other things too).
  for (const d of BED_ENTRIES) rmSync(join(dir, d), { recursive: true, force: true });
  for (const d of ["pki", "logs", "etcd", "volumes", "pods"]) mkdirSync(join(dir, d), { recursive: true });
  const index = makeBridge();
  const address = bridgeAddress(index);
  const kubeconfig = join(dir, "kubeconfig");
  const processes: RecordedProcess[] = [];
  let state: BedState = { index, etcd: etcdKind, apiserverUrl: "", kubeconfig, processes };
  writeState(dir, state);
  try {
    say(`bed ${index}: bridge ${bridgeName(index)} ${address}/24, state in ${dir}`);
    const pki = join(dir, "pki");
    makeCerts(pki, [address]);

    const [clientPort, peerPort] = [await freePort(), await freePort()];
    const clientUrl = `http://127.0.0.1:${clientPort}`;
    const peerUrl = `http://127.0.0.1:${peerPort}`;
    const flags = ["--name", "bed", "--data-dir", join(dir, "etcd", "data"),
      "--listen-client-urls", clientUrl, "--advertise-client-urls", clientUrl,
      "--listen-peer-urls", peerUrl, "--initial-advertise-peer-urls", peerUrl, "--initial-cluster", `bed=${peerUrl}`];
    const etcd = etcdKind === "ours" ? launch(dir, "etcd", process.execPath, [ours, ...flags]) : launch(dir, "etcd", etcdBin, flags);
    processes.push(etcd);
    writeState(dir, state);
    const gone = (p: RecordedProcess) => (): string | undefined => (alive(p) ? undefined : `${p.name} exited:\n${logTail(dir, p.name)}`);
    await until(`${etcdKind === "ours" ? "etcd-ts" : "etcd 3.6"} healthy`, timeout, async () => (await fetch(`${clientUrl}/health`)).ok, gone(etcd));
    say(`${etcdKind === "ours" ? "etcd-ts" : "etcd 3.6"} on ${clientUrl} (pid ${etcd.pid})`);

    const port = await freePort();
    const url = `https://${address}:${port}`;
    const apiserver = launch(dir, "kube-apiserver", tools.kubeApiserver, apiserverArgs({ etcdServers: clientUrl, port, address, dir: pki }));
    processes.push(apiserver);
    state = { ...state, apiserverUrl: url };
    writeState(dir, state);
    await until("kube-apiserver ready", timeout, async () => (await adminGet(`${url}/readyz`, pki)).status === 200, gone(apiserver));
    writeFileSync(kubeconfig, certKubeconfig(pki, url, "admin"));
    const kcmConfig = join(pki, "kcm.kubeconfig");
    writeFileSync(kcmConfig, certKubeconfig(pki, url, "kcm"));
    say(`kube-apiserver on ${url} (pid ${apiserver.pid})`);

    const kcm = launch(dir, "kube-controller-manager", tools.kubeControllerManager, controllerManagerArgs({ kubeconfig: kcmConfig, port: await freePort(), dir: pki }));
    processes.push(kcm);
    writeState(dir, state);
    say(`kube-controller-manager (pid ${kcm.pid})`);

    const config: KubeletConfig = { kubeconfig, nodeName: NODE_NAME, bedIndex: index, dir, repoRoot, apiserverPort: port };
    writeFileSync(join(dir, "kubelet.json"), JSON.stringify(config, null, 2) + "\n");
    const kubelet = launch(dir, "kubelet", process.execPath, [kubeletMain, join(dir, "kubelet.json")]);
    processes.push(kubelet);
    writeState(dir, state);

    const kc = new k8s.KubeConfig();
    kc.loadFromFile(kubeconfig);
    const core = kc.makeApiClient(k8s.CoreV1Api);
    await until(`node ${NODE_NAME} Ready`, timeout, async () => {
      const node = await core.readNode({ name: NODE_NAME });
      return node.status?.conditions?.some((c) => c.type === "Ready" && c.status === "True") === true;
    }, () => [kcm, kubelet].map((p) => gone(p)()).find((x) => x !== undefined));
    // Pods need their namespace's ServiceAccount, made by kube-controller-manager.
    await until("ServiceAccount default/default", timeout, async () => (await core.readNamespacedServiceAccount({ name: "default", namespace: "default" })) !== undefined, gone(kcm));
    say(`kubelet (pid ${kubelet.pid}): node ${NODE_NAME} Ready`);
    return { dir, kubeconfig, state, alreadyUp: false };
  } catch (err) {
    bedDown(dir);
    throw err;
  }
}

function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/**
 * Stops every process the bed recorded (SIGTERM, SIGKILL after 30 s; the kubelet stops its pods
 * on SIGTERM), kills whatever is left in the bed's network namespaces, and removes the
 * namespaces, links, /etc/netns entries and mount-point directories it made. Synchronous, so it
 * also works from an exit handler. Idempotent; returns what it did.
 */
export function bedDown(dir: string = defaultBedDir()): string[] {
  const done: string[] = [];
  const state = readState(dir);
  if (state === undefined) return done;
  // Kubelet first (it stops the pods), the store last.
  for (const p of [...state.processes].reverse()) {
    if (!alive(p)) continue;
    try { process.kill(p.pid, "SIGTERM"); } catch { continue; }
    const deadline = Date.now() + 30_000;
    while (alive(p) && Date.now() < deadline) sleepSync(100);
    if (alive(p)) {
      try { process.kill(p.pid, "SIGKILL"); } catch { /* gone */ }
      const killDeadline = Date.now() + 10_000;
      while (alive(p) && Date.now() < killDeadline) sleepSync(50);
      done.push(`killed ${p.name} (pid ${p.pid})`);
    } else {
      done.push(`stopped ${p.name} (pid ${p.pid})`);
    }
  }
  for (const line of run("ip", ["netns", "list"]).out.split("\n")) {
    const ns = line.split(" ")[0] ?? "";
    if (!ns || !ownedBy(state.index, ns)) continue;
    for (const pid of run("ip", ["netns", "pids", ns]).out.split(/\s+/).filter(Boolean)) {
      try { process.kill(Number(pid), "SIGKILL"); done.push(`killed pid ${pid} in ${ns}`); } catch { /* gone */ }
    }
    run("ip", ["netns", "del", ns]);
    done.push(`removed netns ${ns}`);
  }
  for (const ns of existsSync("/etc/netns") ? readdirSync("/etc/netns") : []) {
    if (ownedBy(state.index, ns)) rmSync(join("/etc/netns", ns), { recursive: true, force: true });
  }
  const links = run("ip", ["-o", "link", "show"]).out.split("\n").map((l) => /^\d+:\s+([^:@\s]+)/.exec(l)?.[1] ?? "");
  // Veths before the bridge.
  for (const name of links.filter((n) => n && ownedBy(state.index, n)).sort((a, b) => b.length - a.length)) {
    run("ip", ["link", "del", name]);
    done.push(`removed link ${name}`);
  }
  const otherBeds = run("ip", ["-o", "link", "show"]).out.split("\n")
    .map((l) => /^\d+:\s+(bed\d+)[:@]/.exec(l)?.[1]).filter((n): n is string => n !== undefined);
  if (otherBeds.length > 0) {
    done.push(`left the mount-point directories for the other bed(s) on this machine (${otherBeds.join(", ")})`);
  } else {
    try {
      const created = readFileSync(MOUNTPOINTS_FILE, "utf8").split("\n").filter(Boolean);
      for (const d of [...new Set(created)].sort((a, b) => b.length - a.length)) {
        try { rmdirSync(d); done.push(`removed mount point ${d}`); } catch { /* not empty or gone: leave it */ }
      }
      rmSync(MOUNTPOINTS_FILE, { force: true });
      rmdirSync(dirname(MOUNTPOINTS_FILE));
    } catch { /* none made */ }
  }
  rmSync(stateFile(dir), { force: true });
  return done;
}
