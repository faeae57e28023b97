// Test harness for the CLI: real servers, real etcdctl, our CLI, and the
// normalisations that make their outputs comparable.
//
// The server under test is chosen by ETCDTS_CTL_SERVER:
//   "etcd"   (default) — /usr/bin/etcd, the reference;
//   "etcdts"           — our server, `node dist/node/src/main.js`, started
//                         with the same etcd flags.
//
// Comparisons run in lockstep on two identical fresh servers: etcdctl talks to
// server A, our CLI to server B, and every step is sent to both. Identical
// servers fed identical requests have identical revisions, IDs and contents,
// so outputs can be compared byte for byte after these normalisations, and
// only these (each applied where a step asks for it, except 1 and 5):
//
//   1. endpoints: each side's 127.0.0.1:<port> becomes <endpoint>;
//   2. lease IDs: lease IDs depend on the clock, so each side's granted IDs
//      become <lease0>, <lease1>, ... (hex with and without padding, decimal);
//   3. "took": endpoint health's measured latency becomes <took> (and table
//      padding, which depends on its width, is collapsed);
//   4. "ttl": a lease's remaining TTL (seconds left) becomes <ttl>;
//   4b. "dbsize": endpoint status's database sizes become <dbsize> (bbolt's
//      file growth is not deterministic once values are large);
//   5. stderr: etcdctl's zap log lines ({"level":...}) are dropped and
//      capnslog timestamps become <ts>.

import { spawn } from "node:child_process";
import type { ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { createServer, connect } from "node:net";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
/** Repository root (this file runs from dist/node/src/ctl/). */
export const REPO_ROOT = resolve(here, "../../../..");
export const OUR_CLI = join(here, "main.js");
// Binary locations follow the repository's test harness conventions (test/harness/provision.ts).
export const OUR_SERVER = process.env["ETCDTS_MAIN"] || join(REPO_ROOT, "dist/node/src/main.js");
export const ETCD = process.env["ETCD_BIN"] || "/usr/bin/etcd";
export const ETCDCTL = process.env["ETCDCTL_BIN"] || "/usr/bin/etcdctl";
const isCI = /^(1|true|yes)$/i.test(process.env["CI"] ?? "");

export type ServerKind = "etcd" | "etcdts";

/** ETCDTS_CTL_SERVER: "etcd" (default) or "etcdts" (alias "ours"). */
export function serverKind(): ServerKind {
  const k = process.env["ETCDTS_CTL_SERVER"] ?? "etcd";
  if (k === "etcd") return "etcd";
  if (k === "etcdts" || k === "ours") return "etcdts";
  throw new Error(`ETCDTS_CTL_SERVER must be "etcd" or "etcdts", not ${JSON.stringify(k)}`);
}

/**
 * Whether the tools these tests need exist. Missing tools fail loudly under CI
 * and otherwise skip with a loud message.
 */
export function toolsAvailable(kind: ServerKind = serverKind()): boolean {
  const needed = [ETCDCTL, OUR_CLI, kind === "etcd" ? ETCD : OUR_SERVER];
  const missing = needed.filter((p) => !existsSync(p));
  if (missing.length === 0) return true;
  const msg = `ctl tests need ${missing.join(", ")} (apt-get install -y etcd-server etcd-client; npm run build)`;
  if (isCI) throw new Error(`MISSING TOOLS: ${msg}`);
  process.stderr.write(`\n*** SKIP *** ${msg}\n\n`);
  return false;
}

async function freePort(): Promise<number> {
  return new Promise((res, rej) => {
    const srv = createServer();
    srv.once("error", rej);
    srv.listen(0, "127.0.0.1", () => {
      const addr = srv.address();
      const port = typeof addr === "object" && addr ? addr.port : 0;
      srv.close(() => res(port));
    });
  });
}

export interface Server {
  readonly kind: ServerKind;
  /** host:port of the client listener. */
  readonly endpoint: string;
  stop(): Promise<void>;
}

/**
 * Starts a one-member server with a temporary data dir and free ports. Peer
 * URLs are left at etcd's defaults (only the listener moves), so two servers
 * started this way get the same member and cluster IDs.
 */
export async function startServer(kind: ServerKind = serverKind(), extraFlags: string[] = []): Promise<Server> {
  const dataDir = mkdtempSync(join(tmpdir(), "etcdts-ctl-test-"));
  const clientPort = await freePort();
  const peerPort = await freePort();
  const flags = [
    "--data-dir", dataDir,
    "--listen-client-urls", `http://127.0.0.1:${clientPort}`,
    "--advertise-client-urls", `http://127.0.0.1:${clientPort}`,
    "--listen-peer-urls", `http://127.0.0.1:${peerPort}`,
    ...extraFlags,
  ];
  const [cmd, args] = kind === "etcd" ? [ETCD, flags] : [process.execPath, [OUR_SERVER, ...flags]];
  const child = spawn(cmd, args, { stdio: ["ignore", "ignore", "pipe"] });
  let log = "";
  child.stderr?.on("data", (d: Buffer) => { log = (log + d.toString()).slice(-4000); });
  const endpoint = `127.0.0.1:${clientPort}`;
  const stop = async (): Promise<void> => {
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise<void>((r) => child.once("exit", () => r()));
      child.kill("SIGTERM");
      const t = setTimeout(() => child.kill("SIGKILL"), 5000);
      await exited;
      clearTimeout(t);
    }
    rmSync(dataDir, { recursive: true, force: true });
  };
  const deadline = Date.now() + 20_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`${kind} exited early (${child.exitCode}):\n${log}`);
    if (await canConnect(clientPort)) {
      // The port is open; wait until it serves requests.
      const r = await runCli("etcdctl", endpoint, ["--command-timeout", "1s", "get", "ready-probe"]);
      if (r.code === 0) break;
    }
    if (Date.now() > deadline) { await stop(); throw new Error(`${kind} did not become ready:\n${log}`); }
    await new Promise((r) => setTimeout(r, 100));
  }
  return { kind, endpoint, stop };
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((res) => {
    const s = connect(port, "127.0.0.1");
    s.once("connect", () => { s.destroy(); res(true); });
    s.once("error", () => res(false));
  });
}

