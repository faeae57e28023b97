// The process kubelet's pure parts: what an image runs, the pod's addresses and names, its
// /etc/hosts, variable expansion and the launch script. Nothing here touches the machine or
// the API server; kubelet.ts does, with these decisions. Unit tests: pure.test.ts.

// ---------------------------------------------------------------------------------------------
// Images. The bed has no container runtime: an image is a name for one of this checkout's entry
// points. The table repeats what the Dockerfile's stages say (ENV, WORKDIR, USER, CMD; there is
// no ENTRYPOINT), and pure.test.ts reads the Dockerfile to keep them equal. Inside the pod's
// mount namespace the checkout is bind-mounted at /app (the image's WORKDIR), so the command
// line is exactly the image's, byte for byte; `node` is this machine's node, first on PATH.

export interface ImageConfig {
  readonly cmd: readonly string[];
  readonly env: Readonly<Record<string, string>>;
  readonly workingDir: string;
  readonly uid: number;
  readonly gid: number;
}

const runtimeEnv = {
  PATH: "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
  NODE_ENV: "production",
  ETCD_DATA_DIR: "/var/lib/etcd-ts/data",
} as const;

/** Image repository name (the last path component) → the Dockerfile stage it names. */
export const IMAGES: Readonly<Record<string, ImageConfig>> = {
  // Default target "member".
  "etcd-ts": { cmd: ["node", "/app/dist/node/src/main.js"], env: runtimeEnv, workingDir: "/app", uid: 1000, gid: 1000 },
  // Target "operator".
  "etcd-ts-operator": { cmd: ["node", "/app/dist/operator/src/main.js"], env: runtimeEnv, workingDir: "/app", uid: 1000, gid: 1000 },
};

/** Where the checkout appears inside a pod: the image's WORKDIR. */
export const APP_DIR = "/app";

/** "ghcr.io/etcd-ts/etcd-ts:0.1.0@sha256:…" → "etcd-ts". */
export function imageName(image: string): string {
  const noDigest = image.split("@")[0] ?? image;
  const lastSlash = noDigest.lastIndexOf("/");
  const last = noDigest.slice(lastSlash + 1);
  const colon = last.indexOf(":");
  return colon < 0 ? last : last.slice(0, colon);
}

export type Mapped = { readonly ok: true; readonly image: ImageConfig; readonly argv: readonly string[] } | { readonly ok: false; readonly reason: string };

/**
 * The process a container runs, with Docker's rules for Kubernetes' command and args: `command`
 * replaces ENTRYPOINT and drops CMD; `args` alone replaces CMD; neither runs CMD.
 */
export function mapContainer(image: string, command?: readonly string[], args?: readonly string[]): Mapped {
  const config = IMAGES[imageName(image)];
  if (config === undefined) return { ok: false, reason: `image ${image} is not one of this checkout's images (${Object.keys(IMAGES).join(", ")})` };
  const entrypoint: string[] = [];
  const argv = command !== undefined && command.length > 0
    ? [...command, ...(args ?? [])]
    : [...entrypoint, ...(args !== undefined && args.length > 0 ? args : config.cmd)];
  return { ok: true, image: config, argv };
}

// ---------------------------------------------------------------------------------------------
// Addresses. A bed takes one /24 of 198.18.0.0/15 (RFC 2544 benchmarking space: never routed,
// never anybody's real network): bed index i in 0..511 → 198.(18 + i div 256).(i mod 256).0/24.
// The host end (a bridge) is .1, pods get .2 to .254. Pods have no default route, so nothing they
// send leaves the machine.

export const BED_INDEXES = 512;
export const FIRST_SLOT = 2;
export const LAST_SLOT = 254;

