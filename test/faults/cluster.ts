// A cluster of real member processes (real etcd or ours), each in its own
// network namespace (see netns.ts), started with etcd's clustering flags.
// Clients run in the root namespace and reach member i at 10.77.S.(i+1):2379.
//
// Every process, namespace and temporary directory is removed by dispose(),
// and by a process-exit hook if a test dies first. Logs are kept per member
// (appended across restarts) and printed by describe() when a check fails.

import { spawn, type ChildProcess } from "node:child_process";
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { GrpcConn } from "../harness/grpc.js";
import { Maintenance } from "../../node/gen/etcdserverpb/rpc_pb.js";
import { Network } from "./netns.js";
import type { FaultTarget } from "./targets.js";

export interface ClusterOptions {
  readonly target: FaultTarget;
  readonly size: number;
  readonly heartbeatMs?: number;
  readonly electionMs?: number;
  readonly snapshotCount?: number;
  readonly extraFlags?: readonly string[];
  /** How long to wait for the cluster to elect a leader at start (default 60 s). */
  readonly startTimeoutMs?: number;
}

export class ClusterStartError extends Error {
  override readonly name = "ClusterStartError";
  constructor(message: string, readonly logs: string) {
    super(message);
  }
}

interface Proc {
  child: ChildProcess;
  exited: Promise<void>;
  exitInfo: string | undefined;
}

export interface MemberStatus {
  readonly id: bigint;
  readonly leader: bigint;
  readonly raftTerm: bigint;
  readonly raftIndex: bigint;
}

export class Member {
  proc: Proc | undefined;
  id: bigint = 0n;
  private conn: GrpcConn | undefined;

  constructor(
    readonly index: number,
    readonly name: string,
    readonly address: string,
    readonly dataDir: string,
    readonly logFile: string,
  ) {}

  get clientUrl(): string {
    return `http://${this.address}:2379`;
  }
  get peerUrl(): string {
    return `http://${this.address}:2380`;
  }
  get grpcTarget(): string {
    return `${this.address}:2379`;
  }
  get pid(): number | undefined {
    return this.proc?.exitInfo === undefined ? this.proc?.child.pid : undefined;
  }
  get running(): boolean {
    return this.proc !== undefined && this.proc.exitInfo === undefined;
  }

  /** A channel kept for status polls and checks (not for the recorded clients). */
  admin(): GrpcConn {
    if (this.conn === undefined) this.conn = new GrpcConn(this.grpcTarget, { deadlineMs: 2000 });
    return this.conn;
  }

  closeAdmin(): void {
    this.conn?.close();
    this.conn = undefined;
  }

  logTail(lines = 40): string {
    try {
      return readFileSync(this.logFile, "utf8").split("\n").slice(-lines).join("\n");
    } catch {
      return "(no log)";
    }
  }

  log(): string {
    try {
      return readFileSync(this.logFile, "utf8");
    } catch {
      return "";
    }
  }
}

const liveClusters = new Set<Cluster>();
process.on("exit", () => {
  for (const c of [...liveClusters]) c.disposeSync();
});

export class Cluster {
  readonly members: Member[];
  readonly electionMs: number;
  readonly heartbeatMs: number;
  /** Temporary directory holding the members' data dirs and logs. */
  readonly root: string;
  private readonly flagsOf: (m: Member) => string[];
  private disposed = false;

  private constructor(readonly opts: ClusterOptions, readonly net: Network) {
    this.electionMs = opts.electionMs ?? 1000;
    this.heartbeatMs = opts.heartbeatMs ?? 100;
    this.root = mkdtempSync(join(tmpdir(), `etcdts-fault-${process.pid}-`));
    this.members = net.addresses.map((addr, i) => new Member(i, `m${i + 1}`, addr, join(this.root, `m${i + 1}.data`), join(this.root, `m${i + 1}.log`)));
    const initialCluster = this.members.map((m) => `${m.name}=${m.peerUrl}`).join(",");
    const token = `etcdts-fault-${process.pid}-${Date.now()}`;
    this.flagsOf = (m) => [
      "--name", m.name,
      "--data-dir", m.dataDir,
      "--listen-client-urls", m.clientUrl,
      "--advertise-client-urls", m.clientUrl,
      "--listen-peer-urls", m.peerUrl,
      "--initial-advertise-peer-urls", m.peerUrl,
      "--initial-cluster", initialCluster,
      "--initial-cluster-state", "new",
      "--initial-cluster-token", token,
      "--heartbeat-interval", String(this.heartbeatMs),
      "--election-timeout", String(this.electionMs),
      "--snapshot-count", String(opts.snapshotCount ?? 10_000),
      ...(opts.extraFlags ?? []),
    ];
  }

