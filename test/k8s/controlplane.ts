// A Kubernetes control plane (kube-apiserver + kube-controller-manager) on an
// etcd endpoint list, for tests. Everything lives in one temp dir: a CA,
// serving and client certificates (openssl CLI), a service-account signing
// key, kubeconfigs, and the components' logs. No kubelet runs, so Pods stay
// Pending; every API object is still created and reconciled.

import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { closeSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { request } from "node:https";
import { tmpdir } from "node:os";
import { basename, join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { freePort } from "../harness/ports.js";
import { tool } from "./tools.js";

export interface ControlPlane {
  readonly dir: string;
  /** https://127.0.0.1:<port> */
  readonly server: string;
  /** Admin kubeconfig (user "admin", group system:masters). */
  readonly kubeconfig: string;
  readonly apiserverLog: string;
  readonly controllerManagerLog: string;
  /** HTTP request to the API as admin; the body is returned whatever the status. */
  api(method: string, path: string, body?: unknown): Promise<{ status: number; body: string }>;
  /** Lines of kube-apiserver's log matching re (for failure reports). */
  apiserverLines(re: RegExp, max?: number): string[];
  stop(): Promise<void>;
}

function openssl(dir: string, args: string[]): void {
  const r = spawnSync("openssl", args, { cwd: dir, encoding: "utf8" });
  if (r.error) throw new Error(`openssl is required to make test certificates: ${r.error.message}`);
  if (r.status !== 0) throw new Error(`openssl ${args.join(" ")} failed: ${r.stderr}`);
}

/** A CA, then certificates it signs: EC P-256 keys, valid for one day. */
function makePki(dir: string): void {
  const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
  openssl(dir, ["req", "-x509", ...ec, "-keyout", "ca.key", "-out", "ca.crt", "-days", "1", "-subj", "/CN=etcd-ts-test-ca"]);
  const leaf = (name: string, subj: string, ext: string): void => {
    writeFileSync(join(dir, `${name}.ext`), ext);
    openssl(dir, ["req", "-new", ...ec, "-keyout", `${name}.key`, "-out", `${name}.csr`, "-subj", subj]);
    openssl(dir, ["x509", "-req", "-in", `${name}.csr`, "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
      "-out", `${name}.crt`, "-days", "1", "-extfile", `${name}.ext`]);
  };
  leaf("apiserver", "/CN=kube-apiserver",
    "subjectAltName=IP:127.0.0.1,IP:10.0.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc\n" +
    "extendedKeyUsage=serverAuth\nkeyUsage=digitalSignature\n");
  leaf("admin", "/O=system:masters/CN=admin", "extendedKeyUsage=clientAuth\nkeyUsage=digitalSignature\n");
  leaf("kcm", "/CN=system:kube-controller-manager", "extendedKeyUsage=clientAuth\nkeyUsage=digitalSignature\n");
  openssl(dir, ["ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "sa.key"]);
  openssl(dir, ["ec", "-in", "sa.key", "-pubout", "-out", "sa.pub"]);
}

function kubeconfig(dir: string, file: string, server: string, user: string): string {
  const path = join(dir, file);
  // Paths, not inline data: kubeconfig is YAML and JSON is YAML.
  writeFileSync(path, JSON.stringify({
    apiVersion: "v1",
    kind: "Config",
    clusters: [{ name: "test", cluster: { server, "certificate-authority": join(dir, "ca.crt") } }],
    users: [{ name: user, user: { "client-certificate": join(dir, `${user}.crt`), "client-key": join(dir, `${user}.key`) } }],
    contexts: [{ name: "test", context: { cluster: "test", user } }],
    "current-context": "test",
  }, null, 2));
  return path;
}

const live = new Set<ChildProcess>();
process.on("exit", () => {
  for (const c of live) if (c.pid !== undefined) try { process.kill(c.pid, "SIGKILL"); } catch { /* gone */ }
});

function launch(bin: string, args: string[], log: string): ChildProcess {
  const fd = openSync(log, "a");
  try {
    const child = spawn(bin, args, { stdio: ["ignore", fd, fd] });
    live.add(child);
    child.once("exit", () => live.delete(child));
    return child;
  } finally {
    closeSync(fd);
  }
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((r) => child.once("exit", () => r()));
  child.kill("SIGTERM");
  const done = await Promise.race([exited.then(() => true), sleep(15_000).then(() => false)]);
  if (!done) {
    child.kill("SIGKILL");
    await exited;
  }
}

export interface ControlPlaneOptions {
  /** etcd client URLs, e.g. ["http://127.0.0.1:2379"]; a cluster is just a longer list. */
  readonly etcdServers: readonly string[];
  /** kube-apiserver --etcd-compaction-interval (default 30s, so compaction happens during a test). */
  readonly compactionInterval?: string;
  readonly readyTimeoutMs?: number;
  /** Directory to copy the components' logs into on stop (the temp dir itself is removed). */
  readonly keepLogsIn?: string;
}

export async function startControlPlane(opts: ControlPlaneOptions): Promise<ControlPlane> {
  const dir = mkdtempSync(join(tmpdir(), "etcdts-k8s-"));
  makePki(dir);
  const port = await freePort();
  const kcmPort = await freePort();
  const server = `https://127.0.0.1:${port}`;
  const admin = kubeconfig(dir, "admin.kubeconfig", server, "admin");
  const kcmConfig = kubeconfig(dir, "kcm.kubeconfig", server, "kcm");
  const apiserverLog = join(dir, "kube-apiserver.log");
  const controllerManagerLog = join(dir, "kube-controller-manager.log");
  const f = (n: string): string => join(dir, n);

  const apiserver = launch(tool("kube-apiserver"), [
    `--etcd-servers=${opts.etcdServers.join(",")}`,
    `--etcd-compaction-interval=${opts.compactionInterval ?? "30s"}`,
    "--bind-address=127.0.0.1", "--advertise-address=127.0.0.1",
    // Loopback cannot be published as the kubernetes Service endpoint.
    "--endpoint-reconciler-type=none", `--secure-port=${port}`,
    `--tls-cert-file=${f("apiserver.crt")}`, `--tls-private-key-file=${f("apiserver.key")}`,
    `--client-ca-file=${f("ca.crt")}`,
    "--authorization-mode=RBAC",
    "--service-account-issuer=https://kubernetes.default.svc.cluster.local",
    `--service-account-key-file=${f("sa.pub")}`, `--service-account-signing-key-file=${f("sa.key")}`,
    "--service-cluster-ip-range=10.0.0.0/24",
    `--cert-dir=${f("generated")}`,
    "--v=2",
  ], apiserverLog);

  const cp: ControlPlane = {
    dir, server, kubeconfig: admin, apiserverLog, controllerManagerLog,
    api: (method, path, body) => apiRequest(dir, port, method, path, body),
    apiserverLines(re, max = 40) {
      let text = "";
      try { text = readFileSync(apiserverLog, "utf8"); } catch { /* none yet */ }
      return text.split("\n").filter((l) => re.test(l)).slice(-max);
    },
    async stop() {
      await Promise.all([stopChild(apiserver), ...(kcm ? [stopChild(kcm)] : [])]);
      if (opts.keepLogsIn) {
        mkdirSync(opts.keepLogsIn, { recursive: true });
        for (const log of [apiserverLog, controllerManagerLog]) {
          if (existsSync(log)) copyFileSync(log, join(opts.keepLogsIn, basename(log)));
        }
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
  let kcm: ChildProcess | undefined;

  // /readyz passes once every post-start hook (RBAC bootstrap roles, ...) is done.
  const deadline = Date.now() + (opts.readyTimeoutMs ?? 180_000);
  for (;;) {
    if (apiserver.exitCode !== null || apiserver.signalCode !== null) {
      const tail = readFileSync(apiserverLog, "utf8").split("\n").slice(-40).join("\n");
      await cp.stop();
      throw new Error(`kube-apiserver exited (${apiserver.exitCode ?? apiserver.signalCode}) before ready:\n${tail}`);
    }
    const r = await cp.api("GET", "/readyz").catch(() => undefined);
    if (r?.status === 200) break;
    if (Date.now() > deadline) {
      const why = (await cp.api("GET", "/readyz?verbose").catch(() => undefined))?.body ?? "";
      const tail = readFileSync(apiserverLog, "utf8").split("\n").slice(-40).join("\n");
      await cp.stop();
      throw new Error(`kube-apiserver not ready after ${opts.readyTimeoutMs ?? 180_000} ms:\n${why}\n${tail}`);
    }
    await sleep(500);
  }

  kcm = launch(tool("kube-controller-manager"), [
    `--kubeconfig=${kcmConfig}`,
    `--authentication-kubeconfig=${kcmConfig}`, `--authorization-kubeconfig=${kcmConfig}`,
    "--bind-address=127.0.0.1", `--secure-port=${kcmPort}`,
    "--use-service-account-credentials=true",
    `--service-account-private-key-file=${f("sa.key")}`, `--root-ca-file=${f("ca.crt")}`,
    "--leader-elect=false",
    "--v=2",
  ], controllerManagerLog);
  return cp;
}

function apiRequest(dir: string, port: number, method: string, path: string, body?: unknown): Promise<{ status: number; body: string }> {
  const data = body === undefined ? undefined : typeof body === "string" ? body : JSON.stringify(body);
  return new Promise((resolve, reject) => {
    const req = request({
      host: "127.0.0.1", port, method, path,
      ca: readFileSync(join(dir, "ca.crt")), cert: readFileSync(join(dir, "admin.crt")), key: readFileSync(join(dir, "admin.key")),
      headers: data === undefined ? {} : { "content-type": "application/json", "content-length": Buffer.byteLength(data) },
      timeout: 30_000,
    }, (res) => {
      const chunks: Buffer[] = [];
      res.on("data", (c: Buffer) => chunks.push(c));
      res.on("end", () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString("utf8") }));
      res.on("error", reject);
    });
    req.on("timeout", () => req.destroy(new Error(`${method} ${path}: timed out`)));
    req.on("error", reject);
    if (data !== undefined) req.write(data);
    req.end();
  });
}
