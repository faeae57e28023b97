// Starts a cluster of real server processes — ours or real etcd — with etcd's
// clustering flags (--initial-cluster, --initial-cluster-state,
// --initial-cluster-token) on loopback ports, and stops them by PID. Every
// process is SIGKILLed and every temporary directory removed when the test
// process exits.
//
// This is the launcher for multi-member clusters on 127.0.0.1: the cluster
// tests (test/cluster/) use it directly, and startCluster() (cluster.ts) wraps
// it for the client suites and the Kubernetes scenario. The fault suite has
// its own (members in network namespaces, test/faults/cluster.ts), and so has
// the benchmark (test/bench/cluster.ts, CPU pinning and process statistics).

import { spawn, type ChildProcess } from "node:child_process";
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { freePort } from "./ports.js";
import { etcdBinaries, oursMain, repoRoot } from "./provision.js";
import { GrpcConn } from "./grpc.js";
import { Cluster as ClusterSvc, Maintenance } from "../../node/gen/etcdserverpb/rpc_pb.js";

export type Impl = "etcd" | "ours";

const live = new Set<ChildProcess>();
const dirs = new Set<string>();
let hooked = false;
function hook(): void {
  if (hooked) return;
  hooked = true;
  process.on("exit", () => {
    for (const c of live) {
      try {
        if (c.pid !== undefined) process.kill(c.pid, "SIGKILL");
      } catch {
        /* gone */
      }
    }
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });
}

export interface NodeSpec {
  name: string;
  clientPort: number;
  peerPort: number;
}

export class ClusterNode {
  child: ChildProcess | undefined;
  private exited: Promise<void> = Promise.resolve();
  exitCode: number | null | undefined;
  readonly dataDir: string;
  readonly logFile: string;

  constructor(
    readonly impl: Impl,
    readonly spec: NodeSpec,
    root: string,
    private readonly initialCluster: string,
    private readonly token: string,
    public state: "new" | "existing",
    private readonly extra: readonly string[],
    /** For impl "etcd": the binary (default etcdBinaries(): $ETCD_BIN or the toolchain's 3.6). */
    private readonly binary?: string,
  ) {
    this.dataDir = join(root, spec.name);
    this.logFile = join(root, `${spec.name}.log`);
  }

  get clientUrl(): string {
    return `http://127.0.0.1:${this.spec.clientPort}`;
  }
  get peerUrl(): string {
    return `http://127.0.0.1:${this.spec.peerPort}`;
  }
  get target(): string {
    return `127.0.0.1:${this.spec.clientPort}`;
  }
  get running(): boolean {
    return this.child !== undefined && this.exitCode === undefined;
  }
  get pid(): number | undefined {
    return this.running ? this.child?.pid : undefined;
  }

  start(): void {
    hook();
    const args = [
      "--name", this.spec.name,
      "--data-dir", this.dataDir,
      "--listen-client-urls", this.clientUrl,
      "--advertise-client-urls", this.clientUrl,
      "--listen-peer-urls", this.peerUrl,
      "--initial-advertise-peer-urls", this.peerUrl,
      "--initial-cluster", this.initialCluster,
      "--initial-cluster-state", this.state,
      "--initial-cluster-token", this.token,
      ...this.extra,
    ];
    let file: string;
    if (this.impl === "etcd" && this.binary !== undefined) {
      file = this.binary;
    } else if (this.impl === "etcd") {
      const b = etcdBinaries();
      if (!b.ok) throw new Error(b.reason);
      file = b.value.etcd;
    } else {
      file = process.execPath;
      args.unshift(oursMain());
    }
    const fd = openSync(this.logFile, "a");
    try {
      this.child = spawn(file, args, { cwd: repoRoot, stdio: ["ignore", fd, fd] });
    } finally {
      closeSync(fd);
    }
    const child = this.child;
    live.add(child);
    this.exitCode = undefined;
    this.exited = new Promise((resolve) => {
      child.once("exit", (code) => {
        live.delete(child);
        this.exitCode = code;
        resolve();
      });
    });
  }

  /** kill -9 by PID, and wait until the process is gone. */
  async kill9(): Promise<void> {
    if (this.child?.pid !== undefined && this.exitCode === undefined) process.kill(this.child.pid, "SIGKILL");
    await this.exited;
  }

  async stop(): Promise<void> {
    if (this.child?.pid !== undefined && this.exitCode === undefined) {
      process.kill(this.child.pid, "SIGTERM");
      const t = setTimeout(() => {
        if (this.child?.pid !== undefined && this.exitCode === undefined) process.kill(this.child.pid, "SIGKILL");
      }, 10_000);
      await this.exited;
      clearTimeout(t);
    }
  }

  /** Resolves when the process exits (or at once if it is not running). */
  waitExit(): Promise<void> {
    return this.exited;
  }

  logTail(n = 20): string {
    try {
      return readFileSync(this.logFile, "utf8").split("\n").slice(-n).join("\n");
    } catch {
      return "";
    }
  }
}

export class Cluster {
  readonly nodes: ClusterNode[] = [];
  readonly root: string;
  readonly token: string;

  private constructor(readonly impl: Impl, specs: NodeSpec[], extra: readonly string[], private readonly binary: string | undefined) {
    this.root = mkdtempSync(join(tmpdir(), `etcdts-cluster-${impl}-`));
    dirs.add(this.root);
    this.token = "cluster-test";
    const ic = specs.map((s) => `${s.name}=http://127.0.0.1:${s.peerPort}`).join(",");
    for (const s of specs) this.nodes.push(new ClusterNode(impl, s, this.root, ic, this.token, "new", extra, binary));
  }