export type Cli = "etcdctl" | "ours";

export interface CliResult {
  readonly stdout: Buffer;
  readonly stderr: string;
  readonly code: number | null;
}

export interface RunOpts {
  readonly stdin?: string | Buffer;
  /** Leave stdin open (write to proc.stdin yourself); otherwise it is closed after `stdin`. */
  readonly keepStdinOpen?: boolean;
  readonly env?: Readonly<Record<string, string>>;
  readonly cwd?: string;
  readonly timeoutMs?: number;
}

/** Runs etcdctl or our CLI with --endpoints <endpoint> prepended. */
export function runCli(cli: Cli, endpoint: string, args: string[], opts: RunOpts = {}): Promise<CliResult> {
  const child = startCli(cli, endpoint, args, opts);
  return child.done;
}

export interface RunningCli {
  readonly proc: ChildProcess;
  readonly done: Promise<CliResult>;
  /** Output so far. */
  stdout(): Buffer;
  stop(): Promise<CliResult>;
}

export function startCli(cli: Cli, endpoint: string, args: string[], opts: RunOpts = {}): RunningCli {
  const full = ["--endpoints", endpoint, ...args];
  const env = { ...process.env, ETCDCTL_API: "3", ...(opts.env ?? {}) };
  const proc = cli === "etcdctl"
    ? spawn(ETCDCTL, full, { env, cwd: opts.cwd ?? REPO_ROOT })
    : spawn(process.execPath, [OUR_CLI, ...full], { env, cwd: opts.cwd ?? REPO_ROOT });
  const out: Buffer[] = [];
  let err = "";
  proc.stdout?.on("data", (d: Buffer) => out.push(d));
  proc.stderr?.on("data", (d: Buffer) => { err += d.toString("utf8"); });
  proc.stdin?.on("error", () => {});
  if (opts.keepStdinOpen) {
    if (opts.stdin !== undefined) proc.stdin?.write(opts.stdin);
  } else if (opts.stdin !== undefined) proc.stdin?.end(opts.stdin);
  else proc.stdin?.end();
  const timer = setTimeout(() => proc.kill("SIGKILL"), opts.timeoutMs ?? 30_000);
  const done = new Promise<CliResult>((res) => {
    proc.on("close", (code) => {
      clearTimeout(timer);
      res({ stdout: Buffer.concat(out), stderr: err, code });
    });
  });
  return {
    proc,
    done,
    stdout: () => Buffer.concat(out),
    stop: async () => {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill("SIGTERM");
      return done;
    },
  };
}

// ---------------------------------------------------------------------------
// Lockstep pairs

export type Normalisation = "took" | "ttl" | "dbsize";

/** Table cells lose their padding (it depends on the width of normalised values). */
const collapseTable = (t: string): string =>
  t.replace(/^[|+].*$/gm, (line) => line.replace(/ *\| */g, " | ").replace(/-+/g, "-"));

export interface StepOpts extends RunOpts {
  readonly normalise?: readonly Normalisation[];
  /** Compare stderr too (after normalisation 5). Default true. */
  readonly compareStderr?: boolean;
}

export interface SideState {
  readonly cli: Cli;
  readonly server: Server;
  /** Granted lease IDs, hex, in order. */
  readonly leases: string[];
  readonly cwd: string;
}

export interface StepResult {
  readonly etcdctl: CliResult;
  readonly ours: CliResult;
  /** Normalised text of both sides (stdout as latin1 so bytes survive). */
  readonly a: { stdout: string; stderr: string };
  readonly b: { stdout: string; stderr: string };
}

export class Pair {
  private constructor(readonly a: SideState, readonly b: SideState) {}

  static async start(extraFlags: string[] = []): Promise<Pair> {
    const kind = serverKind();
    const [sa, sb] = await Promise.all([startServer(kind, extraFlags), startServer(kind, extraFlags)]);
    const side = (cli: Cli, server: Server): SideState =>
      ({ cli, server, leases: [], cwd: mkdtempSync(join(tmpdir(), `etcdts-ctl-${cli}-`)) });
    return new Pair(side("etcdctl", sa), side("ours", sb));
  }