  get target(): FaultTarget {
    return this.opts.target;
  }

  get size(): number {
    return this.members.length;
  }

  get quorum(): number {
    return Math.floor(this.members.length / 2) + 1;
  }

  /** Starts every member and waits until they agree on a leader. */
  static async start(opts: ClusterOptions): Promise<Cluster> {
    const net = Network.create(opts.size);
    let c: Cluster;
    try {
      c = new Cluster(opts, net);
    } catch (e) {
      net.dispose();
      throw e;
    }
    liveClusters.add(c);
    try {
      for (const m of c.members) c.spawn(m);
      await c.waitStarted(opts.startTimeoutMs ?? 60_000);
      return c;
    } catch (e) {
      const logs = c.describe();
      await c.dispose();
      if (e instanceof ClusterStartError) throw new ClusterStartError(e.message, logs);
      throw new ClusterStartError(`${opts.target.name}: cluster of ${opts.size} did not start: ${(e as Error).message}`, logs);
    }
  }

  private spawn(m: Member): void {
    if (m.running) throw new Error(`${m.name} is already running`);
    const { file, args } = this.net.wrap(m.index, [...this.target.argv, ...this.flagsOf(m)]);
    const fd = openSync(m.logFile, "a");
    let child: ChildProcess;
    try {
      child = spawn(file, args, { stdio: ["ignore", fd, fd], env: { ...process.env } });
    } finally {
      closeSync(fd);
    }
    const proc: Proc = { child, exited: Promise.resolve(), exitInfo: undefined };
    proc.exited = new Promise<void>((resolve) => {
      child.once("exit", (code, signal) => {
        proc.exitInfo = `exited with ${signal ?? `code ${code}`}`;
        resolve();
      });
      child.once("error", (err) => {
        proc.exitInfo = `failed to spawn: ${err.message}`;
        resolve();
      });
    });
    m.proc = proc;
  }

