// A real Kubernetes control plane for tests, without containers: real etcd (Debian's 3.4 by
// default) on free ports, and kube-apiserver from the reference toolchain (`npm run tools`)
// with serving and client certificates and a service-account key generated into a temporary
// directory, the way envtest does it. Authentication is by client certificate (CN=admin,
// O=system:masters); authorization is RBAC, so tests can also act as a ServiceAccount with a
// token from the TokenRequest API and find out whether its RBAC suffices.
//
// Everything this starts is killed (by PID) and removed when stop() runs or the process exits.
// The pieces (certificates, flags, kubeconfigs) are exported: the bed (bed.ts) is built from them.

import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { generateKeyPairSync } from "node:crypto";
import { mkdtempSync, openSync, closeSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import https from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { freePort, repoRoot, startMember } from "../harness/index.js";
import type { Member } from "../harness/index.js";

export interface ToolPaths {
  readonly kubeApiserver: string;
  readonly kubeControllerManager: string;
  readonly kubectl: string;
  readonly helm: string;
}

export function toolPaths(): ToolPaths {
  const bin = process.env["ETCDTS_TOOLS_BIN"] ?? join(repoRoot, ".tools", "bin");
  return {
    kubeApiserver: process.env["KUBE_APISERVER_BIN"] ?? join(bin, "kube-apiserver"),
    kubeControllerManager: process.env["KUBE_CONTROLLER_MANAGER_BIN"] ?? join(bin, "kube-controller-manager"),
    kubectl: process.env["KUBECTL_BIN"] ?? join(bin, "kubectl"),
    helm: process.env["HELM_BIN"] ?? join(bin, "helm"),
  };
}

export interface ControlPlane {
  readonly url: string;
  /** kubeconfig of the cluster admin (system:masters). */
  readonly kubeconfig: string;
  readonly dir: string;
  readonly caPem: string;
  /** Client URL of the etcd behind the API server (for tests that compact it, say). */
  readonly etcdClientUrl: string;
  /** Runs kubectl with the admin kubeconfig; never throws, returns the outcome. */
  kubectl(args: readonly string[], input?: string): { status: number | null; stdout: string; stderr: string };
  /** A kubeconfig that authenticates as a ServiceAccount (token from the TokenRequest API). */
  serviceAccountKubeconfig(namespace: string, name: string): string;
  logTail(lines?: number): string;
  stop(): Promise<void>;
}

function openssl(dir: string, args: string[]): void {
  const r = spawnSync("openssl", args, { cwd: dir, encoding: "utf8" });
  if (r.status !== 0) throw new Error(`openssl ${args.join(" ")}: ${r.stderr}`);
}

/**
 * CA, a serving certificate for 127.0.0.1 (and `serverIps`), an admin client certificate
 * (O=system:masters) and one for kube-controller-manager, and the service-account key pair.
 */
export function makeCerts(dir: string, serverIps: readonly string[] = []): void {
  openssl(dir, ["req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt", "-days", "2", "-subj", "/CN=etcd-ts-test-ca"]);
  const ips = ["127.0.0.1", ...serverIps].map((ip) => `IP:${ip}`).join(",");
  writeFileSync(join(dir, "server.ext"), `subjectAltName=${ips},DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local\nextendedKeyUsage=serverAuth\n`);
  openssl(dir, ["req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=kube-apiserver"]);
  openssl(dir, ["x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial", "-out", "server.crt", "-days", "2", "-extfile", "server.ext"]);
  writeFileSync(join(dir, "client.ext"), "extendedKeyUsage=clientAuth\n");
  for (const [name, subj] of [["admin", "/O=system:masters/CN=admin"], ["kcm", "/CN=system:kube-controller-manager"]] as const) {
    openssl(dir, ["req", "-newkey", "rsa:2048", "-nodes", "-keyout", `${name}.key`, "-out", `${name}.csr`, "-subj", subj]);
    openssl(dir, ["x509", "-req", "-in", `${name}.csr`, "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial", "-out", `${name}.crt`, "-days", "2", "-extfile", "client.ext"]);
  }
  const sa = generateKeyPairSync("rsa", { modulusLength: 2048 });
  writeFileSync(join(dir, "sa.key"), sa.privateKey.export({ type: "pkcs8", format: "pem" }));
  writeFileSync(join(dir, "sa.pub"), sa.publicKey.export({ type: "spki", format: "pem" }));
}

export function kubeconfigText(url: string, caPem: string, user: Record<string, string>): string {
  const b64 = (s: string) => Buffer.from(s).toString("base64");
  return JSON.stringify({
    apiVersion: "v1", kind: "Config",
    clusters: [{ name: "test", cluster: { server: url, "certificate-authority-data": b64(caPem) } }],
    users: [{ name: "user", user }],
    contexts: [{ name: "test", context: { cluster: "test", user: "user", namespace: "default" } }],
    "current-context": "test",
  }, null, 2);
}

/** A kubeconfig for a client certificate made by makeCerts ("admin" or "kcm"), certificates inline. */
export function certKubeconfig(dir: string, url: string, user: "admin" | "kcm"): string {
  return kubeconfigText(url, readFileSync(join(dir, "ca.crt"), "utf8"), {
    "client-certificate-data": readFileSync(join(dir, `${user}.crt`)).toString("base64"),
    "client-key-data": readFileSync(join(dir, `${user}.key`)).toString("base64"),
  });
}

/** kube-apiserver's flags, for certificates made by makeCerts in `dir`. */
export function apiserverArgs(o: { etcdServers: string; port: number; address: string; dir: string }): string[] {
  const { dir } = o;
  return [
    `--etcd-servers=${o.etcdServers}`,
    `--secure-port=${o.port}`, `--bind-address=${o.address}`, `--advertise-address=${o.address}`,
    `--cert-dir=${dir}`,
    `--tls-cert-file=${join(dir, "server.crt")}`, `--tls-private-key-file=${join(dir, "server.key")}`,
    `--client-ca-file=${join(dir, "ca.crt")}`,
    "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
    `--service-account-key-file=${join(dir, "sa.pub")}`, `--service-account-signing-key-file=${join(dir, "sa.key")}`,
    "--authorization-mode=RBAC",
    "--service-cluster-ip-range=10.96.0.0/16",
    "--allow-privileged=true",
    // The kubernetes Service cannot point at a loopback address; envtest turns it off too.
    "--endpoint-reconciler-type=none",
    "--enable-priority-and-fairness=false",
    "--v=1",
  ];
}

/**
 * kube-controller-manager's flags: every default controller (statefulset, deployment,
 * replicaset, endpointslice, garbage collector, PV binder, serviceaccount(-token), namespace,
 * root-ca-cert-publisher, node lifecycle, ...), each with its own ServiceAccount's credentials.
 */
export function controllerManagerArgs(o: { kubeconfig: string; port: number; dir: string }): string[] {
  return [
    `--kubeconfig=${o.kubeconfig}`,
    `--authentication-kubeconfig=${o.kubeconfig}`, `--authorization-kubeconfig=${o.kubeconfig}`,
    "--bind-address=127.0.0.1", `--secure-port=${o.port}`,
    "--controllers=*",
    "--use-service-account-credentials=true",
    `--service-account-private-key-file=${join(o.dir, "sa.key")}`, `--root-ca-file=${join(o.dir, "ca.crt")}`,
    "--leader-elect=false",
    // A loaded machine can delay a heartbeat; the default 50 s would evict the bed's pods.
    "--node-monitor-grace-period=2m",
    "--v=1",
  ];
}

/** GET with the admin client certificate of `dir` (made by makeCerts). */
export function adminGet(url: string, dir: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = https.get(url, {
      ca: readFileSync(join(dir, "ca.crt")), cert: readFileSync(join(dir, "admin.crt")), key: readFileSync(join(dir, "admin.key")), timeout: 5000,
    }, (res) => {
      let body = "";
      res.on("data", (d: Buffer) => { body += d.toString(); });
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on("error", reject);
    req.on("timeout", () => req.destroy(new Error("timeout")));
  });
}

const live = new Set<ChildProcess>();
process.on("exit", () => {
  for (const c of live) if (c.pid !== undefined && c.exitCode === null) try { process.kill(c.pid, "SIGKILL"); } catch { /* gone */ }
});

export async function startControlPlane(opts: { readyTimeoutMs?: number } = {}): Promise<ControlPlane> {
  const tools = toolPaths();
  const dir = mkdtempSync(join(tmpdir(), "etcdts-kube-"));
  let etcd: Member | undefined;
  let apiserver: ChildProcess | undefined;
  const logFile = join(dir, "kube-apiserver.log");
  const stop = async (): Promise<void> => {
    if (apiserver?.pid !== undefined && apiserver.exitCode === null && apiserver.signalCode === null) {
      const exited = new Promise((r) => apiserver?.once("exit", r));
      process.kill(apiserver.pid, "SIGTERM");
      const t = setTimeout(() => { if (apiserver?.pid !== undefined && apiserver.exitCode === null) process.kill(apiserver.pid, "SIGKILL"); }, 10_000);
      await exited;
      clearTimeout(t);
    }
    if (apiserver) live.delete(apiserver);
    await etcd?.dispose();
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    makeCerts(dir);
    etcd = await startMember({ impl: "etcd", name: "kube" });
    const port = await freePort();
    const url = `https://127.0.0.1:${port}`;
    const out = openSync(logFile, "a");
    apiserver = spawn(tools.kubeApiserver, apiserverArgs({ etcdServers: etcd.clientUrl, port, address: "127.0.0.1", dir }), { stdio: ["ignore", out, out] });
    closeSync(out);
    live.add(apiserver);
    const deadline = Date.now() + (opts.readyTimeoutMs ?? 180_000);
    for (;;) {
      if (apiserver.exitCode !== null) throw new Error(`kube-apiserver exited ${apiserver.exitCode}:\n${tail(logFile, 30)}`);
      const r = await adminGet(`${url}/readyz`, dir).catch(() => undefined);
      if (r?.status === 200) break;
      if (Date.now() > deadline) throw new Error(`kube-apiserver not ready in time:\n${r?.body ?? ""}\n${tail(logFile, 30)}`);
      await sleep(500);
    }
    const caPem = readFileSync(join(dir, "ca.crt"), "utf8");
    const kubeconfig = join(dir, "admin.kubeconfig");
    writeFileSync(kubeconfig, certKubeconfig(dir, url, "admin"));
    const kubectl = (args: readonly string[], input?: string) => {
      const r = spawnSync(tools.kubectl, ["--kubeconfig", kubeconfig, ...args], { encoding: "utf8", input, timeout: 120_000 });
      return { status: r.status, stdout: r.stdout ?? "", stderr: (r.stderr ?? "") + (r.error ? String(r.error) : "") };
    };
    const etcdClientUrl = etcd.clientUrl;
    return {
      url, kubeconfig, dir, caPem, kubectl, etcdClientUrl,
      serviceAccountKubeconfig(namespace: string, name: string): string {
        const r = kubectl(["create", "token", name, "-n", namespace, "--duration=1h"]);
        if (r.status !== 0) throw new Error(`kubectl create token: ${r.stderr}`);
        const file = join(dir, `sa-${namespace}-${name}.kubeconfig`);
        writeFileSync(file, kubeconfigText(url, caPem, { token: r.stdout.trim() }));
        return file;
      },
      logTail: (n = 40) => tail(logFile, n),
      stop,
    };
  } catch (err) {
    await stop();
    throw err;
  }
}

function tail(file: string, n: number): string {
  try {
    return readFileSync(file, "utf8").split("\n").slice(-n).join("\n");
  } catch {
    return "";
  }
}