  async stop(): Promise<void> {
    await Promise.all([this.a.server.stop(), this.b.server.stop()]);
    rmSync(this.a.cwd, { recursive: true, force: true });
    rmSync(this.b.cwd, { recursive: true, force: true });
  }

  /** Replaces {leaseN} and {ep} placeholders with one side's values. */
  expand(side: SideState, args: string[]): string[] {
    return args.map((x) => x
      .replace(/\{lease(\d+)\}/g, (_, i: string) => side.leases[Number(i)] ?? `missing-lease-${i}`)
      .replace(/\{ep\}/g, side.server.endpoint));
  }

  /** Runs one command on both sides (in parallel) and returns normalised outputs. */
  async run(args: string[], opts: StepOpts = {}): Promise<StepResult> {
    const [ra, rb] = await Promise.all([
      runCli("etcdctl", this.a.server.endpoint, this.expand(this.a, args), { ...opts, cwd: opts.cwd ?? this.a.cwd }),
      runCli("ours", this.b.server.endpoint, this.expand(this.b, args), { ...opts, cwd: opts.cwd ?? this.b.cwd }),
    ]);
    this.captureLeases(args, ra, this.a);
    this.captureLeases(args, rb, this.b);
    return {
      etcdctl: ra,
      ours: rb,
      a: { stdout: this.normalise(this.a, ra.stdout.toString("latin1"), opts), stderr: this.normaliseErr(this.a, ra.stderr, opts) },
      b: { stdout: this.normalise(this.b, rb.stdout.toString("latin1"), opts), stderr: this.normaliseErr(this.b, rb.stderr, opts) },
    };
  }

  /** After `lease grant`, remembers each side's new lease ID. */
  private captureLeases(args: string[], r: CliResult, side: SideState): void {
    const i = args.indexOf("lease");
    if (i < 0 || args[i + 1] !== "grant" || r.code !== 0) return;
    const out = r.stdout.toString("latin1");
    const hex = /lease ([0-9a-f]{16}) granted/.exec(out)?.[1];
    const dec = /"ID"\s*:\s*(\d+)/.exec(out)?.[1];
    if (hex) side.leases.push(hex);
    else if (dec) side.leases.push(BigInt(dec).toString(16).padStart(16, "0"));
  }

  normalise(side: SideState, text: string, opts: StepOpts): string {
    let t = text.split(side.server.endpoint).join("<endpoint>");
    side.leases.forEach((hex, i) => {
      const dec = BigInt("0x" + hex).toString();
      const short = BigInt("0x" + hex).toString(16);
      t = t.split(hex).join(`<lease${i}>`).split(dec).join(`<lease${i}>`).split(short).join(`<lease${i}>`);
    });
    const n = opts.normalise ?? [];
    if (n.includes("took")) {
      t = t.replace(/took = \S+/g, "took = <took>")
        .replace(/"took":"[^"]*"/g, '"took":"<took>"')
        .replace(/"Took" : \S+/g, '"Took" : <took>')
        .replace(/^(\|.*\|\s*(?:true|false) \| )\S+( \|)/gm, "$1<took>$2");
      t = collapseTable(t);
    }
    if (n.includes("dbsize")) {
      t = t.replace(/^(<endpoint>, [0-9a-f]+, [^,]*, )[^,]*(, )/gm, "$1<dbsize>$2")
        .replace(/"(dbSize|dbSizeInUse)":\d+/g, '"$1":<dbsize>')
        .replace(/^"DBSize" : \d+$/gm, '"DBSize" : <dbsize>')
        .replace(/^(\| +(?:http:\/\/)?<endpoint> \|[^|]*\|[^|]*\|)[^|]*\|/gm, "$1 <dbsize> |");
      t = collapseTable(t);
    }
    if (n.includes("ttl")) {
      t = t.replace(/remaining\(-?\d+s\)/g, "remaining(<ttl>s)")
        .replace(/"ttl":-?\d+/g, '"ttl":<ttl>')
        .replace(/^"TTL" : -?\d+$/gm, '"TTL" : <ttl>');
    }
    return t;
  }

  normaliseErr(side: SideState, text: string, opts: StepOpts): string {
    const lines = text.split("\n").filter((l) => !l.startsWith('{"level":'));
    const t = lines.join("\n").replace(/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6} ([A-Z]) \| /gm, "<ts> $1 | ");
    return this.normalise(side, t, opts);
  }

  /** The current revision (both servers have the same one). */
  async revision(): Promise<bigint> {
    const r = await runCli("etcdctl", this.a.server.endpoint, ["get", "revision-probe", "-w", "json"]);
    const m = /"revision":(\d+)/.exec(r.stdout.toString());
    if (!m?.[1]) throw new Error(`no revision in ${r.stdout.toString()}`);
    return BigInt(m[1]);
  }
}

/** Waits until `cond` holds, polling; throws after timeoutMs. */
export async function waitFor(cond: () => boolean, timeoutMs = 10_000, what = "condition"): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}