export function bedPrefix(index: number): string {
  if (!Number.isInteger(index) || index < 0 || index >= BED_INDEXES) throw new Error(`bed index ${index} out of range 0..${BED_INDEXES - 1}`);
  return `198.${18 + Math.floor(index / 256)}.${index % 256}`;
}
export const bridgeAddress = (index: number): string => `${bedPrefix(index)}.1`;
export function podAddress(index: number, slot: number): string {
  if (!Number.isInteger(slot) || slot < FIRST_SLOT || slot > LAST_SLOT) throw new Error(`pod slot ${slot} out of range ${FIRST_SLOT}..${LAST_SLOT}`);
  return `${bedPrefix(index)}.${slot}`;
}
/** The bed index of an address in 198.18.0.0/15, or undefined. */
export function bedIndexOf(address: string): number | undefined {
  const m = /^198\.(18|19)\.(\d{1,3})\.\d{1,3}$/.exec(address);
  if (!m) return undefined;
  return (Number(m[1]) - 18) * 256 + Number(m[2]);
}
/** The lowest bed index not in `used`. */
export function freeBedIndex(used: ReadonlySet<number>): number {
  for (let i = 0; i < BED_INDEXES; i++) if (!used.has(i)) return i;
  throw new Error("every 198.18.0.0/15 /24 is in use");
}

/**
 * The next pod slot after `last`, wrapping, skipping `used`: round-robin, so a recreated pod
 * does not take the address its predecessor had a moment ago (stale ARP and connections).
 */
export function nextSlot(used: ReadonlySet<number>, last: number): number {
  const n = LAST_SLOT - FIRST_SLOT + 1;
  for (let k = 1; k <= n; k++) {
    const s = FIRST_SLOT + ((last - FIRST_SLOT + k) % n + n) % n;
    if (!used.has(s)) return s;
  }
  throw new Error("no free pod address in this bed");
}

// Link and namespace names (Linux allows 15 characters): "bed<i>" is the bridge,
// "bed<i>v<slot>" a pod's host-side veth, "bed<i>-<slot>" the pod's network namespace.
export const bridgeName = (index: number): string => `bed${index}`;
export const vethName = (index: number, slot: number): string => `bed${index}v${slot}`;
export const netnsName = (index: number, slot: number): string => `bed${index}-${slot}`;
/** Does a link or namespace name belong to bed `index`? */
export function ownedBy(index: number, name: string): boolean {
  return name === bridgeName(index) || new RegExp(`^bed${index}[v-]\\d+$`).test(name);
}

// ---------------------------------------------------------------------------------------------
// Names. There is no cluster DNS and no kube-proxy: each pod's /etc/hosts (ip netns exec binds
// /etc/netns/<ns>/hosts over it) lists the names a pod would resolve, from EndpointSlices:
//   headless Service S:    <hostname>.S → that endpoint (every endpoint with a hostname);
//                          S → every ready endpoint (one line each)
//   ClusterIP Service S:   S → the first ready endpoint, by pod name (no virtual IP to hold
//                          the port mapping, so a Service works when port == targetPort)
//   kubernetes (default):  → the API server's address on the bed bridge
// Each name is written out in every form a pod would use, since /etc/hosts has no search list:
// N.ns.svc.cluster.local, N.ns.svc, N.ns, and bare N within the pod's own namespace.

export interface EndpointInfo {
  readonly ip: string;
  readonly hostname?: string;
  readonly ready: boolean;
  /** Pod name, for a stable order. */
  readonly podName?: string;
}
export interface ServiceInfo {
  readonly namespace: string;
  readonly name: string;
  readonly headless: boolean;
  readonly endpoints: readonly EndpointInfo[];
}
export interface HostsInput {
  readonly self: { readonly ip: string; readonly hostname: string; readonly subdomain?: string; readonly namespace: string };
  readonly apiserver: string;
  readonly services: readonly ServiceInfo[];
}

export const CLUSTER_DOMAIN = "cluster.local";

function nameForms(name: string, namespace: string, podNamespace: string): string[] {
  const forms = [`${name}.${namespace}.svc.${CLUSTER_DOMAIN}`, `${name}.${namespace}.svc`, `${name}.${namespace}`];
  if (namespace === podNamespace) forms.push(name);
  return forms;
}

const byString = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

