// Starts a topology of 1 or N members of one implementation (real etcd or
// ours) on loopback, with etcd's flags, fresh data directories under one root
// (so both implementations write to the same filesystem), and default
// durability (every write fsynced; neither server is given an option to skip
// it). The same code starts both, so the topologies are identical.
//
// Our server refuses configurations it does not implement yet by printing
// "... not supported yet ..." and exiting non-zero. start() reports that as
// {kind: "unsupported"} instead of an error, so the bench can say so; once our
// server runs clusters, the same call simply succeeds.

import { spawn, type ChildProcess } from "node:child_process";
import { closeSync, mkdirSync, openSync, readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { setTimeout as sleep } from "node:timers/promises";
import { freePort } from "../harness/ports.js";

export type Impl = "etcd" | "ours";

export interface Binaries {
  /** Real etcd 3.6. */
  readonly etcd: string;
  /** Our compiled entry point (run with this Node). */
  readonly oursMain: string;
}

export interface RunningMember {
  readonly name: string;
  readonly pid: number;
  /** host:port of the client (gRPC) endpoint. */
  readonly endpoint: string;
  readonly clientUrl: string;
  readonly logFile: string;
}

export interface Cluster {
  readonly impl: Impl;
  readonly members: readonly RunningMember[];
  /** True when every member process is still running. */
  alive(): boolean;
  /** Stops every member (SIGTERM, then SIGKILL) and removes its data. */
  dispose(): Promise<void>;
  /**
   * Sends `signal` to member `index`, waits for it to exit, then starts it
   * again with its original command line (same data dir, ports and flags; its
   * log is appended to). Resolves as soon as the new process is spawned, not
   * when it is healthy, so a caller can time the recovery itself. `members`
   * then holds the new pid.
   */
  restartMember(index: number, signal: NodeJS.Signals): Promise<RunningMember>;
  /** The first half of restartMember: sends `signal` to member `index` and waits for it to exit. */
  stopMember(index: number, signal: NodeJS.Signals): Promise<void>;
  /**
   * The second half: starts stopped member `index` again with its original
   * command line; resolves once it is spawned. `alive()` is false while a
   * member is stopped.
   */
  startMember(index: number): Promise<RunningMember>;
}

export type StartResult =
  | { readonly kind: "ok"; readonly cluster: Cluster }
  | { readonly kind: "unsupported"; readonly reason: string };

// Every child this module starts, so an interrupted bench leaves none behind.
const live = new Set<ChildProcess>();
let hooked = false;
function hookExit(): void {
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
  });
  for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
    process.once(sig, () => process.exit(sig === "SIGINT" ? 130 : 143));
  }
}

interface Spec {
  name: string;
  clientPort: number;
  peerPort: number;
}

function memberArgs(s: Spec, all: readonly Spec[], dataDir: string, token: string): string[] {
  const client = `http://127.0.0.1:${s.clientPort}`;
  const peer = `http://127.0.0.1:${s.peerPort}`;
  return [
    "--name", s.name,
    "--data-dir", dataDir,
    "--listen-client-urls", client,
    "--advertise-client-urls", client,
    "--listen-peer-urls", peer,
    "--initial-advertise-peer-urls", peer,
    "--initial-cluster", all.map((m) => `${m.name}=http://127.0.0.1:${m.peerPort}`).join(","),
    "--initial-cluster-state", "new",
    "--initial-cluster-token", token,
  ];
}

async function healthy(clientUrl: string): Promise<boolean> {
  try {
    const res = await fetch(`${clientUrl}/health`, { signal: AbortSignal.timeout(2000) });
    if (res.status !== 200) return false;
    const body = (await res.json()) as { health?: unknown };
    return body.health === "true" || body.health === true;
  } catch {
    return false;
  }
}

function readLog(file: string): string {
  try {
    return readFileSync(file, "utf8");
  } catch {
    return "";
  }
}

function tail(text: string, n: number): string {
  return text.split("\n").slice(-n).join("\n");
}

/** How a member was started, so it can be started again the same way. */
interface Command {
  readonly file: string;
  readonly argv: readonly string[];
  readonly logFile: string;
}

