// Starts and stops one server under test as a real child process, with etcd's
// own command-line flags, so the same call runs real etcd (the oracle) or our
// server. Every process and temporary directory this module creates is killed
// and removed when the test process exits, whatever way it exits.

import { spawn, type ChildProcess } from "node:child_process";
import { mkdtempSync, mkdirSync, openSync, closeSync, readFileSync, rmSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { setTimeout as sleep } from "node:timers/promises";
import { freePort } from "./ports.js";
import { etcdBinaries, oursMain, repoRoot } from "./provision.js";
import { GrpcConn } from "./grpc.js";
import { Maintenance } from "../../node/gen/etcdserverpb/rpc_pb.js";

export type Impl = "etcd" | "ours";

export interface StartOptions {
  readonly impl: Impl;
  /** Data directory to use (kept on dispose). Default: a fresh temporary one, removed on dispose/exit. */
  readonly dataDir?: string;
  /** More etcd flags, appended after the standard ones (e.g. ["--max-txn-ops", "8"]). */
  readonly extraFlags?: readonly string[];
  /** Member name (default "conformance"). */
  readonly name?: string;
  /** How long to wait for readiness (default 60 s). */
  readonly readyTimeoutMs?: number;
}

export interface Member {
  readonly impl: Impl;
  readonly name: string;
  /** e.g. http://127.0.0.1:40123 (client port: gRPC, JSON gateway, /health). */
  readonly clientUrl: string;
  /** e.g. http://127.0.0.1:40124 */
  readonly peerUrl: string;
  /** host:port for grpc-js. */
  readonly grpcTarget: string;
  readonly dataDir: string;
  /** File receiving the server's stdout and stderr (all runs, appended). */
  readonly logFile: string;
  /** PID of the running process (undefined when stopped). */
  readonly pid: number | undefined;
  /** Graceful stop: SIGTERM, then SIGKILL after a grace period. Keeps the data dir. */
  stop(): Promise<void>;
  /** Hard crash: SIGKILL and wait for the process to be gone. Keeps the data dir. */
  kill9(): Promise<void>;
  /** Start again on the same data dir and ports (stops first if running) and wait until ready. */
  restart(): Promise<void>;
  /** stop() and remove the temporary directory this harness created (if any). */
  dispose(): Promise<void>;
  /** Last lines of the server log, for failure messages. */
  logTail(lines?: number): string;
}

// ---------------------------------------------------------------------------
// Process-exit cleanup: whatever happens to the test, no server outlives it.

const live = new Set<ChildProcess>();
const tempDirs = new Set<string>();
let hooksInstalled = false;

function cleanupSync(): void {
  for (const child of live) {
    try {
      if (child.pid !== undefined) process.kill(child.pid, "SIGKILL");
    } catch {
      /* already gone */
    }
  }
  live.clear();
  for (const d of tempDirs) {
    try {
      rmSync(d, { recursive: true, force: true });
    } catch {
      /* best effort */
    }
  }
  tempDirs.clear();
}

function installHooks(): void {
  if (hooksInstalled) return;
  hooksInstalled = true;
  process.on("exit", cleanupSync);
  for (const sig of ["SIGINT", "SIGTERM", "SIGHUP"] as const) {
    process.once(sig, () => {
      cleanupSync();
      process.exit(128 + (sig === "SIGINT" ? 2 : sig === "SIGTERM" ? 15 : 1));
    });
  }
}

// ---------------------------------------------------------------------------

function command(impl: Impl): { file: string; prefixArgs: string[] } {
  if (impl === "etcd") {
    const bins = etcdBinaries();
    if (!bins.ok) throw new Error(`cannot start etcd: ${bins.reason}`);
    return { file: bins.value.etcd, prefixArgs: [] };
  }
  const main = oursMain();
  if (!existsSync(main)) throw new Error(`cannot start ours: ${main} does not exist (run the build)`);
  return { file: process.execPath, prefixArgs: [main] };
}

function flags(name: string, dataDir: string, clientPort: number, peerPort: number, extra: readonly string[]): string[] {
  const client = `http://127.0.0.1:${clientPort}`;
  const peer = `http://127.0.0.1:${peerPort}`;
  return [
    "--name", name,
    "--data-dir", dataDir,
    "--listen-client-urls", client,
    "--advertise-client-urls", client,
    "--listen-peer-urls", peer,
    "--initial-advertise-peer-urls", peer,
    "--initial-cluster", `${name}=${peer}`,
    "--initial-cluster-state", "new",
    "--initial-cluster-token", `conformance-${name}`,
    ...extra,
  ];
}

async function httpHealthy(clientUrl: string): Promise<boolean> {
  try {
    const res = await fetch(`${clientUrl}/health`, { signal: AbortSignal.timeout(2000) });
    if (res.status !== 200) return false;
    const body = (await res.json()) as { health?: unknown };
    return body.health === "true" || body.health === true;
  } catch {
    return false;
  }
}

async function grpcHasLeader(target: string): Promise<boolean> {
  const conn = new GrpcConn(target, { deadlineMs: 2000 });
  try {
    const st = await conn.unary(Maintenance.method.status, {});
    return st.leader !== 0n;
  } catch {
    return false;
  } finally {
    conn.close();
  }
}

class MemberImpl implements Member {
  private child: ChildProcess | undefined;
  private exited: Promise<void> = Promise.resolve();
  private exitInfo: string | undefined;
  readonly clientUrl: string;
  readonly peerUrl: string;
  readonly grpcTarget: string;
  readonly logFile: string;

  constructor(
    readonly impl: Impl,
    readonly name: string,
    readonly dataDir: string,
    private readonly ownedRoot: string | undefined,
    private readonly clientPort: number,
    private readonly peerPort: number,
    private readonly extra: readonly string[],
    private readonly readyTimeoutMs: number,
    logDir: string,
  ) {
    this.clientUrl = `http://127.0.0.1:${clientPort}`;
    this.peerUrl = `http://127.0.0.1:${peerPort}`;
    this.grpcTarget = `127.0.0.1:${clientPort}`;
    this.logFile = join(logDir, `${impl}-${name}-${clientPort}.log`);
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  /** Spawns the process and waits for readiness. */
  async launch(): Promise<void> {
    const { file, prefixArgs } = command(this.impl);
    const args = [...prefixArgs, ...flags(this.name, this.dataDir, this.clientPort, this.peerPort, this.extra)];
    const fd = openSync(this.logFile, "a");
    let child: ChildProcess;
    try {
      child = spawn(file, args, { cwd: repoRoot, stdio: ["ignore", fd, fd], env: { ...process.env } });
    } finally {
      closeSync(fd);
    }
    this.child = child;
    this.exitInfo = undefined;
    live.add(child);
    this.exited = new Promise<void>((resolve) => {
      child.once("exit", (code, signal) => {
        live.delete(child);
        this.exitInfo = `exited with ${signal ?? `code ${code}`}`;
        resolve();
      });
      child.once("error", (err) => {
        live.delete(child);
        this.exitInfo = `failed to spawn: ${err.message}`;
        resolve();
      });
    });
    const deadline = Date.now() + this.readyTimeoutMs;
    let delay = 25;
    while (Date.now() < deadline) {
      if (this.exitInfo !== undefined) {
        throw new StartError(`${this.impl} ${this.exitInfo} before becoming ready\n${this.logTail(30)}`, this.logTail(200));
      }
      const [h, g] = await Promise.all([httpHealthy(this.clientUrl), grpcHasLeader(this.grpcTarget)]);
      if (h || g) return;
      await sleep(delay);
      delay = Math.min(delay * 2, 250);
    }
    await this.kill9();
    throw new StartError(`${this.impl} not ready after ${this.readyTimeoutMs} ms\n${this.logTail(30)}`, this.logTail(200));
  }

  private async signalAndWait(sig: NodeJS.Signals, graceMs: number): Promise<boolean> {
    const child = this.child;
    if (!child || this.exitInfo !== undefined) return true;
    try {
      child.kill(sig);
    } catch {
      /* gone */
    }
    // The grace timer is cancelled once the process exits, so it never keeps
    // the test process alive after its tests are done.
    const ac = new AbortController();
    const timer = sleep(graceMs, undefined, { signal: ac.signal }).then(
      () => false,
      () => false,
    );
    const done = await Promise.race([this.exited.then(() => true), timer]);
    ac.abort();
    return done;
  }

  async stop(): Promise<void> {
    if (!(await this.signalAndWait("SIGTERM", 15_000))) await this.kill9();
    this.child = undefined;
  }

  async kill9(): Promise<void> {
    if (!(await this.signalAndWait("SIGKILL", 30_000))) {
      throw new Error(`${this.impl} pid ${this.child?.pid} did not die after SIGKILL`);
    }
    this.child = undefined;
  }

  async restart(): Promise<void> {
    await this.stop();
    await this.launch();
  }

  async dispose(): Promise<void> {
    await this.stop();
    if (this.ownedRoot) {
      rmSync(this.ownedRoot, { recursive: true, force: true });
      tempDirs.delete(this.ownedRoot);
    }
  }

  logTail(lines = 40): string {
    try {
      const text = readFileSync(this.logFile, "utf8");
      return text.split("\n").slice(-lines).join("\n");
    } catch {
      return "(no log)";
    }
  }
}

class StartError extends Error {
  constructor(message: string, readonly fullLog: string) {
    super(message);
  }
}

/**
 * Starts one single-member server (real etcd or ours) with etcd's flags on
 * free ports and waits until it is ready (GET /health says true, or
 * Maintenance.Status reports a leader).
 */
export async function startMember(opts: StartOptions): Promise<Member> {
  installHooks();
  const name = opts.name ?? "conformance";
  const root = mkdtempSync(join(tmpdir(), `etcdts-${opts.impl}-`));
  tempDirs.add(root);
  let dataDir = opts.dataDir;
  let owned: string | undefined = root;
  if (dataDir === undefined) {
    dataDir = join(root, "data");
  } else {
    mkdirSync(dataDir, { recursive: true });
  }
  // Logs live in our temp root; when the caller owns the data dir we still own the root.
  let lastErr: unknown;
  for (let attempt = 0; attempt < 3; attempt++) {
    const clientPort = await freePort();
    const peerPort = await freePort();
    const m = new MemberImpl(opts.impl, name, dataDir, owned, clientPort, peerPort, opts.extraFlags ?? [], opts.readyTimeoutMs ?? 60_000, root);
    try {
      await m.launch();
      return m;
    } catch (err) {
      lastErr = err;
      const log = err instanceof StartError ? err.fullLog : "";
      await m.stop().catch(() => undefined);
      if (!/address already in use|EADDRINUSE/i.test(log)) break;
    }
  }
  rmSync(root, { recursive: true, force: true });
  tempDirs.delete(root);
  owned = undefined;
  throw lastErr instanceof Error ? lastErr : new Error(String(lastErr));
}
