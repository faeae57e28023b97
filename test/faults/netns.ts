// A private network for one cluster: a bridge in the root namespace and one
// network namespace per member, joined by veth pairs.
//
//     root namespace (clients)                   member namespaces
//     etf<pid>br 10.77.S.254/24 ──veth── eth0 10.77.S.1  (etf<pid>m1)
//                                 ──veth── eth0 10.77.S.2  (etf<pid>m2) ...
//
// Every member has its own address and its own port space (all listen on
// :2379 and :2380 of their address). Partitions are nftables DROP rules inside
// the member namespaces, on both sides of a cut, so the kernel silently drops
// the packets as a real network split would; clients in the root namespace
// keep reaching every member (as in etcd's robustness tests, where the fault
// is on the peer network).
//
// Names carry the PID of the test process that made them (`etf<pid>...`), so
// a later run can find and remove what a crashed run left behind without
// touching anything else on the machine.

import { spawnSync } from "node:child_process";
import { existsSync, readdirSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { banner } from "../harness/provision.js";

const PREFIX = "etf";

export function run(cmd: string, args: readonly string[], input?: string): { ok: boolean; out: string; err: string } {
  const r = spawnSync(cmd, args, { encoding: "utf8", input, timeout: 30_000 });
  return { ok: r.status === 0, out: r.stdout ?? "", err: (r.stderr ?? "") + (r.error ? String(r.error) : "") };
}

export function must(cmd: string, args: readonly string[], input?: string): string {
  const r = run(cmd, args, input);
  if (!r.ok) throw new Error(`${cmd} ${args.join(" ")} failed: ${r.err.trim()}`);
  return r.out;
}

function which(bin: string): string | undefined {
  for (const dir of ["/usr/sbin", "/usr/bin", "/sbin", "/bin", "/usr/local/sbin", "/usr/local/bin"]) {
    if (existsSync(join(dir, bin))) return join(dir, bin);
  }
  return undefined;
}

let toolsChecked: string | undefined;

/**
 * Makes sure `ip` and `nft` exist, installing Debian's iproute2 / nftables
 * with apt-get when we are root and they are missing (said loudly). Returns
 * undefined when ready, or why not.
 */
export function ensureNetworkTools(): string | undefined {
  if (toolsChecked !== undefined) return toolsChecked || undefined;
  const isRoot = typeof process.getuid === "function" && process.getuid() === 0;
  if (!isRoot) return (toolsChecked = "network namespaces need root (this process is not root)");
  const missing = [["ip", "iproute2"], ["nft", "nftables"]].filter(([bin]) => which(bin!) === undefined).map(([, pkg]) => pkg!);
  if (missing.length > 0) {
    banner([`fault tests: installing ${missing.join(", ")} with apt-get (needed for namespaces and partitions)`]);
    const env = { ...process.env, DEBIAN_FRONTEND: "noninteractive" };
    const lock = ["-o", "DPkg::Lock::Timeout=600"];
    let r = spawnSync("apt-get", [...lock, "install", "-y", ...missing], { env, encoding: "utf8", timeout: 15 * 60_000 });
    if (r.status !== 0) {
      spawnSync("apt-get", [...lock, "update"], { env, encoding: "utf8", timeout: 15 * 60_000 });
      r = spawnSync("apt-get", [...lock, "install", "-y", ...missing], { env, encoding: "utf8", timeout: 15 * 60_000 });
    }
    const still = [["ip", "iproute2"], ["nft", "nftables"]].filter(([bin]) => which(bin!) === undefined);
    if (still.length > 0) return (toolsChecked = `apt-get install ${missing.join(" ")} did not provide them: ${(r.stderr ?? "").slice(-300)}`);
  }
  const probe = run("ip", ["netns", "list"]);
  if (!probe.ok) return (toolsChecked = `ip netns does not work here: ${probe.err.trim()}`);
  toolsChecked = "";
  return undefined;
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}

/**
 * Removes namespaces, links, processes and temporary directories that an
 * earlier run of this suite left behind (its PID is in their names and is no
 * longer alive). Returns what it removed, for the log.
 */
export function removeLeftovers(): string[] {
  const removed: string[] = [];
  const re = new RegExp(`^${PREFIX}(\\d+)`);
  const dead = (name: string): boolean => {
    const m = re.exec(name);
    return m !== null && Number(m[1]) !== process.pid && !alive(Number(m[1]));
  };
  for (const line of run("ip", ["netns", "list"]).out.split("\n")) {
    const ns = line.split(" ")[0] ?? "";
    if (!ns || !dead(ns)) continue;
    for (const p of run("ip", ["netns", "pids", ns]).out.split(/\s+/).filter(Boolean)) {
      try {
        process.kill(Number(p), "SIGKILL");
        removed.push(`process ${p} in ${ns}`);
      } catch {
        /* gone */
      }
    }
    run("ip", ["netns", "del", ns]);
    removed.push(`netns ${ns}`);
  }
  for (const line of run("ip", ["-o", "link", "show"]).out.split("\n")) {
    const name = (/^\d+:\s+([^:@\s]+)/.exec(line)?.[1]) ?? "";
    if (!name || !dead(name)) continue;
    run("ip", ["link", "del", name]);
    removed.push(`link ${name}`);
  }
  for (const entry of readdirSync(tmpdir())) {
    const m = /^etcdts-fault-(\d+)-/.exec(entry);
    if (m && Number(m[1]) !== process.pid && !alive(Number(m[1]))) {
      rmSync(join(tmpdir(), entry), { recursive: true, force: true });
      removed.push(`dir ${join(tmpdir(), entry)}`);
    }
  }
  return removed;
}

/** Subnets (the S of 10.77.S.0/24) on each root-namespace interface. */
function subnetsInUse(): { subnet: number; dev: string }[] {
  const out: { subnet: number; dev: string }[] = [];
  for (const m of run("ip", ["-4", "-o", "addr", "show"]).out.matchAll(/^\d+:\s+(\S+)\s+inet 10\.77\.(\d+)\./gm)) out.push({ dev: m[1]!, subnet: Number(m[2]) });
  return out;
}

/** A /24 in 10.77.0.0/16 that no interface in the root namespace uses yet (and not in `avoid`). */
function freeSubnet(avoid: ReadonlySet<number>): number {
  const used = new Set(subnetsInUse().map((u) => u.subnet));
  for (let i = 0; i < 250; i++) {
    const s = ((process.pid + i * 7) % 250) + 1;
    if (!used.has(s) && !avoid.has(s)) return s;
  }
  throw new Error("no free 10.77.x.0/24 subnet");
}

let serial = 0;

export class Network {
  readonly bridge: string;
  readonly namespaces: readonly string[];
  readonly addresses: readonly string[];
  readonly hostAddress: string;
  /** Unordered pairs of member indexes whose traffic is dropped. */
  private readonly cut = new Set<string>();
  private disposed = false;

  private constructor(readonly size: number, subnet: number, tag: string) {
    this.bridge = `${PREFIX}${tag}br`;
    this.namespaces = Array.from({ length: size }, (_, i) => `${PREFIX}${tag}m${i + 1}`);
    this.addresses = Array.from({ length: size }, (_, i) => `10.77.${subnet}.${i + 1}`);
    this.hostAddress = `10.77.${subnet}.254`;
  }

  /** Creates the bridge, the namespaces and their links. Cleans up after itself if any step fails. */
  static create(size: number): Network {
    if (size < 1 || size > 9) throw new Error(`network size ${size} out of range`);
    // Names stay unique within the process with a serial after the first network.
    const n = serial++;
    const tag = `${process.pid}${n === 0 ? "" : `x${n.toString(36)}`}`;
    // Two test processes may pick the same free subnet at once: after building,
    // whoever sees another interface on its subnet tears down and tries another.
    const tried = new Set<number>();
    for (let attempt = 0; attempt < 10; attempt++) {
      const subnet = freeSubnet(tried);
      tried.add(subnet);
      const net = new Network(size, subnet, tag);
      try {
        net.build();
      } catch (e) {
        net.dispose();
        throw e;
      }
      if (subnetsInUse().some((u) => u.subnet === subnet && u.dev !== net.bridge)) {
        net.dispose();
        continue;
      }
      liveNetworks.add(net);
      return net;
    }
    throw new Error("could not get a 10.77.x.0/24 subnet of our own after 10 tries");
  }

  private build(): void {
    const prefix = this.hostAddress.replace(/\.254$/, "");
    must("ip", ["link", "add", this.bridge, "type", "bridge"]);
    must("ip", ["addr", "add", `${this.hostAddress}/24`, "dev", this.bridge]);
    must("ip", ["link", "set", this.bridge, "up"]);
    for (let i = 0; i < this.size; i++) {
      const ns = this.namespaces[i]!;
      const veth = this.vethName(i);
      must("ip", ["netns", "add", ns]);
      must("ip", ["link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns]);
      must("ip", ["link", "set", veth, "master", this.bridge, "up"]);
      must("ip", ["-n", ns, "addr", "add", `${prefix}.${i + 1}/24`, "dev", "eth0"]);
      must("ip", ["-n", ns, "link", "set", "eth0", "up"]);
      must("ip", ["-n", ns, "link", "set", "lo", "up"]);
      this.applyRules(i);
    }
  }

  private vethName(i: number): string {
    return `${this.bridge.slice(0, -2)}v${i + 1}`;
  }

  /** The command line that runs `argv` inside member i's namespace. */
  wrap(i: number, argv: readonly string[]): { file: string; args: string[] } {
    return { file: which("ip") ?? "ip", args: ["netns", "exec", this.namespaces[i]!, ...argv] };
  }

  private pairKey(a: number, b: number): string {
    return a < b ? `${a},${b}` : `${b},${a}`;
  }

  /** Drops all traffic between every member of `a` and every member of `b`. */
  partition(a: readonly number[], b: readonly number[]): void {
    for (const x of a) for (const y of b) if (x !== y) this.cut.add(this.pairKey(x, y));
    for (const i of new Set([...a, ...b])) this.applyRules(i);
  }

  /** Cuts member i off from every other member (clients still reach it). */
  isolate(i: number): void {
    this.partition([i], this.namespaces.map((_, j) => j).filter((j) => j !== i));
  }

  /** Removes every cut. */
  heal(): void {
    this.cut.clear();
    for (let i = 0; i < this.size; i++) this.applyRules(i);
  }

  describeCuts(): string {
    return this.cut.size === 0 ? "none" : [...this.cut].map((p) => p.split(",").map((x) => `m${Number(x) + 1}`).join("-")).join(" ");
  }

  /** Replaces member i's nftables table with one DROP rule per peer it is cut from, both directions, atomically. */
  private applyRules(i: number): void {
    const peers: string[] = [];
    for (let j = 0; j < this.size; j++) if (j !== i && this.cut.has(this.pairKey(i, j))) peers.push(this.addresses[j]!);
    const set = peers.length > 0 ? `{ ${peers.join(", ")} }` : "";
    const rules = [
      "table inet etcdfault {}",
      "delete table inet etcdfault",
      "table inet etcdfault {",
      "  chain in { type filter hook input priority 0; policy accept;",
      ...(set ? [`    ip saddr ${set} drop`] : []),
      "  }",
      "  chain out { type filter hook output priority 0; policy accept;",
      ...(set ? [`    ip daddr ${set} drop`] : []),
      "  }",
      "}",
      "",
    ].join("\n");
    must("ip", ["netns", "exec", this.namespaces[i]!, "nft", "-f", "-"], rules);
  }

  /** Kills any process still in the namespaces, then removes namespaces and bridge. Idempotent. */
  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    liveNetworks.delete(this);
    for (const ns of this.namespaces) {
      for (const p of run("ip", ["netns", "pids", ns]).out.split(/\s+/).filter(Boolean)) {
        try {
          process.kill(Number(p), "SIGKILL");
        } catch {
          /* gone */
        }
      }
      run("ip", ["netns", "del", ns]);
    }
    // A namespace lives on while sockets in it linger (TIME_WAIT); deleting the
    // root end of each veth removes both ends now.
    for (let i = 0; i < this.size; i++) run("ip", ["link", "del", this.vethName(i)]);
    run("ip", ["link", "del", this.bridge]);
  }
}

const liveNetworks = new Set<Network>();
process.on("exit", () => {
  for (const n of [...liveNetworks]) n.dispose();
});