/** Spawns one member with its output appended to its log; `exited` settles when it is gone. */
function spawnMember(cmd: Command): { child: ChildProcess; exited: Promise<void> } {
  const fd = openSync(cmd.logFile, "a");
  let child: ChildProcess;
  try {
    child = spawn(cmd.file, [...cmd.argv], { stdio: ["ignore", fd, fd] });
  } finally {
    closeSync(fd);
  }
  live.add(child);
  const exited = new Promise<void>((resolve) => {
    child.once("exit", () => {
      live.delete(child);
      resolve();
    });
    child.once("error", () => {
      live.delete(child);
      resolve();
    });
  });
  return { child, exited };
}

class ClusterImpl implements Cluster {
  constructor(
    readonly impl: Impl,
    readonly members: RunningMember[],
    private readonly children: ChildProcess[],
    private readonly exited: Array<Promise<void>>,
    private readonly dirs: readonly string[],
    private readonly commands: readonly Command[],
  ) {}

  async restartMember(index: number, signal: NodeJS.Signals): Promise<RunningMember> {
    await this.stopMember(index, signal);
    return this.startMember(index);
  }

  async stopMember(index: number, signal: NodeJS.Signals): Promise<void> {
    const old = this.children[index];
    if (old === undefined) throw new Error(`no member ${index}`);
    if (old.exitCode === null && old.signalCode === null) old.kill(signal);
    await this.exited[index];
  }

  async startMember(index: number): Promise<RunningMember> {
    const old = this.children[index];
    const cmd = this.commands[index];
    const m = this.members[index];
    if (old === undefined || cmd === undefined || m === undefined) throw new Error(`no member ${index}`);
    if (old.exitCode === null && old.signalCode === null) throw new Error(`member ${index} is still running`);
    const { child, exited } = spawnMember(cmd);
    this.children[index] = child;
    this.exited[index] = exited;
    if (child.pid === undefined) throw new Error(`could not spawn ${cmd.file}`);
    const next = { ...m, pid: child.pid };
    this.members[index] = next;
    return next;
  }

  alive(): boolean {
    return this.children.every((c) => c.exitCode === null && c.signalCode === null);
  }

  async dispose(): Promise<void> {
    await stopAll(this.children, this.exited);
    for (const d of this.dirs) rmSync(d, { recursive: true, force: true });
  }
}

async function stopAll(children: readonly ChildProcess[], exited: ReadonlyArray<Promise<void>>): Promise<void> {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill("SIGTERM");
  const all = Promise.all(exited).then(() => true);
  if (!(await Promise.race([all, sleep(10_000).then(() => false)]))) {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
    await all;
  }
}

/**
 * Starts `size` members of `impl` under `root` (a fresh subdirectory per
 * member) and waits until every member's /health says true (etcd answers true
 * only once the cluster has a leader). `extraArgs` (etcd flags, such as
 * `--snapshot-count 1000`) follow the common flags on every member's command
 * line, the same for both implementations.
 */
export async function startCluster(
  impl: Impl,
  size: number,
  root: string,
  bins: Binaries,
  readyTimeoutMs = 90_000,
  extraArgs: readonly string[] = [],
): Promise<StartResult> {
  hookExit();
  const specs: Spec[] = [];
  for (let i = 0; i < size; i++) specs.push({ name: `m${i + 1}`, clientPort: await freePort(), peerPort: await freePort() });
  const token = `bench-${impl}-${process.pid}-${specs[0]?.clientPort ?? 0}`;
  const children: ChildProcess[] = [];
  const exited: Array<Promise<void>> = [];
  const members: RunningMember[] = [];
  const dirs: string[] = [];
  const commands: Command[] = [];
  for (const s of specs) {
    const dir = join(root, `${impl}-${size}-${s.name}-${s.clientPort}`);
    mkdirSync(dir, { recursive: true });
    dirs.push(dir);
    const logFile = join(dir, "server.log");
    const args = [...memberArgs(s, specs, join(dir, "data"), token), ...extraArgs];
    const [file, argv] = impl === "etcd" ? [bins.etcd, args] : [process.execPath, [bins.oursMain, ...args]];
    const cmd: Command = { file, argv, logFile };
    commands.push(cmd);
    const { child, exited: gone } = spawnMember(cmd);
    exited.push(gone);
    children.push(child);
    if (child.pid === undefined) {
      await stopAll(children, exited);
      throw new Error(`could not spawn ${file}`);
    }
    members.push({ name: s.name, pid: child.pid, endpoint: `127.0.0.1:${s.clientPort}`, clientUrl: `http://127.0.0.1:${s.clientPort}`, logFile });
  }

  const cleanup = async () => {
    await stopAll(children, exited);
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  };
  const deadline = Date.now() + readyTimeoutMs;
  for (;;) {
    const dead = children.findIndex((c) => c.exitCode !== null || c.signalCode !== null);
    if (dead >= 0) {
      const c = children[dead]!;
      const m = members[dead]!;
      const log = readLog(m.logFile);
      const refusal = log.split("\n").find((l) => /not supported yet/i.test(l));
      await cleanup();
      if (refusal !== undefined && c.exitCode !== 0) return { kind: "unsupported", reason: refusal.trim() };
      throw new Error(`${impl} member ${m.name} exited (${c.signalCode ?? `code ${c.exitCode}`}) before becoming healthy:\n${tail(log, 30)}`);
    }
    const ok = await Promise.all(members.map((m) => healthy(m.clientUrl)));
    if (ok.every(Boolean)) return { kind: "ok", cluster: new ClusterImpl(impl, members, children, exited, dirs, commands) };
    if (Date.now() > deadline) {
      const logs = members.map((m) => `--- ${m.name}\n${tail(readLog(m.logFile), 15)}`).join("\n");
      await cleanup();
      throw new Error(`${impl} ${size}-member topology not healthy after ${readyTimeoutMs} ms:\n${logs}`);
    }
    await sleep(100);
  }
}