export function hostsFile(h: HostsInput): string {
  const lines = [
    "# Written by the etcd-ts bed kubelet (test/kube/kubelet); rewritten in place when endpoints change.",
    "127.0.0.1\tlocalhost",
    "::1\tlocalhost ip6-localhost ip6-loopback",
  ];
  const s = h.self;
  lines.push(`${s.ip}\t${[...(s.subdomain ? [`${s.hostname}.${s.subdomain}.${s.namespace}.svc.${CLUSTER_DOMAIN}`] : []), s.hostname].join(" ")}`);
  lines.push(`${h.apiserver}\t${nameForms("kubernetes", "default", s.namespace).join(" ")}`);
  const services = [...h.services].sort((a, b) => byString(`${a.namespace}/${a.name}`, `${b.namespace}/${b.name}`));
  for (const svc of services) {
    if (svc.namespace === "default" && svc.name === "kubernetes") continue;
    const eps = [...svc.endpoints].sort((a, b) => byString(a.podName ?? a.ip, b.podName ?? b.ip) || byString(a.ip, b.ip));
    const ready = eps.filter((e) => e.ready);
    if (svc.headless) {
      for (const e of eps) if (e.hostname) lines.push(`${e.ip}\t${nameForms(`${e.hostname}.${svc.name}`, svc.namespace, s.namespace).join(" ")}`);
      for (const e of ready) lines.push(`${e.ip}\t${nameForms(svc.name, svc.namespace, s.namespace).join(" ")}`);
    } else if (ready[0] !== undefined) {
      lines.push(`${ready[0].ip}\t${nameForms(svc.name, svc.namespace, s.namespace).join(" ")}`);
    }
  }
  return lines.join("\n") + "\n";
}

// ---------------------------------------------------------------------------------------------
// Environment.

/**
 * Kubernetes' $(VAR) expansion: $(NAME) becomes NAME's value when defined, stays as written
 * otherwise; $$ escapes a dollar ($$(X) is the literal text $(X)).
 */
export function expandVars(s: string, env: ReadonlyMap<string, string>): string {
  let out = "";
  for (let i = 0; i < s.length; i++) {
    const c = s[i]!;
    if (c !== "$" || i + 1 >= s.length) { out += c; continue; }
    const n = s[i + 1]!;
    if (n === "$") { out += "$"; i++; continue; }
    if (n === "(") {
      const close = s.indexOf(")", i + 2);
      if (close > 0) {
        const name = s.slice(i + 2, close);
        const v = env.get(name);
        out += v ?? `$(${name})`;
        i = close;
        continue;
      }
    }
    out += c;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// Launch. A container is `ip netns exec <ns> /bin/sh -c <script>`: ip netns exec enters the
// pod's network namespace and a private mount namespace (with /etc/netns/<ns>/hosts over
// /etc/hosts); the script bind-mounts the volumes, then execs the process as the image's user
// with exactly the container's environment. Every step execs, so the PID the kubelet holds is
// the container's process.

/** One argument for sh, single-quoted. */
export function shq(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

export interface Mount {
  readonly source: string;
  readonly target: string;
  readonly readOnly: boolean;
}

export interface LaunchSpec {
  readonly mounts: readonly Mount[];
  readonly workingDir: string;
  readonly uid: number;
  readonly gid: number;
  readonly env: ReadonlyMap<string, string>;
  readonly argv: readonly string[];
}

export function launchScript(l: LaunchSpec): string {
  const lines = ["set -e"];
  // Parents before children: /app before /app/x.
  const mounts = [...l.mounts].sort((a, b) => a.target.split("/").length - b.target.split("/").length || byString(a.target, b.target));
  for (const m of mounts) {
    lines.push(`mount --bind ${shq(m.source)} ${shq(m.target)}`);
    if (m.readOnly) lines.push(`mount -o remount,bind,ro ${shq(m.target)}`);
  }
  lines.push(`cd ${shq(l.workingDir)}`);
  const env = [...l.env].map(([k, v]) => shq(`${k}=${v}`));
  lines.push(`exec setpriv --reuid=${l.uid} --regid=${l.gid} --clear-groups -- env -i ${env.join(" ")} ${l.argv.map(shq).join(" ")}`);
  return lines.join("\n") + "\n";
}

// ---------------------------------------------------------------------------------------------
// Restarts.

/** Back-off before restart n (1-based), as the kubelet: 10 s doubling, at most 5 min. */
export function restartDelayMs(restartCount: number): number {
  return Math.min(10_000 * 2 ** Math.max(0, restartCount - 1), 300_000);
}

/** Does a container that exited with `exitCode` get restarted under the pod's restartPolicy? */
export function shouldRestart(policy: string | undefined, exitCode: number): boolean {
  if (policy === "Never") return false;
  if (policy === "OnFailure") return exitCode !== 0;
  return true; // Always, the default
}