  private async waitStarted(timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      for (const m of this.members) {
        if (m.proc?.exitInfo !== undefined) {
          throw new ClusterStartError(`${this.target.name}: member ${m.name} ${m.proc.exitInfo} during cluster start:\n${m.logTail(15)}`, "");
        }
      }
      const sts = await Promise.all(this.members.map((m) => this.status(m.index)));
      if (sts.every((s) => s !== undefined && s.leader !== 0n) && new Set(sts.map((s) => s!.leader)).size === 1) {
        sts.forEach((s, i) => (this.members[i]!.id = s!.id));
        return;
      }
      await sleep(200);
    }
    throw new ClusterStartError(`${this.target.name}: no agreed leader within ${timeoutMs} ms of start`, "");
  }

  /** Maintenance.Status of member i, or undefined if it does not answer in time. */
  async status(i: number, deadlineMs = 1000): Promise<MemberStatus | undefined> {
    const m = this.members[i]!;
    if (!m.running) return undefined;
    try {
      const st = await m.admin().unary(Maintenance.method.status, {}, { deadlineMs });
      return { id: st.header?.memberId ?? 0n, leader: st.leader, raftTerm: st.raftTerm, raftIndex: st.raftIndex };
    } catch {
      return undefined;
    }
  }

  indexOfId(id: bigint): number | undefined {
    const i = this.members.findIndex((m) => m.id === id);
    return i < 0 ? undefined : i;
  }

  /**
   * The member that a quorum of `among` (default: all running members) names
   * as leader and that names itself, or undefined.
   */
  async leader(among?: readonly number[]): Promise<number | undefined> {
    const idx = (among ?? this.members.map((m) => m.index)).filter((i) => this.members[i]!.running);
    const sts = await Promise.all(idx.map((i) => this.status(i)));
    const votes = new Map<bigint, number>();
    for (const s of sts) if (s !== undefined && s.leader !== 0n) votes.set(s.leader, (votes.get(s.leader) ?? 0) + 1);
    for (const [id, n] of votes) {
      const li = this.indexOfId(id);
      if (li === undefined || !idx.includes(li) || n < this.quorum) continue;
      const self = sts[idx.indexOf(li)];
      if (self !== undefined && self.leader === id) return li;
    }
    return undefined;
  }

  /**
   * Waits for a leader among `among` that is not in `notIn`, up to
   * `boundElectionTimeouts` election timeouts; returns it and how long it took
   * (in ms and in election timeouts). Throws with the members' view when the
   * bound passes.
   */
  async waitForLeader(opts: { among?: readonly number[]; notIn?: readonly number[]; boundElectionTimeouts?: number } = {}): Promise<{ leader: number; ms: number; electionTimeouts: number }> {
    const bound = (opts.boundElectionTimeouts ?? 10) * this.electionMs;
    const t0 = performance.now();
    while (performance.now() - t0 < bound) {
      const l = await this.leader(opts.among);
      if (l !== undefined && !(opts.notIn ?? []).includes(l)) {
        const ms = performance.now() - t0;
        return { leader: l, ms, electionTimeouts: ms / this.electionMs };
      }
      await sleep(Math.min(100, this.heartbeatMs));
    }
    const view = await Promise.all(this.members.map(async (m) => {
      const s = await this.status(m.index);
      return `${m.name}: ${m.running ? (s ? `leader=${this.nameOf(s.leader)} term=${s.raftTerm} index=${s.raftIndex}` : "no answer") : "down"}`;
    }));
    throw new Error(`no leader${opts.notIn?.length ? ` other than ${opts.notIn.map((i) => this.members[i]!.name).join(",")}` : ""} within ${opts.boundElectionTimeouts ?? 10} election timeouts (${bound} ms); cuts: ${this.net.describeCuts()}; ${view.join("; ")}`);
  }

  nameOf(id: bigint): string {
    const i = this.indexOfId(id);
    return i === undefined ? (id === 0n ? "none" : id.toString(16)) : this.members[i]!.name;
  }

  /** kill -9 member i and wait until it is gone. */
  async kill9(i: number): Promise<void> {
    const m = this.members[i]!;
    m.closeAdmin();
    const p = m.proc;
    if (p === undefined || p.exitInfo !== undefined) return;
    if (p.child.pid !== undefined) process.kill(p.child.pid, "SIGKILL");
    const gone = await Promise.race([p.exited.then(() => true), sleep(30_000, undefined, { ref: false }).then(() => false)]);
    if (!gone) throw new Error(`${m.name} (pid ${p.child.pid}) still alive 30 s after SIGKILL`);
  }

  /** Starts member i again on its data dir (same flags; etcd ignores the initial-cluster ones on restart). */
  restart(i: number): void {
    this.spawn(this.members[i]!);
  }

  /** Members' logs (tails) and the network's cuts, for failure messages. */
  describe(lines = 25): string {
    return [
      `target ${this.target.name}, ${this.size} members, cuts: ${this.net.describeCuts()}, data in ${this.root}`,
      ...this.members.map((m) => `--- ${m.name} (${m.address}, ${m.running ? `pid ${m.pid}` : `down${m.proc?.exitInfo ? `, ${m.proc.exitInfo}` : ""}`}) log tail:\n${m.logTail(lines)}`),
    ].join("\n");
  }

  async dispose(): Promise<void> {
    if (this.disposed) return;
    await Promise.all(this.members.map((m) => this.kill9(m.index).catch(() => undefined)));
    this.disposeSync();
  }

  disposeSync(): void {
    if (this.disposed) return;
    this.disposed = true;
    liveClusters.delete(this);
    for (const m of this.members) {
      m.closeAdmin();
      const pid = m.pid;
      if (pid !== undefined) {
        try {
          process.kill(pid, "SIGKILL");
        } catch {
          /* gone */
        }
      }
    }
    this.net.dispose();
    if (process.env["FAULT_KEEP"] !== "1") rmSync(this.root, { recursive: true, force: true });
  }
}