  static async specs(n: number): Promise<NodeSpec[]> {
    const out: NodeSpec[] = [];
    for (let i = 1; i <= n; i++) out.push({ name: `m${i}`, clientPort: await freePort(), peerPort: await freePort() });
    return out;
  }

  /** Starts n members on the given (or fresh) ports and waits until they agree on a leader. */
  static async start(impl: Impl, specs: NodeSpec[], extra: readonly string[] = [], opts: { binary?: string; startTimeoutMs?: number } = {}): Promise<Cluster> {
    const c = new Cluster(impl, specs, extra, opts.binary);
    for (const n of c.nodes) n.start();
    try {
      await c.waitLeader(c.nodes, opts.startTimeoutMs);
      await c.waitPublished(c.nodes, opts.startTimeoutMs);
    } catch (e) {
      await c.dispose();
      throw e;
    }
    return c;
  }

  /** A member started later with --initial-cluster-state existing, after MemberAdd. */
  join(spec: NodeSpec, extra: readonly string[] = []): ClusterNode {
    const ic = [...this.nodes.filter((n) => n.running).map((n) => n.spec), spec].map((s) => `${s.name}=http://127.0.0.1:${s.peerPort}`).join(",");
    const n = new ClusterNode(this.impl, spec, this.root, ic, this.token, "existing", extra, this.binary);
    this.nodes.push(n);
    n.start();
    return n;
  }

  /** Status of one member, or undefined if it does not answer. */
  async status(n: ClusterNode) {
    const conn = new GrpcConn(n.target, { deadlineMs: 2000 });
    try {
      return await conn.unary(Maintenance.method.status, {});
    } catch {
      return undefined;
    } finally {
      conn.close();
    }
  }

  /** Polls until every given member reports the same leader, which is one of them; returns it. */
  async waitLeader(among: ClusterNode[], capMs = 60_000): Promise<ClusterNode> {
    const deadline = Date.now() + capMs;
    for (;;) {
      const sts = await Promise.all(among.map((n) => this.status(n)));
      const leads = new Set(sts.map((s) => s?.leader ?? 0n));
      const lead = sts[0]?.leader ?? 0n;
      if (leads.size === 1 && lead !== 0n) {
        const i = sts.findIndex((s) => s?.header?.memberId === lead);
        if (i >= 0) return among[i]!;
      }
      if (Date.now() > deadline) {
        throw new Error(`no common leader among ${among.map((n) => n.spec.name).join(",")}\n${among.map((n) => `--- ${n.spec.name}\n${n.logTail(10)}`).join("\n")}`);
      }
      await sleep(200);
    }
  }

  /**
   * Polls until every given member lists every given member with its client
   * URLs, i.e. each has published its attributes through Raft. etcd serves
   * clients only once its own member has published; ours answers before
   * (Status, reads), so without this wait a `member list` right after start
   * can show a member without client URLs, for up to a request timeout when
   * its publish proposal was dropped by a leader transfer.
   */
  async waitPublished(among: ClusterNode[], capMs = 60_000): Promise<void> {
    const deadline = Date.now() + capMs;
    const urls = new Set(among.map((n) => n.clientUrl));
    for (;;) {
      const views = await Promise.all(among.map(async (n) => {
        const conn = new GrpcConn(n.target, { deadlineMs: 2000 });
        try {
          const r = await conn.unary(ClusterSvc.method.memberList, {});
          return new Set(r.members.flatMap((m) => m.clientURLs));
        } catch {
          return new Set<string>();
        } finally {
          conn.close();
        }
      }));
      if (views.every((v) => [...urls].every((u) => v.has(u)))) return;
      if (Date.now() > deadline) {
        throw new Error(`members did not all publish their client URLs: ${views.map((v) => [...v].join(",")).join(" | ")}`);
      }
      await sleep(100);
    }
  }

  /**
   * Hands leadership to `to` (Maintenance.MoveLeader, sent to the current
   * leader as etcdctl does) and waits until every running member follows it.
   */
  async moveLeader(to: ClusterNode, capMs = 60_000): Promise<void> {
    const running = this.nodes.filter((n) => n.running);
    const deadline = Date.now() + capMs;
    for (;;) {
      const leader = await this.waitLeader(running, capMs);
      if (leader === to) return;
      const target = (await this.status(to))?.header?.memberId;
      if (target !== undefined) {
        const conn = new GrpcConn(leader.target, { deadlineMs: 10_000 });
        try {
          await conn.unary(Maintenance.method.moveLeader, { targetID: target });
        } catch {
          /* a leader change under way: look again */
        } finally {
          conn.close();
        }
      }
      if (Date.now() > deadline) throw new Error(`leadership did not move to ${to.spec.name}`);
      await sleep(200);
    }
  }

  async stop(): Promise<void> {
    await Promise.all(this.nodes.map((n) => n.stop()));
  }

  async dispose(): Promise<void> {
    await Promise.all(this.nodes.map((n) => n.kill9()));
    rmSync(this.root, { recursive: true, force: true });
    dirs.delete(this.root);
  }
}

/** Polls f every `everyMs` until it returns a value other than undefined (errors count as "not yet"). */
export async function eventually<T>(what: string, f: () => Promise<T | undefined>, capMs = 60_000, everyMs = 200): Promise<T> {
  const deadline = Date.now() + capMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await f();
      if (v !== undefined) return v;
    } catch (e) {
      last = e;
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}${last !== undefined ? `: ${String(last)}` : ""}`);
    await sleep(everyMs);
  }
}