// ------------------------------------------------------------- member queries (JSON gateway)

/** POSTs JSON to a member's gateway; the parsed answer, or an error for any status but 200. */
export async function post(clientUrl: string, path: string, body: unknown, timeoutMs = 5000): Promise<unknown> {
  const res = await fetch(`${clientUrl}${path}`, { method: "POST", body: JSON.stringify(body), signal: AbortSignal.timeout(timeoutMs) });
  if (res.status !== 200) throw new Error(`${path}: HTTP ${res.status}`);
  return res.json();
}

export interface Status {
  /** Decimal strings: member IDs are 64-bit. */
  memberId: string;
  leader: string;
  revision: bigint;
  dbSize: bigint;
}

/** /v3/maintenance/status of one member: its own ID, the leader it knows, its own revision. */
export async function status(clientUrl: string): Promise<Status> {
  const s = (await post(clientUrl, "/v3/maintenance/status", {})) as {
    header?: { member_id?: string; revision?: string };
    leader?: string;
    dbSize?: string;
  };
  return {
    memberId: String(s.header?.member_id ?? ""),
    leader: String(s.leader ?? ""),
    revision: BigInt(s.header?.revision ?? "0"),
    dbSize: BigInt(s.dbSize ?? "0"),
  };
}

/** The index of the member every member names as leader. */
export async function leaderIndex(members: readonly RunningMember[]): Promise<number> {
  const deadline = performance.now() + 30_000;
  for (;;) {
    const all = await Promise.all(members.map((m) => status(m.clientUrl).catch(() => undefined)));
    const leader = all[0]?.leader;
    if (leader !== undefined && leader !== "0" && all.every((s) => s?.leader === leader)) {
      const i = all.findIndex((s) => s?.memberId === leader);
      if (i >= 0) return i;
    }
    if (performance.now() > deadline) throw new Error("no leader all members agree on after 30 s");
    await sleep(200);
  }
}

/**
 * Makes the first member the leader (a leadership transfer, asked of the current leader
 * through the gateway's /v3/maintenance/transfer-leadership, if another member won the
 * election), and waits until every member names it. The bench does this for both
 * implementations, so the first endpoint, where the tool sends a one-connection
 * workload and where watch-latency's watchers are, has the same role in both.
 */
export async function leadFromFirst(c: Cluster): Promise<void> {
  if (c.members.length < 2) return;
  const deadline = performance.now() + 30_000;
  const target = (await status(c.members[0]!.clientUrl)).memberId;
  let last = "no transfer answered";
  for (;;) {
    const i = await leaderIndex(c.members);
    if (i === 0) return;
    // A transfer can be refused while the leader is busy; the loop asks again.
    await post(c.members[i]!.clientUrl, "/v3/maintenance/transfer-leadership", { targetID: target }, 15_000).catch((e: unknown) => {
      last = (e as Error).message;
    });
    if (performance.now() > deadline) throw new Error(`${c.impl}: the first member did not become leader within 30 s (last transfer: ${last})`);
    await sleep(200);
  }
}
